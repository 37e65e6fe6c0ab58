// A strict RFC 8259 parser over bytes, for JSON from the gateway and from the control socket.
// Strict because two parsers that disagree about one text are a signing hazard: whatever RFC 8259 leaves open
// (repeated keys, a BOM, invalid UTF-8) is refused rather than resolved one way. Every input-driven quantity has a
// limit in `JSONLimits`, and nesting is handled with an explicit stack, so hostile input cannot exhaust the call stack.

/// Bounds on untrusted JSON, all checked while parsing so a hostile text is refused before it costs more than them.
public struct JSONLimits: Sendable, Hashable {
    /// The most bytes the whole text may have.
    public var bytesMax: Int
    /// The deepest nesting of arrays and objects; `1` allows `[1]` but not `[[1]]`, `0` allows only scalars.
    public var depthMax: Int
    /// The most UTF-8 bytes one string or key may have once its escapes are decoded.
    public var stringBytesMax: Int
    /// The most elements of one array or members of one object.
    public var membersMax: Int

    /// Limits for one parse; the defaults suit gateway answers and control commands.
    ///
    /// - Precondition: every limit is zero or more.
    public init(
        bytesMax: Int = 1 << 20,
        depthMax: Int = 32,
        stringBytesMax: Int = 1 << 16,
        membersMax: Int = 10_000
    ) {
        precondition(bytesMax >= 0 && depthMax >= 0 && stringBytesMax >= 0 && membersMax >= 0)
        self.bytesMax = bytesMax
        self.depthMax = depthMax
        self.stringBytesMax = stringBytesMax
        self.membersMax = membersMax
    }

    /// 1 MiB of text, nesting 32 deep, 64 KiB per string and 10,000 elements per array or object.
    public static let `default` = JSONLimits()
}

/// Why a JSON text was refused, and the byte offset at which the parser found out.
public struct JSONParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kinds of refusal.
    public enum Reason: Sendable, Hashable {
        /// The text is empty or only whitespace; the offset is where a value was expected.
        case empty
        /// The text ends before the value is complete; the offset is the text's length.
        case unexpectedEnd
        /// A byte that cannot appear here, such as a comment, a trailing comma or a byte order mark.
        case unexpectedByte(UInt8)
        /// Bytes that are not well-formed UTF-8; the offset is the first byte of the bad sequence.
        case invalidUTF8
        /// A backslash followed by something other than `" \ / b f n r t u`; the offset is the backslash.
        case invalidEscape
        /// A `\u` not followed by four hexadecimal digits; the offset is the backslash.
        case invalidUnicodeEscape
        /// A `\u` escape of a UTF-16 surrogate without its partner; the offset is the backslash.
        case loneSurrogate
        /// A byte below 0x20 inside a string, which RFC 8259 requires to be escaped.
        case controlCharacterInString
        /// A number that breaks the RFC 8259 grammar (`01`, `1.`, `.5`, `+1`, `-`, `1e`); the offset is the
        /// first byte that does not fit.
        case invalidNumber
        /// Arrays and objects nest deeper than the limit; the offset is the bracket that opens one level too many.
        case depthExceeded(max: Int)
        /// The text is longer than the limit; the offset is the limit, the first byte past it.
        case tooLarge(max: Int)
        /// A string or key decodes to more UTF-8 bytes than the limit; the offset is its opening quote.
        case stringTooLong(max: Int)
        /// An array or object has more elements than the limit; the offset is the first element past it.
        case tooManyMembers(max: Int)
        /// An object repeats a key; the offset is the repeated key's opening quote.
        case duplicateKey(String)
        /// Something other than whitespace follows the top-level value; the offset is its first byte.
        case trailingData
    }

    /// What is wrong.
    public let reason: Reason
    /// The byte offset in the input at which the problem was found.
    public let offset: Int

    /// An error for `reason` found at byte `offset`.
    public init(reason: Reason, offset: Int) {
        self.reason = reason
        self.offset = offset
    }

    /// A full sentence saying what is wrong and where.
    public var description: String {
        let at = "at byte \(self.offset)"
        switch self.reason {
        case .empty:
            return "The JSON text is empty; a value was expected \(at)."
        case .unexpectedEnd:
            return "The JSON text ends \(at) before the value is complete."
        case .unexpectedByte(let byte):
            return "The JSON text has the unexpected byte \(Self.describe(byte)) \(at)."
        case .invalidUTF8:
            return "The JSON text is not well-formed UTF-8 \(at)."
        case .invalidEscape:
            return "The string escape \(at) is not one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u."
        case .invalidUnicodeEscape:
            return "The \\u escape \(at) is not followed by four hexadecimal digits."
        case .loneSurrogate:
            return "The \\u escape \(at) is half of a UTF-16 surrogate pair without the other half."
        case .controlCharacterInString:
            return "The string has an unescaped control character \(at); RFC 8259 requires it to be escaped."
        case .invalidNumber:
            return "The number is malformed \(at); RFC 8259 allows no leading zeros, no '+', and no missing digits."
        case .depthExceeded(let max):
            return "The JSON text nests arrays and objects deeper than the limit of \(max) \(at)."
        case .tooLarge(let max):
            return "The JSON text is longer than the limit of \(max) bytes; it is refused \(at)."
        case .stringTooLong(let max):
            return "The string starting \(at) is longer than the limit of \(max) UTF-8 bytes."
        case .tooManyMembers(let max):
            return "The array or object has more than the limit of \(max) elements; the one \(at) is one too many."
        case .duplicateKey(let key):
            return "The JSON text repeats the key \(Self.quote(key)) \(at); a repeated key is refused rather than"
                + " first- or last-wins."
        case .trailingData:
            return "The JSON text continues \(at) after the value; only one top-level value is allowed."
        }
    }

    /// `0x2C (",")` for a printable ASCII byte, `0xEF` otherwise.
    private static func describe(_ byte: UInt8) -> String {
        let hexDigits = Array("0123456789ABCDEF".utf8)
        let hex = String(decoding: [hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0x0F)]], as: UTF8.self)
        guard byte >= 0x20 && byte < 0x7F else { return "0x\(hex)" }
        return "0x\(hex) (\(JSONWriter.write(.string(String(UnicodeScalar(byte))))))"
    }

    /// The key as JSON text, shortened because it comes from untrusted input and ends up in logs.
    private static func quote(_ key: String) -> String {
        let shownCharactersMax = 64
        guard key.count > shownCharactersMax else { return JSONWriter.write(.string(key)) }
        return JSONWriter.write(.string(String(key.prefix(shownCharactersMax)))) + "…"
    }
}

