/// The four signed messages of the gateway protocol (gateway-protocol.md §1, §3, §4).
public enum GatewayMessageKind: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// The payment request, merchant → gateway through the buyer's browser (`Pay_Index.html`).
    case pay
    /// The order query, merchant → gateway (`Pay_Trade_query.html`).
    case query
    /// The payment notification, gateway → merchant (`pay_notifyurl`).
    case notify
    /// The order query's JSON reply.
    case queryReply = "query-reply"

    /// The fields the document marks as signed ("参与签名: 是").
    public var documentedSignedFields: [String] {
        switch self {
        case .pay:
            return [
                "pay_memberid", "pay_orderid", "pay_applydate", "pay_bankcode", "pay_notifyurl", "pay_callbackurl",
                "pay_amount",
            ]
        case .query:
            return ["pay_memberid", "pay_orderid"]
        case .notify:
            return ["memberid", "orderid", "amount", "transaction_id", "datetime", "returncode"]
        case .queryReply:
            return ["memberid", "orderid", "amount", "time_end", "transaction_id", "returncode", "trade_state"]
        }
    }

    /// The field that carries the signature.
    public var signatureField: String {
        switch self {
        case .pay, .query: return "pay_md5sign"
        case .notify, .queryReply: return "sign"
        }
    }

    /// The unsigned field that deployments echo back and that some of them sign anyway.
    public var attachField: String? {
        switch self {
        case .pay: return "pay_attach"
        case .notify: return "attach"
        case .query, .queryReply: return nil
        }
    }

    public var description: String { self.rawValue }
}

/// Which values count as empty, and so are left out of the signed string (step 2 of the algorithm).
public enum EmptyValueRule: String, Sendable, Hashable, CaseIterable, Codable {
    /// The document: only the empty string is empty.
    case emptyString = "empty-string"
    /// PHP's `empty()`, which deployments call: the empty string and the string `"0"` are both empty.
    case phpEmpty = "php-empty"

    func isEmpty(_ value: String) -> Bool {
        switch self {
        case .emptyString: return value.isEmpty
        case .phpEmpty: return value.isEmpty || value == "0"
        }
    }
}

/// Which received fields a notification's signature covers.
public enum NotificationFieldSet: String, Sendable, Hashable, CaseIterable, Codable {
    /// The six documented fields.
    case documented
    /// Every non-empty received field except `sign` and `attach` (deployments that add e.g. `msg`).
    case allReceived = "all-received"
}

/// How `name` and `value` are joined inside a pair. The document says `=`; some cloned deployments build the
/// string with PHP's `"$key=>$val"` by mistake, and their merchants must match it.
public enum PairJoiner: String, Sendable, Hashable, CaseIterable, Codable {
    case equals = "="
    case arrow = "=>"
}

/// The signing settings in force. The defaults are the document's algorithm; every variant is a deliberate,
/// documented setting (`signing.*` in the daemon's configuration) because deployments of the gateway differ.
public struct SigningDialect: Sendable, Hashable, Codable, CustomStringConvertible {
    public var emptyValueRule: EmptyValueRule
    public var notificationFieldSet: NotificationFieldSet
    /// Accept a received signature in lowercase hexadecimal. Off by default: the document says uppercase.
    public var acceptLowercaseHex: Bool

    public init(
        emptyValueRule: EmptyValueRule = .emptyString,
        notificationFieldSet: NotificationFieldSet = .documented,
        acceptLowercaseHex: Bool = false
    ) {
        self.emptyValueRule = emptyValueRule
        self.notificationFieldSet = notificationFieldSet
        self.acceptLowercaseHex = acceptLowercaseHex
    }

    /// The document's algorithm.
    public static let document = SigningDialect()

    /// A short stable text form, recorded with every verified message: `empty-string/documented/upper`.
    public var description: String {
        "\(self.emptyValueRule.rawValue)/\(self.notificationFieldSet.rawValue)/"
            + (self.acceptLowercaseHex ? "any-case" : "upper")
    }

    /// The one-byte code stored in events: bit 0 PHP empty rule, bit 1 all-received field set, bit 2 any case.
    public var code: UInt8 {
        (self.emptyValueRule == .phpEmpty ? 1 : 0) | (self.notificationFieldSet == .allReceived ? 2 : 0)
            | (self.acceptLowercaseHex ? 4 : 0)
    }

    /// The dialect of a stored code; nil for a code with unknown bits.
    public init?(code: UInt8) {
        guard code & ~0b111 == 0 else { return nil }
        self.init(
            emptyValueRule: code & 1 != 0 ? .phpEmpty : .emptyString,
            notificationFieldSet: code & 2 != 0 ? .allReceived : .documented,
            acceptLowercaseHex: code & 4 != 0
        )
    }

    /// Parses the text form written by `description`.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, let empty = EmptyValueRule(rawValue: parts[0]),
            let set = NotificationFieldSet(rawValue: parts[1]), parts[2] == "upper" || parts[2] == "any-case"
        else { return nil }
        self.init(emptyValueRule: empty, notificationFieldSet: set, acceptLowercaseHex: parts[2] == "any-case")
    }
}
