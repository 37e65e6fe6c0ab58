import AsyncHTTPClient
import Foundation
import GatewaySimulator
import Hummingbird
import LedgerCore
import LedgerTesting
import Logging
import NIOCore
import NIOHTTP1
import Testing

/// The gateway simulator over real sockets on 127.0.0.1: the simulator on port 0 and a tiny Hummingbird app on
/// port 0 standing in for the merchant's notify URL.
@Suite("Gateway simulator")
struct GatewaySimulatorTests {
    static let key = try! MerchantKey("SIMULATOR-TEST-KEY-0123456789")
    static let memberId = "10001"
    /// 2026-11-27 10:00:00 China time (02:00:00 UTC), so `datetime` and `time_end` are known exactly.
    static let fixedInstant = Instant(millisecondsSinceEpoch: 1_795_744_800_000)

    // MARK: Pay_Index.html

    /// A correctly signed payment request is accepted with a cashier page naming the order and amount
    @Test func signedPayRequestIsAccepted() async throws {
        try await Harness.run { harness in
            let reply = try await harness.submit(orderId: "ORD-ACCEPT-1", amount: "12.50")
            #expect(reply.status == 200)
            #expect(reply.body.contains("ORD-ACCEPT-1"))
            #expect(reply.body.contains("12.50"))
            let order = try #require(await harness.simulator.order("ORD-ACCEPT-1"))
            #expect(order.amount == "12.50")
            #expect(order.paid == false)
            #expect(order.transactionId?.hasPrefix("SIM") == true)
            #expect(order.transactionId?.utf8.count == 19)
        }
    }

    /// A payment request with a broken signature is refused with an error page and no order is created
    @Test func badlySignedPayRequestIsRefused() async throws {
        try await Harness.run { harness in
            let reply = try await harness.submit(orderId: "ORD-BADSIG", amount: "1.00") { fields in
                let forged = String(repeating: "A", count: 32)
                fields = fields.map { $0.name == "pay_md5sign" ? FormField($0.name, forged) : $0 }
            }
            #expect(reply.status == 400)
            #expect(reply.body.contains("signature"))
            #expect(await harness.simulator.order("ORD-BADSIG") == nil)
        }
    }

    /// A changed signed field after signing (the amount) is refused as a signature mismatch
    @Test func alteredSignedFieldIsRefused() async throws {
        try await Harness.run { harness in
            let reply = try await harness.submit(orderId: "ORD-ALTERED", amount: "100.00") { fields in
                fields = fields.map { $0.name == "pay_amount" ? FormField($0.name, "0.01") : $0 }
            }
            #expect(reply.status == 400)
            #expect(await harness.simulator.orders().isEmpty)
        }
    }

    /// A second request with an order id already seen is refused as a duplicate order
    @Test func duplicateOrderIdIsRefused() async throws {
        try await Harness.run { harness in
            let first = try await harness.submit(orderId: "ORD-DUP", amount: "5.00")
            #expect(first.status == 200)
            let second = try await harness.submit(orderId: "ORD-DUP", amount: "5.00")
            #expect(second.status == 409)
            #expect(second.body.contains("duplicate order"))
            #expect(await harness.simulator.orders().count == 1)
        }
    }

    /// A request missing a required field is refused naming the field
    @Test func missingFieldIsRefused() async throws {
        try await Harness.run { harness in
            let reply = try await harness.submit(orderId: "ORD-MISSING", amount: "5.00") { fields in
                fields.removeAll { $0.name == "pay_productname" }
            }
            #expect(reply.status == 400)
            #expect(reply.body.contains("pay_productname"))
        }
    }

    /// GET on Pay_Index.html is refused with 405 and a message
    @Test func getPayIndexIsRefused() async throws {
        try await Harness.run { harness in
            let reply = try await harness.request(.GET, path: "/Pay_Index.html")
            #expect(reply.status == 405)
            #expect(reply.body.contains("POST"))
        }
    }

    // MARK: Notifications