/// Parses JSON text strictly as RFC 8259 defines it.
///
/// The top level may be any value. Whitespace is space, tab, line feed and carriage return only. There are no
/// comments, trailing commas, `NaN` or `Infinity`; a leading byte order mark is refused (RFC 8259 §8.1 says a
/// sender must not add one). Numbers keep their text. Invalid UTF-8, lone surrogates and repeated keys are refused.
public enum JSONParser {
    /// Parses one JSON value from UTF-8 bytes.
    public static func parse(
        _ bytes: some Collection<UInt8>,
        limits: JSONLimits = .default
    ) throws(JSONParseError) -> JSONValue {
        // The size check comes first so an oversized text costs nothing more than counting it.
        let count = bytes.count
        guard count <= limits.bytesMax else {
            throw JSONParseError(reason: .tooLarge(max: limits.bytesMax), offset: limits.bytesMax)
        }
        let contiguous = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(JSONParseError) in try Self.parse(buffer: buffer, limits: limits) }
        }
        if let contiguous {
            return try contiguous.get()
        }
        let copy = Array(bytes)
        return try copy.withUnsafeBufferPointer { (buffer) throws(JSONParseError) in
            try Self.parse(buffer: buffer, limits: limits)
        }
    }

    /// Parses one JSON value from a string's UTF-8.
    public static func parse(_ text: String, limits: JSONLimits = .default) throws(JSONParseError) -> JSONValue {
        try Self.parse(text.utf8, limits: limits)
    }

    private static func parse(
        buffer: UnsafeBufferPointer<UInt8>,
        limits: JSONLimits
    ) throws(JSONParseError) -> JSONValue {
        var parser = Parser(bytes: buffer, limits: limits)
        return try parser.parseDocument()
    }
}

// MARK: - Parser

