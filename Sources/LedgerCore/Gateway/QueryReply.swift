/// `trade_state` of a query reply: the field that decides, never `returncode` alone (deployments send `00` for
/// unpaid orders too).
public enum TradeState: Sendable, Hashable, CustomStringConvertible {
    case success
    case notPaid
    case other(String)

    public init(_ text: String) {
        switch text {
        case "SUCCESS": self = .success
        case "NOTPAY": self = .notPaid
        default: self = .other(text)
        }
    }

    public var description: String {
        switch self {
        case .success: return "SUCCESS"
        case .notPaid: return "NOTPAY"
        case .other(let text): return text
        }
    }
}

/// A query reply object, its scalar members as text exactly as the gateway would have signed them.
public struct QueryReply: Sendable, Hashable {
    /// The reply's members as text, in order.
    public let fields: [FormField]
    /// Whether it came wrapped as `{"status":"success","msg":…,"data":{…}}`.
    public let enveloped: Bool

    public subscript(name: String) -> String? { self.fields.first(where: { $0.name == name })?.value }

    public var memberId: String { self["memberid"] ?? "" }
    public var orderId: String { self["orderid"] ?? "" }
    public var amountText: String { self["amount"] ?? "" }
    public var timeEnd: String { self["time_end"] ?? "" }
    public var transactionId: String { self["transaction_id"] ?? "" }
    public var returnCode: String { self["returncode"] ?? "" }
    public var tradeState: TradeState { TradeState(self["trade_state"] ?? "") }
    public var amount: Result<GatewayAmount, AmountRejection> { GatewayAmount.parse(self.amountText) }

    public func verify(key: MerchantKey, dialect: SigningDialect = .document) -> SignatureVerdict {
        Signer.verify(self.fields, kind: .queryReply, key: key, dialect: dialect)
    }
}

/// What a query reply body turned out to be.
public enum QueryReplyParse: Sendable, Hashable {
    /// A reply object, with its signature verdict under the dialect in force.
    case reply(QueryReply, SignatureVerdict)
    /// The error envelope `{"status":"error","msg":…}`.
    case gatewayError(message: String)
    /// Not a reply: not JSON (an HTML page from a proxy), or JSON of another shape.
    case unreadable(reason: String)

    /// Parses a reply body: the reply object at top level, or wrapped in the `status`/`msg`/`data` envelope.
    public static func parse(
        _ body: some Collection<UInt8>,
        key: MerchantKey,
        dialect: SigningDialect = .document,
        limits: JSONLimits = PollLimits.replyJSON
    ) -> QueryReplyParse {
        let value: JSONValue
        do {
            value = try JSONParser.parse(body, limits: limits)
        } catch {
            let looksLikeHTML = body.prefix(512).contains(UInt8(ascii: "<"))
            return .unreadable(reason: (looksLikeHTML ? "an HTML page, not JSON: " : "not JSON: ") + error.description)
        }
        guard let object = value.objectValue else { return .unreadable(reason: "the JSON text is not an object") }
        var replyObject = object
        var enveloped = false
        if let status = object["status"]?.stringValue, object["orderid"] == nil {
            let message = object["msg"].flatMap(Self.scalarText) ?? ""
            switch status {
            case "success":
                guard let data = object["data"]?.objectValue else {
                    return .unreadable(reason: "the success envelope has no data object")
                }
                replyObject = data
                enveloped = true
            case "error":
                return .gatewayError(message: message)
            default:
                return .unreadable(reason: "the envelope status is '\(status)', neither success nor error")
            }
        }
        var fields: [FormField] = []
        for (name, member) in replyObject {
            guard let text = Self.scalarText(member) else {
                return .unreadable(reason: "the reply member \(name) is not a scalar")
            }
            fields.append(FormField(name, text))
        }
        for name in ["orderid", "sign"] where !fields.contains(where: { $0.name == name }) {
            return .unreadable(reason: "the reply has no \(name) member")
        }
        let reply = QueryReply(fields: fields, enveloped: enveloped)
        return .reply(reply, reply.verify(key: key, dialect: dialect))
    }

    /// A JSON scalar as the gateway's PHP code would have turned it into text when signing: strings as they are,
    /// numbers as written, `true` as "1", `false` and `null` as "".
    static func scalarText(_ value: JSONValue) -> String? {
        switch value {
        case .string(let text): return text
        case .number(let text): return text
        case .bool(let flag): return flag ? "1" : ""
        case .null: return ""
        case .array, .object: return nil
        }
    }
}
