import Hummingbird
import LedgerCore
import Logging
import NIOCore
import Synchronization

/// Why a submission to `Pay_Index.html` was refused, with the message the error page shows.
struct PayRefusal: Error, Sendable, Hashable {
    var status: HTTPResponse.Status
    var message: String
}

extension GatewayMessages {
    /// Checks a `Pay_Index.html` form as the gateway does: the required fields, the merchant, the signature over
    /// the seven signed fields (kind `.pay`), then the values. The duplicate check is the state's, after this.
    static func checkPayRequest(
        _ fields: FormFields,
        memberId: String,
        key: MerchantKey,
        dialect: SigningDialect
    ) -> Result<SimulatedOrder, PayRefusal> {
        let required = GatewayMessageKind.pay.documentedSignedFields + ["pay_md5sign", "pay_productname"]
        for name in required where (fields[name] ?? "").isEmpty {
            return .failure(PayRefusal(status: .badRequest, message: "缺少参数 (missing field) \(name)"))
        }
        guard fields["pay_memberid"] == memberId else {
            return .failure(PayRefusal(status: .badRequest, message: "商户不存在 (unknown merchant)"))
        }
        guard Signer.verify(fields.fields, kind: .pay, key: key, dialect: dialect) == .valid else {
            return .failure(PayRefusal(status: .badRequest, message: "签名验证失败 (signature mismatch)"))
        }
        let orderId = fields["pay_orderid"] ?? ""
        guard GatewayValidation.isOrderId(orderId) else {
            return .failure(PayRefusal(status: .badRequest, message: "订单号格式错误 (invalid pay_orderid)"))
        }
        let amount = fields["pay_amount"] ?? ""
        if case .failure(let rejection) = OrderAmount.parse(amount, fenMax: OrderLimits.default.amountFenMax) {
            return .failure(PayRefusal(status: .badRequest, message: "金额错误 (invalid pay_amount): \(rejection)"))
        }
        let bankCode = fields["pay_bankcode"] ?? ""
        guard GatewayValidation.isBankCode(bankCode) else {
            return .failure(PayRefusal(status: .badRequest, message: "通道不存在 (invalid pay_bankcode)"))
        }
        let applyDate = fields["pay_applydate"] ?? ""
        guard applyDate.utf8.count == 19, GatewayDateTime(applyDate) != nil else {
            return .failure(PayRefusal(status: .badRequest, message: "时间格式错误 (invalid pay_applydate)"))
        }
        for name in ["pay_notifyurl", "pay_callbackurl"] {
            if let problem = GatewayValidation.urlProblem(fields[name] ?? "") {
                return .failure(PayRefusal(status: .badRequest, message: "地址错误 (invalid \(name)): \(problem)"))
            }
        }
        return .success(
            SimulatedOrder(
                orderId: orderId,
                amount: amount,
                notifyURL: fields["pay_notifyurl"] ?? "",
                callbackURL: fields["pay_callbackurl"] ?? "",
                bankCode: bankCode,
                attach: fields["pay_attach"],
                applyDate: applyDate,
                productName: fields["pay_productname"] ?? ""
            )
        )
    }
}

