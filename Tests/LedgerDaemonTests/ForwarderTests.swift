import AsyncHTTPClient
import Foundation
import GatewaySimulator
import LedgerControlProtocol
import LedgerCore
import LedgerDaemon
import LedgerStore
import LedgerTesting
import NIOCore
import Synchronization
import Testing

/// A store whose appends wait at a gate before they reach the log: while one waits, its events are not committed.
actor GatedStore {
    private var open = true
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func close() { self.open = false }

    func release() {
        self.open = true
        for waiter in self.waiters { waiter.resume() }
        self.waiters = []
    }

    func pass() async {
        if self.open { return }
        await withCheckedContinuation { self.waiters.append($0) }
    }
}

/// The forwarder over a real ledger and a real receiving HTTP server, with the ledger's time on a manual clock.
final class ForwardRig: Sendable {
    static let secret = Array("forward-test-secret-0001".utf8)
    static let otherSecret = Array("forward-test-secret-0002".utf8)
    let clock = ManualLedgerClock(start: Instant(millisecondsSinceEpoch: 1_795_741_323_000))
    let store: InMemoryEventStore
    let ledger: Ledger
    let receiver: ShopReceiver
    let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))
    let metrics = LedgerMetrics()

    init(receiverSecret: [UInt8] = ForwardRig.secret) {
        let store = InMemoryEventStore()
        self.store = store
        let settings = GatewaySettings.testing(baseURL: "http://127.0.0.1:9090")
        self.ledger = Ledger(
            store: store,
            settings: settings,
            key: TestKeys.key,
            publicURL: "http://127.0.0.1:8080",
            clock: self.clock,
            logger: testLogger
        )
        let clock = self.clock
        self.receiver = ShopReceiver(
            secret: receiverSecret,
            logger: testLogger,
            now: { clock.now().millisecondsSinceEpoch / 1000 }
        )
    }

    func settings(
        url: String,
        secrets: [[UInt8]] = [ForwardRig.secret],
        schedule: [Int64] = ForwardSchedule.standard.delaysMilliseconds
    ) -> ForwardSettings {
        var settings = ForwardSettings()
        settings.receivers = [ForwardReceiver(url: url, secrets: secrets)]
        // Long enough that a loaded machine still gets a quick receiver's answer in time; the slow receiver below
        // takes twice as long.
        settings.timeout = .milliseconds(2000)
        settings.schedule = ForwardSchedule(delaysMilliseconds: schedule)
        settings.concurrency = 4
        return settings
    }

    /// Runs a forwarder with `settings` while `body` runs, woken by every append as the daemon wires it.
    func run<T: Sendable>(
        _ settings: ForwardSettings,
        _ body: @Sendable (Forwarder) async throws -> T
    ) async throws -> T {
        let forwarder = Forwarder(
            store: self.store,
            settings: settings,
            transport: HTTPForwardTransport(httpClient: self.client, timeout: settings.timeout),
            clock: self.clock,
            seed: 11,
            metrics: self.metrics,
            logger: testLogger
        )
        let inbox = OrderStateInbox()
        self.ledger.observeOrders { states in inbox.add(states) }
        let pump = Task { try await OrderStatePump(inbox: inbox, poller: nil, forwarder: forwarder).run() }
        defer { pump.cancel() }
        let task = Task { try await forwarder.run() }
        // Whatever the body does, the forwarder stops and the receiver and the client shut down: a client left to
        // its deinit stops the whole test process.
        let result: Result<T, any Error>
        do {
            result = .success(try await body(forwarder))
        } catch {
            result = .failure(error)
        }
        task.cancel()
        _ = try? await task.value
        await self.finish()
        return try result.get()
    }

    func create(_ orderId: String) async throws {
        _ = try await self.ledger.createOrder(.testing(orderId: orderId))
    }

    func pay(_ orderId: String, transactionId: String = "T1") async throws {
        let body = Notifications.body(Notifications.fields(orderId: orderId, transactionId: transactionId))
        _ = try await self.ledger.recordNotification(body: Array(body.utf8), remoteAddress: "127.0.0.1:1")
    }

    func createPaid(_ orderId: String) async throws {
        try await self.create(orderId)
        try await self.pay(orderId)
    }

    func expire(_ orderId: String) async throws {
        let result = QueryResult(
            attempt: 1,
            latencyMicroseconds: 1,
            final: true,
            httpStatus: nil,
            body: [],
            outcome: .transportError(message: "timed out")
        )
        _ = try await self.ledger.recordQueryResult(orderId: orderId, result)
    }

    private func finish() async {
        await self.receiver.stop()
        try? await self.client.shutdown()
    }
}

