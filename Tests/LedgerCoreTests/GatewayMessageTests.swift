import LedgerTesting
import Testing

@testable import LedgerCore

struct PayRequestTests {
    let key = try! MerchantKey("5uTz8kQe2wR")
    let settings = GatewaySettings.testing(baseURL: "http://127.0.0.1:9090", publicURL: "http://shop.example.com")
    /// 2026-11-27T01:02:03.456Z, which is 09:02:03 in China Standard Time.
    let instant = Instant(millisecondsSinceEpoch: 1_795_741_323_456)

    func build(_ request: OrderRequest, settings: GatewaySettings? = nil) -> Result<PayRequest, OrderRejection> {
        PayRequest.build(request, settings: settings ?? self.settings, key: self.key, appliedAt: self.instant)
    }

    func order(_ id: String = "A1", amount: String = "12.50", bankCode: String = "940", attach: String? = nil)
        -> OrderRequest
    {
        OrderRequest(orderId: id, amount: amount, bankCode: bankCode, productName: "手机壳", attach: attach)
    }

    /// A valid order is signed over exactly the seven documented fields and the signature verifies.
    @Test func buildsSignedRequest() throws {
        let request = try self.build(self.order(attach: "gift")).get()
        #expect(request.applyDate == "2026-11-27 09:02:03")
        #expect(request.signedFields.map(\.name).count == 7)
        #expect(Signer.verify(request.fields, kind: .pay, key: self.key) == .valid)
        #expect(request.fields.map(\.name).contains("pay_productname"))
        #expect(request.fields.first { $0.name == "pay_attach" }?.value == "gift")
        #expect(request.canonicalMasked().hasPrefix("pay_amount=12.50&pay_applydate=2026-11-27 09:02:03&"))
        #expect(self.settings.payURL == "http://127.0.0.1:9090/Pay_Index.html")
        #expect(self.settings.queryURL == "http://127.0.0.1:9090/Pay_Trade_query.html")
    }

    /// Order ids must be 1–20 of `[A-Za-z0-9_-]`.
    @Test(arguments: ["", "A B", "订单", "a&b", String(repeating: "x", count: 21), "a.b"])
    func invalidOrderIds(_ id: String) {
        #expect(self.build(self.order(id)) == .failure(.orderIdInvalid(id)))
    }

    /// Order ids at the boundary of the rule are accepted.
    @Test func validOrderIds() {
        for id in [String(repeating: "x", count: 20), "a", "A-b_9"] {
            #expect((try? self.build(self.order(id)).get()) != nil)
        }
    }

    /// Amount problems, unknown bank codes, missing product names and reserved characters are refused by name.
    @Test func refusals() {
        #expect(self.build(self.order(amount: "1e3")) == .failure(.amountInvalid(.hasExponent)))
        #expect(
            self.build(self.order(bankCode: "999"))
                == .failure(.bankCodeUnknown(code: "999", allowed: GatewaySettings.defaultBankCodes))
        )
        var noName = self.order()
        noName.productName = ""
        #expect(self.build(noName) == .failure(.productNameMissing))
        for character: Unicode.Scalar in ["&", "=", "%", "+"] {
            let refused = OrderRejection.reservedCharacter(field: "pay_attach", character: character)
            #expect(self.build(self.order(attach: "x\(character)y")) == .failure(refused))
        }
        var badNotify = self.settings
        badNotify.notifyURL = "ftp://x/notify"
        if case .failure(.urlInvalid(let field, _)) = self.build(self.order(), settings: badNotify) {
            #expect(field == "pay_notifyurl")
        } else {
            Issue.record("a non-http notify URL must be refused")
        }
        var queryInNotify = self.settings
        queryInNotify.notifyURL = "http://x/notify?a=1&b=2"
        #expect(
            self.build(self.order(), settings: queryInNotify)
                == .failure(.reservedCharacter(field: "pay_notifyurl", character: "="))
        )
        var long = self.order()
        long.productName = String(repeating: "长", count: 100)
        #expect(self.build(long) == .failure(.fieldTooLong(field: "pay_productname", bytesMax: 256)))
        var control = self.order()
        control.productName = "a\nb"
        #expect(self.build(control) == .failure(.fieldHasControlCharacters(field: "pay_productname")))
    }

    /// Reserved characters are accepted when the operator allows them.
    @Test func reservedCharactersAllowed() throws {
        var settings = self.settings
        settings.allowReservedCharacters = true
        let request = try self.build(self.order(attach: "a=1&b=2"), settings: settings).get()
        #expect(request.attach == "a=1&b=2")
    }

    /// The configured product list replaces the default one.
    @Test func configuredBankCodes() throws {
        var settings = self.settings
        settings.bankCodes = ["950"]
        #expect((try? self.build(self.order(bankCode: "950"), settings: settings).get()) != nil)
        #expect((try? self.build(self.order(bankCode: "940"), settings: settings).get()) == nil)
    }

    /// Settings validation names the key that is wrong.
    @Test func settingsValidation() {
        var settings = self.settings
        settings.memberId = "abc"
        settings.baseURL = "not a url"
        settings.bankCodes = []
        let keys = settings.validate().map(\.key)
        #expect(keys.contains("gateway.memberId"))
        #expect(keys.contains("gateway.url"))
        #expect(keys.contains("gateway.bankCodes"))
        #expect(self.settings.validate().isEmpty)
    }

    /// The query request signs member id and order id.
    @Test func queryRequest() {
        let query = QueryRequest(memberId: "10001", orderId: "A1", key: self.key)
        #expect(Signer.verify(query.fields, kind: .query, key: self.key) == .valid)
        #expect(query.body.hasPrefix("pay_memberid=10001&pay_orderid=A1&pay_md5sign="))
    }
}

