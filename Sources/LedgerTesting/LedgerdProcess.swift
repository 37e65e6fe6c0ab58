public import Foundation
import LedgerControlClient
public import LedgerControlProtocol
public import LedgerCore

#if canImport(Glibc)
    import Glibc
#endif

/// The merchant every harnessed process shares: its member id and key.
public enum TestMerchant {
    public static let memberId = "10001"
    public static let keyText = "fault-suite-key-2026"
    public static let key = try! MerchantKey(Self.keyText)
    public static let otherKey = try! MerchantKey("not-the-merchant-key")
}

/// A real `ledgerd run` process with its own directory: data, control socket, HTTP port, configuration file and
/// log. It can be started, killed with SIGKILL and started again on the same data, and is stopped on every path
/// (SIGKILL when the value goes away while the process runs). The fault suite, the system benchmark and the tests
/// use this one harness.
public final class LedgerdProcess: @unchecked Sendable {
    public let executable: String
    public let directory: String
    public let port: Int
    public var dataDir: String
    /// The configuration file's content, nested as the README describes; `start` adds the data directory and
    /// the socket.
    public var configuration: JSONObject
    /// Extra `ledgerd run` arguments and environment variables.
    public var arguments: [String] = ["--log-level", "warning"]
    public var environment: [String: String] = [:]
    private var process: Process?
    public private(set) var starts = 0

    public var socketPath: String { self.directory + "/ctl.sock" }
    public var baseURL: String { "http://127.0.0.1:\(self.port)" }
    public var logPath: String { self.directory + "/ledgerd.log" }
    public var configurationPath: String { self.directory + "/ledgerd.json" }

    /// A daemon for `gatewayURL` (a port nothing listens on by default: the poller stays quiet anyway); `extra`
    /// is merged into the configuration file at its top level.
    public init(
        executable: String,
        directory: String,
        gatewayURL: String = "http://127.0.0.1:9",
        extra: JSONObject = [:]
    ) throws {
        self.executable = executable
        self.directory = directory
        self.port = freeTCPPort()
        self.dataDir = directory + "/ledger"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try TemporaryDirectory.writeSecret(TestMerchant.keyText, to: directory + "/merchant.key")
        var configuration: JSONObject = [
            "http": .string("127.0.0.1:\(self.port)"),
            "publicUrl": .string("http://127.0.0.1:\(self.port)"),
            "gateway": [
                "url": .string(gatewayURL), "memberId": .string(TestMerchant.memberId),
                "keyFile": .string(directory + "/merchant.key"),
            ],
            // The poller stays quiet unless a run wants it: its queries would only add noise to the log.
            "poll": ["firstDelayMs": 3_600_000, "deadlineMs": 7_200_000],
        ]
        for (key, value) in extra { configuration[key] = value }
        self.configuration = configuration
    }

