/// What the core needs to know about the merchant's gateway account. The daemon builds it from its
/// configuration; the core only checks values, it never reads files or the environment.
public struct GatewaySettings: Sendable, Hashable {
    /// The merchant number the platform assigned (`pay_memberid`).
    public var memberId: String
    /// The gateway's base URL; the gateway paths (`/Pay_Index.html`, `/Pay_Trade_query.html`) are under it.
    public var baseURL: String
    /// Where the gateway POSTs notifications (`pay_notifyurl`).
    public var notifyURL: String
    /// Where the buyer's browser returns (`pay_callbackurl`).
    public var callbackURL: String
    /// Product (bank) codes this merchant may use; the merchant back office is authoritative.
    public var bankCodes: [String]
    public var timeZone: GatewayTimeZone
    public var dialect: SigningDialect
    /// The fields besides the documented ones that a notification may carry under the "every received field"
    /// dialect (`signing.notificationExtraFields`, e.g. `msg`). Any other field is refused there, because every
    /// received field is signed and an unknown one could make another message's signed text.
    public var notificationExtraFields: [String]
    /// Allow `&`, `=`, `%` and `+` in signed values and attach. Off by default because the gateway does not
    /// URL-encode its callback bodies, so such a value arrives reframed or mangled.
    public var allowReservedCharacters: Bool
    public var limits: OrderLimits

    /// The document's product codes: 940 Alipay scan, 941 Alipay H5, 942 WeChat scan, 946 WeChat JSAPI.
    public static let defaultBankCodes = ["940", "941", "942", "946"]

    public init(
        memberId: String,
        baseURL: String,
        notifyURL: String,
        callbackURL: String,
        bankCodes: [String] = GatewaySettings.defaultBankCodes,
        timeZone: GatewayTimeZone = .shanghai,
        dialect: SigningDialect = .document,
        notificationExtraFields: [String] = [],
        allowReservedCharacters: Bool = false,
        limits: OrderLimits = .default
    ) {
        self.memberId = memberId
        self.baseURL = baseURL
        self.notifyURL = notifyURL
        self.callbackURL = callbackURL
        self.bankCodes = bankCodes
        self.timeZone = timeZone
        self.dialect = dialect
        self.notificationExtraFields = notificationExtraFields
        self.allowReservedCharacters = allowReservedCharacters
        self.limits = limits
    }

    /// `Pay_Index.html` under the base URL.
    public var payURL: String { Self.join(self.baseURL, "Pay_Index.html") }
    /// `Pay_Trade_query.html` under the base URL.
    public var queryURL: String { Self.join(self.baseURL, "Pay_Trade_query.html") }

    static func join(_ base: String, _ path: String) -> String {
        base.hasSuffix("/") ? base + path : base + "/" + path
    }

    /// Checks every value, naming the setting that is wrong.
    public func validate() -> [SettingsProblem] {
        var problems: [SettingsProblem] = []
        if !GatewayValidation.isMemberId(self.memberId) {
            problems.append(.init(key: "gateway.memberId", message: "must be 1 to 32 ASCII digits"))
        }
        for (key, url) in [
            ("gateway.url", self.baseURL), ("notifyURL", self.notifyURL), ("callbackURL", self.callbackURL),
        ] {
            if let reason = GatewayValidation.urlProblem(url) {
                problems.append(.init(key: key, message: reason))
            }
        }
        // The pay page's Content-Security-Policy allows its form to post only to this origin; a URL it cannot take
        // an origin from would leave every pay page unable to submit.
        if GatewayValidation.urlProblem(self.baseURL) == nil, GatewayValidation.origin(of: self.baseURL) == nil {
            problems.append(
                .init(
                    key: "gateway.url",
                    message: "must have a host of ASCII letters, digits, '.' and '-' (or an IP address)"
                )
            )
        }
        if self.bankCodes.isEmpty {
            problems.append(.init(key: "gateway.bankCodes", message: "must list at least one product code"))
        }
        for code in self.bankCodes where !GatewayValidation.isBankCode(code) {
            problems.append(
                .init(key: "gateway.bankCodes", message: "'\(code)' is not 1 to 16 ASCII letters or digits")
            )
        }
        for name in self.notificationExtraFields {
            if let problem = NotificationFields.extraFieldProblem(name) {
                problems.append(.init(key: "signing.notificationExtraFields", message: problem))
            }
        }
        problems.append(contentsOf: self.limits.validate())
        return problems
    }
}

/// One wrong setting: the key, and what is wrong with its value.
public struct SettingsProblem: Sendable, Hashable, CustomStringConvertible {
    public let key: String
    public let message: String

    public var description: String { "\(self.key): \(self.message)" }
}

