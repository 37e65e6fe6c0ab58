import AsyncHTTPClient
import Foundation
import GatewaySimulator
import LedgerControlProtocol
import LedgerCore
import LedgerDaemon
import LedgerStore
import LedgerTesting
import Logging
import NIOCore
import NIOHTTP1
import Testing

/// The real daemon against the gateway simulator over real sockets.
struct EndToEndTests {
    /// A simulator and a daemon wired to each other, both running for the length of `body`.
    static func withGatewayAndDaemon<T: Sendable>(
        directory: TemporaryDirectory,
        configure: @Sendable (inout DaemonConfiguration) -> Void = { _ in },
        _ body: @Sendable (RunningDaemon, GatewaySimulator) async throws -> T
    ) async throws -> T {
        var simulatorConfiguration = SimulatorConfiguration(memberId: TestKeys.memberId, key: TestKeys.key)
        simulatorConfiguration.notifyRetryDelay = .milliseconds(100)
        // Generous: on two cores, with the PostgreSQL tests running beside these, an answer to one of 100
        // concurrent copies took over 2 s, and the retry that followed counted as an extra copy.
        simulatorConfiguration.notifyTimeout = .seconds(10)
        // Longer than the daemon's attempt timeout below, so a held reply is a timeout.
        simulatorConfiguration.queryTimeoutHold = .seconds(5)
        let simulator = GatewaySimulator(configuration: simulatorConfiguration, logger: testLogger)
        let simulatorTask = Task { try await simulator.run() }
        defer { simulatorTask.cancel() }
        let gatewayURL = try await simulator.waitUntilListening()
        var configuration = try testConfiguration(directory: directory, gatewayURL: gatewayURL)
        // The notify URL must be known before the daemon's port is: take a free port up front.
        let port = freeTCPPort()
        configuration.httpPort = port
        configuration.publicURL = "http://127.0.0.1:\(port)"
        configuration.gateway.notifyURL = configuration.publicURL + "/notify"
        configuration.gateway.callbackURL = configuration.publicURL + "/return"
        configuration.poll.firstDelay = .milliseconds(300)
        configuration.poll.backoffBase = .milliseconds(100)
        configuration.poll.backoffCap = .milliseconds(300)
        // Room for slow answers: with the whole suite running on two cores, a query to the simulator in this
        // process took over 800 ms, and a timed-out first query is not the fault a test set.
        configuration.poll.deadline = .seconds(12)
        configuration.poll.attemptTimeout = .seconds(2)
        configure(&configuration)
        return try await withRunningDaemon(configuration) { running in try await body(running, simulator) }
    }

    /// The poller waits long enough that the notifications, not a query, decide the orders even on a busy machine.
    static let notificationsDecide: @Sendable (inout DaemonConfiguration) -> Void = {
        $0.poll.firstDelay = .seconds(20)
        $0.poll.deadline = .seconds(60)
    }

    /// Creates an order in the ledger and submits it to the gateway as the buyer's browser would.
    static func createAndSubmit(_ running: RunningDaemon, _ orderId: String, amount: String = "12.50") async throws {
        let created = try await running.daemon.ledger.createOrder(.testing(orderId: orderId, amount: amount))
        let client = HTTPClient()
        defer { shutdownLater(client) }
        let (status, body, _) = try await post(client, created.gatewayURL, body: FormCoding.encode(created.fields))
        guard status == 200 else { throw TestFailure("the gateway refused \(orderId): \(status) \(body)") }
    }

    /// The happy path: created, paid by the gateway's notification, acknowledged once.
    @Test func happyPath() async throws {
        let directory = TemporaryDirectory()
        try await Self.withGatewayAndDaemon(directory: directory, configure: Self.notificationsDecide) {
            running,
            simulator in
            try await Self.createAndSubmit(running, "E1")
            let transaction = try await simulator.pay("E1")
            #expect(try await eventually { try await running.daemon.ledger.order("E1")?.status == .paid })
            let state = try #require(try await running.daemon.ledger.order("E1"))
            #expect(state.payment?.source == .callback)
            #expect(state.payment?.transactionId == transaction)
            #expect(try await eventually { await simulator.order("E1")?.notificationsAcknowledged == 1 })
        }
    }