/// ASCII bytes the parser compares against, named so the code reads as the grammar does.
private enum ASCII {
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let slash = UInt8(ascii: "/")
    static let comma = UInt8(ascii: ",")
    static let colon = UInt8(ascii: ":")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let minus = UInt8(ascii: "-")
    static let plus = UInt8(ascii: "+")
    static let dot = UInt8(ascii: ".")
    static let zero = UInt8(ascii: "0")
    static let nine = UInt8(ascii: "9")
    static let lowerE = UInt8(ascii: "e")
    static let upperE = UInt8(ascii: "E")
    static let lowerU = UInt8(ascii: "u")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let lineFeed = UInt8(ascii: "\n")
    static let carriageReturn = UInt8(ascii: "\r")

    static func isDigit(_ byte: UInt8) -> Bool {
        byte >= Self.zero && byte <= Self.nine
    }
}

/// One array or object that is open while its elements are parsed.
private struct Frame {
    var isObject: Bool
    var elements: [JSONValue] = []
    var members: [(key: String, value: JSONValue)] = []
    /// The keys so far, to refuse a repeat in constant time however many members the object has.
    var keys: Set<String> = []
    /// The key whose value is being parsed.
    var pendingKey: String = ""

    var count: Int {
        self.isObject ? self.members.count : self.elements.count
    }
}

private struct Parser {
    let bytes: UnsafeBufferPointer<UInt8>
    let limits: JSONLimits
    var offset = 0
    /// Decoded bytes of a string with escapes, kept between strings so each one does not allocate anew.
    var scratch: [UInt8] = []

    init(bytes: UnsafeBufferPointer<UInt8>, limits: JSONLimits) {
        self.bytes = bytes
        self.limits = limits
    }

    private var end: Int {
        self.bytes.count
    }

    private func error(_ reason: JSONParseError.Reason, at offset: Int) -> JSONParseError {
        JSONParseError(reason: reason, offset: offset)
    }

    /// The error for a byte that cannot start or continue anything here.
    ///
    /// Input must be UTF-8 everywhere, so a non-ASCII byte that does not begin a well-formed sequence is reported as
    /// invalid UTF-8; a well-formed one (such as a byte order mark) is merely unexpected.
    private func unexpected(at offset: Int) -> JSONParseError {
        guard offset < self.end else { return self.error(.unexpectedEnd, at: offset) }
        let byte = self.bytes[offset]
        if byte >= 0x80 && UTF8Validation.sequenceLength(self.bytes, at: offset) == nil {
            return self.error(.invalidUTF8, at: offset)
        }
        return self.error(.unexpectedByte(byte), at: offset)
    }

    private mutating func skipWhitespace() {
        while self.offset < self.end {
            switch self.bytes[self.offset] {
            case ASCII.space, ASCII.tab, ASCII.lineFeed, ASCII.carriageReturn:
                self.offset += 1
            default:
                return
            }
        }
    }

    /// Consumes `byte` after optional whitespace, or fails at whatever is there instead.
    private mutating func expect(_ byte: UInt8) throws(JSONParseError) {
        self.skipWhitespace()
        guard self.offset < self.end, self.bytes[self.offset] == byte else { throw self.unexpected(at: self.offset) }
        self.offset += 1
    }

    /// Refuses an element beyond `membersMax` before any work is spent parsing it.
    private func checkRoom(in frame: Frame) throws(JSONParseError) {
        guard frame.count < self.limits.membersMax else {
            throw self.error(.tooManyMembers(max: self.limits.membersMax), at: self.offset)
        }
    }

    /// Refuses a container that would nest deeper than `depthMax`.
    private func checkDepth(_ stack: [Frame]) throws(JSONParseError) {
        guard stack.count < self.limits.depthMax else {
            throw self.error(.depthExceeded(max: self.limits.depthMax), at: self.offset)
        }
    }

    /// Parses a key and its colon at the current offset (after whitespace), refusing a repeat of an earlier key.
    private mutating func parseKey(into frame: inout Frame) throws(JSONParseError) {
        guard self.offset < self.end, self.bytes[self.offset] == ASCII.quote else {
            throw self.unexpected(at: self.offset)
        }
        let keyStart = self.offset
        let key = try self.parseString()
        guard frame.keys.insert(key).inserted else { throw self.error(.duplicateKey(key), at: keyStart) }
        try self.expect(ASCII.colon)
        frame.pendingKey = key
    }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        self.skipWhitespace()
        guard self.offset < self.end else { throw self.error(.empty, at: self.offset) }

