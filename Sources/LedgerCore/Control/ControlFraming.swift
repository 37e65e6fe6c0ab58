// The pure half of the control socket's protocol: cutting a byte stream into request lines and reading one line as
// a JSON-RPC 2.0 request. The daemon's NIO handlers only carry out what these values decide, so the exact code that
// frames and validates requests in production runs in unit tests and under the fuzzer without a socket or an event
// loop (issue 6, fuzzing).

/// Splits input at `\n`, never holding more than `lineBytesMax` bytes of one line: past that the line cannot be
/// answered and the rest of the stream cannot be framed, so the framer says `.tooLong` once and discards the rest.
///
/// The caller keeps the bytes (a NIO buffer in the daemon) and shows the framer what is readable; the framer
/// answers what to do with them. It remembers how far it has searched for a newline, so a long line arriving in
/// pieces is scanned once.
public struct ControlLineFramer: Sendable {
    /// What to do with the readable bytes.
    public enum Action: Sendable, Hashable {
        /// The first `length` bytes are a line: hand them on, then drop the first `consumed` bytes (the line and
        /// its `\n`; the last line of a closed stream has none).
        case line(length: Int, consumed: Int)
        /// The current line outgrew `lineBytesMax`: report it once and drop every readable byte.
        case tooLong
        /// The stream is past a line that was too long: drop every readable byte, report nothing.
        case discard
        /// No complete line yet: keep the bytes and wait for more.
        case needMoreData
    }

    /// The longest line, newline excluded.
    public let lineBytesMax: Int
    /// Whether a line has been too long; the stream is unframeable from there on.
    public private(set) var hasOverflowed = false
    /// How many readable bytes were already searched for a newline without finding one.
    private var scanned = 0

    public init(lineBytesMax: Int) {
        precondition(lineBytesMax >= 0, "lineBytesMax must not be negative")
        self.lineBytesMax = lineBytesMax
    }

    /// Decides what to do with `readable`, the bytes received and not yet consumed, oldest first. Call it again
    /// after carrying out `.line` until it answers something else.
    public mutating func next(_ readable: UnsafeRawBufferPointer) -> Action {
        guard !self.hasOverflowed else { return .discard }
        // Bytes already searched are only skipped while they are still there: a caller that consumed more than it
        // was told to (or shows a fresh buffer) is searched from the start rather than past its end.
        let start = min(self.scanned, readable.count)
        if let newline = readable[start...].firstIndex(of: UInt8(ascii: "\n")) {
            self.scanned = 0
            guard newline <= self.lineBytesMax else { return self.overflow() }
            return .line(length: newline, consumed: newline + 1)
        }
        self.scanned = readable.count
        guard readable.count <= self.lineBytesMax else { return self.overflow() }
        return .needMoreData
    }

    /// Decides what to do with the bytes left when the peer closed its side: complete lines as `next` frames them,
    /// then a last line without its newline, which is still a request (the client half-closed after writing).
    /// Call it again after carrying out `.line` until it answers something else; `.needMoreData` then means
    /// nothing is left.
    public mutating func last(_ readable: UnsafeRawBufferPointer) -> Action {
        let action = self.next(readable)
        guard action == .needMoreData, !readable.isEmpty else { return action }
        self.scanned = 0
        return .line(length: readable.count, consumed: readable.count)
    }

    private mutating func overflow() -> Action {
        self.hasOverflowed = true
        return .tooLong
    }
}

/// One control request line, checked against JSON-RPC 2.0's envelope (§4).
public struct ControlRequest: Sendable, Hashable {
    /// The request's id; `nil` for a notification, which gets no answer (§4.1).
    public var id: JSONValue?
    public var method: String
    /// The params object or array; `nil` when absent.
    public var params: JSONValue?

    /// Why a line is not a request, with the id its error answer carries.
    public enum Rejection: Error, Sendable, Hashable {
        /// The line is not JSON (`-32700`); answered with a null id.
        case notJSON(JSONParseError)
        /// The line is JSON but not a request (`-32600`); `message` is a full sentence.
        case invalid(id: JSONValue, message: String)
    }

    /// Whether a line is no request at all and gets no answer: an empty line, or a lone `\r` from a `\r\n` client.
    /// Skipping them keeps hand-typed sessions (socat) friendly.
    public static func isBlank(_ line: some Collection<UInt8>) -> Bool {
        line.isEmpty || line.elementsEqual(CollectionOfOne(UInt8(ascii: "\r")))
    }

    /// Parses a line as JSON under `limits`, then checks the envelope: `jsonrpc` "2.0", a string `method`, an id
    /// that is a string, a number or null when present, params an object or array when present, nothing else.
    public static func parse(_ line: some Collection<UInt8>, limits: JSONLimits) -> Result<ControlRequest, Rejection> {
        let value: JSONValue
        do {
            value = try JSONParser.parse(line, limits: limits)
        } catch {
            return .failure(.notJSON(error))
        }
        return Self.validate(value)
    }

    /// Checks the envelope of a parsed request.
    public static func validate(_ request: JSONValue) -> Result<ControlRequest, Rejection> {
        guard case .object(let object) = request else {
            if case .array = request {
                return .failure(
                    .invalid(id: .null, message: "Batch requests are not supported; send one request per line.")
                )
            }
            return .failure(.invalid(id: .null, message: "A request is a JSON object."))
        }
        let id: JSONValue?
        switch object["id"] {
        case nil: id = nil
        case .string?, .number?, .null?: id = object["id"]
        case .bool?, .array?, .object?:
            return .failure(.invalid(id: .null, message: "The id must be a string, a number or null."))
        }
        guard object["jsonrpc"] == .string("2.0") else {
            return .failure(.invalid(id: id ?? .null, message: "The request must have \"jsonrpc\": \"2.0\"."))
        }
        guard case .string(let method)? = object["method"] else {
            return .failure(.invalid(id: id ?? .null, message: "The request must name its method as a string."))
        }
        for key in object.keys where !["jsonrpc", "id", "method", "params"].contains(key) {
            return .failure(.invalid(id: id ?? .null, message: "A request has no member \(key)."))
        }
        switch object["params"] {
        case nil, .object?, .array?: break
        case .null?, .bool?, .number?, .string?:
            return .failure(.invalid(id: id ?? .null, message: "params must be an object or an array."))
        }
        return .success(ControlRequest(id: id, method: method, params: object["params"]))
    }
}