    /// pay() delivers exactly one unencoded notification with a 14-digit datetime and a 4-decimal amount that verifies
    @Test func payDeliversOneUnencodedSignedNotification() async throws {
        try await Harness.run { harness in
            _ = try await harness.submit(orderId: "ORD-NOTIFY", amount: "12.50", attach: "备注 note")
            let transactionId = try await harness.simulator.pay("ORD-NOTIFY")
            let bodies = try await harness.receiver.waitForBodies(1)
            try await Task.sleep(for: .milliseconds(300))
            #expect(await harness.receiver.bodies.count == 1)
            let body = bodies[0]
            // Raw concatenation as deployments do: the space and the Chinese text are not encoded.
            #expect(body.contains("datetime=20261127100000&"))
            #expect(body.contains("amount=12.5000&"))
            #expect(body.contains("attach=备注 note&"))
            #expect(body.contains("transaction_id=\(transactionId)&"))
            #expect(body.hasPrefix("memberid=10001&orderid=ORD-NOTIFY&"))
            let notification = try PaymentNotification.parse(Array(body.utf8))
            #expect(notification.verify(key: GatewaySimulatorTests.key) == .valid)
            #expect(notification.isSuccess)
            try await harness.eventually { await harness.simulator.order("ORD-NOTIFY")?.notificationsAcknowledged == 1 }
            let order = try #require(await harness.simulator.order("ORD-NOTIFY"))
            #expect(order.paid)
            #expect(order.paidAt == "2026-11-27 10:00:00")
            #expect(order.notificationsSent == 1)
        }
    }

    /// A receiver that does not answer ok gets the notification again after the retry delay, up to notifyAttemptsMax
    @Test func nonOkReplyIsRetriedUpToAttemptsMax() async throws {
        try await Harness.run(receiverReply: "fail") { harness in
            _ = try await harness.submit(orderId: "ORD-RETRY", amount: "3.00")
            try await harness.simulator.pay("ORD-RETRY")
            let bodies = try await harness.receiver.waitForBodies(4)
            try await Task.sleep(for: .milliseconds(300))
            #expect(await harness.receiver.bodies.count == 4)
            #expect(Set(bodies).count == 1)
            let order = try #require(await harness.simulator.order("ORD-RETRY"))
            #expect(order.notificationsSent == 4)
            #expect(order.notificationsAcknowledged == 0)
        }
    }

    /// Any reply containing "ok" in any case is an acknowledgement, as deployments test it
    @Test func okAnywhereInAnyCaseAcknowledges() async throws {
        try await Harness.run(receiverReply: "result: Ok, thanks") { harness in
            _ = try await harness.submit(orderId: "ORD-OKCASE", amount: "3.00")
            try await harness.simulator.pay("ORD-OKCASE")
            _ = try await harness.receiver.waitForBodies(1)
            try await Task.sleep(for: .milliseconds(300))
            #expect(await harness.receiver.bodies.count == 1)
            #expect(await harness.simulator.order("ORD-OKCASE")?.notificationsAcknowledged == 1)
        }
    }

    /// A dropped notification sends nothing
    @Test func droppedNotificationSendsNothing() async throws {
        try await Harness.run { harness in
            _ = try await harness.submit(orderId: "ORD-DROP", amount: "3.00")
            try await harness.simulator.pay("ORD-DROP", faults: NotifyFaults(drop: true))
            try await Task.sleep(for: .milliseconds(400))
            #expect(await harness.receiver.bodies.isEmpty)
            #expect(await harness.simulator.order("ORD-DROP")?.paid == true)
            #expect(await harness.simulator.order("ORD-DROP")?.notificationsSent == 0)
        }
    }

    /// copies: N sends N identical bodies
    @Test func copiesSendsIdenticalBodies() async throws {
        try await Harness.run { harness in
            _ = try await harness.submit(orderId: "ORD-COPIES", amount: "8.88")
            try await harness.simulator.pay("ORD-COPIES", faults: NotifyFaults(copies: 5))
            let bodies = try await harness.receiver.waitForBodies(5)
            try await Task.sleep(for: .milliseconds(300))
            #expect(await harness.receiver.bodies.count == 5)
            #expect(Set(bodies).count == 1)
            try await harness.eventually { await harness.simulator.order("ORD-COPIES")?.notificationsAcknowledged == 5 }
        }
    }

