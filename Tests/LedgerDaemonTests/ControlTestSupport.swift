import Foundation
import LedgerControlClient
import LedgerControlProtocol
import LedgerCore
import LedgerDaemon
import LedgerTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A blocking Unix-socket client for tests: raw bytes in, JSON lines out, with a receive timeout.
final class TestSocket: @unchecked Sendable {
    private let socket: LineSocket

    var fd: Int32 { self.socket.fd }

    /// Connects, or throws with the failing call and its error.
    init(_ path: String, timeoutSeconds: Int = 20) throws {
        do throws(LineSocketError) {
            self.socket = try LineSocket(path: path, receiveTimeoutSeconds: timeoutSeconds)
        } catch {
            throw TestFailure(error.description)
        }
    }

    /// Writes all bytes; false when that fails (the peer has closed, mostly).
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool { (try? self.socket.send(bytes)) != nil }

    @discardableResult
    func send(_ text: String) -> Bool { self.send(Array(text.utf8)) }

    /// The next line, or nil at end of stream (or a reset, or the timeout).
    func readLineBytes() -> [UInt8]? { self.socket.readLine() }

    func readMessage() throws -> JSONValue? {
        guard let line = self.readLineBytes() else { return nil }
        return try JSONParser.parse(line, limits: JSONLimits(bytesMax: 1 << 28, depthMax: 64, stringBytesMax: 1 << 28))
    }
}

/// One recorded exchange, to validate against the schemas.
struct SchemaRecord: Sendable {
    var schema: String
    var instance: JSONValue

    var line: String {
        JSONWriter.write(.object(["schema": .string(self.schema), "instance": self.instance]))
    }
}

/// A JSON-RPC session over a test socket that records every params, result, error and notification it sees.
final class RPCSession: @unchecked Sendable {
    let socket: TestSocket
    private(set) var records: [SchemaRecord] = []
    private(set) var notifications: [(String, JSONValue)] = []
    private var nextId = 1

    init(_ path: String) throws {
        self.socket = try TestSocket(path)
    }

    /// The whole response to one request (result or error), recording it and any notifications before it.
    func call(_ method: String, _ params: JSONObject = [:]) throws -> JSONValue {
        let id = self.nextId
        self.nextId += 1
        let request: JSONValue = [
            "jsonrpc": "2.0", "id": .number(String(id)), "method": .string(method), "params": .object(params),
        ]
        self.records.append(SchemaRecord(schema: "control/\(method).params.json", instance: .object(params)))
        self.socket.send(JSONWriter.write(request) + "\n")
        while true {
            guard let message = try self.socket.readMessage() else {
                throw TestFailure("the daemon closed the connection during \(method)")
            }
            self.record(message, method: method)
            if message["id"] == .number(String(id)) { return message }
        }
    }

    /// Reads messages until one satisfies `done`, recording them.
    func readUntil(_ done: (JSONValue) -> Bool) throws -> JSONValue {
        while true {
            guard let message = try self.socket.readMessage() else {
                throw TestFailure("the daemon closed the connection")
            }
            self.record(message, method: nil)
            if done(message) { return message }
        }
    }

    private func record(_ message: JSONValue, method: String?) {
        self.records.append(SchemaRecord(schema: "control/response.json", instance: message))
        Self.checkRoundTrip(message, method: method)
        if let name = message["method"]?.stringValue {
            self.notifications.append((name, message["params"] ?? .null))
            self.records.append(
                SchemaRecord(schema: "control/\(name).notification.json", instance: message["params"] ?? .null)
            )
        } else if let error = message["error"] {
            self.records.append(SchemaRecord(schema: "control/error.json", instance: error))
        } else if let method, let result = message["result"] {
            self.records.append(SchemaRecord(schema: "control/\(method).result.json", instance: result))
        }
    }
}

extension RPCSession {
    /// The typed protocol reads every result and notification the daemon sends and writes it back the same: the
    /// types are the protocol, and the schemas check what they write.
    static func checkRoundTrip(_ message: JSONValue, method: String?) {
        do throws(ControlError) {
            if let name = message["method"]?.stringValue, let params = message["params"] {
                guard let notification = try ControlNotification(method: name, params: params) else {
                    Issue.record("the protocol has no type for the notification \(name)")
                    return
                }
                #expect(notification.params == params, "\(name): the typed notification differs from the wire")
            } else if let method, let name = ControlMethodName(rawValue: method), let result = message["result"] {
                let reread = try name.method.resultRoundTrip(result)
                #expect(reread == result, "\(method): the typed result differs from the wire: \(reread) vs \(result)")
            }
        } catch {
            Issue.record("the typed protocol cannot read the daemon's message: \(error.message) in \(message)")
        }
    }
}

/// A daemon with its control socket up, in a temporary directory.
struct ControlHarness: Sendable {
    let daemon: LedgerDaemon
    let directory: TemporaryDirectory
    var socketPath: String { self.daemon.configuration.socketPath }

    func session() async throws -> RPCSession {
        let path = self.socketPath
        return try await blocking { try RPCSession(path) }
    }

    /// One call on a fresh connection: the whole response.
    func call(_ method: String, _ params: JSONObject = [:]) async throws -> JSONValue {
        let path = self.socketPath
        return try await blocking { try RPCSession(path).call(method, params) }
    }
}

/// Runs a daemon whose control settings `configure` adjusts, waits until its socket answers, and stops it after.
func withControlDaemon<T: Sendable>(
    socketMode: UInt32 = 0o600,
    configure: @Sendable (inout ControlSettings) -> Void = { _ in },
    configureDaemon: @Sendable (inout DaemonConfiguration) -> Void = { _ in },
    _ body: @Sendable (ControlHarness) async throws -> T
) async throws -> T {
    // Traversable by other uids: the security tests run clients under another uid against the socket inside, which
    // its own mode (and the uid check) guards.
    let directory = TemporaryDirectory(permissions: 0o755)
    var configuration = try testConfiguration(directory: directory)
    configuration.socketMode = socketMode
    configureDaemon(&configuration)
    var daemon = LedgerDaemon(configuration: configuration, seed: 7, logger: testLogger)
    configure(&daemon.control)
    let running = daemon
    let task = Task { try await running.run() }
    let harness = ControlHarness(daemon: daemon, directory: directory)
    do {
        try await waitForSocket(configuration.socketPath, task: task)
        let result = try await body(harness)
        task.cancel()
        _ = try? await task.value
        return result
    } catch {
        task.cancel()
        _ = try? await task.value
        throw error
    }
}

/// Waits until something accepts connections at `path`, failing early when the daemon stopped.
func waitForSocket(_ path: String, task: Task<Void, any Error>? = nil) async throws {
    for _ in 0..<400 {
        if (try? TestSocket(path)) != nil { return }
        try await Task.sleep(for: .milliseconds(25))
    }
    throw TestFailure("the control socket \(path) never accepted a connection")
}

/// Runs the schema checker on recorded traffic.
func checkSchemas(_ records: [SchemaRecord]) throws -> ProcessOutput {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("control-\(UUID().uuidString).jsonl")
    defer { try? FileManager.default.removeItem(at: file) }
    try (records.map(\.line).joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)
    return try ChildProcess.run(
        "/usr/bin/env",
        ["python3", root.appendingPathComponent("tools/check-schemas").path, file.path]
    )
}
