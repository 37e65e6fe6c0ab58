/// What shop code asks for when it creates an order.
public struct OrderRequest: Sendable, Hashable {
    public var orderId: String
    public var amount: String
    public var bankCode: String
    public var productName: String
    public var attach: String?
    public var productNum: String?
    public var productDesc: String?
    public var productURL: String?

    public init(
        orderId: String,
        amount: String,
        bankCode: String,
        productName: String,
        attach: String? = nil,
        productNum: String? = nil,
        productDesc: String? = nil,
        productURL: String? = nil
    ) {
        self.orderId = orderId
        self.amount = amount
        self.bankCode = bankCode
        self.productName = productName
        self.attach = attach
        self.productNum = productNum
        self.productDesc = productDesc
        self.productURL = productURL
    }
}

/// Why an order was refused before anything was signed or stored.
public enum OrderRejection: Error, Sendable, Hashable, CustomStringConvertible {
    case orderIdInvalid(String)
    case amountInvalid(AmountRejection)
    case bankCodeUnknown(code: String, allowed: [String])
    case productNameMissing
    case fieldTooLong(field: String, bytesMax: Int)
    case fieldHasControlCharacters(field: String)
    case urlInvalid(field: String, reason: String)
    case reservedCharacter(field: String, character: Unicode.Scalar)

    public var description: String {
        switch self {
        case .orderIdInvalid(let id):
            return "The order id '\(id)' is not 1 to 20 characters of letters, digits, '_' and '-'."
        case .amountInvalid(let rejection):
            return rejection.description
        case .bankCodeUnknown(let code, let allowed):
            return "The bank code '\(code)' is not one of the configured products (\(allowed.joined(separator: ", ")))."
        case .productNameMissing:
            return "The product name is empty; the gateway requires pay_productname."
        case .fieldTooLong(let field, let bytesMax):
            return "The field \(field) is longer than \(bytesMax) bytes."
        case .fieldHasControlCharacters(let field):
            return "The field \(field) contains control characters."
        case .urlInvalid(let field, let reason):
            return "The field \(field) \(reason)."
        case .reservedCharacter(let field, let character):
            return "The field \(field) contains '\(character)', which the gateway does not encode in its callbacks; "
                + "remove it or allow reserved characters in the gateway settings."
        }
    }
}

/// A signed payment request: every field sent to `Pay_Index.html`, exactly as signed.
public struct PayRequest: Sendable, Hashable {
    public let memberId: String
    public let orderId: String
    public let applyDate: String
    public let bankCode: String
    public let notifyURL: String
    public let callbackURL: String
    public let amount: OrderAmount
    public let productName: String
    public let attach: String?
    public let productNum: String?
    public let productDesc: String?
    public let productURL: String?
    /// `pay_md5sign`.
    public let sign: String

    /// The seven signed fields, in the document's order.
    public var signedFields: [FormField] {
        [
            FormField("pay_memberid", self.memberId), FormField("pay_orderid", self.orderId),
            FormField("pay_applydate", self.applyDate), FormField("pay_bankcode", self.bankCode),
            FormField("pay_notifyurl", self.notifyURL), FormField("pay_callbackurl", self.callbackURL),
            FormField("pay_amount", self.amount.text),
        ]
    }

    /// Every field of the form, signed ones first, then the signature, then the unsigned ones that are present.
    public var fields: [FormField] {
        var fields = self.signedFields
        fields.append(FormField("pay_md5sign", self.sign))
        if let attach = self.attach { fields.append(FormField("pay_attach", attach)) }
        fields.append(FormField("pay_productname", self.productName))
        if let value = self.productNum { fields.append(FormField("pay_productnum", value)) }
        if let value = self.productDesc { fields.append(FormField("pay_productdesc", value)) }
        if let value = self.productURL { fields.append(FormField("pay_producturl", value)) }
        return fields
    }

    /// The canonical string with the key masked, for display.
    public func canonicalMasked(dialect: SigningDialect = .document) -> String {
        Signer.canonical(self.signedFields, kind: .pay, dialect: dialect).masked
    }

    init(
        memberId: String,
        orderId: String,
        applyDate: String,
        bankCode: String,
        notifyURL: String,
        callbackURL: String,
        amount: OrderAmount,
        productName: String,
        attach: String?,
        productNum: String?,
        productDesc: String?,
        productURL: String?,
        sign: String
    ) {
        self.memberId = memberId
        self.orderId = orderId
        self.applyDate = applyDate
        self.bankCode = bankCode
        self.notifyURL = notifyURL
        self.callbackURL = callbackURL
        self.amount = amount
        self.productName = productName
        self.attach = attach
        self.productNum = productNum
        self.productDesc = productDesc
        self.productURL = productURL
        self.sign = sign
    }