/// The forwarder against a real receiving HTTP server: signed deliveries, retries on the schedule, per-order order.
struct ForwarderTests {
    /// Each paid and expired order reaches the shop once, signed, with its stable event id, and leaves the outbox.
    @Test func deliversSignedOutcomes() async throws {
        let rig = ForwardRig()
        let url = try await rig.receiver.start()
        try await rig.run(rig.settings(url: url)) { forwarder in
            try await rig.createPaid("A1")
            try await rig.create("B1")
            try await rig.expire("B1")
            try await eventually("both outcomes arrive") { rig.receiver.received.count == 2 }
            try await eventually("the outbox is empty") { await forwarder.status(limit: 10).pending == 0 }
            let received = rig.receiver.received
            #expect(received.allSatisfy { $0.verified && $0.status == 200 })
            #expect(Set(received.compactMap(\.eventId)) == ["2-order.paid", "4-order.expired"])
            let paid = try #require(received.first { $0.orderId == "A1" })
            #expect(paid.type == "order.paid")
            #expect(paid.json?["amount"]?.stringValue == "12.50")
            #expect(paid.json?["source"]?.stringValue == "callback")
            #expect(paid.json?["id"]?.stringValue == paid.eventId)
            #expect(try await rig.store.forwardPosition() == 4)
            // Recorded as delivered in the store too (written at the forwarder's next turn).
            try await eventually("the stored outbox is empty") {
                try await rig.store.forwardOutbox(after: nil, limit: 10).isEmpty
            }
        }
    }

    /// Forwarding enabled on a ledger with a long history goes through it turn after turn, a write interval apart,
    /// and delivers the outcome at its end: a turn that leaves events behind does not wait for the next append or
    /// the poll interval (here the ledger's clock, which never moves, so it would wait for ever).
    @Test func longHistoryDerivedWithoutWaiting() async throws {
        let rig = ForwardRig()
        let url = try await rig.receiver.start()
        // Three turns' worth of events before the forwarder starts: nothing appends while it works through them.
        let turn = ForwardLimits.deriveChunkEvents * ForwardLimits.deriveChunksPerTurn
        for index in 0..<(3 * turn) { try await rig.create("H\(index)") }
        try await rig.createPaid("Z1")
        try await rig.run(rig.settings(url: url)) { forwarder in
            try await eventually("the outcome at the end of the history arrives") {
                rig.receiver.received.map(\.orderId) == ["Z1"]
            }
            try await eventually("the delivery leaves the outbox") { await forwarder.status(limit: 10).pending == 0 }
            #expect(try await rig.store.forwardPosition() == UInt64(3 * turn + 2))
        }
    }

    /// 500, 301, 400 and a receiver slower than the timeout each fail and are retried on the schedule, carrying the
    /// same event id, until a 2xx delivers.
    @Test func failuresRetriedUntilRecovery() async throws {
        let rig = ForwardRig()
        rig.receiver.answer { _ in .status(500) }
        let url = try await rig.receiver.start()
        try await rig.run(rig.settings(url: url)) { forwarder in
            try await rig.createPaid("A1")
            let failures: [(ShopReceiver.Answer, String)] = [
                (.status(301), "HTTP 301"), (.status(400), "HTTP 400"),
                (.delayed(milliseconds: 4000, status: 200), "forward.timeoutMs"),
            ]
            var expectedError = "HTTP 500"
            var attempts: UInt32 = 1
            for (answer, nextError) in failures + [(.status(200), "")] {
                try await eventually("attempt \(attempts) fails") { [attempts, expectedError] in
                    let failing = await forwarder.status(limit: 10).failing.first
                    return failing?.attempts == attempts && failing?.lastError?.contains(expectedError) == true
                }
                rig.receiver.answer { _ in answer }
                // The next attempt is due within the schedule's delay plus a tenth of it.
                let delay = ForwardSchedule.standard.delaysMilliseconds[Int(attempts)]
                rig.clock.advance(by: delay + delay / 10 + 1)
                expectedError = nextError
                attempts += 1
            }
            try await eventually("the delivery succeeds") { await forwarder.status(limit: 10).pending == 0 }
            // The slow answer is recorded when it is finally written, after the forwarder had given up on it.
            try await eventually("the slow answer is recorded") { rig.receiver.received.count == 5 }
            let received = rig.receiver.received
            #expect(received.prefix(3).map(\.status) == [500, 301, 400])
            #expect(received.dropFirst(3).map(\.status) == [200, 200])
            #expect(Set(received.compactMap(\.eventId)) == ["2-order.paid"])
        }
    }