    /// renotify sends one more notification of a paid order and refuses an unpaid one
    @Test func renotifySendsAnotherNotification() async throws {
        try await Harness.run { harness in
            _ = try await harness.submit(orderId: "ORD-RENOTIFY", amount: "2.00")
            _ = try await harness.submit(orderId: "ORD-UNPAID", amount: "2.00")
            try await harness.simulator.pay("ORD-RENOTIFY")
            _ = try await harness.receiver.waitForBodies(1)
            try await harness.simulator.renotify("ORD-RENOTIFY")
            let bodies = try await harness.receiver.waitForBodies(2)
            #expect(bodies[0].contains("orderid=ORD-RENOTIFY&"))
            await #expect(throws: SimulatorError.notPaid("ORD-UNPAID")) {
                try await harness.simulator.renotify("ORD-UNPAID")
            }
            await #expect(throws: SimulatorError.alreadyPaid("ORD-RENOTIFY")) {
                try await harness.simulator.pay("ORD-RENOTIFY")
            }
            await #expect(throws: SimulatorError.unknownOrder("NEVER")) {
                try await harness.simulator.pay("NEVER")
            }
        }
    }

    /// A tampered amount no longer verifies, and a broken signature does not either
    @Test func tamperedAmountAndBrokenSignatureFailVerification() async throws {
        try await Harness.run { harness in
            _ = try await harness.submit(orderId: "ORD-TAMPER", amount: "100.00")
            _ = try await harness.submit(orderId: "ORD-BROKEN", amount: "100.00")
            try await harness.simulator.pay("ORD-TAMPER", faults: NotifyFaults(tamperAmount: true))
            let tampered = try await harness.receiver.waitForBodies(1)[0]
            #expect(tampered.contains("amount=0.0100&"))
            let first = try PaymentNotification.parse(Array(tampered.utf8))
            #expect(first.verify(key: GatewaySimulatorTests.key) == .mismatch)

            try await harness.simulator.pay("ORD-BROKEN", faults: NotifyFaults(breakSignature: true))
            let bodies = try await harness.receiver.waitForBodies(2)
            try #require(bodies.count == 2)
            let broken = bodies[1]
            #expect(broken.contains("amount=100.0000&"))
            let second = try PaymentNotification.parse(Array(broken.utf8))
            #expect(second.verify(key: GatewaySimulatorTests.key) == .mismatch)
        }
    }

    /// A delayed notification is not sent before its delay
    @Test func delayedNotificationWaits() async throws {
        try await Harness.run { harness in
            _ = try await harness.submit(orderId: "ORD-DELAY", amount: "1.00")
            let start = ContinuousClock.now
            try await harness.simulator.pay("ORD-DELAY", faults: NotifyFaults(delay: .milliseconds(400)))
            try await Task.sleep(for: .milliseconds(150))
            #expect(await harness.receiver.bodies.isEmpty)
            _ = try await harness.receiver.waitForBodies(1)
            #expect(ContinuousClock.now - start >= .milliseconds(400))
        }
    }

    /// postRawNotification posts a hostile body as is and returns the receiver's status and body
    @Test func rawNotificationIsPostedAsIs() async throws {
        try await Harness.run { harness in
            let url = await harness.receiver.notifyURL
            let reply = try await harness.simulator.postRawNotification(to: url, body: "orderid=a&b=%ZZ&&=")
            #expect(reply.status == 200)
            #expect(reply.body == "OK")
            #expect(await harness.receiver.bodies == ["orderid=a&b=%ZZ&&="])
        }
    }

    // MARK: Pay_Trade_query.html

    /// An unpaid order's query reply verifies: returncode 00, trade_state NOTPAY, time_end the local epoch
    @Test func queryReplyForUnpaidOrder() async throws {
        try await Harness.run { harness in
            _ = try await harness.submit(orderId: "ORD-Q-NOTPAY", amount: "12.50")
            let reply = try await harness.query("ORD-Q-NOTPAY")
            #expect(reply.status == 200)
            guard case .reply(let parsed, let verdict) = harness.parse(reply.body) else {
                Issue.record("not a reply: \(reply.body)")
                return
            }
            #expect(verdict == .valid)
            #expect(parsed.enveloped == false)
            #expect(parsed.returnCode == "00")
            #expect(parsed.tradeState == .notPaid)
            #expect(parsed.timeEnd == "1970-01-01 08:00:00")
            #expect(parsed.amountText == "12.5000")
            #expect(parsed.memberId == "10001")
            #expect(await harness.simulator.order("ORD-Q-NOTPAY")?.queries == 1)
        }
    }

    /// A paid order's query reply verifies with trade_state SUCCESS and the payment time
    @Test func queryReplyForPaidOrder() async throws {
        try await Harness.run { harness in
            _ = try await harness.submit(orderId: "ORD-Q-PAID", amount: "0.01")
            let transactionId = try await harness.simulator.pay("ORD-Q-PAID", faults: NotifyFaults(drop: true))
            let reply = try await harness.query("ORD-Q-PAID")
            guard case .reply(let parsed, let verdict) = harness.parse(reply.body) else {
                Issue.record("not a reply: \(reply.body)")
                return
            }
            #expect(verdict == .valid)
            #expect(parsed.tradeState == .success)
            #expect(parsed.returnCode == "00")
            #expect(parsed.timeEnd == "2026-11-27 10:00:00")
            #expect(parsed.transactionId == transactionId)
            #expect(parsed.amountText == "0.0100")

            // The SUCCESS-then-NOTPAY inconsistency, on demand.
            await harness.simulator.setQueryReportsUnpaid("ORD-Q-PAID", true)
            guard case .reply(let later, .valid) = harness.parse(try await harness.query("ORD-Q-PAID").body) else {
                Issue.record("not a valid reply")
                return
            }
            #expect(later.tradeState == .notPaid)
            #expect(later.timeEnd == "1970-01-01 08:00:00")
        }
    }

    /// With the envelope setting the reply parses as enveloped and still verifies
    @Test func envelopedQueryReply() async throws {
        try await Harness.run(configure: { $0.queryEnvelope = true }) { harness in
            _ = try await harness.submit(orderId: "ORD-Q-ENV", amount: "9.90")
            let reply = try await harness.query("ORD-Q-ENV")
            #expect(reply.body.hasPrefix("{\"status\":\"success\""))
            guard case .reply(let parsed, let verdict) = harness.parse(reply.body) else {
                Issue.record("not a reply: \(reply.body)")
                return
            }
            #expect(verdict == .valid)
            #expect(parsed.enveloped)
            #expect(parsed.tradeState == .notPaid)
        }
    }

    /// A query for an unknown order or with a bad signature gets the error envelope
    @Test func queryErrorsUseTheErrorEnvelope() async throws {
        try await Harness.run { harness in
            let unknown = try await harness.query("ORD-NEVER")
            #expect(harness.parse(unknown.body) == .gatewayError(message: "订单不存在"))
            _ = try await harness.submit(orderId: "ORD-Q-SIG", amount: "1.00")
            let badlySigned = try await harness.request(
                .POST,
                path: "/Pay_Trade_query.html",
                body: "pay_memberid=10001&pay_orderid=ORD-Q-SIG&pay_md5sign=" + String(repeating: "0", count: 32)
            )
            guard case .gatewayError = harness.parse(badlySigned.body) else {
                Issue.record("expected an error envelope: \(badlySigned.body)")
                return
            }
            #expect(await harness.simulator.order("ORD-Q-SIG")?.queries == 0)
        }
    }

    /// serverError answers 502 for exactly `count` queries, then the faithful reply returns
    @Test func queryFaultServerErrorWithCount() async throws {
        try await Harness.run { harness in
            _ = try await harness.submit(orderId: "ORD-F-502", amount: "1.00")
            await harness.simulator.setQueryFault("ORD-F-502", .serverError, count: 2)
            #expect(try await harness.query("ORD-F-502").status == 502)
            #expect(try await harness.query("ORD-F-502").status == 502)
            let third = try await harness.query("ORD-F-502")
            #expect(third.status == 200)
            guard case .reply(_, .valid) = harness.parse(third.body) else {
                Issue.record("not a valid reply: \(third.body)")
                return
            }
        }
    }

    /// Queued faults answer one query each, in order, before the order's own fault; then the faithful reply returns.
    @Test func queuedQueryFaultsAnswerInTurn() async throws {
        try await Harness.run { harness in
            _ = try await harness.submit(orderId: "ORD-F-Q", amount: "1.00")
            await harness.simulator.setQueryFault("ORD-F-Q", .errorEnvelope, count: 1)
            await harness.simulator.queueQueryFaults("ORD-F-Q", [.serverError, .html])
            #expect(try await harness.query("ORD-F-Q").status == 502)
            #expect(try await harness.query("ORD-F-Q").contentType?.hasPrefix("text/html") == true)
            guard case .gatewayError = harness.parse(try await harness.query("ORD-F-Q").body) else {
                Issue.record("the order's own fault did not follow the queued ones")
                return
            }
            let faithful = try await harness.query("ORD-F-Q")
            guard case .reply(_, .valid) = harness.parse(faithful.body) else {
                Issue.record("not a valid reply: \(faithful.body)")
                return
            }
        }
    }

    /// html answers 200 with an HTML page that does not parse as a reply
    @Test func queryFaultHTML() async throws {
        try await Harness.run { harness in
            _ = try await harness.submit(orderId: "ORD-F-HTML", amount: "1.00")
            await harness.simulator.setQueryFault("ORD-F-HTML", .html)
            let reply = try await harness.query("ORD-F-HTML")
            #expect(reply.status == 200)
            #expect(reply.contentType?.hasPrefix("text/html") == true)
            guard case .unreadable(let reason) = harness.parse(reply.body) else {
                Issue.record("expected unreadable: \(reply.body)")
                return
            }
            #expect(reason.contains("HTML"))
            // A nil count means every later query too.
            #expect(try await harness.query("ORD-F-HTML").contentType?.hasPrefix("text/html") == true)
        }
    }

    /// timeout never answers within a short client timeout
    @Test func queryFaultTimeout() async throws {
        try await Harness.run { harness in
            _ = try await harness.submit(orderId: "ORD-F-TIME", amount: "1.00")
            await harness.simulator.setQueryFault("ORD-F-TIME", .timeout, count: 1)
            let start = ContinuousClock.now
            await #expect(throws: (any Error).self) {
                _ = try await harness.query("ORD-F-TIME", timeout: .milliseconds(300))
            }
            // The client gave up on its own: the simulator holds the reply for 30 s (queryTimeoutHold).
            #expect(ContinuousClock.now - start < .seconds(25))
        }
    }

    /// badSignature answers a reply whose signature does not verify
    @Test func queryFaultBadSignature() async throws {
        try await Harness.run { harness in
            _ = try await harness.submit(orderId: "ORD-F-SIG", amount: "1.00")
            await harness.simulator.setQueryFault("ORD-F-SIG", .badSignature, count: 1)
            guard case .reply(_, let verdict) = harness.parse(try await harness.query("ORD-F-SIG").body) else {
                Issue.record("not a reply")
                return
            }
            #expect(verdict == .mismatch)
        }
    }

    /// errorEnvelope answers {"status":"error","msg":"订单不存在"} for a known order
    @Test func queryFaultErrorEnvelope() async throws {
        try await Harness.run { harness in
            _ = try await harness.submit(orderId: "ORD-F-ENV", amount: "1.00")
            await harness.simulator.setQueryFault("ORD-F-ENV", .errorEnvelope)
            let reply = try await harness.query("ORD-F-ENV")
            #expect(reply.body == "{\"status\":\"error\",\"msg\":\"订单不存在\"}")
            #expect(harness.parse(reply.body) == .gatewayError(message: "订单不存在"))
            await harness.simulator.setQueryFault("ORD-F-ENV", nil)
            guard case .reply(_, .valid) = harness.parse(try await harness.query("ORD-F-ENV").body) else {
                Issue.record("the fault was not cleared")
                return
            }
        }
    }

    /// Random query faults at rate 1 hit every query, and the same seed gives the same transaction ids
    @Test func randomFaultRatesApply() async throws {
        try await Harness.run(configure: { $0.faultRates = FaultRates(dropNotification: 1, queryServerError: 1) }) {
            harness in
            _ = try await harness.submit(orderId: "ORD-RANDOM", amount: "1.00")
            #expect(try await harness.query("ORD-RANDOM").status == 502)
            try await harness.simulator.pay("ORD-RANDOM")
            try await Task.sleep(for: .milliseconds(300))
            #expect(await harness.receiver.bodies.isEmpty)
        }
    }

    // MARK: Control routes and lifecycle

    /// POST /sim/pay pays with faults and GET /sim/orders lists the order as paid
    @Test func controlRoutes() async throws {
        try await Harness.run { harness in
            _ = try await harness.submit(orderId: "ORD-CTRL", amount: "6.60")
            let paid = try await harness.request(.POST, path: "/sim/pay", body: "orderid=ORD-CTRL&copies=2")
            #expect(paid.status == 200)
            #expect(paid.body.contains("\"transaction_id\":\"SIM"))
            _ = try await harness.receiver.waitForBodies(2)
            let unknown = try await harness.request(.POST, path: "/sim/pay", body: "orderid=NOPE")
            #expect(unknown.status == 404)
            let listed = try await harness.request(.GET, path: "/sim/orders")
            #expect(listed.status == 200)
            #expect(listed.body.contains("\"orderid\":\"ORD-CTRL\""))
            #expect(listed.body.contains("\"paid\":true"))
            let fault = try await harness.request(
                .POST,
                path: "/sim/query-fault",
                body: "orderid=ORD-CTRL&fault=server-error&count=1"
            )
            #expect(fault.status == 200)
            #expect(try await harness.query("ORD-CTRL").status == 502)
        }
    }

    /// A simulator that cannot bind its port makes run() throw and waitUntilListening report it
    @Test func bindFailureIsReported() async throws {
        try await Harness.run { harness in
            let port = try #require(Int(harness.simulatorURL.split(separator: ":").last ?? ""))
            var configuration = SimulatorConfiguration(
                memberId: GatewaySimulatorTests.memberId,
                key: GatewaySimulatorTests.key
            )
            configuration.port = port
            let second = GatewaySimulator(configuration: configuration, logger: Harness.logger)
            await #expect(throws: (any Error).self) { try await second.run() }
            await #expect(throws: (any Error).self) { _ = try await second.waitUntilListening() }
        }
    }
}

