import Foundation
public import LedgerCore
public import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// `log.format=json`: one JSON object per line, for log shippers: `time` (RFC 3339, UTC, milliseconds), `level`,
/// `label`, `message`, `metadata` (an object, nested values as objects and arrays), and `source`.
///
/// Every value is JSON-encoded by `JSONWriter`, so a quote, a backslash or a control character from outside stays
/// inside its string and the line stays one valid object. The characters JSON allows raw but that would still
/// reorder or hide text on a terminal or in a viewer (DEL and the C1 controls, U+2028 and U+2029, the bidirectional
/// controls: what `LogText` escapes in the text format) are written as `\uXXXX` escapes too, so the text decodes back
/// exactly and shows the same to everyone. The line escapes for itself, so the daemon does not wrap this handler in
/// an `EscapingLogHandler`, whose escapes would be doubled.
public struct JSONLogHandler: LogHandler {
    /// Where the lines go: each call is one whole line, newline included.
    public typealias Output = @Sendable (String) -> Void

    private let label: String
    private let output: Output
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level = .info

    public init(label: String, output: @escaping Output = JSONLogHandler.standardError) {
        self.label = label
        self.output = output
    }

    /// Writes the line to standard error in one `write(2)`, so lines from several threads do not interleave.
    public static let standardError: Output = { line in
        let bytes = Array(line.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            // A closed or full standard error loses the line; logging must never stop the daemon.
            guard written > 0 else { return }
            offset += written
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = EscapingLogHandler.merged(event, handlerMetadata: self.metadata, provider: self.metadataProvider)
        let object: JSONValue = [
            "time": .string(Date.now.formatted(Self.timeFormat)),
            "level": .string(event.level.rawValue),
            "label": .string(self.label),
            "message": .string(event.message.description),
            "metadata": Self.json(merged),
            "source": .string(event.source),
        ]
        self.output(Self.line(object))
    }

    static let timeFormat = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// The object's text, with what `LogText` would escape and JSON leaves raw written as `\uXXXX`, and a newline.
    static func line(_ object: JSONValue) -> String {
        let text = JSONWriter.write(object)
        // Structure is ASCII, so anything past it is inside a string, where a `\uXXXX` escape means the same.
        guard text.utf8.contains(where: { $0 >= 0x7F }) else { return text + "\n" }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar.value >= 0x7F, scalar.value <= 0xFFFF, LogText.needsEscape(scalar) {
                let hex = String(scalar.value, radix: 16)
                out.append(contentsOf: ("\\u" + String(repeating: "0", count: 4 - hex.count) + hex).unicodeScalars)
            } else {
                out.append(scalar)
            }
        }
        out.append("\n")
        return String(out)
    }

    static func json(_ metadata: Logger.Metadata) -> JSONValue {
        .object(JSONObject(metadata.sorted { $0.key < $1.key }.map { ($0.key, Self.json($0.value)) }))
    }

    static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let text): return .string(text)
        case .stringConvertible(let convertible): return .string(convertible.description)
        case .dictionary(let dictionary): return Self.json(dictionary)
        case .array(let values): return .array(values.map { Self.json($0) })
        }
    }
}
