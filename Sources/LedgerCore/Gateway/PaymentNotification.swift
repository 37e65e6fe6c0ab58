/// Why a body is not a payment notification at all. Such bodies are counted and logged by the daemon but never
/// written to the ledger, so garbage from the internet cannot fill the disk.
public enum NotificationRejection: Error, Sendable, Hashable, CustomStringConvertible {
    case form(FormDecodingError)
    case missingField(String)
    /// A documented signed field is empty (or `0` under PHP's `empty()` rule), so it would drop out of the signed
    /// text and the signature would also cover a different message without it.
    case emptyField(String)
    case orderIdInvalid
    /// Under the "every received field" dialect, a field of another gateway message (`time_end`, `trade_state`,
    /// `pay_*`): signing it would let that message's signature pass for a notification's.
    case foreignField(String)
    /// Under the "every received field" dialect, a field that is neither documented nor configured in
    /// `signing.notificationExtraFields`.
    case unexpectedField(String)
    /// A signed value contains `&` or `=`, which the gateway, joining values unencoded, can never send, and which
    /// would move the pair boundaries of the signed text.
    case pairDelimiterInSignedValue(String)

    public var description: String {
        switch self {
        case .form(let error): return error.description
        case .missingField(let name): return "The notification has no \(name) field."
        case .emptyField(let name): return "The notification's \(name) field is empty."
        case .orderIdInvalid: return "The notification's orderid is not 1 to 20 of letters, digits, '_' and '-'."
        case .foreignField(let name):
            return "The notification has the field '\(name)', which belongs to another gateway message."
        case .unexpectedField(let name):
            return "The notification has the field '\(name)', which is neither documented nor configured in "
                + "signing.notificationExtraFields."
        case .pairDelimiterInSignedValue(let name):
            return "The signed value of \(name) contains '&' or '=', which the gateway never sends."
        }
    }
}

/// The shape rules of a notification's fields, shared by the parser and the configuration's check of
/// `signing.notificationExtraFields`.
public enum NotificationFields {
    /// The documented signed fields, the signature and attach: every name the document gives a notification.
    public static let documented: [String] =
        GatewayMessageKind.notify.documentedSignedFields + [GatewayMessageKind.notify.signatureField, "attach"]

    /// Whether `name` belongs to another gateway message: a `pay_` field of the payment request or the query, or
    /// a query reply field a notification does not have (`time_end`, `trade_state`).
    public static func isForeign(_ name: String) -> Bool {
        if name.utf8.starts(with: "pay_".utf8) { return true }
        let others = GatewayMessageKind.allCases.filter { $0 != .notify }.flatMap { kind in
            kind.documentedSignedFields + [kind.signatureField] + (kind.attachField.map { [$0] } ?? [])
        }
        return others.contains { $0.hasSameBytes(as: name) }
            && !Self.documented.contains { $0.hasSameBytes(as: name) }
    }

    /// Why `name` cannot be configured as an extra notification field, or nil when it can: 1 to 32 ASCII letters,
    /// digits and `_`, not a documented field and not one of another message.
    public static func extraFieldProblem(_ name: String) -> String? {
        let bytes = name.utf8
        let wellFormed =
            !bytes.isEmpty && bytes.count <= 32
            && bytes.allSatisfy { byte in
                (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
            }
        if !wellFormed { return "'\(name)' is not 1 to 32 ASCII letters, digits and '_'" }
        if Self.documented.contains(where: { $0.hasSameBytes(as: name) }) {
            return "'\(name)' is a documented notification field already"
        }
        if Self.isForeign(name) { return "'\(name)' belongs to another gateway message" }
        return nil
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

    /// Interprets decoded fields as a notification under the dialect in force, so that its signed text can never be
    /// another message's (gateway-protocol.md §2):
    ///
    /// - the six documented signed fields must be present and not empty under the dialect's empty rule, and `sign`
    ///   present: an empty `datetime` would drop out of the signed text, and a signed query reply re-posted with
    ///   `datetime=` would sign the same text as a notification;
    /// - under the "every received field" dialect, no field of another message (`time_end`, `trade_state`, `pay_*`)
    ///   and no field but the documented ones and `extraFields`;
    /// - no signed value contains `&` or `=`;
    /// - `orderid` is an order id, so the message can be filed under an order.
    public init(
        fields: FormFields,
        dialect: SigningDialect = .document,
        extraFields: [String] = []
    ) throws(NotificationRejection) {
        let kind = GatewayMessageKind.notify
        for name in kind.documentedSignedFields where fields[name] == nil { throw .missingField(name) }
        if fields[kind.signatureField] == nil { throw .missingField(kind.signatureField) }
        for name in kind.documentedSignedFields where dialect.emptyValueRule.isEmpty(fields[name] ?? "") {
            throw .emptyField(name)
        }
        guard let orderId = fields["orderid"], GatewayValidation.isOrderId(orderId) else { throw .orderIdInvalid }
        let allReceived = dialect.notificationFieldSet == .allReceived
        for field in fields {
            let documented = NotificationFields.documented.contains { $0.hasSameBytes(as: field.name) }
            if allReceived && !documented {
                if NotificationFields.isForeign(field.name) { throw .foreignField(field.name) }
                if !extraFields.contains(where: { $0.hasSameBytes(as: field.name) }) {
                    throw .unexpectedField(field.name)
                }
            }
        }
        let recipe = SigningRecipe(dialect, for: kind)
        for field in Signer.canonical(fields, kind: kind, recipe: recipe).pairs
        where GatewayValidation.hasPairDelimiter(field.value) {
            throw .pairDelimiterInSignedValue(field.name)
        }
        self.fields = fields
    }

    /// Decodes and interprets a form body under the dialect in force (see `init(fields:dialect:extraFields:)`).
    public static func parse(
        _ body: some Collection<UInt8>,
        limits: FormLimits = .default,
        dialect: SigningDialect = .document,
        extraFields: [String] = []
    ) throws(NotificationRejection) -> PaymentNotification {
        let fields: FormFields
        do {
            fields = try FormCoding.decode(body, limits: limits)
        } catch {
            throw .form(error)
        }
        return try PaymentNotification(fields: fields, dialect: dialect, extraFields: extraFields)
    }

    /// Verifies the signature under the dialect in force.
    public func verify(key: MerchantKey, dialect: SigningDialect = .document) -> SignatureVerdict {
        Signer.verify(self.fields.fields, kind: .notify, key: key, dialect: dialect)
    }
}