extension GatewaySimulator {
    /// The whole HTTP surface: the two gateway paths under the root and the `/sim` control routes.
    func makeApplication() -> some ApplicationProtocol {
        let router = Router()
        router.post("Pay_Index.html") { request, _ in await self.handlePay(request) }
        router.get("Pay_Index.html") { _, _ in
            // The gateway refuses GET: the buyer's browser must POST the signed form.
            Self.html(
                .methodNotAllowed,
                GatewayMessages.page(title: "Error", message: "请使用POST提交 (use POST)")
            )
        }
        router.post("Pay_Trade_query.html") { request, _ in await self.handleQuery(request) }
        router.get("Pay_Trade_query.html") { _, _ in
            Self.text(.methodNotAllowed, "Pay_Trade_query.html takes a POSTed form.\n")
        }
        router.post("sim/pay") { request, _ in await self.handleControlPay(request, repeat: false) }
        router.post("sim/renotify") { request, _ in await self.handleControlPay(request, repeat: true) }
        router.post("sim/query-fault") { request, _ in await self.handleControlQueryFault(request) }
        router.get("sim/orders") { _, _ in
            Self.json(.ok, GatewayMessages.ordersJSON(await self.orders()))
        }
        let host = self.configuration.host
        return Application(
            router: router,
            configuration: ApplicationConfiguration(
                address: .hostname(host, port: self.configuration.port),
                serverName: "GatewaySimulator"
            ),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? self.configuration.port
                let urlHost = host.contains(":") ? "[\(host)]" : host
                let url = "http://\(urlHost):\(port)"
                self.logger.info("Gateway simulator listening", metadata: ["url": "\(url)"])
                await self.state.didStartListening(url)
            },
            logger: self.logger
        )
    }

    // MARK: Gateway routes

    func handlePay(_ request: Request) async -> Response {
        let fields: FormFields
        switch await self.readForm(request) {
        case .success(let decoded): fields = decoded
        case .failure(let refusal):
            return Self.html(refusal.status, GatewayMessages.page(title: "Error", message: refusal.message))
        }
        let order: SimulatedOrder
        switch GatewayMessages.checkPayRequest(
            fields,
            memberId: self.configuration.memberId,
            key: self.configuration.key,
            dialect: self.configuration.dialect
        ) {
        case .success(let checked): order = checked
        case .failure(let refusal):
            self.logger.info("Payment request refused", metadata: ["reason": "\(refusal.message)"])
            return Self.html(refusal.status, GatewayMessages.page(title: "Error", message: refusal.message))
        }
        switch await self.state.submit(order) {
        case .accepted(let stored):
            self.logger.info(
                "Order submitted",
                metadata: ["order.id": "\(stored.orderId)", "amount": "\(stored.amount)"]
            )
            return Self.html(.ok, GatewayMessages.cashierPage(order: stored))
        case .duplicate:
            // The gateway refuses an order id it has seen, even with identical fields (gateway-protocol.md §1).
            return Self.html(
                .conflict,
                GatewayMessages.page(title: "Error", message: "重复订单 (duplicate order) \(order.orderId)")
            )
        }
    }

    func handleQuery(_ request: Request) async -> Response {
        let fields: FormFields
        switch await self.readForm(request) {
        case .success(let decoded): fields = decoded
        case .failure(let refusal): return Self.json(.ok, GatewayMessages.errorEnvelope(refusal.message))
        }
        for name in ["pay_memberid", "pay_orderid", "pay_md5sign"] where (fields[name] ?? "").isEmpty {
            return Self.json(.ok, GatewayMessages.errorEnvelope("缺少参数 \(name)"))
        }
        guard fields["pay_memberid"] == self.configuration.memberId else {
            return Self.json(.ok, GatewayMessages.errorEnvelope("商户不存在"))
        }
        let verdict = Signer.verify(
            fields.fields,
            kind: .query,
            key: self.configuration.key,
            dialect: self.configuration.dialect
        )
        guard verdict == .valid else { return Self.json(.ok, GatewayMessages.errorEnvelope("签名验证失败")) }
        let orderId = fields["pay_orderid"] ?? ""
        switch await self.state.decideQuery(orderId) {
        case .unknownOrder:
            return Self.json(.ok, GatewayMessages.errorEnvelope("订单不存在"))
        case .answer(let order, let reportPaid, let fault):
            if let fault {
                self.logger.info("Query fault", metadata: ["order.id": "\(orderId)", "fault": "\(fault.rawValue)"])
            }
            return await self.queryAnswer(order: order, reportPaid: reportPaid, fault: fault)
        }
    }

    private func queryAnswer(order: SimulatedOrder, reportPaid: Bool, fault: QueryFault?) async -> Response {
        switch fault {
        case .serverError:
            return Self.html(
                .badGateway,
                "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\n"
            )
        case .html:
            return Self.html(.ok, GatewayMessages.htmlErrorPage)
        case .timeout:
            await self.hold(self.configuration.queryTimeoutHold)
            return Self.html(.gatewayTimeout, "<html><body><h1>504 Gateway Time-out</h1></body></html>\n")
        case .errorEnvelope:
            return Self.json(.ok, GatewayMessages.errorEnvelope("订单不存在"))
        case .badSignature, nil:
            let object = GatewayMessages.queryReplyObject(
                order: order,
                memberId: self.configuration.memberId,
                reportPaid: reportPaid,
                breakSignature: fault == .badSignature,
                key: self.configuration.key,
                dialect: self.configuration.dialect
            )
            return Self.json(.ok, GatewayMessages.queryReplyBody(object, enveloped: self.configuration.queryEnvelope))
        }
    }

    /// Sleeps for `duration`, or until the simulator is shutting down, in short steps: a graceful shutdown waits for
    /// requests in flight, so a held query must notice the shutdown itself.
    private func hold(_ duration: Duration) async {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: duration)
        while clock.now < deadline {
            if Task.isCancelled || self.shuttingDown.withLock({ $0 }) { return }
            do { try await Task.sleep(for: .milliseconds(50)) } catch { return }
        }
    }

    // MARK: Control routes

    /// `POST /sim/pay` (or `/sim/renotify`) with `orderid` and optional `copies`, `drop`, `tamper`, `breaksign`,
    /// `delayms`.
    func handleControlPay(_ request: Request, repeat isRepeat: Bool) async -> Response {
        let fields: FormFields
        switch await self.readForm(request) {
        case .success(let decoded): fields = decoded
        case .failure(let refusal): return Self.text(refusal.status, refusal.message + "\n")
        }
        guard let orderId = fields["orderid"], !orderId.isEmpty else {
            return Self.text(.badRequest, "The form needs an orderid field.\n")
        }
        var faults = NotifyFaults.none
        faults.drop = Self.flag(fields["drop"])
        faults.tamperAmount = Self.flag(fields["tamper"])
        faults.breakSignature = Self.flag(fields["breaksign"])
        if let text = fields["copies"] {
            guard let copies = Int(text), (1...1000).contains(copies) else {
                return Self.text(.badRequest, "copies must be a whole number from 1 to 1000.\n")
            }
            faults.copies = copies
        }
        if let text = fields["delayms"] {
            guard let milliseconds = Int(text), (0...600_000).contains(milliseconds) else {
                return Self.text(.badRequest, "delayms must be a whole number from 0 to 600000.\n")
            }
            faults.delay = .milliseconds(milliseconds)
        }
        do {
            if isRepeat {
                try await self.renotify(orderId, faults: faults)
                return Self.json(.ok, JSONWriter.write(.object(["orderid": .string(orderId)])))
            }
            let transactionId = try await self.pay(orderId, faults: faults)
            return Self.json(
                .ok,
                JSONWriter.write(.object(["orderid": .string(orderId), "transaction_id": .string(transactionId)]))
            )
        } catch let error as SimulatorError {
            switch error {
            case .unknownOrder: return Self.text(.notFound, error.description + "\n")
            case .alreadyPaid, .notPaid: return Self.text(.conflict, error.description + "\n")
            default: return Self.text(.serviceUnavailable, error.description + "\n")
            }
        } catch {
            return Self.text(.internalServerError, "\(error)\n")
        }
    }

    /// `POST /sim/query-fault` with `orderid`, `fault` (a ``QueryFault`` raw value, `unpaid`, `paid` or `none`) and
    /// optional `count`.
    func handleControlQueryFault(_ request: Request) async -> Response {
        let fields: FormFields
        switch await self.readForm(request) {
        case .success(let decoded): fields = decoded
        case .failure(let refusal): return Self.text(refusal.status, refusal.message + "\n")
        }
        guard let orderId = fields["orderid"], !orderId.isEmpty, let faultText = fields["fault"] else {
            return Self.text(.badRequest, "The form needs orderid and fault fields.\n")
        }
        var count: Int?
        if let text = fields["count"] {
            guard let parsed = Int(text), parsed >= 1 else {
                return Self.text(.badRequest, "count must be a positive whole number.\n")
            }
            count = parsed
        }
        switch faultText {
        case "none": await self.setQueryFault(orderId, nil)
        case "unpaid": await self.setQueryReportsUnpaid(orderId, true)
        case "paid": await self.setQueryReportsUnpaid(orderId, false)
        default:
            guard let fault = QueryFault(rawValue: faultText) else {
                let names = QueryFault.allCases.map(\.rawValue) + ["unpaid", "paid", "none"]
                return Self.text(.badRequest, "fault must be one of \(names.joined(separator: ", ")).\n")
            }
            await self.setQueryFault(orderId, fault, count: count)
        }
        return Self.text(.ok, "done\n")
    }

    // MARK: Helpers

    /// Reads and decodes a form body within the configured bound.
    private func readForm(_ request: Request) async -> Result<FormFields, PayRefusal> {
        var request = request
        let limit = self.configuration.requestBytesMax
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: limit)
        } catch {
            return .failure(PayRefusal(status: .contentTooLarge, message: "The body is larger than \(limit) bytes."))
        }
        do {
            return .success(try FormCoding.decode(buffer.readableBytesView, limits: FormLimits(bodyBytesMax: limit)))
        } catch {
            return .failure(PayRefusal(status: .badRequest, message: "参数错误 (invalid form): \(error)"))
        }
    }

    static func flag(_ text: String?) -> Bool {
        guard let text else { return false }
        return ["1", "true", "yes", "on"].contains(text.lowercased())
    }

    static func html(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Self.response(status, text, contentType: "text/html; charset=utf-8")
    }

    static func json(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Self.response(status, text, contentType: "application/json; charset=utf-8")
    }

    static func text(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Self.response(status, text, contentType: "text/plain; charset=utf-8")
    }

    static func response(_ status: HTTPResponse.Status, _ text: String, contentType: String) -> Response {
        Response(
            status: status,
            headers: [.contentType: contentType],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text))
        )
    }
}
