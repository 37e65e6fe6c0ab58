public import LedgerControlProtocol
public import LedgerCore

#if canImport(Glibc)
    import Glibc
#endif

/// Why a call did not give a result, with the exit code `ledgerctl` uses for it.
public enum ClientError: Error, CustomStringConvertible {
    /// The daemon cannot be reached: exit 3.
    case cannotConnect(String)
    /// The daemon answered with an error: exit 1.
    case daemon(ControlError)
    /// The connection broke or the answer was not JSON-RPC: exit 3.
    case protocolFailure(String)

    public var description: String {
        switch self {
        case .cannotConnect(let message), .protocolFailure(let message): return message
        case .daemon(let error): return "\(error.message) (\(error.name))"
        }
    }

    public var exitCode: Int32 {
        switch self {
        case .daemon: return 1
        case .cannotConnect, .protocolFailure: return 3
        }
    }
}

/// A blocking JSON-RPC client over the control socket: one request at a time, notifications handed to a callback
/// while the answer is awaited. Blocking is right for a command-line tool that does one thing and exits.
public final class ControlClient {
    private let socket: LineSocket
    private let path: String
    private var nextId = 1

    /// Connects, with a message that says whether the socket is missing, refusing or forbidden, or its path too
    /// long.
    /// With `receiveTimeoutSeconds`, an answer that does not come within it ends the call as a protocol failure
    /// (harnesses and scripts that must not wait forever); without, a call waits as long as the daemon works.
    public init(path: String, receiveTimeoutSeconds: Int? = nil) throws(ClientError) {
        self.path = path
        do throws(LineSocketError) {
            self.socket = try LineSocket(path: path, receiveTimeoutSeconds: receiveTimeoutSeconds)
        } catch {
            switch error {
            case .connect(_, ENOENT):
                throw .cannotConnect(
                    "Cannot reach ledgerd: no socket at \(path). Is ledgerd running? (--socket or LEDGERD_SOCKET chooses the path.)"
                )
            case .connect(_, ECONNREFUSED):
                throw .cannotConnect(
                    "Cannot reach ledgerd: the socket at \(path) refuses connections; ledgerd is not running there (the socket is stale)."
                )
            case .connect(_, EACCES), .connect(_, EPERM):
                throw .cannotConnect(
                    "Cannot reach ledgerd: permission denied on \(path); run as the daemon's user or a member of its group."
                )
            case .connect(_, let code):
                throw .cannotConnect("Cannot reach ledgerd at \(path): \(LineSocketError.text(code)).")
            case .pathTooLong:
                throw .cannotConnect("The socket path \(path) is too long for a Unix socket (at most 107 bytes).")
            case .socket(let code), .receiveTimeout(let code), .send(let code):
                throw .cannotConnect("Cannot create a socket: \(LineSocketError.text(code)).")
            }
        }
    }

    /// Sends one request and waits for its answer; `onNotification` sees every notification that arrives first.
    public func call(
        _ method: String,
        _ params: JSONObject = [:],
        onNotification: (String, JSONValue) -> Bool = { _, _ in true }
    ) throws(ClientError) -> JSONValue {
        let id = self.nextId
        self.nextId += 1
        var bytes: [UInt8] = []
        JSONWriter.write(ControlEnvelope.request(id: id, method: method, params: .object(params)), into: &bytes)
        bytes.append(UInt8(ascii: "\n"))
        try self.sendAll(bytes)
        while true {
            let message = try self.readMessage()
            if message["id"] == .number(String(id)) || (message["id"] == .null && message["error"] != nil) {
                if let error = message["error"] {
                    let answer =
                        ControlError(json: error)
                        ?? ControlError(code: 0, name: "error", message: "The daemon answered with an error.")
                    throw .daemon(answer)
                }
                return message["result"] ?? .null
            }
            if let name = message["method"]?.stringValue {
                guard onNotification(name, message["params"] ?? .null) else { return .null }
            }
        }
    }

    /// Calls a method with typed params and reads its typed result; `onNotification` sees every notification this
    /// build knows that arrives first (progress, mostly).
    public func call<M: ControlMethod>(
        _ method: M.Type,
        _ params: M.Params,
        onNotification: (ControlNotification) -> Void = { _ in }
    ) throws(ClientError) -> M.Result {
        var notificationError: ClientError?
        let result = try self.call(method.name.rawValue, params.json.objectValue ?? [:]) { name, params in
            do throws(ControlError) {
                if let notification = try ControlNotification(method: name, params: params) {
                    onNotification(notification)
                }
                return true
            } catch {
                notificationError = .protocolFailure(
                    "The daemon sent a \(name) notification this build cannot read: \(error.message)"
                )
                return false
            }
        }
        if let notificationError { throw notificationError }
        do throws(ControlError) {
            return try M.Result(json: result, context: method.name.rawValue)
        } catch {
            throw .protocolFailure(
                "The daemon's answer to \(method.name.rawValue) is not what this build reads: \(error.message)"
            )
        }
    }

    /// Reads notifications after a typed call (a subscription) until `onNotification` returns false or the daemon
    /// closes the connection.
    public func listenForNotifications(_ onNotification: (ControlNotification) -> Bool) throws(ClientError) {
        var notificationError: ClientError?
        try self.listen { name, params in
            do throws(ControlError) {
                guard let notification = try ControlNotification(method: name, params: params) else { return true }
                return onNotification(notification)
            } catch {
                notificationError = .protocolFailure(
                    "The daemon sent a \(name) notification this build cannot read: \(error.message)"
                )
                return false
            }
        }
        if let notificationError { throw notificationError }
    }

    /// Reads notifications after a call (a subscription) until `onNotification` returns false or the daemon
    /// closes the connection.
    public func listen(_ onNotification: (String, JSONValue) -> Bool) throws(ClientError) {
        while true {
            let message = try self.readMessage()
            if let name = message["method"]?.stringValue, !onNotification(name, message["params"] ?? .null) { return }
        }
    }

    private func sendAll(_ bytes: [UInt8]) throws(ClientError) {
        do throws(LineSocketError) {
            try self.socket.send(bytes)
        } catch {
            throw .protocolFailure("The daemon closed the connection while the request was sent (\(error)).")
        }
    }

    private func readMessage() throws(ClientError) -> JSONValue {
        guard let line = self.socket.readLine() else {
            throw .protocolFailure("ledgerd closed the connection at \(self.path) before answering.")
        }
        do {
            return try JSONParser.parse(
                line,
                limits: JSONLimits(bytesMax: 1 << 30, depthMax: 64, stringBytesMax: 1 << 30, membersMax: 1 << 24)
            )
        } catch {
            throw .protocolFailure("The daemon sent something that is not JSON: \(error.description)")
        }
    }
}