// MARK: - Harness

/// One simulator, one receiver and one HTTP client, torn down when the body returns.
struct Harness: Sendable {
    let simulator: GatewaySimulator
    let simulatorURL: String
    let receiver: Receiver
    let client: HTTPClient

    static let logger: Logger = {
        var logger = Logger(label: "gateway-simulator-tests")
        logger.logLevel = .warning
        return logger
    }()

    struct Reply: Sendable {
        var status: Int
        var body: String
        var contentType: String?
    }

    static func run(
        receiverReply: String = "OK",
        configure: @Sendable (inout SimulatorConfiguration) -> Void = { _ in },
        _ body: @Sendable (Harness) async throws -> Void
    ) async throws {
        var configuration = SimulatorConfiguration(
            memberId: GatewaySimulatorTests.memberId,
            key: GatewaySimulatorTests.key
        )
        configuration.notifyRetryDelay = .milliseconds(50)
        configuration.notifyTimeout = .seconds(30)  // an upper bound only: a full test run on two cores is slow
        configuration.clock = { GatewaySimulatorTests.fixedInstant }
        configure(&configuration)
        let simulator = GatewaySimulator(configuration: configuration, logger: Self.logger)
        let receiver = Receiver(reply: receiverReply)
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        // Torn down in dependency order: our client, then the simulator (its notifications stop with it), then the
        // receiver, so no server stops while a peer is still connecting to it.
        try await withThrowingTaskGroup(of: Void.self) { receiverGroup in
            receiverGroup.addTask { try await receiver.run() }
            var failure: (any Error)?
            await withThrowingTaskGroup(of: Void.self) { simulatorGroup in
                simulatorGroup.addTask { try await simulator.run() }
                do {
                    let url = try await simulator.waitUntilListening()
                    _ = try await receiver.waitUntilListening()
                    try await body(Harness(simulator: simulator, simulatorURL: url, receiver: receiver, client: client))
                } catch {
                    failure = error
                }
                try? await client.shutdown()
                simulatorGroup.cancelAll()
            }
            receiverGroup.cancelAll()
            if let failure { throw failure }
        }
    }

