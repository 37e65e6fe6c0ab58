import ArgumentParser
import AsyncHTTPClient
import Foundation
import GatewaySimulator
import LedgerControlProtocol
import LedgerCore
import LedgerDaemon
import LedgerStore
import Logging
import NIOCore
import NIOHTTP1

/// `ledgerd demo`: the whole flow on loopback against the bundled gateway simulator, with faults.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Run the whole flow against the bundled gateway simulator, with faults, and print what the ledger made of it.",
        discussion: """
            Starts the gateway simulator and the daemon on loopback with a fresh data directory, creates orders, \
            lets the simulator pay most of them with a mix of faults (duplicate notifications, dropped ones the \
            poller must recover, a forged callback, a tampered amount, failing queries, an order never paid that \
            expires on a shortened deadline), shows progress, then prints the orders, one order's history and the \
            duplicate-callback audit. A small shop receiver takes the outcomes the ledger forwards (signed \
            order.paid and order.expired) and the demo shows what it received. Exits 0 when the ledger converged \
            to the truth and the shop received every outcome.
            """
    )

    @Option(help: "Keep the ledger in this directory (default: a temporary directory, removed afterwards).")
    var dataDir: String?

    @Option(help: "Seconds to wait for the ledger to converge before giving up.")
    var timeout: Int = 60

    @Option(help: "Log level of the daemon and simulator logs (standard error): trace … critical.")
    var logLevel: LogLevelArgument = LogLevelArgument(.error)

    func run() async throws {
        LoggingSystem.bootstrap { label in EscapingLogHandler(wrapping: StreamLogHandler.standardError(label: label)) }
        var logger = Logger(label: "ledgerd-demo")
        logger.logLevel = self.logLevel.level
        let temporary = self.dataDir == nil
        let directory =
            self.dataDir
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("ledgerd-demo-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { if temporary { try? FileManager.default.removeItem(atPath: directory) } }

        let key = try MerchantKey(SystemOrderIdSource().randomCharacters(24))
        let memberId = "10001"
        let simulatorPort = try FreePort.find()
        let daemonPort = try FreePort.find()
        var simulatorConfiguration = SimulatorConfiguration(memberId: memberId, key: key)
        simulatorConfiguration.port = simulatorPort
        simulatorConfiguration.notifyRetryDelay = .milliseconds(800)
        simulatorConfiguration.notifyTimeout = .seconds(2)
        simulatorConfiguration.queryTimeoutHold = .seconds(3)
        let simulator = GatewaySimulator(configuration: simulatorConfiguration, logger: logger)

        let gatewayURL = "http://127.0.0.1:\(simulatorPort)"
        let publicURL = "http://127.0.0.1:\(daemonPort)"
        var gateway = GatewaySettings(
            memberId: memberId,
            baseURL: gatewayURL,
            notifyURL: publicURL + "/notify",
            callbackURL: publicURL + "/return"
        )
        gateway.bankCodes = GatewaySettings.defaultBankCodes
        var configuration = DaemonConfiguration(gateway: gateway, key: key)
        configuration.dataDirectory = directory + "/ledger"
        configuration.socketPath = directory + "/ledgerd.sock"
        configuration.httpPort = daemonPort
        configuration.publicURL = publicURL
        configuration.poll.firstDelay = .milliseconds(1500)
        configuration.poll.backoffBase = .milliseconds(400)
        configuration.poll.backoffCap = .milliseconds(1200)
        configuration.poll.deadline = .seconds(12)
        configuration.poll.attemptTimeout = .milliseconds(1500)
        // The shop's side: a receiver for the forwarded outcomes, sharing a fresh secret with the daemon.
        let secret = Array(SystemOrderIdSource().randomCharacters(32).utf8)
        let shop = ShopReceiver(secret: secret, logger: logger)
        let shopURL = try await shop.start()
        defer { Task { await shop.stop() } }
        configuration.forward.receivers = [ForwardReceiver(url: shopURL, secrets: [secret])]
        configuration.forward.schedule = ForwardSchedule(delaysMilliseconds: [0, 500, 1000, 2000])
        let daemon = LedgerDaemon(configuration: configuration, logger: logger)

        print(
            "ledgerd demo: gateway simulator at \(gatewayURL), daemon at \(publicURL), shop receiver at \(shopURL), "
                + "data in \(directory)"
        )
        let converged = try await withThrowingTaskGroup(of: Bool?.self) { group in
            group.addTask {
                try await simulator.run()
                return nil
            }
            group.addTask {
                try await daemon.run()
                return nil
            }
            group.addTask {
                _ = try await simulator.waitUntilListening()
                try await Self.waitForHealth(publicURL)
                let scenario = DemoScenario(daemon: daemon, simulator: simulator, shop: shop, timeout: self.timeout)
                return try await scenario.run()
            }
            var result = false
            for try await value in group {
                if let value {
                    result = value
                    break
                }
            }
            // Stop the daemon as SIGTERM would (draining), then the simulator.
            await daemon.shutdownHandle.shutdown()
            try await Task.sleep(for: .milliseconds(300))
            group.cancelAll()
            return result
        }
        if !converged { throw ExitCode.failure }
    }

    static func waitForHealth(_ baseURL: String) async throws {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { Task { try? await client.shutdown() } }
        for _ in 0..<100 {
            if let response = try? await client.execute(
                HTTPClientRequest(url: baseURL + "/healthz"),
                timeout: .seconds(1)
            ),
                response.status == .ok || response.status == .serviceUnavailable
            {
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ValidationError("The daemon did not start listening at \(baseURL).")
    }
}

/// The demo's script: orders, payments with faults, progress, the final report.
struct DemoScenario {
    let daemon: LedgerDaemon
    let simulator: GatewaySimulator
    let shop: ShopReceiver
    let timeout: Int

    /// What happens to each order, and the state it must end in.
    enum Plan: CaseIterable {
        case paid, duplicated, dropped, tampered, forged, failingQueries, neverPaid, renotified

        var label: String {
            switch self {
            case .paid: return "paid normally"
            case .duplicated: return "notification sent 3 times at once"
            case .dropped: return "notification dropped: the poller must find the payment"
            case .tampered: return "amount tampered in transit: refused, then found by the poller"
            case .forged: return "notification with a broken signature: refused, then found by the poller"
            case .failingQueries: return "notification dropped and queries failing (502, HTML) before SUCCESS"
            case .neverPaid: return "never paid: expires at the (shortened) deadline"
            case .renotified: return "paid, then notified again later"
            }
        }

        var expected: OrderStatus { self == .neverPaid ? .expired : .paid }
    }

    func run() async throws -> Bool {
        let plans: [(String, Plan, String)] = [
            ("DEMO-01", .paid, "12.50"), ("DEMO-02", .paid, "0.01"), ("DEMO-03", .paid, "100.00"),
            ("DEMO-04", .duplicated, "66.60"), ("DEMO-05", .dropped, "8.88"), ("DEMO-06", .tampered, "199.00"),
            ("DEMO-07", .forged, "5.20"), ("DEMO-08", .failingQueries, "30.00"), ("DEMO-09", .neverPaid, "45.00"),
            ("DEMO-10", .renotified, "1.00"),
        ]
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { Task { try? await client.shutdown() } }

        print(
            "\n1. Creating \(plans.count) orders through the ledger and submitting each to the gateway, as a buyer's browser would."
        )
        for (orderId, plan, amount) in plans {
            let created = try await self.daemon.ledger.createOrder(
                CreateOrderRequest(
                    orderId: orderId,
                    amount: amount,
                    bankCode: "942",
                    productName: "演示商品 \(orderId)",
                    attach: "demo"
                )
            )
            var request = HTTPClientRequest(url: created.gatewayURL)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: FormCoding.encode(created.fields)))
            let response = try await client.execute(request, timeout: .seconds(5))
            guard response.status == .ok else {
                print("   the gateway refused \(orderId): HTTP \(response.status.code)")
                return false
            }
            print("   \(orderId)  \(amount.padding(toLength: 7, withPad: " ", startingAt: 0)) yuan  \(plan.label)")
        }

        print("\n2. The gateway takes the payments.")
        for (orderId, plan, _) in plans {
            switch plan {
            case .paid, .renotified: try await self.simulator.pay(orderId)
            case .duplicated: try await self.simulator.pay(orderId, faults: NotifyFaults(copies: 3))
            case .dropped: try await self.simulator.pay(orderId, faults: NotifyFaults(drop: true))
            case .tampered: try await self.simulator.pay(orderId, faults: NotifyFaults(tamperAmount: true))
            case .forged: try await self.simulator.pay(orderId, faults: NotifyFaults(breakSignature: true))
            case .failingQueries:
                await self.simulator.queueQueryFaults(orderId, [.serverError, .html])
                try await self.simulator.pay(orderId, faults: NotifyFaults(drop: true))
            case .neverPaid: break
            }
        }
        // Someone on the internet posts a forged notification for an order.
        let forged =
            "memberid=10001&orderid=DEMO-03&amount=100.0000&transaction_id=FAKE&datetime=20261127093000&returncode=00&sign="
            + String(repeating: "F", count: 32)
        let forgedAnswer = try await self.simulator.postRawNotification(
            to: self.daemon.configuration.publicURL + "/notify",
            body: forged
        )
        print("   a forged notification for DEMO-03 was answered \(forgedAnswer.status) \"\(forgedAnswer.body)\"")

        print("\n3. Waiting for the ledger to converge (notifications, retries, the poller):")
        let started = ContinuousClock.now
        var renotified = false
        var converged = false
        while ContinuousClock.now - started < .seconds(self.timeout) {
            var counts: [OrderStatus: Int] = [:]
            var done = true
            for (orderId, plan, _) in plans {
                let status = try await self.daemon.ledger.order(orderId)?.status ?? .unknown
                counts[status, default: 0] += 1
                if status != plan.expected { done = false }
            }
            if !renotified, counts[.paid, default: 0] >= 3 {
                try await self.simulator.renotify("DEMO-10")
                renotified = true
            }
            let elapsed = ContinuousClock.now - started
            print(
                "   \(String(format: "%5.1f", elapsed.seconds)) s: \(counts[.paid, default: 0]) paid, "
                    + "\(counts[.expired, default: 0]) expired, \(counts[.created, default: 0]) waiting"
            )
            if done && renotified {
                converged = true
                break
            }
            try await Task.sleep(for: .seconds(1))
        }
        // Let the last duplicate deliveries land before the audit.
        try await Task.sleep(for: .milliseconds(500))

        var states: [OrderState] = []
        for (orderId, _, _) in plans {
            if let state = try await self.daemon.ledger.order(orderId) { states.append(state) }
        }
        print("\n4. Orders:\n")
        print(OrderView.table(states.map(OrderView.init)))
        print("\n5. History of DEMO-06 (tampered amount, recovered by the poller):\n")
        let history = try await self.daemon.ledger.history("DEMO-06")
        print(
            OrderHistory.Result(orderId: "DEMO-06", entries: history.map(OrderHistory.Entry.init), nextCursor: nil).text
        )
        print("\n6. Duplicate-callback audit:\n")
        print(try await CallbackAudit.build(store: self.daemon.store).result.text)
        let chain = try await self.daemon.store.verifyChain(progress: nil)
        print(
            "\n7. Hash chain: \(chain.isIntact ? "intact" : "BROKEN"), \(chain.eventsChecked) events, head \(chain.head.hash.hex.prefix(16))…"
        )
        let mismatches = plans.filter { plan in states.first { $0.orderId == plan.0 }?.status != plan.1.expected }
        let shopReceived = try await self.showShop(plans.map { ($0.0, $0.1.expected) })
        if converged && chain.isIntact && mismatches.isEmpty && shopReceived {
            print(
                "\nThe ledger converged to the truth: \(states.filter { $0.status == .paid }.count) paid, \(states.filter { $0.status == .expired }.count) expired."
            )
            return true
        }
        print(
            "\nThe ledger did NOT converge within \(self.timeout) s: \(mismatches.map(\.0).joined(separator: ", ")) not as expected."
        )
        return false
    }
}