    /// A receiver that is down (connection refused) is retried; once it listens, the outcome arrives.
    @Test func receiverDownThenUp() async throws {
        let rig = ForwardRig()
        // A port held bound but not listening, so connections to it are refused and no other test's server can take
        // it; released just before the receiver starts on it.
        let (port, holder) = try boundTCPPort()
        try await rig.run(rig.settings(url: "http://127.0.0.1:\(port)/hook")) { forwarder in
            try await rig.createPaid("A1")
            try await eventually("the first attempt fails") {
                await forwarder.status(limit: 10).failing.first?.attempts == 1
            }
            #expect(rig.receiver.received.isEmpty)
            close(holder)
            _ = try await rig.receiver.start(port: port)
            rig.clock.advance(by: 5_501)
            try await eventually("the outcome arrives") { rig.receiver.received.count == 1 }
            try await eventually("the outbox is empty") { await forwarder.status(limit: 10).pending == 0 }
        }
    }

    /// A later outcome of an order waits behind its failing earlier one; another order's outcome goes meanwhile; after
    /// recovery the waiting order's outcomes arrive in log order.
    @Test func inOrderPerOrder() async throws {
        let rig = ForwardRig()
        rig.receiver.answer { $0.orderId == "A1" ? .status(503) : .status(200) }
        let url = try await rig.receiver.start()
        try await rig.run(rig.settings(url: url)) { forwarder in
            try await rig.createPaid("A1")
            try await rig.pay("A1", transactionId: "T-OTHER")
            try await rig.createPaid("B1")
            try await eventually("B1 arrives") {
                rig.receiver.received.contains { $0.orderId == "B1" && $0.status == 200 }
            }
            try await eventually("A1's first outcome fails") { await forwarder.status(limit: 10).failing.count == 1 }
            #expect(rig.receiver.received.filter { $0.orderId == "A1" }.map(\.type) == ["order.paid"])
            // A1's two outcomes wait (the second behind the first); B1's is done.
            try await eventually("only A1's outcomes are held") { await forwarder.status(limit: 10).pending == 2 }
            #expect(rig.receiver.received.filter { $0.orderId == "A1" }.map(\.type) == ["order.paid"])
            rig.receiver.answer { _ in .status(200) }
            rig.clock.advance(by: 5_501)
            try await eventually("A1 drains") { await forwarder.status(limit: 10).pending == 0 }
            let a1 = rig.receiver.received.filter { $0.orderId == "A1" }
            #expect(a1.map(\.type) == ["order.paid", "order.paid", "order.flagged"])
            #expect(a1.map(\.eventId) == ["2-order.paid", "2-order.paid", "3-order.flagged"])
        }
    }

    /// During a rotation both secrets sign: a receiver holding either one verifies the request.
    @Test(arguments: [ForwardRig.secret, ForwardRig.otherSecret])
    func twoSecrets(_ receiverSecret: [UInt8]) async throws {
        let rig = ForwardRig(receiverSecret: receiverSecret)
        let url = try await rig.receiver.start()
        try await rig.run(rig.settings(url: url, secrets: [ForwardRig.secret, ForwardRig.otherSecret])) { _ in
            try await rig.createPaid("A1")
            try await eventually("the outcome arrives") { rig.receiver.received.count == 1 }
            let received = try #require(rig.receiver.received.first)
            #expect(received.verified)
            #expect(received.signature?.split(separator: ",").filter { $0.hasPrefix("v1=") }.count == 2)
        }
    }

