/// Why a body is not a payment notification at all. Such bodies are counted and logged by the daemon but never
/// written to the ledger, so garbage from the internet cannot fill the disk.
public enum NotificationRejection: Error, Sendable, Hashable, CustomStringConvertible {
    case form(FormDecodingError)
    case missingField(String)
    case orderIdInvalid

    public var description: String {
        switch self {
        case .form(let error): return error.description
        case .missingField(let name): return "The notification has no \(name) field."
        case .orderIdInvalid: return "The notification's orderid is not 1 to 20 of letters, digits, '_' and '-'."
        }
    }
}

/// The gateway's asynchronous payment notification (gateway-protocol.md §3), as received.
///
/// Values are kept as text exactly as they arrived; typed views (`amount`, `dateTime`) parse on demand because a
/// value that does not parse is itself a fact to record (the projection flags it), not a reason to lose the message.
public struct PaymentNotification: Sendable, Hashable {
    /// Every received field, in order, with the raw body.
    public let fields: FormFields

    public var memberId: String { self.fields["memberid"] ?? "" }
    public var orderId: String { self.fields["orderid"] ?? "" }
    public var amountText: String { self.fields["amount"] ?? "" }
    public var transactionId: String { self.fields["transaction_id"] ?? "" }
    public var dateTimeText: String { self.fields["datetime"] ?? "" }
    public var returnCode: String { self.fields["returncode"] ?? "" }
    public var attach: String? { self.fields["attach"] }
    public var sign: String { self.fields["sign"] ?? "" }

    /// The amount as an exact decimal, or why it is not one.
    public var amount: Result<GatewayAmount, AmountRejection> { GatewayAmount.parse(self.amountText) }
    /// The transaction time, if it is in one of the two forms deployments send.
    public var dateTime: GatewayDateTime? { GatewayDateTime(self.dateTimeText) }
    /// `returncode` `00` is the only success (the document: “00” 为成功).
    public var isSuccess: Bool { self.returnCode == "00" }

    /// Interprets decoded fields as a notification: the six documented signed fields and `sign` must be present
    /// (possibly empty) and `orderid` must be an order id, so the message can be filed under an order.
    public init(fields: FormFields) throws(NotificationRejection) {
        for name in GatewayMessageKind.notify.documentedSignedFields + ["sign"] where fields[name] == nil {
            throw .missingField(name)
        }
        guard let orderId = fields["orderid"], GatewayValidation.isOrderId(orderId) else { throw .orderIdInvalid }
        self.fields = fields
    }

    /// Decodes and interprets a form body.
    public static func parse(_ body: some Collection<UInt8>, limits: FormLimits = .default)
        throws(NotificationRejection) -> PaymentNotification
    {
        let fields: FormFields
        do {
            fields = try FormCoding.decode(body, limits: limits)
        } catch {
            throw .form(error)
        }
        return try PaymentNotification(fields: fields)
    }

    /// Verifies the signature under the dialect in force.
    public func verify(key: MerchantKey, dialect: SigningDialect = .document) -> SignatureVerdict {
        Signer.verify(self.fields.fields, kind: .notify, key: key, dialect: dialect)
    }
}