struct TimeTests {
    /// Apply dates are written in the gateway's zone, Asia/Shanghai by default, and in another configured zone.
    @Test func applyDateInZone() throws {
        let instant = Instant(millisecondsSinceEpoch: 0)
        #expect(GatewayTimeZone.shanghai.applyDate(for: instant) == "1970-01-01 08:00:00")
        let utc = try #require(GatewayTimeZone(identifier: "UTC"))
        #expect(utc.applyDate(for: Instant(millisecondsSinceEpoch: 1_709_164_800_000)) == "2024-02-29 00:00:00")
        #expect(GatewayTimeZone(identifier: "Nowhere/Atlantis") == nil)
    }

    /// Instants print as RFC 3339 UTC with milliseconds, before and after the epoch.
    @Test func instantDescription() {
        #expect(Instant(millisecondsSinceEpoch: 1_795_741_323_456).description == "2026-11-27T01:02:03.456Z")
        #expect(Instant(millisecondsSinceEpoch: -1).description == "1969-12-31T23:59:59.999Z")
    }

    /// Both gateway date-time forms parse and normalize; impossible dates are refused.
    @Test func gatewayDateTime() {
        #expect(GatewayDateTime("20261127093000")?.normalized == "2026-11-27 09:30:00")
        #expect(GatewayDateTime("2026-11-27 09:30:00")?.normalized == "2026-11-27 09:30:00")
        #expect(GatewayDateTime("20260230093000") == nil)
        #expect(GatewayDateTime("2026-11-27T09:30:00") == nil)
        #expect(GatewayDateTime("2024-02-29 23:59:59") != nil)
        #expect(GatewayDateTime("") == nil)
    }

    /// Civil time conversion is the inverse of formatting over a wide range of days.
    @Test func civilRoundTrip() {
        for seconds in stride(from: Int64(-5_000_000_000), through: 5_000_000_000, by: 86_399 * 97) {
            #expect(CivilTime(secondsSinceEpoch: seconds).secondsSinceEpoch == seconds)
        }
    }
}

struct NotificationParsingTests {
    let key = try! MerchantKey("5uTz8kQe2wR")

    func body(_ pairs: [(String, String)], signed: Bool = true) -> String {
        var fields = pairs.map { FormField($0.0, $0.1) }
        if signed { fields.append(FormField("sign", Signer.sign(fields, kind: .notify, key: self.key))) }
        // Deployments concatenate without URL-encoding.
        return fields.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
    }

    let standard: [(String, String)] = [
        ("memberid", "10001"), ("orderid", "A1"), ("amount", "1.0000"), ("transaction_id", "T1"),
        ("datetime", "20261127093000"), ("returncode", "00"), ("attach", "gift"),
    ]

    /// A deployment-style notification parses into typed values and verifies.
    @Test func parsesAndVerifies() throws {
        let notification = try PaymentNotification.parse(Array(self.body(self.standard).utf8))
        #expect(notification.orderId == "A1")
        #expect(try notification.amount.get().tenThousandths == 10_000)
        #expect(notification.dateTime?.normalized == "2026-11-27 09:30:00")
        #expect(notification.isSuccess)
        #expect(notification.attach == "gift")
        #expect(notification.verify(key: self.key) == .valid)
        #expect(notification.fields.raw == Array(self.body(self.standard).utf8))
    }

    /// Missing documented fields or sign make a body that is not a notification at all.
    @Test func missingFields() {
        let noAmount = self.standard.filter { $0.0 != "amount" }
        #expect(throws: NotificationRejection.missingField("amount")) {
            try PaymentNotification.parse(Array(self.body(noAmount).utf8))
        }
        #expect(throws: NotificationRejection.missingField("sign")) {
            try PaymentNotification.parse(Array(self.body(self.standard, signed: false).utf8))
        }
        var badId = self.standard
        badId[1] = ("orderid", "not an id")
        #expect(throws: NotificationRejection.orderIdInvalid) {
            try PaymentNotification.parse(Array(self.body(badId).utf8))
        }
        #expect(throws: NotificationRejection.form(.repeatedField(name: "amount"))) {
            try PaymentNotification.parse(Array((self.body(self.standard) + "&amount=2").utf8))
        }
    }

    /// An attach containing `&`/`=` sent unencoded reframes the body: it then carries a field that was never
    /// signed, or repeats one, and is caught rather than silently believed.
    @Test func attachReframing() throws {
        var reframed = self.standard
        reframed[6] = ("attach", "x&amount=0.01")
        #expect(throws: NotificationRejection.form(.repeatedField(name: "amount"))) {
            try PaymentNotification.parse(Array(self.body(reframed).utf8))
        }
        // A `+` in a signed value sent unencoded arrives as a space and the signature no longer verifies.
        var plus = self.standard
        plus[3] = ("transaction_id", "T+1")
        let notification = try PaymentNotification.parse(Array(self.body(plus).utf8))
        #expect(notification.transactionId == "T 1")
        #expect(notification.verify(key: self.key) == .mismatch)
    }
}

