import ArgumentParser
import Dispatch
import Foundation
import GatewaySimulator
import LedgerCore
import Logging

/// `gateway-sim`: the gateway simulator as a process, for the demo and for manual tests. Argument parsing only;
/// the simulator lives in the GatewaySimulator library.
@main
struct GatewaySimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway-sim",
        abstract: "A faithful fake of the aggregated-payment gateway, with fault injection.",
        discussion: """
            Serves /Pay_Index.html and /Pay_Trade_query.html under its root, and control routes:
              POST /sim/pay          orderid, [copies, drop, tamper, breaksign, delayms]
              POST /sim/renotify     orderid, [the same faults]
              POST /sim/query-fault  orderid, fault (server-error|html|timeout|bad-signature|error-envelope|
                                     unpaid|paid|none), [count]
              GET  /sim/orders
            The merchant key comes from --key-file or the LEDGER_KEY environment variable.

            Exit status: 0 after SIGTERM or SIGINT, 1 on a failure, 64 on a usage error.
            """,
        version: BuildInfo.versionLine
    )

    @Option(name: .long, help: "Address to listen on, HOST:PORT (port 0 picks a free one).")
    var listen: String = "127.0.0.1:9090"

    @Option(name: .long, help: "The merchant number the gateway knows.")
    var memberId: String

    @Option(name: .long, help: "File holding the merchant's secret key (one trailing newline is ignored).")
    var keyFile: String?

    @Flag(name: .long, help: "Wrap query replies as {\"status\":\"success\",\"msg\":…,\"data\":{…}}.")
    var envelope = false

    @Option(name: .long, help: "Milliseconds between two sends of an unacknowledged notification.")
    var notifyRetryDelayMs: Int = Int(SimulatorLimits().notifyRetryDelay / .milliseconds(1))

    @Option(name: .long, help: "Sends of one notification at most (the first and the retries).")
    var notifyAttemptsMax: Int = SimulatorLimits().notifyAttemptsMax

    @Option(name: .long, help: "Milliseconds one notification POST may take.")
    var notifyTimeoutMs: Int = Int(SimulatorLimits().notifyTimeout / .milliseconds(1))

    @Option(name: .long, help: "Seed of the fault generator and the transaction numbers.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "Probability (0-1) that a notification is dropped.")
    var dropRate: Double = 0

    @Option(name: .long, help: "Probability (0-1) that a notification is sent twice.")
    var duplicateRate: Double = 0

    @Option(name: .long, help: "Probability (0-1) that a query is answered with a 502.")
    var queryErrorRate: Double = 0

    @Option(name: .long, help: "Probability (0-1) that a query is answered with an HTML error page.")
    var queryHtmlRate: Double = 0

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    mutating func run() async throws {
        let (host, port) = try Self.parseListen(self.listen)
        let key = try self.loadKey()
        guard let level = Logger.Level(rawValue: self.logLevel) else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical.")
        }
        var configuration = SimulatorConfiguration(memberId: self.memberId, key: key)
        configuration.host = host
        configuration.port = port
        configuration.queryEnvelope = self.envelope
        configuration.notifyRetryDelay = .milliseconds(self.notifyRetryDelayMs)
        configuration.notifyAttemptsMax = self.notifyAttemptsMax
        configuration.notifyTimeout = .milliseconds(self.notifyTimeoutMs)
        configuration.seed = self.seed
        configuration.faultRates = FaultRates(
            dropNotification: self.dropRate,
            duplicateNotification: self.duplicateRate,
            queryServerError: self.queryErrorRate,
            queryHTML: self.queryHtmlRate
        )
        let problems = configuration.validate()
        if !problems.isEmpty { throw ValidationError(problems.joined(separator: " ")) }

        var logger = Logger(label: "gateway-sim")
        logger.logLevel = level
        let simulator = GatewaySimulator(configuration: configuration, logger: logger)
        let signals = Self.terminationSignals()

        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await simulator.run()
                return true
            }
            group.addTask {
                let url = try await simulator.waitUntilListening()
                print(url)
                fflush(nil)
                return false
            }
            group.addTask {
                for await _ in signals { return true }
                return true
            }
            // The first task that means "stop" (the server ended, or a signal came) stops the others.
            while let stop = try await group.next() {
                if stop {
                    group.cancelAll()
                    break
                }
            }
            try await group.waitForAll()
        }
    }

    /// `HOST:PORT`, `[v6]:PORT`.
    static func parseListen(_ text: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":") else {
            throw ValidationError("--listen must be HOST:PORT, for example 127.0.0.1:9090.")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port) else {
            throw ValidationError("--listen must be HOST:PORT with a port from 0 to 65535, got '\(text)'.")
        }
        return (host, port)
    }

    func loadKey() throws -> MerchantKey {
        let text: String
        if let path = self.keyFile {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("Cannot read the key file '\(path)'.")
            }
            guard let decoded = String(data: data, encoding: .utf8) else {
                throw ValidationError("The key file '\(path)' is not UTF-8 text.")
            }
            text = decoded
        } else if let fromEnvironment = ProcessInfo.processInfo.environment["LEDGER_KEY"] {
            text = fromEnvironment
        } else {
            throw ValidationError("Give the merchant key with --key-file or the LEDGER_KEY environment variable.")
        }
        do {
            return try MerchantKey(text)
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// SIGINT and SIGTERM as an async sequence: the default handlers are replaced so the simulator can stop
    /// gracefully instead of being killed mid-notification.
    static func terminationSignals() -> AsyncStream<Int32> {
        AsyncStream { continuation in
            let queue = DispatchQueue(label: "gateway-sim.signals")
            let sources = SignalSources()
            for signalNumber in [SIGINT, SIGTERM] {
                signal(signalNumber, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
                source.setEventHandler { continuation.yield(signalNumber) }
                source.resume()
                sources.sources.append(source)
            }
            continuation.onTermination = { _ in sources.cancel() }
        }
    }
}

/// Keeps the signal sources alive for as long as the stream is. `@unchecked Sendable` because the array is filled
/// before the stream is handed out and only read afterwards, once, when the stream terminates; dispatch sources
/// themselves may be cancelled from any thread.
final class SignalSources: @unchecked Sendable {
    var sources: [any DispatchSourceSignal] = []

    func cancel() {
        for source in self.sources { source.cancel() }
    }
}
