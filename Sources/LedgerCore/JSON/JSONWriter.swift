// A deterministic JSON writer: the same value and options always give the same bytes, which is what lets a value be
// signed or compared as text. Numbers are written as their literal text, so nothing passes through floating point.

/// Writes a ``JSONValue`` as RFC 8259 text that ``JSONParser`` reads back as the same value.
///
/// Strings escape only what RFC 8259 requires: `"`, `\` and the control characters below U+0020 (as `\b \f \n \r \t`
/// where those exist, otherwise `\u00XX` in lowercase hex). `/` is not escaped and non-ASCII is written as raw UTF-8,
/// so the text stays readable and has a single spelling for each value.
///
/// The writer recurses once per level of nesting. Parsed values are bounded by ``JSONLimits/depthMax``; a value built
/// in code with extreme nesting would exhaust the stack here, as it would in its own `==` and deinitialization.
public enum JSONWriter {
    /// How to lay out the text.
    public struct Options: OptionSet, Sendable, Hashable {
        public let rawValue: Int

        /// Options from their raw bits.
        public init(rawValue: Int) {
            self.rawValue = rawValue
        }

        /// Orders object members by the UTF-8 bytes of their keys, at every depth, instead of keeping their order.
        ///
        /// Byte order rather than Swift's `String` order, because Swift compares canonically equivalent strings as
        /// equal and so would let two spellings of a key sort differently from how another implementation sorts them.
        public static let sortedKeys = Options(rawValue: 1 << 0)
        /// Puts each element and member on its own line, indented by two spaces, for people to read.
        public static let prettyPrinted = Options(rawValue: 1 << 1)
    }

    /// The JSON text of `value`.
    public static func write(_ value: JSONValue, options: Options = []) -> String {
        var bytes: [UInt8] = []
        Self.write(value, options: options, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the UTF-8 JSON text of `value` to `bytes`.
    public static func write(_ value: JSONValue, options: Options = [], into bytes: inout [UInt8]) {
        Self.write(value, options: options, checksNumbers: true, indent: 0, into: &bytes)
    }

    /// The compact text of `value` for logs, with invalid number text written as is instead of stopping the program:
    /// describing a bad value must not be what brings the process down.
    static func describe(_ value: JSONValue) -> String {
        var bytes: [UInt8] = []
        Self.write(value, options: [], checksNumbers: false, indent: 0, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func write(
        _ value: JSONValue,
        options: Options,
        checksNumbers: Bool,
        indent: Int,
        into bytes: inout [UInt8]
    ) {
        switch value {
        case .null:
            bytes.append(contentsOf: "null".utf8)
        case .bool(let bool):
            bytes.append(contentsOf: (bool ? "true" : "false").utf8)
        case .number(let text):
            // Writing text that is not a number would hand a peer JSON it may read differently or not at all, which
            // for a signed message is worse than stopping; values from the parser or an integer always pass.
            precondition(
                !checksNumbers || JSONNumberGrammar.classify(text) != nil,
                "JSONWriter: \(text.debugDescription) is not an RFC 8259 number; use JSONValue(numberText:)"
            )
            bytes.append(contentsOf: text.utf8)
        case .string(let string):
            Self.writeString(string, into: &bytes)
        case .array(let elements):
            guard !elements.isEmpty else {
                bytes.append(contentsOf: "[]".utf8)
                return
            }
            bytes.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 {
                    bytes.append(UInt8(ascii: ","))
                }
                Self.newline(options: options, indent: indent + 1, into: &bytes)
                Self.write(element, options: options, checksNumbers: checksNumbers, indent: indent + 1, into: &bytes)
            }
            Self.newline(options: options, indent: indent, into: &bytes)
            bytes.append(UInt8(ascii: "]"))
        case .object(let object):
            guard !object.isEmpty else {
                bytes.append(contentsOf: "{}".utf8)
                return
            }
            var members = object.members
            if options.contains(.sortedKeys) {
                // Keys are unique, so the order is total and the output deterministic.
                members.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            }
            bytes.append(UInt8(ascii: "{"))
            for (index, member) in members.enumerated() {
                if index > 0 {
                    bytes.append(UInt8(ascii: ","))
                }
                Self.newline(options: options, indent: indent + 1, into: &bytes)
                Self.writeString(member.key, into: &bytes)
                bytes.append(UInt8(ascii: ":"))
                if options.contains(.prettyPrinted) {
                    bytes.append(UInt8(ascii: " "))
                }
                Self.write(
                    member.value,
                    options: options,
                    checksNumbers: checksNumbers,
                    indent: indent + 1,
                    into: &bytes
                )
            }
            Self.newline(options: options, indent: indent, into: &bytes)
            bytes.append(UInt8(ascii: "}"))
        }
    }

    /// A line break and `indent` levels of two spaces, only when pretty printing.
    private static func newline(options: Options, indent: Int, into bytes: inout [UInt8]) {
        guard options.contains(.prettyPrinted) else { return }
        bytes.append(UInt8(ascii: "\n"))
        bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: 2 * indent))
    }

    private static func writeString(_ string: String, into bytes: inout [UInt8]) {
        let hexDigits: StaticString = "0123456789abcdef"
        bytes.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): bytes.append(contentsOf: #"\\"#.utf8)
            case 0x08: bytes.append(contentsOf: #"\b"#.utf8)
            case 0x0C: bytes.append(contentsOf: #"\f"#.utf8)
            case UInt8(ascii: "\n"): bytes.append(contentsOf: #"\n"#.utf8)
            case UInt8(ascii: "\r"): bytes.append(contentsOf: #"\r"#.utf8)
            case UInt8(ascii: "\t"): bytes.append(contentsOf: #"\t"#.utf8)
            case 0x00..<0x20:
                bytes.append(contentsOf: #"\u00"#.utf8)
                bytes.append(hexDigits.utf8Start[Int(byte >> 4)])
                bytes.append(hexDigits.utf8Start[Int(byte & 0x0F)])
            default:
                // Everything else, including non-ASCII UTF-8, is copied as is; a Swift String is always valid UTF-8.
                bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