struct QueryReplyParsingTests {
    let key = try! MerchantKey("5uTz8kQe2wR")

    func signedReply(tradeState: String = "SUCCESS", amount: String = "1.0000") -> [(String, String)] {
        let fields = [
            FormField("memberid", "10001"), FormField("orderid", "A1"), FormField("amount", amount),
            FormField("time_end", "2026-11-27 09:30:00"), FormField("transaction_id", "T1"),
            FormField("returncode", "00"), FormField("trade_state", tradeState),
        ]
        return fields.map { ($0.name, $0.value) } + [("sign", Signer.sign(fields, kind: .queryReply, key: self.key))]
    }

    func json(_ pairs: [(String, String)]) -> String {
        "{" + pairs.map { "\"\($0.0)\":\"\($0.1)\"" }.joined(separator: ",") + "}"
    }

    /// A top-level reply object parses and verifies.
    @Test func topLevelReply() {
        guard
            case .reply(let reply, let verdict) = QueryReplyParse.parse(
                Array(self.json(self.signedReply()).utf8),
                key: self.key
            )
        else {
            Issue.record("expected a reply")
            return
        }
        #expect(verdict == .valid)
        #expect(reply.tradeState == .success)
        #expect(!reply.enveloped)
    }

    /// The success envelope is unwrapped and remembered.
    @Test func envelopedReply() {
        let body =
            "{\"status\":\"success\",\"msg\":\"成功\",\"data\":\(self.json(self.signedReply(tradeState: "NOTPAY")))}"
        guard case .reply(let reply, let verdict) = QueryReplyParse.parse(Array(body.utf8), key: self.key) else {
            Issue.record("expected a reply")
            return
        }
        #expect(verdict == .valid)
        #expect(reply.enveloped)
        #expect(reply.tradeState == .notPaid)
    }

    /// Numbers keep their literal text for signing; a JSON number amount verifies like the PHP signer's text.
    @Test func numbersKeepText() {
        var pairs = self.signedReply(amount: "1.10")
        pairs.removeLast()
        let fields = pairs.map { FormField($0.0, $0.1) }
        let sign = Signer.sign(fields, kind: .queryReply, key: self.key)
        let body =
            "{\"memberid\":10001,\"orderid\":\"A1\",\"amount\":1.10,\"time_end\":\"2026-11-27 09:30:00\","
            + "\"transaction_id\":\"T1\",\"returncode\":\"00\",\"trade_state\":\"SUCCESS\",\"sign\":\"\(sign)\"}"
        guard case .reply(let reply, let verdict) = QueryReplyParse.parse(Array(body.utf8), key: self.key) else {
            Issue.record("expected a reply")
            return
        }
        #expect(reply.amountText == "1.10")
        #expect(verdict == .valid)
    }

    /// The error envelope, HTML pages, non-objects and tampered replies are told apart.
    @Test func otherShapes() {
        #expect(
            QueryReplyParse.parse(Array("{\"status\":\"error\",\"msg\":\"订单不存在\",\"data\":null}".utf8), key: self.key)
                == .gatewayError(message: "订单不存在")
        )
        if case .unreadable(let reason) = QueryReplyParse.parse(
            Array("<html><body>502 Bad Gateway</body></html>".utf8),
            key: self.key
        ) {
            #expect(reason.hasPrefix("an HTML page"))
        } else {
            Issue.record("HTML must be unreadable")
        }
        if case .unreadable = QueryReplyParse.parse(Array("[1,2]".utf8), key: self.key) {
        } else {
            Issue.record("an array is not a reply")
        }
        if case .unreadable = QueryReplyParse.parse(
            Array("{\"orderid\":\"A1\",\"sign\":\"x\",\"orderid\":\"A2\"}".utf8),
            key: self.key
        ) {
        } else {
            Issue.record("a repeated key is refused")
        }
        var tampered = self.signedReply()
        tampered[2] = ("amount", "0.0100")
        guard case .reply(_, let verdict) = QueryReplyParse.parse(Array(self.json(tampered).utf8), key: self.key) else {
            Issue.record("expected a reply")
            return
        }
        #expect(verdict == .mismatch)
    }
}
