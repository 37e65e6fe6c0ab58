import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerDaemon
import LedgerStore
import LedgerTesting
import Synchronization
import Testing

/// A gateway that answers from a script, and remembers what it was asked.
final class ScriptedGateway: GatewayQuerying {
    enum Answer: Sendable {
        case notPaid
        case paid
        case transport
        case badSignature
    }

    private let state = Mutex<(answers: [String: [Answer]], asked: [(String, UInt32, Bool)], at: [Instant])>(
        ([:], [], [])
    )
    /// The clock each query's time is read from, when a test wants the times.
    let clock: (any LedgerClock)?

    init(clock: (any LedgerClock)? = nil) {
        self.clock = clock
    }

    func script(_ orderId: String, _ answers: [Answer]) { self.state.withLock { $0.answers[orderId] = answers } }
    var asked: [(String, UInt32, Bool)] { self.state.withLock { $0.asked } }
    /// When each query was made, by `clock`.
    var askedAt: [Instant] { self.state.withLock { $0.at } }

    func query(orderId: String, attempt: UInt32, final: Bool) async -> QueryResult {
        let answer = self.state.withLock { state -> Answer in
            state.asked.append((orderId, attempt, final))
            if let clock = self.clock { state.at.append(clock.now()) }
            var answers = state.answers[orderId] ?? []
            let answer = answers.isEmpty ? .notPaid : answers.removeFirst()
            state.answers[orderId] = answers
            return answer
        }
        func reply(_ tradeState: String, sign: Bool = true) -> QueryResult.Outcome {
            var fields = [
                FormField("memberid", TestKeys.memberId), FormField("orderid", orderId), FormField("amount", "12.5000"),
                FormField("time_end", tradeState == "SUCCESS" ? "2026-11-27 09:30:00" : "1970-01-01 08:00:00"),
                FormField("transaction_id", tradeState == "SUCCESS" ? "TQ1" : ""), FormField("returncode", "00"),
                FormField("trade_state", tradeState),
            ]
            fields.append(
                FormField(
                    "sign",
                    sign ? Signer.sign(fields, kind: .queryReply, key: TestKeys.key) : String(repeating: "B", count: 32)
                )
            )
            let verdict = Signer.verify(fields, kind: .queryReply, key: TestKeys.key)
            return .reply(fields: fields, enveloped: false, verdict: verdict, dialect: .document)
        }
        let outcome: QueryResult.Outcome
        switch answer {
        case .notPaid: outcome = reply("NOTPAY")
        case .paid: outcome = reply("SUCCESS")
        case .badSignature: outcome = reply("SUCCESS", sign: false)
        case .transport: outcome = .transportError(message: "timed out")
        }
        return QueryResult(
            attempt: attempt,
            latencyMicroseconds: 5,
            final: final,
            httpStatus: answer == .transport ? nil : 200,
            body: [],
            outcome: outcome
        )
    }
}

/// The poll schedule, derived from an order's state alone.
struct PollScheduleTests {
    func state(createdAt: Int64, attempts: UInt32, lastQueryAt: Int64?) -> OrderState {
        let fixture = try! PayRequest.build(
            OrderRequest(orderId: "A1", amount: "12.50", bankCode: "940", productName: "p"),
            settings: GatewaySettings(
                memberId: "10001",
                baseURL: "http://g",
                notifyURL: "http://n/notify",
                callbackURL: "http://n/return"
            ),
            key: TestKeys.key,
            appliedAt: Instant(millisecondsSinceEpoch: createdAt)
        ).get()
        var state = OrderState(orderId: "A1")
        state.apply(
            PendingEvent(
                recordedAt: Instant(millisecondsSinceEpoch: createdAt),
                orderId: "A1",
                payload: .orderCreated(OrderCreated(request: fixture, gatewayURL: "http://g", dialect: .document))
            )
            .sealed(sequence: 1, previousHash: .zero)
        )
        state.queryAttempts = attempts
        state.lastQueryAt = lastQueryAt.map { Instant(millisecondsSinceEpoch: $0) }
        return state
    }

    var settings: PollSettings {
        var settings = PollSettings()
        settings.firstDelay = .seconds(30)
        settings.backoffBase = .seconds(10)
        settings.backoffCap = .seconds(60)
        settings.deadline = .seconds(600)
        return settings
    }

    /// The first attempt comes firstDelay after creation.
    @Test func firstAttempt() {
        var random = SplitMix64(seed: 1)
        let next = PollSchedule(settings: self.settings).next(
            for: self.state(createdAt: 0, attempts: 0, lastQueryAt: nil),
            random: &random
        )
        #expect(next == PollSchedule.Next(at: Instant(millisecondsSinceEpoch: 30_000), final: false, attempt: 1))
    }