extension OrderLimits {
    /// The relationships between limits: a whole signed request must fit in a notification body that our own
    /// form limits accept, so every piece is bounded well below `FormLimits.default.fieldBytesMax`.
    public func validate() -> [SettingsProblem] {
        var problems: [SettingsProblem] = []
        if self.amountFenMax <= 0 || self.amountFenMax > Self.amountFenMaxMax {
            problems.append(
                .init(key: "limits.order.amountFenMax", message: "must be between 1 and \(Self.amountFenMaxMax)")
            )
        }
        let fieldMax = FormLimits.default.fieldBytesMax
        for (key, value) in [
            ("limits.order.textBytesMax", self.textBytesMax), ("limits.order.attachBytesMax", self.attachBytesMax),
            ("limits.order.urlBytesMax", self.urlBytesMax),
        ] where value < 1 || value > fieldMax {
            problems.append(.init(key: key, message: "must be between 1 and \(fieldMax) (the form field limit)"))
        }
        return problems
    }
}

/// Field rules shared by the builders and parsers.
public enum GatewayValidation {
    /// The longest order id the gateway stores ("字符长度20").
    public static let orderIdBytesMax = 20

    /// 1–20 characters of `[A-Za-z0-9_-]`.
    public static func isOrderId(_ text: String) -> Bool {
        let bytes = text.utf8
        guard !bytes.isEmpty, bytes.count <= Self.orderIdBytesMax else { return false }
        return bytes.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: "-")
        }
    }

    /// 1–32 ASCII digits.
    public static func isMemberId(_ text: String) -> Bool {
        let bytes = text.utf8
        return !bytes.isEmpty && bytes.count <= 32 && bytes.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    /// 1–16 ASCII letters or digits.
    public static func isBankCode(_ text: String) -> Bool {
        let bytes = text.utf8
        return !bytes.isEmpty && bytes.count <= 16
            && bytes.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) }
    }

    /// Why `text` is not an absolute http(s) URL with a host, or nil when it is one.
    public static func urlProblem(_ text: String) -> String? {
        // Bytes, not `Character`s: a `/` joined to a combining mark must still end the host.
        let bytes = Array(text.utf8)
        let rest: ArraySlice<UInt8>
        if Self.hasASCIIPrefix(bytes, "https://") {
            rest = bytes.dropFirst(8)
        } else if Self.hasASCIIPrefix(bytes, "http://") {
            rest = bytes.dropFirst(7)
        } else {
            return "must be an absolute http:// or https:// URL"
        }
        let host = rest.prefix { $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }
        if host.isEmpty || host.first == UInt8(ascii: ":") || host.first == UInt8(ascii: "@") {
            return "must name a host"
        }
        let refused: Set<UInt8> = [UInt8(ascii: "\""), UInt8(ascii: "<"), UInt8(ascii: ">")]
        if bytes.contains(where: { $0 <= 0x20 || $0 == 0x7F || refused.contains($0) }) {
            return "must not contain spaces, control characters, quotes or angle brackets"
        }
        return nil
    }

    /// The origin (`scheme://host[:port]`) of an absolute http(s) URL, for a `Content-Security-Policy` source; nil
    /// when the URL has none or its host holds anything but letters, digits, `.`, `-`, `:`, `[` and `]`, the only
    /// bytes a policy source may carry without changing the policy.
    public static func origin(of url: String) -> String? {
        let bytes = Array(url.utf8)
        let scheme: String
        let rest: ArraySlice<UInt8>
        if Self.hasASCIIPrefix(bytes, "https://") {
            (scheme, rest) = ("https://", bytes.dropFirst(8))
        } else if Self.hasASCIIPrefix(bytes, "http://") {
            (scheme, rest) = ("http://", bytes.dropFirst(7))
        } else {
            return nil
        }
        var authority = rest.prefix { $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }
        if let at = authority.lastIndex(of: UInt8(ascii: "@")) { authority = authority[(at + 1)...] }
        let allowed = authority.allSatisfy { byte in
            (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: ":")) || byte == UInt8(ascii: ".")
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "[") || byte == UInt8(ascii: "]")
        }
        guard !authority.isEmpty, allowed else { return nil }
        return scheme + String(decoding: authority, as: UTF8.self).lowercased()
    }

    /// Whether `bytes` begin with `prefix`, ASCII letters compared in either case.
    static func hasASCIIPrefix(_ bytes: [UInt8], _ prefix: StaticString) -> Bool {
        let expected = UnsafeBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount)
        guard bytes.count >= expected.count else { return false }
        return zip(bytes, expected).allSatisfy { received, wanted in
            let isLetter = (received | 0x20) >= UInt8(ascii: "a") && (received | 0x20) <= UInt8(ascii: "z")
            return (isLetter ? received | 0x20 : received) == wanted
        }
    }

    /// The first of `&`, `=`, `%` and `+` in `text`, the characters an unencoded callback body reframes or mangles.
    /// Looked for among the scalars: a `&` joined to a combining mark is still a `&` in the gateway's body.
    public static func reservedCharacter(in text: String) -> Unicode.Scalar? {
        text.unicodeScalars.first { $0 == "&" || $0 == "=" || $0 == "%" || $0 == "+" }
    }

    /// Whether `text` contains `&` or `=`, the two characters that move the boundaries of a `name=value&` pair in a
    /// canonical string: a signed value holding either could reframe one message's signed text as another's.
    public static func hasPairDelimiter(_ text: String) -> Bool {
        text.utf8.contains { $0 == UInt8(ascii: "&") || $0 == UInt8(ascii: "=") }
    }
}
