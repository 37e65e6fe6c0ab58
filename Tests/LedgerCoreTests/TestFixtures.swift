@testable import LedgerCore

/// A fixture step that cannot produce what the test needs; thrown so the test fails with the reason instead of the
/// whole test process stopping.
struct FixtureError: Error, CustomStringConvertible {
    let description: String
}

/// Shared builders for the projection and codec tests: one merchant, one key, one clock, and gateway messages built
/// and signed with the document's algorithm (gateway-protocol.md §2–§4). Every event a test folds is one the daemon
/// could really have recorded: notifications go through `PaymentNotification.parse` and `verify`, query replies
/// through `QueryReplyParse.parse`, so the verdicts are computed, never typed in.
enum LedgerFixture {
    /// The merchant's secret key; the simulated gateway signs with it.
    static let key = Self.makeKey("9f2Kq7TzLw4XbN8cRv3M")
    /// Someone else's key: a signature made with it is well formed and does not verify.
    static let foreignKey = Self.makeKey("forged-key-0000")
    static let memberId = "10086"
    static let otherMemberId = "10087"
    static let orderId = "ORD20261127000001"
    static let otherOrderId = "ORD20261127000002"
    static let transactionId = "2026112710000512345"
    static let otherTransactionId = "2026112710000598765"
    static let remoteAddress = "203.0.113.7:51234"
    /// 2026-11-27T02:00:00Z, which is 10:00:00 in Shanghai.
    static let start = Instant(millisecondsSinceEpoch: 1_795_744_800_000)

    static let settings = GatewaySettings(
        memberId: Self.memberId,
        baseURL: "https://gateway.example.cn/",
        notifyURL: "https://shop.example.com/notify",
        callbackURL: "https://shop.example.com/return"
    )

    private static func makeKey(_ text: String) -> MerchantKey {
        do {
            return try MerchantKey(text)
        } catch {
            preconditionFailure("The fixture key was refused: \(error)")
        }
    }

    // MARK: Orders

    /// A signed payment request built the way the daemon builds one, at the fixed instant.
    static func payRequest(
        orderId: String = Self.orderId,
        amount: String = "100.00",
        productName: String = "测试商品",
        attach: String? = nil,
        productNum: String? = nil,
        productDesc: String? = nil,
        productURL: String? = nil,
        settings: GatewaySettings = Self.settings
    ) throws -> PayRequest {
        let request = OrderRequest(
            orderId: orderId,
            amount: amount,
            bankCode: "940",
            productName: productName,
            attach: attach,
            productNum: productNum,
            productDesc: productDesc,
            productURL: productURL
        )
        switch PayRequest.build(request, settings: settings, key: Self.key, appliedAt: Self.start) {
        case .success(let built): return built
        case .failure(let rejection): throw FixtureError(description: "The fixture order was refused: \(rejection)")
        }
    }

    /// The order-created payload for a request built by `payRequest`.
    static func orderCreated(
        orderId: String = Self.orderId,
        amount: String = "100.00",
        productName: String = "测试商品",
        attach: String? = nil,
        productNum: String? = nil,
        productDesc: String? = nil,
        productURL: String? = nil,
        settings: GatewaySettings = Self.settings
    ) throws -> EventPayload {
        let request = try Self.payRequest(
            orderId: orderId,
            amount: amount,
            productName: productName,
            attach: attach,
            productNum: productNum,
            productDesc: productDesc,
            productURL: productURL,
            settings: settings
        )
        return .orderCreated(OrderCreated(request: request, gatewayURL: settings.payURL, dialect: settings.dialect))
    }

    // MARK: Notifications

    /// The fields of a payment notification, signed over the documented fields with `signingKey`.
    static func notificationFields(
        orderId: String = Self.orderId,
        amount: String = "100.0000",
        transactionId: String = Self.transactionId,
        datetime: String = "2026-11-27 10:00:05",
        returnCode: String = "00",
        memberId: String = Self.memberId,
        attach: String? = nil,
        signingKey: MerchantKey = Self.key
    ) -> [FormField] {
        var fields = [
            FormField("memberid", memberId), FormField("orderid", orderId), FormField("amount", amount),
            FormField("transaction_id", transactionId), FormField("datetime", datetime),
            FormField("returncode", returnCode),
        ]
        if let attach { fields.append(FormField("attach", attach)) }
        fields.append(FormField("sign", Signer.sign(fields, kind: .notify, key: signingKey)))
        return fields
    }

    /// `fields` with the value of `name` replaced (or appended when absent), the signature left as it was.
    static func replacing(_ name: String, with value: String, in fields: [FormField]) -> [FormField] {
        guard let index = fields.firstIndex(where: { $0.name == name }) else {
            return fields + [FormField(name, value)]
        }
        var changed = fields
        changed[index].value = value
        return changed
    }

    /// A received notification: the fields form-encoded as a body, parsed and verified with the merchant's key as
    /// `POST /notify` does. A body with an empty documented field, which `POST /notify` now refuses, is recorded as
    /// the daemon recorded it before it did: such events stay in existing logs and the projection still replays them.
    static func callback(fields: [FormField], dialect: SigningDialect = .document) throws -> EventPayload {
        let body = Array(FormCoding.encode(fields).utf8)
        let notification: PaymentNotification
        do {
            notification = try PaymentNotification.parse(body)
        } catch .emptyField {
            let signed = Signer.verify(fields, kind: .notify, key: Self.key, dialect: dialect)
            return .callbackReceived(
                CallbackReceived(
                    rawBody: body,
                    fields: fields,
                    remoteAddress: Self.remoteAddress,
                    verdict: signed,
                    dialect: dialect
                )
            )
        } catch {
            throw FixtureError(description: "The fixture notification was refused: \(error)")
        }
        let verdict = notification.verify(key: Self.key, dialect: dialect)
        return .callbackReceived(
            CallbackReceived(notification, remoteAddress: Self.remoteAddress, verdict: verdict, dialect: dialect)
        )
    }

