public import LedgerCore

/// A JSON-RPC error: a code, a stable name in `error.data.name`, and a full-sentence message. Every code the
/// protocol uses is defined here, once; the daemon maps its own errors onto them.
public struct ControlError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: Int
    public var name: String
    public var message: String

    public init(code: Int, name: String, message: String) {
        self.code = code
        self.name = name
        self.message = message
    }

    public var description: String { self.message }

    // JSON-RPC 2.0 §5.1's reserved codes.
    public static func parseError(_ message: String) -> Self {
        .init(code: -32700, name: "parse-error", message: message)
    }
    public static func invalidRequest(_ message: String) -> Self {
        .init(code: -32600, name: "invalid-request", message: message)
    }
    public static func methodNotFound(_ method: String) -> Self {
        .init(code: -32601, name: "method-not-found", message: "There is no method \(method).")
    }
    public static func invalidParams(_ message: String) -> Self {
        .init(code: -32602, name: "invalid-params", message: message)
    }
    public static func internalError(_ message: String) -> Self {
        .init(code: -32603, name: "internal-error", message: message)
    }

    // Application codes, in the range JSON-RPC leaves to servers (-32000 to -32099); codes and names never change.
    public static func orderNotFound(_ orderId: String) -> Self {
        .init(code: -32001, name: "order-not-found", message: "No order \(orderId) was created.")
    }
    public static func orderConflict(_ message: String) -> Self {
        .init(code: -32002, name: "order-conflict", message: message)
    }
    public static func invalidOrder(_ message: String) -> Self {
        .init(code: -32003, name: "invalid-order", message: message)
    }
    public static let rebuildRunning = Self(
        code: -32004,
        name: "rebuild-running",
        message: "A projection rebuild or verification is already running; wait for it to finish."
    )
    public static func storeFull(_ message: String) -> Self {
        .init(code: -32005, name: "store-full", message: message)
    }
    public static func storeCorrupted(_ message: String) -> Self {
        .init(code: -32006, name: "store-corrupted", message: message)
    }
    public static func unavailable(_ message: String) -> Self {
        .init(code: -32007, name: "unavailable", message: message)
    }
    public static func lineTooLong(_ limit: Int) -> Self {
        .init(
            code: -32010,
            name: "line-too-long",
            message: "The request line is longer than control.lineBytesMax (\(limit) bytes); the connection is closed."
        )
    }
    public static func tooManyConnections(_ limit: Int) -> Self {
        .init(
            code: -32011,
            name: "too-many-connections",
            message: "The daemon already has control.connectionsMax (\(limit)) control connections; try again later."
        )
    }
    public static func permissionDenied(_ uid: UInt32) -> Self {
        .init(
            code: -32012,
            name: "permission-denied",
            message: "uid \(uid) may not use this control socket; add it to control.allowedUids."
        )
    }
    /// No longer sent: a client pipelining past `control.requestsInFlightMax` is slowed instead. Kept so that the
    /// code and name are never given another meaning.
    public static func tooManyRequests(_ limit: Int) -> Self {
        .init(
            code: -32013,
            name: "too-many-requests",
            message:
                "This connection already has control.requestsInFlightMax (\(limit)) requests running; wait for answers."
        )
    }
    public static func backupFailed(_ message: String) -> Self {
        .init(code: -32014, name: "backup-failed", message: message)
    }

    /// The error object as JSON-RPC writes it.
    public var json: JSONValue {
        .object([
            "code": .number(String(self.code)), "message": .string(self.message),
            "data": .object(["name": .string(self.name)]),
        ])
    }
}

extension ControlError {
    /// Reads an error object as JSON-RPC writes it (`code`, `message`, `data.name`), or nil when it is not one.
    public init?(json: JSONValue) {
        guard let code = json["code"]?.int64Value, let message = json["message"]?.stringValue else { return nil }
        self.init(code: Int(code), name: json["data"]?["name"]?.stringValue ?? "error", message: message)
    }
}