    /// A dropped notification is recovered by the poller from the gateway's query.
    @Test func droppedNotificationRecoveredByPoller() async throws {
        let directory = TemporaryDirectory()
        try await Self.withGatewayAndDaemon(directory: directory) { running, simulator in
            try await Self.createAndSubmit(running, "E2")
            _ = try await simulator.pay("E2", faults: NotifyFaults(drop: true))
            #expect(try await eventually { try await running.daemon.ledger.order("E2")?.status == .paid })
            let state = try #require(try await running.daemon.ledger.order("E2"))
            #expect(state.payment?.source == .query)
            #expect(state.callbacks.received == 0)
        }
    }

    /// A forged and a tampered notification change nothing but the audit; the truth arrives by query.
    @Test func forgedAndTamperedChangeOnlyTheAudit() async throws {
        let directory = TemporaryDirectory()
        try await Self.withGatewayAndDaemon(directory: directory, configure: { $0.poll.firstDelay = .seconds(3) }) {
            running,
            simulator in
            try await Self.createAndSubmit(running, "E3")
            try await Self.createAndSubmit(running, "E4")
            _ = try await simulator.pay("E3", faults: NotifyFaults(breakSignature: true))
            _ = try await simulator.pay("E4", faults: NotifyFaults(tamperAmount: true))
            // The refused callbacks are in the quarantine, counted for their orders, and not in the log.
            let store = running.daemon.store
            #expect(
                try await eventually {
                    (try await store.quarantineCounts(orderId: "E3")["E3"]?.badSignature ?? 0) >= 2
                }
            )
            #expect(
                try await eventually {
                    (try await store.quarantineCounts(orderId: "E4")["E4"]?.badSignature ?? 0) >= 2
                }
            )
            // The refused callbacks changed no state: none is in either order's history, whenever the poller's
            // first query comes (on a loaded machine it may come before this point).
            for orderId in ["E3", "E4"] {
                let history = try await running.daemon.ledger.history(orderId)
                #expect(
                    !history.contains {
                        if case .callbackReceived = $0.event.payload { return true } else { return false }
                    },
                    "\(orderId)"
                )
                #expect(try await running.daemon.ledger.order(orderId)?.callbacks.received == 0)
            }
            #expect(await simulator.order("E3")?.notificationsAcknowledged == 0)
            // Then the poller finds both paid, with the right amount.
            #expect(try await eventually { try await running.daemon.ledger.order("E3")?.status == .paid })
            #expect(try await eventually { try await running.daemon.ledger.order("E4")?.status == .paid })
            #expect(try await running.daemon.ledger.order("E4")?.flags.isEmpty == true)
        }
    }

    /// 100 concurrent copies of one notification: exactly one state change and 99 duplicates in the audit.
    @Test func hundredCopies() async throws {
        let directory = TemporaryDirectory()
        try await Self.withGatewayAndDaemon(directory: directory, configure: Self.notificationsDecide) {
            running,
            simulator in
            try await Self.createAndSubmit(running, "E5")
            _ = try await simulator.pay("E5", faults: NotifyFaults(copies: 100))
            #expect(try await eventually { await simulator.order("E5")?.notificationsAcknowledged == 100 })
            // On a loaded machine a copy can outlive the simulator's notify timeout and be sent again; the ledger
            // records every POST it received, so it must hold exactly as many as the simulator sent.
            let sent = await simulator.order("E5")?.notificationsSent ?? 0
            #expect(sent >= 100)
            #expect(
                try await eventually {
                    Int(try await running.daemon.ledger.order("E5")?.callbacks.received ?? 0) == sent
                }
            )
            let audit = try await CallbackAudit.build(store: running.daemon.store, orderId: "E5")
            #expect(audit.total.accepted == 1)
            #expect(Int(audit.total.duplicate) == sent - 1)
            let paidEvents = try await running.daemon.ledger.history("E5").filter { $0.effect == .callback(.accepted) }
            #expect(paidEvents.count == 1)
        }
    }

    /// Query faults (5xx, HTML, timeout, bad signature) are recorded and retried; each order is paid in the end.
    @Test func queryFaultsRetriedAndRecorded() async throws {
        let directory = TemporaryDirectory()
        let faults: [(String, QueryFault, String)] = [
            ("F1", .serverError, "5xx"), ("F2", .html, "unreadable"), ("F3", .timeout, "transport"),
            ("F4", .badSignature, "bad-signature"), ("F5", .errorEnvelope, "gateway-error"),
        ]
        try await Self.withGatewayAndDaemon(
            directory: directory,
            configure: {
                $0.poll.firstDelay = .seconds(1)
                $0.poll.deadline = .seconds(20)
            }
        ) { running, simulator in
            // Each order's first query meets its fault (set before the first query is due), the next ones the truth.
            for (orderId, fault, _) in faults {
                // The fault is set before the order exists, so no first query can come before it, however slowly
                // a loaded machine creates the orders.
                await simulator.setQueryFault(orderId, fault, count: 1)
                try await Self.createAndSubmit(running, orderId)
                _ = try await simulator.pay(orderId, faults: NotifyFaults(drop: true))
            }
            for (orderId, _, expected) in faults {
                #expect(
                    try await eventually(seconds: 20) {
                        try await running.daemon.ledger.order(orderId)?.status == .paid
                    },
                    "\(orderId)"
                )
                let outcomes = try await running.daemon.ledger.history(orderId).compactMap { entry -> String? in
                    guard case .queryResult(let result) = entry.event.payload else { return nil }
                    switch result.outcome {
                    case .reply(_, _, let verdict, _): return verdict == .valid ? "reply" : "bad-signature"
                    case .unreadable(let reason): return reason.hasPrefix("HTTP status") ? "5xx" : "unreadable"
                    case .gatewayError: return "gateway-error"
                    case .transportError: return "transport"
                    }
                }
                #expect(outcomes.first == expected, "\(orderId): \(outcomes)")
                #expect(outcomes.last == "reply", "\(orderId): \(outcomes)")
            }
        }
    }

    /// An order never paid expires at the deadline.
    @Test func unpaidOrderExpires() async throws {
        let directory = TemporaryDirectory()
        try await Self.withGatewayAndDaemon(directory: directory, configure: { $0.poll.deadline = .seconds(2) }) {
            running,
            _ in
            try await Self.createAndSubmit(running, "E7")
            #expect(try await eventually { try await running.daemon.ledger.order("E7")?.status == .expired })
        }
    }

    /// A restart in the middle of polling resumes without loss: the order is still found paid.
    @Test func restartMidPollingResumes() async throws {
        let directory = TemporaryDirectory()
        var simulatorConfiguration = SimulatorConfiguration(memberId: TestKeys.memberId, key: TestKeys.key)
        simulatorConfiguration.notifyRetryDelay = .milliseconds(100)
        let simulator = GatewaySimulator(configuration: simulatorConfiguration, logger: testLogger)
        let simulatorTask = Task { try await simulator.run() }
        defer { simulatorTask.cancel() }
        let gatewayURL = try await simulator.waitUntilListening()
        var configuration = try testConfiguration(directory: directory, gatewayURL: gatewayURL)
        configuration.poll.firstDelay = .milliseconds(200)
        configuration.poll.backoffBase = .milliseconds(200)
        configuration.poll.backoffCap = .milliseconds(400)
        configuration.poll.deadline = .seconds(30)
        let first = configuration
        try await withRunningDaemon(first) { running in
            try await Self.createAndSubmit(running, "E8")
            #expect(
                try await eventually { (try await running.daemon.ledger.order("E8")?.queryAttempts ?? 0) >= 2 }
            )
        }
        _ = try await simulator.pay("E8", faults: NotifyFaults(drop: true))
        try await withRunningDaemon(configuration) { running in
            #expect(try await eventually { try await running.daemon.ledger.order("E8")?.status == .paid })
            let attempts = try await running.daemon.ledger.history("E8").compactMap { entry -> UInt32? in
                if case .queryResult(let result) = entry.event.payload { return result.attempt }
                return nil
            }
            #expect(
                attempts == Array(1...UInt32(attempts.count)),
                "attempt numbers continue without gaps across the restart"
            )
        }
    }
}