    /// After the last scheduled attempt the delivery is dead (later ones of other orders still go); a retry of the
    /// order sends it again from a first attempt.
    @Test func deadThenRetried() async throws {
        let rig = ForwardRig()
        rig.receiver.answer { _ in .status(500) }
        let url = try await rig.receiver.start()
        try await rig.run(rig.settings(url: url, schedule: [0, 1000])) { forwarder in
            try await rig.createPaid("A1")
            try await eventually("the first attempt fails") { await forwarder.status(limit: 10).failing.count == 1 }
            rig.clock.advance(by: 1_101)
            try await eventually("the delivery is dead") { await forwarder.status(limit: 10).dead == 1 }
            #expect(await forwarder.status(limit: 10).pending == 0)
            // Stored as dead at the forwarder's next write.
            try await eventually("the store holds it dead") {
                try await rig.store.forwardOutbox(after: nil, limit: 10).map(\.dead) == [true]
            }
            rig.receiver.answer { _ in .status(204) }
            #expect(try await forwarder.retry(orderId: "NOPE") == 0)
            #expect(try await forwarder.retry(orderId: "A1") == 1)
            try await eventually("the retry delivers") { await forwarder.status(limit: 10).dead == 0 }
            try await eventually("the outbox is empty") {
                try await rig.store.forwardOutbox(after: nil, limit: 10).isEmpty
            }
            #expect(rig.receiver.received.map(\.status) == [500, 500, 204])
        }
    }

    /// The metrics count attempts by outcome and show the pending deliveries and the age of the oldest.
    @Test func metricsFollowDeliveries() async throws {
        let rig = ForwardRig()
        rig.receiver.answer { _ in .status(500) }
        let url = try await rig.receiver.start()
        try await rig.run(rig.settings(url: url)) { forwarder in
            try await rig.createPaid("A1")
            try await eventually("the first attempt fails") { await forwarder.status(limit: 10).failing.count == 1 }
            try await eventually("one delivery is pending") {
                rig.metrics.render().contains("ledger_forward_pending 1")
            }
            let failing = rig.metrics.render()
            #expect(failing.contains(#"ledger_forward_deliveries_total{outcome="failed"} 1"#), "\(failing)")
            #expect(!failing.contains(#"ledger_forward_oldest_pending_seconds 0\n"#))
            rig.receiver.answer { _ in .status(200) }
            rig.clock.advance(by: 5_501)
            try await eventually("the delivery is counted") {
                let text = rig.metrics.render()
                return text.contains(#"ledger_forward_deliveries_total{outcome="delivered"} 1"#)
                    && text.contains("ledger_forward_pending 0") && text.contains("ledger_forward_position 2")
            }
        }
    }

    /// A replay from a sequence derives again: outcomes already delivered are sent again with their same ids.
    @Test func replayRedelivers() async throws {
        let rig = ForwardRig()
        let url = try await rig.receiver.start()
        try await rig.run(rig.settings(url: url)) { forwarder in
            try await rig.createPaid("A1")
            try await eventually("the outcome arrives") { rig.receiver.received.count == 1 }
            // Delivered and recorded as such: a replay over a delivery still held would keep it, not add one.
            try await eventually("the outbox is empty") {
                try await rig.store.forwardOutbox(after: nil, limit: 10).isEmpty
            }
            #expect(try await forwarder.replay(from: 1) == 0)
            try await eventually("it arrives again") { rig.receiver.received.count == 2 }
            #expect(rig.receiver.received.map(\.eventId) == ["2-order.paid", "2-order.paid"])
            await #expect(throws: StoreError.self) { try await forwarder.replay(from: 99) }
        }
    }

    /// An order's events that are not committed are not forwarded, however often the forwarder looks; once committed
    /// they are.
    @Test func nothingBeforeCommit() async throws {
        let rig = ForwardRig()
        let url = try await rig.receiver.start()
        let gate = GatedStore()
        try await rig.run(rig.settings(url: url)) { forwarder in
            try await rig.create("A1")
            await gate.close()
            // The payment's append waits at the gate; meanwhile the forwarder is woken and the clock moves.
            let paying = Task {
                await gate.pass()
                try await rig.pay("A1")
            }
            for _ in 0..<5 {
                await forwarder.wake()
                rig.clock.advance(by: 2000)
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(rig.receiver.received.isEmpty)
            #expect(await forwarder.status(limit: 10).pending == 0)
            await gate.release()
            try await paying.value
            try await eventually("the committed payment arrives") { rig.receiver.received.count == 1 }
        }
    }
}
