import AsyncHTTPClient
import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerTesting
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
    import Glibc
#endif

/// Where the binaries under test are: next to this executable (SwiftPM builds every product into one directory).
struct Binaries: Sendable {
    let directory: String

    init(override: String?) throws {
        let directory =
            override
            ?? URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
        for name in ["ledgerd", "gateway-sim"]
        where !FileManager.default.isExecutableFile(atPath: directory + "/" + name) {
            throw HarnessError("\(name) is not built in \(directory); run swift build first (or pass --bin-dir)")
        }
        self.directory = directory
    }

    var ledgerd: String { self.directory + "/ledgerd" }
    var gatewaySim: String { self.directory + "/gateway-sim" }
}

/// The key and member id every process of the suite shares.
enum Merchant {
    static let memberId = "10001"
    static let keyText = "fault-suite-key-2026"
    static let key = try! MerchantKey(Self.keyText)
    static let otherKey = try! MerchantKey("not-the-merchant-key")
}

/// A free TCP port on loopback, below the kernel's ephemeral range. A daemon restarted after SIGKILL needs its port
/// again, and a port from the ephemeral range can meanwhile become the local end of another connection: a client
/// reconnecting to the dead daemon can even be given that very port and connect to itself (TCP self-connect), and
/// the restart then fails with "address in use". Ports below the range are never handed out that way.
func freeTCPPort() -> Int {
    let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
        .split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
    let ephemeralLow = range?.first ?? 32768
    if ephemeralLow > 12_000 {
        for _ in 0..<200 {
            let port = Int.random(in: 10_000..<ephemeralLow)
            if bindLoopback(port: port) != nil { return port }
        }
    }
    return bindLoopback(port: 0) ?? 0
}

/// Binds a socket to 127.0.0.1:`port` (0: any) and closes it; the port bound, or nil when it was taken.
private func bindLoopback(port: Int) -> Int? {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
    }
    guard bound == 0 else { return nil }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A `ledgerd run` process with its own data directory, socket, port and configuration file. It can be started,
/// killed with SIGKILL and started again on the same data.
final class DaemonProcess: @unchecked Sendable {
    let binaries: Binaries
    let directory: String
    let port: Int
    var dataDir: String
    var configuration: JSONObject
    private var process: Process?
    private(set) var starts = 0

    var socketPath: String { self.directory + "/ctl.sock" }
    var baseURL: String { "http://127.0.0.1:\(self.port)" }
    var logPath: String { self.directory + "/ledgerd.log" }

    /// `extra` is merged into the configuration file (nested keys as in the README).
    init(binaries: Binaries, directory: String, gatewayURL: String = "http://127.0.0.1:9", extra: JSONObject = [:])
        throws
    {
        self.binaries = binaries
        self.directory = directory
        self.port = freeTCPPort()
        self.dataDir = directory + "/ledger"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try TemporaryDirectory.writeSecret(Merchant.keyText, to: directory + "/merchant.key")
        var configuration: JSONObject = [
            "http": .string("127.0.0.1:\(self.port)"),
            "publicUrl": .string("http://127.0.0.1:\(self.port)"),
            "gateway": [
                "url": .string(gatewayURL), "memberId": .string(Merchant.memberId),
                "keyFile": .string(directory + "/merchant.key"),
            ],
            // The poller stays quiet unless a scenario wants it: its queries would only add noise to the log.
            "poll": ["firstDelayMs": 3_600_000, "deadlineMs": 7_200_000],
            // A slow client is cut off after a second, so the slowloris probe ends quickly.
            "limits": ["http": ["idleTimeoutMs": 1000]],
            "control": ["lineBytesMax": 65536, "connectionsMax": 16],
        ]
        for (key, value) in extra { configuration[key] = value }
        self.configuration = configuration
    }

    /// A scenario that stops with an error leaves no daemon behind.
    deinit {
        if let process = self.process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    var isRunning: Bool { self.process?.isRunning ?? false }
    var pid: Int32 { self.process?.processIdentifier ?? 0 }

    /// Starts the daemon and waits until both HTTP and the control socket answer.
    func start() async throws {
        var configuration = self.configuration
        configuration["dataDir"] = .string(self.dataDir)
        configuration["socket"] = .string(self.socketPath)
        try JSONWriter.write(.object(configuration)).write(
            toFile: self.directory + "/ledgerd.json",
            atomically: true,
            encoding: .utf8
        )
        let process = Process()
        process.executableURL = URL(fileURLWithPath: self.binaries.ledgerd)
        process.arguments = ["run", "--config", self.directory + "/ledgerd.json", "--log-level", "warning"]
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
        try await self.waitReady()
    }

    /// Polls until `GET /healthz` gets any answer and a control call succeeds; fails if the process exits first.
    func waitReady(seconds: Double = 60) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            guard self.isRunning else { throw HarnessError("ledgerd exited while starting: \(self.logTail())") }
            if let response = try? await blocking({ [port = self.port] in
                try RawHTTP.exchange(
                    port: port,
                    Array("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8),
                    timeoutSeconds: 2
                )
            }),
                response.status != nil,
                (try? await blocking({ [path = self.socketPath] in
                    try ControlConnection(path, timeoutSeconds: 5).result(LedgerStats.self, NoParams())
                })) != nil
            {
                return
            }
            try await Task.sleep(for: .milliseconds(30))
        }
        throw HarnessError("ledgerd did not become ready: \(self.logTail())")
    }