    /// Later attempts wait a jittered delay within the capped exponential bound after the last attempt.
    @Test func backoffWithFullJitter() {
        let schedule = PollSchedule(settings: self.settings)
        var random = SplitMix64(seed: 42)
        for attempts in 1...8 as ClosedRange<UInt32> {
            let bound = min(60_000, 10_000 << Int64(attempts - 1))
            var delays: Set<Int64> = []
            for _ in 0..<50 {
                let next = schedule.next(
                    for: self.state(createdAt: 0, attempts: attempts, lastQueryAt: 100_000),
                    random: &random
                )!
                let delay = next.at.millisecondsSinceEpoch - 100_000
                #expect(delay >= 0 && delay <= bound)
                #expect(next.attempt == attempts + 1)
                delays.insert(delay)
            }
            #expect(delays.count > 10, "the delay is jittered")
        }
    }

    /// An attempt that would fall at or after the deadline is the final one, made at the deadline.
    @Test func finalAtDeadline() throws {
        var random = SplitMix64(seed: 3)
        for _ in 0..<50 {
            let next = try #require(
                PollSchedule(settings: self.settings).next(
                    for: self.state(createdAt: 0, attempts: 5, lastQueryAt: 599_000),
                    random: &random
                )
            )
            // Never past the deadline, and final exactly when it lands on it.
            #expect(next.at.millisecondsSinceEpoch <= 600_000)
            #expect(next.final == (next.at.millisecondsSinceEpoch == 600_000))
        }
        let late = PollSchedule(settings: self.settings).next(
            for: self.state(createdAt: 0, attempts: 5, lastQueryAt: 600_500),
            random: &random
        )
        #expect(late == PollSchedule.Next(at: Instant(millisecondsSinceEpoch: 600_000), final: true, attempt: 6))
    }

    /// Paid, expired and unknown orders are not polled.
    @Test func nothingForSettledOrders() {
        var random = SplitMix64(seed: 3)
        var paid = self.state(createdAt: 0, attempts: 0, lastQueryAt: nil)
        paid.status = .paid
        #expect(PollSchedule(settings: self.settings).next(for: paid, random: &random) == nil)
        #expect(PollSchedule(settings: self.settings).next(for: OrderState(orderId: "X"), random: &random) == nil)
    }
}

/// The poller against a scripted gateway with a manual clock.
struct QueryPollerTests {
    final class Harness: Sendable {
        let clock = ManualLedgerClock(start: Instant(millisecondsSinceEpoch: 1_795_741_323_000))
        let gateway: ScriptedGateway
        let store: any EventStore
        let ledger: Ledger
        let poller: QueryPoller

        init(store: any EventStore = InMemoryEventStore(), adjust: (inout PollSettings) -> Void = { _ in }) {
            var settings = PollSettings()
            settings.firstDelay = .seconds(30)
            settings.backoffBase = .seconds(10)
            settings.backoffCap = .seconds(20)
            settings.deadline = .seconds(120)
            adjust(&settings)
            self.gateway = ScriptedGateway(clock: self.clock)
            self.store = store
            self.ledger = Ledger(
                store: store,
                settings: GatewaySettings(
                    memberId: TestKeys.memberId,
                    baseURL: "http://g",
                    notifyURL: "http://n/notify",
                    callbackURL: "http://n/return"
                ),
                key: TestKeys.key,
                publicURL: "http://n",
                clock: self.clock,
                logger: testLogger
            )
            self.poller = QueryPoller(
                ledger: self.ledger,
                gateway: self.gateway,
                settings: settings,
                clock: self.clock,
                seed: 9,
                metrics: LedgerMetrics(),
                health: HealthState(),
                logger: testLogger
            )
        }

        /// Advances the manual clock in steps, letting the poller work between them, until `done` or the limit.
        func advance(untilMilliseconds: Int64, step: Int64 = 1000, done: @Sendable () async throws -> Bool) async throws
            -> Bool
        {
            var moved: Int64 = 0
            while moved < untilMilliseconds {
                if try await done() { return true }
                self.clock.advance(by: step)
                moved += step
                // Real time for the poller's tasks to run: the clock is manual, the scheduler is not.
                try await Task.sleep(for: .milliseconds(5))
            }
            return try await done()
        }
    }

    func run(_ harness: Harness, _ body: @Sendable (Harness) async throws -> Void) async throws {
        let poller = harness.poller
        // As the daemon wires it: appends add their states to the inbox, a pump brings them to the poller.
        let inbox = OrderStateInbox()
        harness.ledger.observeOrders { states in inbox.add(states) }
        let pump = Task { try await OrderStatePump(inbox: inbox, poller: poller, forwarder: nil).run() }
        let task = Task { try await poller.run() }
        defer {
            task.cancel()
            pump.cancel()
        }
        try await body(harness)
    }

    /// An order whose notification never came is queried after the first delay and paid by a SUCCESS reply.
    @Test func recoversMissingNotification() async throws {
        try await self.run(Harness()) { harness in
            harness.gateway.script("A1", [.transport, .badSignature, .notPaid, .paid])
            _ = try await harness.ledger.createOrder(.testing(orderId: "A1"))
            let paid = try await harness.advance(untilMilliseconds: 110_000) {
                try await harness.ledger.order("A1")?.status == .paid
            }
            #expect(paid)
            let state = try #require(try await harness.ledger.order("A1"))
            #expect(state.payment?.source == .query)
            #expect(state.queryAttempts == 4)
            #expect(harness.gateway.asked.map(\.1) == [1, 2, 3, 4])
            // Nothing more is asked about a paid order.
            _ = try await harness.advance(untilMilliseconds: 60_000) { false }
            #expect(harness.gateway.asked.count == 4)
        }
    }

