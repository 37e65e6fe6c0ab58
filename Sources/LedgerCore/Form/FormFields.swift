/// One `name=value` pair of an `application/x-www-form-urlencoded` body, decoded.
public struct FormField: Sendable, Hashable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// The decoded fields of a form body, in the order they arrived, with unique names, and the raw bytes they came
/// from (kept for the record: the ledger stores what was received, not only what we made of it).
public struct FormFields: Sendable, Hashable, Sequence {
    public private(set) var fields: [FormField]
    /// The bytes exactly as received; empty for fields built in code.
    public let raw: [UInt8]

    /// Creates a field list built in code. Names must be unique.
    public init(_ fields: [FormField]) {
        precondition(Set(fields.map(\.name)).count == fields.count, "form field names must be unique")
        self.fields = fields
        self.raw = []
    }

    init(decoded fields: [FormField], raw: [UInt8]) {
        self.fields = fields
        self.raw = raw
    }

    /// The value of the field named exactly `name`, byte for byte. `String`'s `==` would also match a canonically
    /// equivalent name (U+212A KELVIN SIGN equals `K`), which is not the name the sender wrote.
    public subscript(name: String) -> String? {
        self.fields.first(where: { $0.name.hasSameBytes(as: name) })?.value
    }

    public var count: Int { self.fields.count }
    public var names: [String] { self.fields.map(\.name) }

    public func makeIterator() -> IndexingIterator<[FormField]> { self.fields.makeIterator() }
}

/// Why a form body was refused.
public enum FormDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    case bodyTooLarge(bytesMax: Int)
    case tooManyFields(fieldsMax: Int)
    case fieldTooLong(fieldIndex: Int, bytesMax: Int)
    case invalidPercentEscape(offset: Int)
    case invalidUTF8(fieldIndex: Int)
    case emptyName(fieldIndex: Int)
    case repeatedField(name: String)

    public var description: String {
        switch self {
        case .bodyTooLarge(let bytesMax):
            return "The form body is larger than \(bytesMax) bytes."
        case .tooManyFields(let fieldsMax):
            return "The form body has more than \(fieldsMax) fields."
        case .fieldTooLong(let index, let bytesMax):
            return "Field \(index + 1) of the form body has a name or value longer than \(bytesMax) bytes."
        case .invalidPercentEscape(let offset):
            return
                "The form body has an invalid percent escape at byte \(offset); '%' must be followed by two hex digits."
        case .invalidUTF8(let index):
            return "Field \(index + 1) of the form body is not valid UTF-8 once decoded."
        case .emptyName(let index):
            return "Field \(index + 1) of the form body has an empty name."
        case .repeatedField(let name):
            return
                "The form body repeats the field '\(name)'; a repeated field is refused rather than first- or last-wins."
        }
    }
}

/// `application/x-www-form-urlencoded` coding as the WHATWG URL standard defines it, made strict.
///
/// Decoding differs from browsers on purpose: an invalid percent escape, a value that is not UTF-8 after decoding
/// and a repeated name are errors instead of being passed through or silently resolved, because a payment fact
/// read one way by us and another way by the gateway is how money goes missing.
public enum FormCoding {
    /// Decodes a form body. Empty sequences between `&` are skipped (as browsers do); a sequence without `=` is a
    /// name with an empty value.
    public static func decode(_ body: some Collection<UInt8>, limits: FormLimits = .default)
        throws(FormDecodingError) -> FormFields
    {
        let bytes = Array(body)
        if bytes.count > limits.bodyBytesMax { throw .bodyTooLarge(bytesMax: limits.bodyBytesMax) }
        var fields: [FormField] = []
        var start = 0
        var index = 0
        while start <= bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "&") { end += 1 }
            if end > start {
                if fields.count == limits.fieldsMax { throw .tooManyFields(fieldsMax: limits.fieldsMax) }
                var equals = start
                while equals < end && bytes[equals] != UInt8(ascii: "=") { equals += 1 }
                let name = try Self.decodeComponent(bytes, start, equals, fieldIndex: index, limits: limits)
                let value =
                    equals < end
                    ? try Self.decodeComponent(bytes, equals + 1, end, fieldIndex: index, limits: limits) : ""
                if name.isEmpty { throw .emptyName(fieldIndex: index) }
                // Names are compared as bytes, as the subscript finds them; at most `fieldsMax` of them.
                if fields.contains(where: { $0.name.hasSameBytes(as: name) }) {
                    throw .repeatedField(name: name)
                }
                fields.append(FormField(name, value))
                index += 1
            }
            start = end + 1
        }
        return FormFields(decoded: fields, raw: bytes)
    }

    private static func decodeComponent(
        _ bytes: [UInt8],
        _ start: Int,
        _ end: Int,
        fieldIndex: Int,
        limits: FormLimits
    ) throws(FormDecodingError) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(end - start)
        var position = start
        while position < end {
            let byte = bytes[position]
            switch byte {
            case UInt8(ascii: "+"):
                out.append(0x20)
                position += 1
            case UInt8(ascii: "%"):
                guard position + 2 < end,
                    let high = Hex.digitValue(bytes[position + 1]),
                    let low = Hex.digitValue(bytes[position + 2])
                else { throw .invalidPercentEscape(offset: position) }
                out.append(high << 4 | low)
                position += 3
            default:
                out.append(byte)
                position += 1
            }
            if out.count > limits.fieldBytesMax {
                throw .fieldTooLong(fieldIndex: fieldIndex, bytesMax: limits.fieldBytesMax)
            }
        }
        guard let text = String(checkedUTF8: out) else { throw .invalidUTF8(fieldIndex: fieldIndex) }
        return text
    }

    /// Encodes fields as a form body: the WHATWG serializer, which leaves `*-._` and ASCII letters and digits as
    /// they are, writes a space as `+` and percent-escapes every other byte of the UTF-8 encoding.
    public static func encode(_ fields: some Sequence<FormField>) -> String {
        var out: [UInt8] = []
        var first = true
        for field in fields {
            if !first { out.append(UInt8(ascii: "&")) }
            first = false
            Self.encodeComponent(field.name, into: &out)
            out.append(UInt8(ascii: "="))
            Self.encodeComponent(field.value, into: &out)
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    private static func encodeComponent(_ text: String, into out: inout [UInt8]) {
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "*"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "_"):
                out.append(byte)
            case 0x20:
                out.append(UInt8(ascii: "+"))
            default:
                out.append(UInt8(ascii: "%"))
                out.append(Self.hexDigits[Int(byte >> 4)])
                out.append(Self.hexDigits[Int(byte & 0x0F)])
            }
        }
    }
}