    /// A received, validly signed (unless `signingKey` says otherwise) notification.
    static func callback(
        orderId: String = Self.orderId,
        amount: String = "100.0000",
        transactionId: String = Self.transactionId,
        datetime: String = "2026-11-27 10:00:05",
        returnCode: String = "00",
        memberId: String = Self.memberId,
        attach: String? = nil,
        signingKey: MerchantKey = Self.key
    ) throws -> EventPayload {
        try Self.callback(
            fields: Self.notificationFields(
                orderId: orderId,
                amount: amount,
                transactionId: transactionId,
                datetime: datetime,
                returnCode: returnCode,
                memberId: memberId,
                attach: attach,
                signingKey: signingKey
            )
        )
    }

    // MARK: Query replies

    /// The members of a query reply, signed over the documented reply fields with `signingKey`. An unpaid order's
    /// reply carries the epoch in local time and no transaction id, as deployments send it.
    static func queryReplyFields(
        orderId: String = Self.orderId,
        amount: String = "100.0000",
        tradeState: String = "SUCCESS",
        transactionId: String? = nil,
        timeEnd: String? = nil,
        returnCode: String = "00",
        memberId: String = Self.memberId,
        signingKey: MerchantKey = Self.key
    ) -> [FormField] {
        let paid = tradeState == "SUCCESS"
        var fields = [
            FormField("memberid", memberId), FormField("orderid", orderId), FormField("amount", amount),
            FormField("time_end", timeEnd ?? (paid ? "2026-11-27 10:00:05" : "1970-01-01 08:00:00")),
            FormField("transaction_id", transactionId ?? (paid ? Self.transactionId : "")),
            FormField("returncode", returnCode), FormField("trade_state", tradeState),
        ]
        fields.append(FormField("sign", Signer.sign(fields, kind: .queryReply, key: signingKey)))
        return fields
    }

    /// A query result whose reply is `fields` as a JSON body (optionally in the success envelope), parsed and
    /// verified with the merchant's key as the poller does.
    static func queryResult(
        fields: [FormField],
        enveloped: Bool = false,
        attempt: UInt32 = 1,
        final: Bool = false
    ) throws -> EventPayload {
        let object = JSONValue.object(JSONObject(fields.map { ($0.name, JSONValue.string($0.value)) }))
        let document: JSONValue = enveloped ? ["status": "success", "msg": "查询成功", "data": object] : object
        let body = Array(JSONWriter.write(document).utf8)
        guard case .reply(let reply, let verdict) = QueryReplyParse.parse(body, key: Self.key) else {
            throw FixtureError(description: "The fixture query reply did not parse as a reply")
        }
        return .queryResult(
            QueryResult(
                attempt: attempt,
                latencyMicroseconds: 182_000,
                final: final,
                httpStatus: 200,
                body: body,
                outcome: .reply(fields: reply.fields, enveloped: reply.enveloped, verdict: verdict, dialect: .document)
            )
        )
    }

    /// A query result built from reply fields given by `queryReplyFields`.
    static func queryResult(
        orderId: String = Self.orderId,
        amount: String = "100.0000",
        tradeState: String = "SUCCESS",
        transactionId: String? = nil,
        returnCode: String = "00",
        memberId: String = Self.memberId,
        signingKey: MerchantKey = Self.key,
        enveloped: Bool = false,
        attempt: UInt32 = 1,
        final: Bool = false
    ) throws -> EventPayload {
        try Self.queryResult(
            fields: Self.queryReplyFields(
                orderId: orderId,
                amount: amount,
                tradeState: tradeState,
                transactionId: transactionId,
                returnCode: returnCode,
                memberId: memberId,
                signingKey: signingKey
            ),
            enveloped: enveloped,
            attempt: attempt,
            final: final
        )
    }

    /// A query attempt that got no reply object.
    static func failedQuery(
        _ outcome: QueryResult.Outcome,
        httpStatus: UInt16? = nil,
        body: [UInt8] = [],
        attempt: UInt32 = 1,
        final: Bool = false
    ) -> EventPayload {
        .queryResult(
            QueryResult(
                attempt: attempt,
                latencyMicroseconds: 5_000_000,
                final: final,
                httpStatus: httpStatus,
                body: body,
                outcome: outcome
            )
        )
    }
}

/// A log in memory: seals payloads with increasing sequence numbers from 1, each chained to its predecessor's hash,
/// recorded one step apart on a manual clock.
struct LedgerChain {
    private(set) var events: [Event] = []
    private(set) var nextSequence: UInt64 = 1
    private(set) var previousHash = Digest32.zero
    private(set) var clock = LedgerFixture.start
    /// Milliseconds between two recorded events.
    var stepMilliseconds: Int64 = 1_000

    init() {}

    @discardableResult
    mutating func append(_ payload: EventPayload, orderId: String = LedgerFixture.orderId) -> Event {
        self.clock = self.clock.adding(milliseconds: self.stepMilliseconds)
        let event = PendingEvent(recordedAt: self.clock, orderId: orderId, payload: payload)
            .sealed(sequence: self.nextSequence, previousHash: self.previousHash)
        self.nextSequence += 1
        self.previousHash = event.hash
        self.events.append(event)
        return event
    }

    /// A chain of `payloads`, in order, all for `orderId`.
    static func of(_ payloads: [EventPayload], orderId: String = LedgerFixture.orderId) -> [Event] {
        var chain = LedgerChain()
        for payload in payloads { chain.append(payload, orderId: orderId) }
        return chain.events
    }
}
