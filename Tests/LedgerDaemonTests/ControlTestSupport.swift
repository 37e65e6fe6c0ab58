import Foundation
import LedgerControlClient
import LedgerControlProtocol
import LedgerCore
import LedgerDaemon
import LedgerStore
import LedgerTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// One recorded exchange, to validate against the schemas.
struct SchemaRecord: Sendable {
    var schema: String
    var instance: JSONValue

    var line: String {
        JSONWriter.write(.object(["schema": .string(self.schema), "instance": self.instance]))
    }
}

/// A JSON-RPC session over the kit's control connection that records every params, result, error and
/// notification it sees.
final class RPCSession: @unchecked Sendable {
    let socket: ControlConnection
    private(set) var records: [SchemaRecord] = []
    private(set) var notifications: [(String, JSONValue)] = []
    private var nextId = 1

    init(_ path: String) throws {
        self.socket = try ControlConnection(path)
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

    /// Quarantines a notification with a bad signature for `orderId`, as `POST /notify` would, so the quarantine
    /// methods and commands have an entry to show.
    func quarantineForgedNotification(orderId: String, body: String) async throws {
        _ = try await self.daemon.store.quarantine(
            QuarantineEntry(
                receivedAt: Instant(millisecondsSinceEpoch: 1_795_741_323_000),
                remoteAddress: "192.0.2.1:5",
                reason: .badSignature,
                detail: "The signature does not match.",
                orderId: orderId,
                body: Array(body.utf8),
                limits: .default
            )
        )
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
        if (try? ControlConnection(path)) != nil { return }
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
