/// The merchant's secret key. Its `description` never shows the key, so a key that reaches a log line, an error or
/// a debugger print is masked.
public struct MerchantKey: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    let bytes: [UInt8]

    /// Why a key was refused.
    public enum Rejection: Error, Sendable, Hashable, CustomStringConvertible {
        case empty
        case hasWhitespaceOrControl
        case tooLong(bytesMax: Int)

        public var description: String {
            switch self {
            case .empty: return "The merchant key is empty."
            case .hasWhitespaceOrControl:
                return "The merchant key contains white space or control characters (a stray newline in the key file?)."
            case .tooLong(let bytesMax): return "The merchant key is longer than \(bytesMax) bytes."
            }
        }
    }

    public static let bytesMax = 256

    /// Creates a key from its text. One trailing newline (as editors write key files) is removed; any other
    /// white space is refused rather than silently signed.
    public init(_ text: String) throws(Rejection) {
        var text = Substring(text)
        if text.hasSuffix("\r\n") { text = text.dropLast(2) } else if text.hasSuffix("\n") { text = text.dropLast() }
        if text.isEmpty { throw .empty }
        let bytes = Array(text.utf8)
        if bytes.count > Self.bytesMax { throw .tooLong(bytesMax: Self.bytesMax) }
        if bytes.contains(where: { $0 <= 0x20 || $0 == 0x7F }) { throw .hasWhitespaceOrControl }
        self.bytes = bytes
    }

    public var description: String { "MerchantKey(masked, \(self.bytes.count) bytes)" }
    public var debugDescription: String { self.description }

    /// The mask shown in place of the key in canonical strings.
    public static let mask = "***"
}
