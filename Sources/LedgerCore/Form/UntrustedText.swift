import Crypto

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

// Text from outside (a form field, a query parameter, a product name a shop copied from a customer) is inspected
// here as UTF-8 bytes or Unicode scalars, never as `Character`s. A `Character` is a grapheme cluster: a `"` followed
// by a combining mark (U+0301), or preceded by a prepend character (U+0600), is one `Character` that compares
// unequal to `"`, while a browser, a PHP gateway and a terminal all still see the `"` byte.

/// HTML escaping of untrusted text, for element content and double- or single-quoted attribute values.
public enum HTMLText {
    /// `text` with `&`, `<`, `>`, `"` and `'` replaced by character references, byte by byte, so a special
    /// character is escaped whatever marks surround it. Every other byte is kept, so the result is valid UTF-8.
    public static func escape(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "&"): out.append(contentsOf: "&amp;".utf8)
            case UInt8(ascii: "<"): out.append(contentsOf: "&lt;".utf8)
            case UInt8(ascii: ">"): out.append(contentsOf: "&gt;".utf8)
            case UInt8(ascii: "\""): out.append(contentsOf: "&quot;".utf8)
            case UInt8(ascii: "'"): out.append(contentsOf: "&#39;".utf8)
            default: out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The `Content-Security-Policy` source that allows exactly one inline script, `'sha256-…'` of its bytes, so
    /// a page can run its own script and no injected one.
    public static func scriptHashSource(_ script: String) -> String {
        "'sha256-" + Data(SHA256.hash(data: Array(script.utf8))).base64EncodedString() + "'"
    }
}

/// Escaping of untrusted text written into a line-oriented log.
public enum LogText {
    /// `text` with every control character written as an escape (`\n`, `\r`, `\t`, `\u{1B}`), so a value can never
    /// end a log line and start a forged one, move the cursor or reorder what a terminal shows. Escaped are the C0
    /// and C1 controls and DEL, the line and paragraph separators (U+2028, U+2029) and the bidirectional formatting
    /// characters. A backslash is doubled, so text that spells an escape (a literal `\n` before a fake line) never
    /// reads as one the escaping wrote.
    public static func escape(_ text: String) -> String {
        // Printable ASCII, nearly every log value, needs no work.
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") }) { return text }
        guard text.unicodeScalars.contains(where: { Self.needsEscape($0) || $0 == "\\" }) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar == "\\" {
                out.append(contentsOf: #"\\"#.unicodeScalars)
                continue
            }
            guard Self.needsEscape(scalar) else {
                out.append(scalar)
                continue
            }
            let escaped: String
            switch scalar {
            case "\n": escaped = "\\n"
            case "\r": escaped = "\\r"
            case "\t": escaped = "\\t"
            default: escaped = "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            }
            out.append(contentsOf: escaped.unicodeScalars)
        }
        return String(out)
    }

    /// Whether a scalar is one that `escape` rewrites.
    public static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .lineSeparator, .paragraphSeparator:
            return true
        default:
            return scalar.properties.isBidiControl
        }
    }
}

/// What the gateway makes of the merchant's answer to a notification.
public enum GatewayAcknowledgement {
    /// Whether `body` contains the letters "ok" together in any case, as the bytes deployments search with a
    /// case-insensitive substring test (gateway-protocol.md §3). Compared as ASCII bytes: `k` followed by a combining
    /// mark is still the byte `k` to the gateway.
    public static func readsAsAcknowledgement(_ body: some Sequence<UInt8>) -> Bool {
        var previousIsO = false
        for byte in body {
            // Setting bit 5 lowers an ASCII capital; only `K` and `k` become `k`, only `O` and `o` become `o`.
            let lower = byte | 0x20
            if previousIsO && lower == UInt8(ascii: "k") { return true }
            previousIsO = lower == UInt8(ascii: "o")
        }
        return false
    }

    /// The same for text.
    public static func readsAsAcknowledgement(_ text: String) -> Bool {
        Self.readsAsAcknowledgement(text.utf8)
    }
}