    /// Builds and signs a payment request with the core, lets `edit` change its fields, and POSTs it.
    func submit(
        orderId: String,
        amount: String,
        attach: String? = nil,
        edit: (inout [FormField]) -> Void = { _ in }
    ) async throws -> Reply {
        let settings = GatewaySettings(
            memberId: GatewaySimulatorTests.memberId,
            baseURL: self.simulatorURL,
            notifyURL: await self.receiver.notifyURL,
            callbackURL: "http://127.0.0.1:9/return"
        )
        let request = OrderRequest(
            orderId: orderId,
            amount: amount,
            bankCode: "940",
            productName: "测试商品",
            attach: attach
        )
        let payRequest = try PayRequest.build(
            request,
            settings: settings,
            key: GatewaySimulatorTests.key,
            appliedAt: GatewaySimulatorTests.fixedInstant
        ).get()
        var fields = payRequest.fields
        edit(&fields)
        return try await self.request(.POST, path: "/Pay_Index.html", body: FormCoding.encode(fields))
    }

    func query(_ orderId: String, timeout: Duration = .seconds(30)) async throws -> Reply {
        let request = QueryRequest(
            memberId: GatewaySimulatorTests.memberId,
            orderId: orderId,
            key: GatewaySimulatorTests.key
        )
        return try await self.request(.POST, path: "/Pay_Trade_query.html", body: request.body, timeout: timeout)
    }