    /// An order never paid expires at the deadline after a final attempt.
    @Test func expiresAtDeadline() async throws {
        try await self.run(Harness()) { harness in
            _ = try await harness.ledger.createOrder(.testing(orderId: "A1"))
            let expired = try await harness.advance(untilMilliseconds: 130_000) {
                try await harness.ledger.order("A1")?.status == .expired
            }
            #expect(expired)
            #expect(harness.gateway.asked.last?.2 == true)
            #expect(harness.gateway.asked.filter(\.2).count == 1)
        }
    }

    /// A paying callback stops the polling of its order.
    @Test func callbackStopsPolling() async throws {
        try await self.run(Harness()) { harness in
            _ = try await harness.ledger.createOrder(.testing(orderId: "A1"))
            _ = try await harness.ledger.recordNotification(
                body: Array(Notifications.body(Notifications.fields(orderId: "A1")).utf8),
                remoteAddress: "x"
            )
            _ = try await harness.advance(untilMilliseconds: 60_000) { false }
            #expect(harness.gateway.asked.isEmpty)
        }
    }

    /// However many orders are due at once, the poller starts at most poll.queriesPerSecondMax queries in any
    /// second of its clock, and still gets to every order.
    @Test func queriesPerSecondBound() async throws {
        let harness = Harness { settings in
            settings.concurrency = 64
            settings.queriesPerSecondMax = 5
        }
        try await self.run(harness) { harness in
            for index in 0..<40 {
                _ = try await harness.ledger.createOrder(.testing(orderId: "R\(index)"))
            }
            // All 40 are due together after the first delay; the bound spreads them over at least eight seconds.
            _ = try await harness.advance(untilMilliseconds: 60_000, step: 100) { false }
            let times = harness.gateway.askedAt.map(\.millisecondsSinceEpoch).sorted()
            #expect(Set(harness.gateway.asked.map(\.0)).count == 40, "every order is queried")
            // The fake gateway reads the clock when a query reaches it, which on a loaded machine can be a few
            // steps after the poller started it; so the spread is checked with a second's slack (unbounded, all 40
            // start at one instant), and the exact window rule by `QueryRateLimitTests`.
            #expect((times.last ?? 0) - (times.first ?? 0) >= 6_000, "\(times)")
        }
    }

    /// After a restart the poller resumes from the log: pending orders are scheduled from their recorded attempts.
    @Test func resumesAfterRestart() async throws {
        let directory = TemporaryDirectory()
        let first = Harness(store: try LMDBEventStore(path: directory.path + "/ledger"))
        try await self.run(first) { harness in
            _ = try await harness.ledger.createOrder(.testing(orderId: "A1"))
            _ = try await harness.advance(untilMilliseconds: 40_000) {
                try await harness.ledger.order("A1")?.queryAttempts == 1
            }
        }
        await first.store.close()
        let second = Harness(store: try LMDBEventStore(path: directory.path + "/ledger"))
        second.clock.advance(by: 40_000)
        second.gateway.script("A1", [.paid])
        try await self.run(second) { harness in
            let paid = try await harness.advance(untilMilliseconds: 60_000) {
                try await harness.ledger.order("A1")?.status == .paid
            }
            #expect(paid)
            #expect(harness.gateway.asked.first?.1 == 2, "the attempt number continues from the log")
        }
        await second.store.close()
    }
}

/// `poll.queriesPerSecondMax` as a sliding window over the poller's clock.
struct QueryRateLimitTests {
    /// Starting each query as early as the limit allows, no window of one second ever holds more than the bound,
    /// and the limit never waits longer than it must.
    @Test(arguments: [1, 5, 20])
    func slidingWindow(perSecond: Int) {
        var limit = QueryRateLimit(perSecond: perSecond)
        var now = Instant(millisecondsSinceEpoch: 1_000_000)
        var starts: [Int64] = []
        var random = SplitMix64(seed: UInt64(perSecond))
        for _ in 0..<(perSecond * 6) {
            now = limit.nextStart(now: now.adding(milliseconds: Int64(random.next(upTo: 300))))
            limit.record(now)
            starts.append(now.millisecondsSinceEpoch)
        }
        for index in starts.indices.dropLast(perSecond) {
            #expect(starts[index + perSecond] - starts[index] >= 1000)
        }
        // Not yet full: no wait at all.
        var fresh = QueryRateLimit(perSecond: perSecond)
        fresh.record(now)
        #expect(perSecond == 1 || fresh.nextStart(now: now) == now)
        // Full: the next start is a second after the oldest of the last `perSecond`, or now if that has passed.
        let oldest = starts[starts.count - perSecond] + 1000
        #expect(limit.nextStart(now: now).millisecondsSinceEpoch == max(now.millisecondsSinceEpoch, oldest))
    }
}