extension DemoScenario {
    /// Waits (a few seconds at most) until the shop has received each order's final state, then prints what arrived.
    func showShop(_ expected: [(orderId: String, status: OrderStatus)]) async throws -> Bool {
        func type(_ status: OrderStatus) -> String { status == .expired ? "order.expired" : "order.paid" }
        func missing() -> [String] {
            let arrived = Set(
                self.shop.received.filter { $0.verified && (200..<300).contains($0.status) }
                    .map { ($0.orderId ?? "") + " " + ($0.type ?? "") }
            )
            return expected.filter { !arrived.contains($0.orderId + " " + type($0.status)) }.map(\.orderId)
        }
        let started = ContinuousClock.now
        while !missing().isEmpty && ContinuousClock.now - started < .seconds(10) {
            try await Task.sleep(for: .milliseconds(200))
        }
        let received = self.shop.received
        print("\n8. The shop's receiver (forwarded, signed outcomes, in arrival order):\n")
        print(
            TextTable.render(
                ["event id", "type", "order", "amount", "paid by", "signature"],
                received.map { request in
                    [
                        request.eventId ?? "-", request.type ?? "-", request.orderId ?? "-",
                        request.json?["amount"]?.stringValue ?? "-", request.json?["source"]?.stringValue ?? "-",
                        request.verified ? "verified" : "REFUSED",
                    ]
                }
            )
        )
        let absent = missing()
        if absent.isEmpty {
            let paid = received.filter { $0.type == "order.paid" }.count
            let expired = received.filter { $0.type == "order.expired" }.count
            print(
                "\nThe shop received every outcome: \(paid) order.paid, \(expired) order.expired, "
                    + "each signature verified."
            )
            return true
        }
        print("\nThe shop did NOT receive: \(absent.joined(separator: ", ")).")
        return false
    }
}

/// A free TCP port on loopback, found by binding port 0 and closing again.
enum FreePort {
    static func find() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw ValidationError("Cannot create a socket to find a free port.") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard bound == 0 else { throw ValidationError("Cannot bind a socket to find a free port.") }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0 else { throw ValidationError("Cannot read the free port.") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// A log level on the command line (`--log-level warning`).
struct LogLevelArgument: ExpressibleByArgument {
    let level: Logger.Level

    init(_ level: Logger.Level) {
        self.level = level
    }

    init?(argument: String) {
        guard let level = Logger.Level(rawValue: argument) else { return nil }
        self.level = level
    }

    var defaultValueDescription: String { self.level.rawValue }

    static var allValueStrings: [String] { Logger.Level.allCases.map(\.rawValue) }
}