    func parse(_ body: String) -> QueryReplyParse {
        QueryReplyParse.parse(Array(body.utf8), key: GatewaySimulatorTests.key)
    }

    func request(
        _ method: HTTPMethod,
        path: String,
        body: String? = nil,
        timeout: Duration = .seconds(30)
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: self.simulatorURL + path)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let (seconds, attoseconds) = timeout.components
        let response = try await self.client.execute(
            request,
            timeout: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        )
        let buffer = try await response.body.collect(upTo: 1 << 20)
        return Reply(
            status: Int(response.status.code),
            body: String(buffer: buffer),
            contentType: response.headers.first(name: "Content-Type")
        )
    }

    /// Polls `condition` until it holds, failing after `timeout`.
    func eventually(
        timeout: Duration = .seconds(30),
        _ condition: @Sendable () async -> Bool
    ) async throws {
        guard try await LedgerTesting.eventually(seconds: timeout.seconds, { await condition() }) else {
            Issue.record("condition not met within \(timeout)")
            return
        }
    }
}

/// A merchant's notify URL: records every body and answers with a fixed reply.
actor Receiver {
    let reply: String
    private(set) var bodies: [String] = []
    private var url: String?

    init(reply: String) {
        self.reply = reply
    }

    var notifyURL: String { (self.url ?? "http://127.0.0.1:9") + "/notify" }

    func run() async throws {
        let router = Router()
        router.post("notify") { request, _ in
            var request = request
            let buffer = try await request.collectBody(upTo: 64 * 1024)
            await self.record(String(buffer: buffer))
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: self.reply))
            )
        }
        let application = Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in await self.listening(channel.localAddress?.port ?? 0) },
            logger: Harness.logger
        )
        try await application.run()
    }

    private func listening(_ port: Int) { self.url = "http://127.0.0.1:\(port)" }

    private func record(_ body: String) { self.bodies.append(body) }

    func waitUntilListening() async throws -> String {
        let deadline = ContinuousClock.now + .seconds(10)
        while self.url == nil {
            guard ContinuousClock.now < deadline else { throw CancellationError() }
            try await Task.sleep(for: .milliseconds(5))
        }
        return self.notifyURL
    }

    /// Waits until at least `count` bodies arrived (failing after 30 s: generous, for a loaded machine) and
    /// returns them.
    func waitForBodies(_ count: Int) async throws -> [String] {
        let deadline = ContinuousClock.now + .seconds(30)
        while self.bodies.count < count {
            guard ContinuousClock.now < deadline else {
                Issue.record("expected \(count) notification bodies, got \(self.bodies.count)")
                return self.bodies
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        return self.bodies
    }
}