    /// SIGKILL, then wait for the process to be gone.
    func kill9() async {
        guard let process = self.process else { return }
        kill(process.processIdentifier, SIGKILL)
        await Self.wait(process)
        self.process = nil
    }

    /// SIGTERM, then wait; returns the exit status (0 for a clean drain).
    @discardableResult
    func stop() async -> Int32 {
        guard let process = self.process else { return 0 }
        kill(process.processIdentifier, SIGTERM)
        await Self.wait(process)
        self.process = nil
        return process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus
    }

    static func wait(_ process: Process) async {
        while process.isRunning { try? await Task.sleep(for: .milliseconds(5)) }
    }

    /// A control connection to the running daemon.
    func control(timeoutSeconds: Int = 60) throws -> ControlConnection {
        try ControlConnection(self.socketPath, timeoutSeconds: timeoutSeconds)
    }

    /// One control call on a fresh connection, off the cooperative pool.
    func call<M: ControlMethod>(_ method: M.Type, _ params: M.Params) async throws -> M.Result {
        try await blocking { [path = self.socketPath] in
            try ControlConnection(path, timeoutSeconds: 120).result(method, params)
        }
    }

    func call<M: ControlMethod>(_ method: M.Type) async throws -> M.Result where M.Params == NoParams {
        try await self.call(method, NoParams())
    }

    /// One order's projected state.
    func order(_ orderId: String) async throws -> OrderView {
        try await self.call(OrderGet.self, OrderIdParams(orderId: orderId))
    }

    /// One order's duplicate-callback audit.
    func audit(_ orderId: String) async throws -> CallbacksAudit.Result {
        try await self.call(CallbacksAudit.self, CallbacksAudit.Params(orderId: orderId))
    }

    /// Every entry of one order's history.
    func history(_ orderId: String) async throws -> [OrderHistory.Entry] {
        try await blocking { [path = self.socketPath] in try ControlConnection(path, timeoutSeconds: 120).history(orderId) }
    }

