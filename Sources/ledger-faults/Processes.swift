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

/// Where the binaries under test are: next to this executable (SwiftPM builds every product into one directory),
/// or in the directory `--bin-dir` names.
struct Binaries: Sendable {
    let ledgerd: String
    let gatewaySim: String

    init(override: String?) throws {
        self.ledgerd = try BuiltProducts.path("ledgerd", in: override)
        self.gatewaySim = try BuiltProducts.path("gateway-sim", in: override)
    }
}

/// The suite's daemons: the kit's `ledgerd` harness with the suite's bounds.
typealias DaemonProcess = LedgerdProcess

extension LedgerdProcess {
    /// A daemon of the suite: a slow client is cut off after a second (so the slowloris probe ends quickly), and
    /// the control socket's bounds are small enough for the hostile probes to reach. `extra` is merged into the
    /// configuration file.
    convenience init(
        binaries: Binaries,
        directory: String,
        gatewayURL: String = "http://127.0.0.1:9",
        extra: JSONObject = [:]
    ) throws {
        var configuration: JSONObject = [
            "limits": ["http": ["idleTimeoutMs": 1000]],
            "control": ["lineBytesMax": 65536, "connectionsMax": 16],
        ]
        for (key, value) in extra { configuration[key] = value }
        try self.init(executable: binaries.ledgerd, directory: directory, gatewayURL: gatewayURL, extra: configuration)
    }

    /// A control connection to the running daemon.
    func control(timeoutSeconds: Int = 60) throws -> ControlConnection {
        try ControlConnection(self.socketPath, timeoutSeconds: timeoutSeconds)
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

/// The suite's gateway: the kit's `gateway-sim` harness.
typealias SimulatorProcess = GatewaySimProcess

extension GatewaySimProcess {
    convenience init(binaries: Binaries, directory: String, extraArguments: [String] = []) throws {
        try self.init(executable: binaries.gatewaySim, directory: directory, extraArguments: extraArguments)
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
    static func connect(port: Int, timeoutSeconds: Int, from source: String? = nil) throws -> Int32 {
        try connectLoopbackSocket(port: port, from: source, receiveTimeoutSeconds: timeoutSeconds)
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