        // Open containers, innermost last. An explicit stack rather than recursion keeps the call stack flat
        // whatever the nesting, so the depth limit is a policy and not what stands between input and a crash.
        var stack: [Frame] = []
        parsingValues: while true {
            // Here the offset is at the start of a value, past any whitespace.
            var value: JSONValue
            guard self.offset < self.end else { throw self.error(.unexpectedEnd, at: self.offset) }
            switch self.bytes[self.offset] {
            case ASCII.openBracket:
                try self.checkDepth(stack)
                self.offset += 1
                self.skipWhitespace()
                if self.offset < self.end && self.bytes[self.offset] == ASCII.closeBracket {
                    self.offset += 1
                    value = .array([])
                } else {
                    let frame = Frame(isObject: false)
                    try self.checkRoom(in: frame)
                    stack.append(frame)
                    continue parsingValues
                }
            case ASCII.openBrace:
                try self.checkDepth(stack)
                self.offset += 1
                self.skipWhitespace()
                if self.offset < self.end && self.bytes[self.offset] == ASCII.closeBrace {
                    self.offset += 1
                    value = .object(JSONObject(uncheckedMembers: []))
                } else {
                    var frame = Frame(isObject: true)
                    try self.checkRoom(in: frame)
                    try self.parseKey(into: &frame)
                    stack.append(frame)
                    self.skipWhitespace()
                    continue parsingValues
                }
            case ASCII.quote:
                value = .string(try self.parseString())
            case UInt8(ascii: "t"):
                try self.parseLiteral("true")
                value = .bool(true)
            case UInt8(ascii: "f"):
                try self.parseLiteral("false")
                value = .bool(false)
            case UInt8(ascii: "n"):
                try self.parseLiteral("null")
                value = .null
            case ASCII.minus, ASCII.zero...ASCII.nine, ASCII.plus, ASCII.dot:
                // '+' and '.' cannot start a value, but they are clearly attempts at a number, so they are reported
                // as one rather than as a stray byte.
                value = .number(try self.parseNumber())
            default:
                throw self.unexpected(at: self.offset)
            }

            // A value is complete: hand it to the open containers, closing those it completes.
            closingContainers: while true {
                self.skipWhitespace()
                guard !stack.isEmpty else {
                    guard self.offset == self.end else { throw self.error(.trailingData, at: self.offset) }
                    return value
                }
                let top = stack.count - 1
                if stack[top].isObject {
                    stack[top].members.append((key: stack[top].pendingKey, value: value))
                } else {
                    stack[top].elements.append(value)
                }
                guard self.offset < self.end else { throw self.error(.unexpectedEnd, at: self.offset) }
                let byte = self.bytes[self.offset]
                if byte == ASCII.comma {
                    self.offset += 1
                    self.skipWhitespace()
                    try self.checkRoom(in: stack[top])
                    if stack[top].isObject {
                        try self.parseKey(into: &stack[top])
                        self.skipWhitespace()
                    }
                    continue parsingValues
                } else if byte == (stack[top].isObject ? ASCII.closeBrace : ASCII.closeBracket) {
                    self.offset += 1
                    let frame = stack.removeLast()
                    if frame.isObject {
                        value = .object(JSONObject(uncheckedMembers: frame.members))
                    } else {
                        value = .array(frame.elements)
                    }
                    continue closingContainers
                } else {
                    throw self.unexpected(at: self.offset)
                }
            }
        }
    }

    private mutating func parseLiteral(_ literal: StaticString) throws(JSONParseError) {
        let expected = UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        for byte in expected {
            guard self.offset < self.end else { throw self.error(.unexpectedEnd, at: self.offset) }
            guard self.bytes[self.offset] == byte else { throw self.unexpected(at: self.offset) }
            self.offset += 1
        }
    }

    private mutating func parseNumber() throws(JSONParseError) -> String {
        let start = self.offset
        switch JSONNumberGrammar.scan(self.bytes, from: start) {
        case .invalid(let at):
            throw self.error(.invalidNumber, at: at)
        case .valid(let numberEnd, _):
            // The grammar stops at the first byte that cannot continue the number. If that byte could only be a
            // botched continuation ("01", "1.5.3", "1e5e"), the number is what is wrong, not the byte after it.
            if numberEnd < self.end {
                let next = self.bytes[numberEnd]
                if ASCII.isDigit(next) || next == ASCII.dot || next == ASCII.lowerE || next == ASCII.upperE
                    || next == ASCII.plus || next == ASCII.minus
                {
                    throw self.error(.invalidNumber, at: numberEnd)
                }
            }
            self.offset = numberEnd
            return String(decoding: UnsafeBufferPointer(rebasing: self.bytes[start..<numberEnd]), as: UTF8.self)
        }
    }

    /// Parses a string whose opening quote is at the current offset.
    private mutating func parseString() throws(JSONParseError) -> String {
        let quoteOffset = self.offset
        self.offset += 1
        self.scratch.removeAll(keepingCapacity: true)
        var hasEscapes = false
        // Start of the run of bytes copied verbatim that `scratch` does not hold yet.
        var runStart = self.offset
        let stringBytesMax = self.limits.stringBytesMax

        while true {
            // Checked on every step so a long string is refused as soon as it passes the limit.
            guard self.scratch.count + (self.offset - runStart) <= stringBytesMax else {
                throw self.error(.stringTooLong(max: stringBytesMax), at: quoteOffset)
            }
            guard self.offset < self.end else { throw self.error(.unexpectedEnd, at: self.offset) }
            let byte = self.bytes[self.offset]
            if byte == ASCII.quote {
                let run = UnsafeBufferPointer(rebasing: self.bytes[runStart..<self.offset])
                self.offset += 1
                guard hasEscapes else { return String(decoding: run, as: UTF8.self) }
                self.scratch.append(contentsOf: run)
                return String(decoding: self.scratch, as: UTF8.self)
            } else if byte == ASCII.backslash {
                hasEscapes = true
                self.scratch.append(contentsOf: UnsafeBufferPointer(rebasing: self.bytes[runStart..<self.offset]))
                try self.parseEscape()
                runStart = self.offset
            } else if byte < 0x20 {
                throw self.error(.controlCharacterInString, at: self.offset)
            } else if byte < 0x80 {
                self.offset += 1
            } else {
                guard let length = UTF8Validation.sequenceLength(self.bytes, at: self.offset) else {
                    throw self.error(.invalidUTF8, at: self.offset)
                }
                self.offset += length
            }
        }
    }

    /// Decodes the escape whose backslash is at the current offset into `scratch`.
    private mutating func parseEscape() throws(JSONParseError) {
        let escapeOffset = self.offset
        guard self.offset + 1 < self.end else { throw self.error(.unexpectedEnd, at: self.end) }
        let decoded: UInt8
        switch self.bytes[self.offset + 1] {
        case ASCII.quote: decoded = ASCII.quote
        case ASCII.backslash: decoded = ASCII.backslash
        case ASCII.slash: decoded = ASCII.slash
        case UInt8(ascii: "b"): decoded = 0x08
        case UInt8(ascii: "f"): decoded = 0x0C
        case UInt8(ascii: "n"): decoded = ASCII.lineFeed
        case UInt8(ascii: "r"): decoded = ASCII.carriageReturn
        case UInt8(ascii: "t"): decoded = ASCII.tab
        case ASCII.lowerU:
            try self.parseUnicodeEscape()
            return
        default:
            throw self.error(.invalidEscape, at: escapeOffset)
        }
        self.scratch.append(decoded)
        self.offset += 2
    }

    /// Decodes `\uXXXX`, or a `\uXXXX\uXXXX` surrogate pair, at the current offset into `scratch`.
    private mutating func parseUnicodeEscape() throws(JSONParseError) {
        let escapeOffset = self.offset
        let first = try self.readHex4(escapeAt: escapeOffset)
        self.offset += 6
        let scalarValue: UInt32
        switch first {
        case 0xD800...0xDBFF:
            // A high surrogate counts only when a low surrogate escape follows at once (RFC 8259 §7).
            guard self.offset + 1 < self.end, self.bytes[self.offset] == ASCII.backslash,
                self.bytes[self.offset + 1] == ASCII.lowerU
            else {
                throw self.error(.loneSurrogate, at: escapeOffset)
            }
            let second = try self.readHex4(escapeAt: self.offset)
            guard (0xDC00...0xDFFF).contains(second) else { throw self.error(.loneSurrogate, at: escapeOffset) }
            self.offset += 6
            scalarValue = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        case 0xDC00...0xDFFF:
            throw self.error(.loneSurrogate, at: escapeOffset)
        default:
            scalarValue = first
        }
        // Every value outside the surrogate range is a Unicode scalar, so this cannot fail.
        guard let scalar = Unicode.Scalar(scalarValue) else { throw self.error(.loneSurrogate, at: escapeOffset) }
        UTF8.encode(scalar) { self.scratch.append($0) }
    }

    /// The four hex digits after the `\u` whose backslash is at `escapeAt`.
    private func readHex4(escapeAt: Int) throws(JSONParseError) -> UInt32 {
        var value: UInt32 = 0
        for index in (escapeAt + 2)..<(escapeAt + 6) {
            guard index < self.end else { throw self.error(.unexpectedEnd, at: self.end) }
            guard let digit = Hex.digitValue(self.bytes[index]) else {
                throw self.error(.invalidUnicodeEscape, at: escapeAt)
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }
}

// MARK: - UTF-8

enum UTF8Validation {
    /// The length of the well-formed UTF-8 sequence starting at `offset`, or `nil` if it is ill-formed.
    ///
    /// Follows the Unicode Standard's table of well-formed byte sequences (Table 3-7), which excludes overlong forms
    /// (C0, C1, E0 80–9F, F0 80–8F), UTF-16 surrogates encoded as UTF-8 (ED A0–BF, as CESU-8 does) and code points
    /// past U+10FFFF (F4 90 and up, F5–FF).
    static func sequenceLength(_ bytes: UnsafeBufferPointer<UInt8>, at offset: Int) -> Int? {
        let lead = bytes[offset]
        let length: Int
        // The allowed range of the second byte; later continuation bytes are always 80–BF.
        let second: ClosedRange<UInt8>
        switch lead {
        case 0x00...0x7F: return 1
        case 0xC2...0xDF: (length, second) = (2, 0x80...0xBF)
        case 0xE0: (length, second) = (3, 0xA0...0xBF)
        case 0xE1...0xEC, 0xEE...0xEF: (length, second) = (3, 0x80...0xBF)
        case 0xED: (length, second) = (3, 0x80...0x9F)
        case 0xF0: (length, second) = (4, 0x90...0xBF)
        case 0xF1...0xF3: (length, second) = (4, 0x80...0xBF)
        case 0xF4: (length, second) = (4, 0x80...0x8F)
        default: return nil
        }
        guard offset + length <= bytes.count, second.contains(bytes[offset + 1]) else { return nil }
        for index in (offset + 2)..<(offset + length) where bytes[index] & 0xC0 != 0x80 {
            return nil
        }
        return length
    }
}

// MARK: - Numbers

/// The RFC 8259 §6 number grammar: `-? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?`.
enum JSONNumberGrammar {
    enum Kind: Equatable {
        /// Only an integer part, so the text is an exact integer.
        case integer
        /// A fraction or an exponent.
        case decimal
    }

    enum Scan {
        /// A number ends just before `end`.
        case valid(end: Int, kind: Kind)
        /// The byte at `at` (possibly the end of the input) cannot continue the number.
        case invalid(at: Int)
    }

    /// Scans the longest number starting at `start`.
    static func scan(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Scan {
        var offset = start
        let end = bytes.count
        func digits() -> Bool {
            let first = offset
            while offset < end && ASCII.isDigit(bytes[offset]) {
                offset += 1
            }
            return offset > first
        }
        var kind = Kind.integer

        if offset < end && bytes[offset] == ASCII.minus {
            offset += 1
        }
        guard offset < end else { return .invalid(at: offset) }
        if bytes[offset] == ASCII.zero {
            offset += 1
        } else if !digits() {
            return .invalid(at: offset)
        }
        if offset < end && bytes[offset] == ASCII.dot {
            kind = .decimal
            offset += 1
            guard digits() else { return .invalid(at: offset) }
        }
        if offset < end && (bytes[offset] == ASCII.lowerE || bytes[offset] == ASCII.upperE) {
            kind = .decimal
            offset += 1
            if offset < end && (bytes[offset] == ASCII.plus || bytes[offset] == ASCII.minus) {
                offset += 1
            }
            guard digits() else { return .invalid(at: offset) }
        }
        return .valid(end: offset, kind: kind)
    }

    /// What kind of number the whole of `text` is, or `nil` if it is not exactly one RFC 8259 number.
    static func classify(_ text: String) -> Kind? {
        var text = text
        return text.withUTF8 { bytes in
            guard case .valid(let end, let kind) = Self.scan(bytes, from: 0), end == bytes.count else { return nil }
            return kind
        }
    }
}