    /// The last lines of the daemon's log, for failure messages.
    func logTail(_ lines: Int = 15) -> String {
        let text = (try? String(contentsOfFile: self.logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// Creates orders through `order.create`, pipelined on one connection; returns the created ids.
    func createOrders(_ ids: [String], amount: String = "12.50", attach: String? = nil) async throws -> [String] {
        try await blocking { [path = self.socketPath] in
            let connection = try ControlConnection(path, timeoutSeconds: 120)
            var requests: [(String, JSONObject)] = []
            for id in ids {
                let params = OrderCreate.Params(
                    orderId: id,
                    amount: amount,
                    bankCode: "940",
                    productName: "fault suite",
                    attach: attach
                )
                requests.append((OrderCreate.name.rawValue, params.json.objectValue ?? [:]))
            }
            var created: [String] = []
            for (id, response) in zip(ids, try connection.pipeline(requests)) {
                _ = try ControlConnection.unwrap(response)
                created.append(id)
            }
            return created
        }
    }
}

/// A `gateway-sim` process on a free port.
final class SimulatorProcess: @unchecked Sendable {
    let process = Process()
    let url: String
    let port: Int

    init(binaries: Binaries, directory: String, extraArguments: [String] = []) throws {
        self.port = freeTCPPort()
        self.url = "http://127.0.0.1:\(self.port)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Merchant.keyText.write(toFile: directory + "/sim.key", atomically: true, encoding: .utf8)
        self.process.executableURL = URL(fileURLWithPath: binaries.gatewaySim)
        self.process.arguments =
            [
                "--listen", "127.0.0.1:\(self.port)", "--member-id", Merchant.memberId, "--key-file",
                directory + "/sim.key",
                "--notify-retry-delay-ms", "200", "--notify-timeout-ms", "3000", "--log-level", "warning",
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

    func start() async throws {
        try self.process.run()
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            guard self.process.isRunning else { throw HarnessError("gateway-sim exited while starting") }
            if let response = try? await blocking({ [port = self.port] in
                try RawHTTP.exchange(
                    port: port,
                    Array("GET /sim/orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8),
                    timeoutSeconds: 2
                )
            }),
                response.status == 200
            {
                return
            }
            try await Task.sleep(for: .milliseconds(30))
        }
        throw HarnessError("gateway-sim did not start")
    }

    func stop() async {
        guard self.process.isRunning else { return }
        kill(self.process.processIdentifier, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(10)
        while self.process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        if self.process.isRunning {
            kill(self.process.processIdentifier, SIGKILL)
            await DaemonProcess.wait(self.process)
        }
    }
}

/// An HTTP answer: status and body.
struct HTTPAnswer: Sendable, Equatable {
    var status: Int?
    var body: String
}

/// HTTP over AsyncHTTPClient, for well-formed requests.
struct HTTP: Sendable {
    let client: HTTPClient

    /// `connectTimeout` bounds the wait for a connection from the pool as well as the connect itself.
    init(connections: Int = 64, connectTimeout: Duration = .seconds(2)) {
        self.client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(
                redirectConfiguration: .disallow,
                timeout: .init(
                    connect: .nanoseconds(connectTimeout.components.seconds * 1_000_000_000),
                    read: .seconds(60)
                ),
                connectionPool: .init(
                    idleTimeout: .seconds(30),
                    concurrentHTTP1ConnectionsPerHostSoftLimit: connections
                )
            )
        )
    }

    func shutdown() async { try? await self.client.shutdown() }

    func post(_ url: String, _ body: [UInt8], contentType: String? = "application/x-www-form-urlencoded") async throws
        -> HTTPAnswer
    {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await self.client.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return HTTPAnswer(status: Int(response.status.code), body: String(buffer: bytes))
    }

    func post(_ url: String, _ body: String) async throws -> HTTPAnswer { try await self.post(url, Array(body.utf8)) }

    func get(_ url: String) async throws -> HTTPAnswer {
        let response = try await self.client.execute(HTTPClientRequest(url: url), timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 4 << 20)
        return HTTPAnswer(status: Int(response.status.code), body: String(buffer: bytes))
    }
}

/// HTTP over a raw TCP socket, for requests no well-behaved client sends: broken framing, slow senders.
enum RawHTTP {
    /// Connects to loopback `port`, from `source` (any address of 127.0.0.0/8, so a scenario can be several
    /// clients).
    static func connect(port: Int, timeoutSeconds: Int, from source: String = "127.0.0.1") throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw HarnessError("bind \(source): \(String(cString: strerror(code)))")
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw HarnessError("connect 127.0.0.1:\(port): \(String(cString: strerror(code)))")
        }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    static func send(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if written <= 0 { return false }
            offset += written
        }
        return true
    }

    /// Reads one response (headers and a Content-Length body), or until the peer closes or the timeout.
    static func readResponse(_ fd: Int32) -> (HTTPAnswer, closed: Bool) {
        var bytes: [UInt8] = []
        var closed = false
        while true {
            if let answer = Self.parse(bytes) { return (answer, false) }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 || (count < 0 && errno == ECONNRESET) {
                closed = true
                break
            }
            if count < 0 { break }
            bytes.append(contentsOf: chunk[..<count])
        }
        return (Self.parse(bytes) ?? HTTPAnswer(status: nil, body: String(decoding: bytes, as: UTF8.self)), closed)
    }

    /// A complete response in `bytes`, if there is one.
    static func parse(_ bytes: [UInt8]) -> HTTPAnswer? {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let end = bytes.firstRange(of: separator) else { return nil }
        let head = String(decoding: bytes[..<end.lowerBound], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        guard let statusLine = lines.first else { return nil }
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
        var length = 0
        for line in lines.dropFirst() {
            let pair = line.split(separator: ":", maxSplits: 1)
            if pair.count == 2, pair[0].lowercased() == "content-length" {
                length = Int(pair[1].trimmingCharacters(in: .whitespaces)) ?? 0
            }
        }
        let body = bytes[end.upperBound...]
        guard body.count >= length else { return nil }
        return HTTPAnswer(status: status, body: String(decoding: body.prefix(length), as: UTF8.self))
    }

    /// Sends `request` whole and reads the answer.
    static func exchange(port: Int, _ request: [UInt8], timeoutSeconds: Int = 15) throws -> HTTPAnswer {
        let fd = try Self.connect(port: port, timeoutSeconds: timeoutSeconds)
        defer { close(fd) }
        _ = Self.send(fd, request)
        return Self.readResponse(fd).0
    }

    /// A POST /notify request with the given body bytes and headers.
    static func notify(_ body: [UInt8], headers: [String] = ["Content-Type: application/x-www-form-urlencoded"])
        -> [UInt8]
    {
        var head = "POST /notify HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: \(body.count)\r\n"
        for header in headers { head += header + "\r\n" }
        return Array((head + "\r\n").utf8) + body
    }
}
