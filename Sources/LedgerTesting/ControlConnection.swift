public import Foundation
import LedgerControlClient
public import LedgerControlProtocol
public import LedgerCore

/// The control socket's client for the tests and the fault suite, and their tool for hostile input (raw lines,
/// half lines, floods): a `LineSocket` with a receive timeout, plus JSON-RPC calls.
public final class ControlConnection: @unchecked Sendable {
    private let socket: LineSocket
    private var nextId = 1

    public var fd: Int32 { self.socket.fd }

    /// Connects, or throws with the failing call and its error.
    public init(_ path: String, timeoutSeconds: Int = 30) throws {
        do throws(LineSocketError) {
            self.socket = try LineSocket(path: path, receiveTimeoutSeconds: timeoutSeconds)
        } catch {
            throw HarnessError(error.description)
        }
    }

    /// Writes every byte; false when that fails (the peer has closed, mostly).
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool { (try? self.socket.send(bytes)) != nil }

    /// Writes the text's UTF-8 bytes; false when that fails.
    @discardableResult
    public func send(_ text: String) -> Bool { self.send(Array(text.utf8)) }

    /// The next line without its newline, or nil at the end of the stream, a reset or the receive timeout.
    public func readLine() -> [UInt8]? { self.socket.readLine() }

    /// Whether the peer closes the connection within the receive timeout (see `LineSocket.closedByPeer`).
    public func closedByPeer() -> Bool { self.socket.closedByPeer() }

    /// The next message (a response or a notification), or nil when the stream ended.
    public func readMessage() throws -> JSONValue? {
        guard let line = self.readLine() else { return nil }
        do {
            return try JSONParser.parse(
                line,
                limits: JSONLimits(bytesMax: 1 << 28, depthMax: 64, stringBytesMax: 1 << 28, membersMax: 1 << 20)
            )
        } catch {
            throw HarnessError(
                "the daemon wrote a line that is not JSON: \(String(decoding: line.prefix(200), as: UTF8.self))"
            )
        }
    }

    /// Sends one request and returns the whole response (`result` or `error`), skipping notifications.
    public func call(_ method: String, _ params: JSONObject = [:]) throws -> JSONValue {
        let id = self.nextId
        self.nextId += 1
        let request = ControlEnvelope.request(id: id, method: method, params: .object(params))
        guard self.send(Array((JSONWriter.write(request) + "\n").utf8)) else {
            throw HarnessError("the control socket closed")
        }
        while true {
            guard let message = try self.readMessage() else {
                throw HarnessError("the control socket closed before answering \(method)")
            }
            if message["id"] == .number(String(id)) { return message }
        }
    }

    /// Every `order.history` entry of an order, following the pages.
    public func history(_ orderId: String) throws -> [OrderHistory.Entry] {
        try OrderHistory.allEntries(of: orderId) { try self.result(OrderHistory.self, $0) }
    }

    /// The typed result of one request, or its error thrown as `ControlError`.
    public func result<M: ControlMethod>(_ method: M.Type, _ params: M.Params) throws -> M.Result {
        try Self.read(method, try self.result(M.name.rawValue, params.json.objectValue ?? [:]))
    }

    /// A method's result read with the protocol's types; one that does not read is the daemon's fault.
    public static func read<M: ControlMethod>(_ method: M.Type, _ result: JSONValue) throws -> M.Result {
        do throws(ControlError) {
            return try M.Result(json: result, context: M.name.rawValue)
        } catch {
            throw HarnessError("the daemon's answer to \(M.name.rawValue) does not read: \(error.message)")
        }
    }

    /// The result of one request, or its error thrown as `ControlError`.
    public func result(_ method: String, _ params: JSONObject = [:]) throws -> JSONValue {
        try Self.unwrap(try self.call(method, params))
    }

    /// Sends the requests pipelined, keeping at most `inFlightMax` unanswered, and returns the responses in request
    /// order. The window bounds what this client has outstanding; the daemon would take more (past
    /// `control.requestsInFlightMax` it stops reading the connection until answers drain).
    public func pipeline(_ requests: [(String, JSONObject)], inFlightMax: Int = 16) throws -> [JSONValue] {
        let first = self.nextId
        self.nextId += requests.count
        var answers: [Int: JSONValue] = [:]
        var sent = 0
        func send(_ offset: Int) throws {
            let (method, params) = requests[offset]
            let request = ControlEnvelope.request(id: first + offset, method: method, params: .object(params))
            guard self.send(Array((JSONWriter.write(request) + "\n").utf8)) else {
                throw HarnessError("the control socket closed")
            }
        }
        while sent < min(inFlightMax, requests.count) {
            try send(sent)
            sent += 1
        }
        while answers.count < requests.count {
            guard let message = try self.readMessage() else {
                throw HarnessError("the control socket closed with \(requests.count - answers.count) answers missing")
            }
            guard let id = message["id"]?.int64Value.map({ Int($0) }) else { continue }
            // An id this call never sent, or one answered twice, is the daemon's bug: say so rather than trap below.
            guard (first..<first + requests.count).contains(id), answers[id] == nil else {
                throw HarnessError("an answer with an unexpected id: \(message)")
            }
            answers[id] = message
            if sent < requests.count {
                try send(sent)
                sent += 1
            }
        }
        return (0..<requests.count).map { answers[first + $0]! }
    }

    public static func unwrap(_ response: JSONValue) throws -> JSONValue {
        if let error = response["error"] {
            throw ControlError(json: error) ?? ControlError(code: 0, name: "", message: "\(error)")
        }
        guard let result = response["result"] else {
            throw HarnessError("a response without result or error: \(response)")
        }
        return result
    }
}

extension JSONValue {
    /// A whole number member, or nil.
    public func int(_ key: String) -> Int? { self[key]?.int64Value.map { Int($0) } }
    public func string(_ key: String) -> String? { self[key]?.stringValue }
}