    /// Validates an order against the settings and signs it. `appliedAt` is stamped as `pay_applydate` in the
    /// gateway's time zone; the core never reads the clock itself.
    public static func build(
        _ request: OrderRequest,
        settings: GatewaySettings,
        key: MerchantKey,
        appliedAt: Instant
    ) -> Result<PayRequest, OrderRejection> {
        guard GatewayValidation.isOrderId(request.orderId) else { return .failure(.orderIdInvalid(request.orderId)) }
        let amount: OrderAmount
        switch OrderAmount.parse(request.amount, fenMax: settings.limits.amountFenMax) {
        case .success(let parsed): amount = parsed
        case .failure(let rejection): return .failure(.amountInvalid(rejection))
        }
        guard settings.bankCodes.contains(request.bankCode) else {
            return .failure(.bankCodeUnknown(code: request.bankCode, allowed: settings.bankCodes))
        }
        guard !request.productName.isEmpty else { return .failure(.productNameMissing) }
        let limits = settings.limits
        let texts: [(String, String?, Int)] = [
            ("pay_productname", request.productName, limits.textBytesMax),
            ("pay_attach", request.attach, limits.attachBytesMax),
            ("pay_productnum", request.productNum, limits.textBytesMax),
            ("pay_productdesc", request.productDesc, limits.textBytesMax),
            ("pay_producturl", request.productURL, limits.urlBytesMax),
        ]
        for (field, value, bytesMax) in texts {
            guard let value else { continue }
            if value.utf8.count > bytesMax { return .failure(.fieldTooLong(field: field, bytesMax: bytesMax)) }
            if value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                return .failure(.fieldHasControlCharacters(field: field))
            }
        }
        for (field, url) in [("pay_notifyurl", settings.notifyURL), ("pay_callbackurl", settings.callbackURL)] {
            if let reason = GatewayValidation.urlProblem(url) {
                return .failure(.urlInvalid(field: field, reason: reason))
            }
            if url.utf8.count > limits.urlBytesMax {
                return .failure(.fieldTooLong(field: field, bytesMax: limits.urlBytesMax))
            }
        }
        if let url = request.productURL, let reason = GatewayValidation.urlProblem(url) {
            return .failure(.urlInvalid(field: "pay_producturl", reason: reason))
        }
        let applyDate = settings.timeZone.applyDate(for: appliedAt)
        if !settings.allowReservedCharacters {
            // The signed values travel back in the notification, and attach is echoed there, all without encoding.
            let checked: [(String, String)] = [
                ("pay_orderid", request.orderId), ("pay_memberid", settings.memberId),
                ("pay_notifyurl", settings.notifyURL), ("pay_callbackurl", settings.callbackURL),
                ("pay_attach", request.attach ?? ""),
            ]
            for (field, value) in checked {
                if let character = GatewayValidation.reservedCharacter(in: value) {
                    return .failure(.reservedCharacter(field: field, character: character))
                }
            }
        }
        var unsigned = PayRequest(
            memberId: settings.memberId,
            orderId: request.orderId,
            applyDate: applyDate,
            bankCode: request.bankCode,
            notifyURL: settings.notifyURL,
            callbackURL: settings.callbackURL,
            amount: amount,
            productName: request.productName,
            attach: request.attach,
            productNum: request.productNum,
            productDesc: request.productDesc,
            productURL: request.productURL,
            sign: ""
        )
        let sign = Signer.sign(unsigned.signedFields, kind: .pay, key: key, dialect: settings.dialect)
        unsigned = unsigned.withSign(sign)
        return .success(unsigned)
    }

    func withSign(_ sign: String) -> PayRequest {
        PayRequest(
            memberId: self.memberId,
            orderId: self.orderId,
            applyDate: self.applyDate,
            bankCode: self.bankCode,
            notifyURL: self.notifyURL,
            callbackURL: self.callbackURL,
            amount: self.amount,
            productName: self.productName,
            attach: self.attach,
            productNum: self.productNum,
            productDesc: self.productDesc,
            productURL: self.productURL,
            sign: sign
        )
    }
}

/// The order query request (`Pay_Trade_query.html`): member id and order id, signed.
public struct QueryRequest: Sendable, Hashable {
    public let memberId: String
    public let orderId: String
    public let sign: String

    public init(memberId: String, orderId: String, key: MerchantKey, dialect: SigningDialect = .document) {
        self.memberId = memberId
        self.orderId = orderId
        self.sign = Signer.sign(
            [FormField("pay_memberid", memberId), FormField("pay_orderid", orderId)],
            kind: .query,
            key: key,
            dialect: dialect
        )
    }

    public var fields: [FormField] {
        [
            FormField("pay_memberid", self.memberId), FormField("pay_orderid", self.orderId),
            FormField("pay_md5sign", self.sign),
        ]
    }

    /// The form body to POST.
    public var body: String { FormCoding.encode(self.fields) }
}