    deinit {
        if let process = self.process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    public var isRunning: Bool { self.process?.isRunning ?? false }
    public var pid: Int32 { self.process?.processIdentifier ?? 0 }

    /// Writes the configuration and starts the process, its output appended to the log. A process this value
    /// started before is killed first, so none is left behind.
    private func launch() throws {
        if let earlier = self.process, earlier.isRunning {
            kill(earlier.processIdentifier, SIGKILL)
            earlier.waitUntilExit()
        }
        var configuration = self.configuration
        configuration["dataDir"] = .string(self.dataDir)
        configuration["socket"] = .string(self.socketPath)
        try JSONWriter.write(.object(configuration)).write(
            toFile: self.configurationPath,
            atomically: true,
            encoding: .utf8
        )
        let process = Process()
        process.executableURL = URL(fileURLWithPath: self.executable)
        process.arguments = ["run", "--config", self.configurationPath] + self.arguments
        if !self.environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(self.environment) { $1 }
        }
        if !FileManager.default.fileExists(atPath: self.logPath) {
            _ = FileManager.default.createFile(atPath: self.logPath, contents: nil)
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: self.logPath))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? log.close()
        self.process = process
        self.starts += 1
    }

    /// Whether the daemon serves: `GET /healthz` gets an HTTP answer from it (not from another process that took
    /// the port) and a control call answers, each within a few seconds.
    public func answers() -> Bool {
        guard self.isRunning, httpAnswers(port: self.port, path: "/healthz") else { return false }
        guard let client = try? ControlClient(path: self.socketPath, receiveTimeoutSeconds: 5) else { return false }
        return (try? client.call(LedgerStats.self, NoParams())) != nil && self.isRunning
    }

    /// Starts the daemon and waits until it serves; fails with the log's tail if it exits or does not answer. The
    /// default wait is long: at the start of a whole parallel test run on two cores, a debug daemon has been seen to
    /// take over 70 s to answer, though it answers in a second alone.
    public func start(seconds: Double = 180) async throws {
        try self.launch()
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            guard self.isRunning else { throw HarnessError("ledgerd exited while starting: \(self.logTail())") }
            if try await blocking({ self.answers() }) { return }
            try await Task.sleep(for: .milliseconds(30))
        }
        await self.kill9()
        throw HarnessError("ledgerd did not become ready within \(Int(seconds)) s: \(self.logTail())")
    }

    /// `start` for code on its own threads (the benchmarks).
    public func startBlocking(seconds: Double = 120) throws {
        try self.launch()
        let deadline = Date().addingTimeInterval(seconds)
        while !self.answers() {
            guard self.isRunning else { throw HarnessError("ledgerd exited while starting: \(self.logTail())") }
            guard Date() < deadline else {
                self.stopBlocking()
                throw HarnessError("ledgerd did not become ready within \(Int(seconds)) s: \(self.logTail())")
            }
            usleep(50_000)
        }
    }

    /// SIGKILL, then wait for the process to be gone.
    public func kill9() async {
        guard let process = self.process else { return }
        kill(process.processIdentifier, SIGKILL)
        while process.isRunning { try? await Task.sleep(for: .milliseconds(5)) }
        self.process = nil
    }

    /// SIGTERM, then wait for the drain (SIGKILL after `graceSeconds`); returns the exit status (0 for a clean
    /// drain, 137 when it had to be killed).
    @discardableResult
    public func stop(graceSeconds: Double = 60) async -> Int32 {
        guard let process = self.process else { return 0 }
        kill(process.processIdentifier, SIGTERM)
        let deadline = ContinuousClock.now + .milliseconds(Int(graceSeconds * 1000))
        while process.isRunning {
            if ContinuousClock.now > deadline { kill(process.processIdentifier, SIGKILL) }
            try? await Task.sleep(for: .milliseconds(5))
        }
        self.process = nil
        return ChildProcess.status(process)
    }

    /// SIGTERM with 30 s for the drain, then SIGKILL, from a plain thread.
    public func stopBlocking() {
        guard let process = self.process else { return }
        ChildProcess.stop(process)
        self.process = nil
    }

    /// The last lines of the daemon's log, for failure messages.
    public func logTail(_ lines: Int = 15) -> String {
        let text = (try? String(contentsOfFile: self.logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// One typed control call on a fresh connection, off the cooperative pool; an error answer is thrown as the
    /// daemon's `ControlError`.
    public func call<M: ControlMethod>(_ method: M.Type, _ params: M.Params) async throws -> M.Result {
        try await blocking { [path = self.socketPath] in
            do throws(ClientError) {
                return try ControlClient(path: path, receiveTimeoutSeconds: 120).call(method, params)
            } catch {
                if case .daemon(let answer) = error { throw answer }
                throw error
            }
        }
    }

    public func call<M: ControlMethod>(_ method: M.Type) async throws -> M.Result where M.Params == NoParams {
        try await self.call(method, NoParams())
    }

    /// One order's projected state.
    public func order(_ orderId: String) async throws -> OrderView {
        try await self.call(OrderGet.self, OrderIdParams(orderId: orderId))
    }

    /// One order's duplicate-callback audit.
    public func audit(_ orderId: String) async throws -> CallbacksAudit.Result {
        try await self.call(CallbacksAudit.self, CallbacksAudit.Params(orderId: orderId))
    }

    /// Every entry of one order's history, following the pages.
    public func history(_ orderId: String) async throws -> [OrderHistory.Entry] {
        try await OrderHistory.allEntries(of: orderId) { try await self.call(OrderHistory.self, $0) }
    }

    /// Anonymous resident memory (/proc/PID/status, RssAnon) in bytes.
    public func rssAnon() -> UInt64? {
        guard let status = try? String(contentsOfFile: "/proc/\(self.pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("RssAnon:") })
        else { return nil }
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 2, let kilobytes = UInt64(fields[1]) else { return nil }
        return kilobytes * 1024
    }

    /// CPU seconds (user + system) the daemon has used so far.
    public func cpuSeconds() -> Double? { processCPUSeconds(self.pid) }
}

/// A real `gateway-sim` process on a free loopback port, for `TestMerchant`, quick to retry its notifications.
public final class GatewaySimProcess: @unchecked Sendable {
    public let process = Process()
    public let url: String
    public let port: Int

    public init(executable: String, directory: String, extraArguments: [String] = []) throws {
        self.port = freeTCPPort()
        self.url = "http://127.0.0.1:\(self.port)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try TemporaryDirectory.writeSecret(TestMerchant.keyText, to: directory + "/sim.key")
        self.process.executableURL = URL(fileURLWithPath: executable)
        self.process.arguments =
            [
                "--listen", "127.0.0.1:\(self.port)", "--member-id", TestMerchant.memberId, "--key-file",
                directory + "/sim.key", "--notify-retry-delay-ms", "200", "--notify-timeout-ms", "3000",
                "--log-level", "warning",
            ] + extraArguments
        _ = FileManager.default.createFile(atPath: directory + "/gateway-sim.log", contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/gateway-sim.log"))
        self.process.standardOutput = log
        self.process.standardError = log
        self.process.standardInput = FileHandle.nullDevice
    }

    deinit {
        if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
    }

    /// Starts the simulator and waits until it accepts connections.
    public func start() async throws {
        try self.process.run()
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            guard self.process.isRunning else { throw HarnessError("gateway-sim exited while starting") }
            if try await blocking({ [port = self.port] in portAccepts(port) }) { return }
            try await Task.sleep(for: .milliseconds(30))
        }
        throw HarnessError("gateway-sim did not start")
    }

    /// SIGTERM with 10 s to finish, then SIGKILL.
    public func stop() async {
        guard self.process.isRunning else { return }
        try? await blocking { [process = self.process] in ChildProcess.stop(process, graceSeconds: 10) }
    }
}
