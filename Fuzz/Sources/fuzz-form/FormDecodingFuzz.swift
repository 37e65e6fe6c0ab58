import FuzzSupport
import LedgerCore

/// The strict form decoder (`FormCoding.decode`) on arbitrary bytes.
///
/// Oracles: an independent reference decoder agrees on accept/refuse and on every decoded byte; what decodes
/// re-encodes and decodes to the same bytes, and encoding is a fixed point; what decodes under tight limits decodes
/// the same under the defaults; a refusal's offset or index points where it says.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFormDecoding(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FormDecodingOracle.check(fuzzInput(data, size))
    return 0
}

enum FormDecodingOracle {
    static let unlimited = FormLimits(bodyBytesMax: .max, fieldsMax: .max, fieldBytesMax: .max)
    static let tight = FormLimits(bodyBytesMax: 256, fieldsMax: 3, fieldBytesMax: 12)

    static func decode(_ body: [UInt8], _ limits: FormLimits) -> Result<FormFields, FormDecodingError> {
        Result { () throws(FormDecodingError) in try FormCoding.decode(body, limits: limits) }
    }

    static func check(_ body: [UInt8]) {
        let decoded = Self.decode(body, .default)
        let reference = ReferenceFormDecoder.decode(body, limits: .default)
        switch (decoded, reference) {
        case (.success(let fields), .some(let expected)):
            fuzzCheck(fields.raw == body, "raw bytes differ from the body")
            fuzzCheck(
                fields.fields.map { [utf8Bytes($0.name), utf8Bytes($0.value)] } == expected,
                "decoded fields differ from the reference decoder"
            )
            Self.checkRoundTrip(fields)
        case (.failure(let error), .none):
            Self.checkRefusal(error, body: body)
        case (.success, .none):
            fuzzCheck(false, "the decoder accepted a body the reference refuses")
        case (.failure(let error), .some):
            fuzzCheck(false, "the decoder refused a body the reference accepts: \(error)")
        }
        // Tighter limits only ever refuse more: an accepted body means the same under the defaults.
        if case .success(let small) = Self.decode(body, Self.tight) {
            fuzzCheck(decoded == .success(small), "a body accepted under tight limits decodes differently by default")
        }
    }

    static func checkRoundTrip(_ fields: FormFields) {
        let encoded = FormCoding.encode(fields)
        let isSafe = encoded.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "*"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "_"), UInt8(ascii: "+"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "="):
                return true
            default:
                return false
            }
        }
        fuzzCheck(isSafe, "the encoder wrote a byte outside the form-urlencoded set")
        switch Self.decode(Array(encoded.utf8), Self.unlimited) {
        case .success(let again):
            fuzzCheck(
                again.fields.map { [utf8Bytes($0.name), utf8Bytes($0.value)] }
                    == fields.fields.map { [utf8Bytes($0.name), utf8Bytes($0.value)] },
                "decode(encode(fields)) differs from fields"
            )
            fuzzCheck(FormCoding.encode(again) == encoded, "encoding is not a fixed point")
        case .failure(let error):
            fuzzCheck(false, "the encoder's output does not decode: \(error)")
        }
    }

    static func checkRefusal(_ error: FormDecodingError, body: [UInt8]) {
        fuzzCheck(!error.description.isEmpty, "an empty refusal message")
        switch error {
        case .invalidPercentEscape(let offset):
            fuzzCheck(
                offset >= 0 && offset < body.count && body[offset] == UInt8(ascii: "%"),
                "the escape offset is not a '%'"
            )
        case .fieldTooLong(let index, _), .invalidUTF8(let index), .emptyName(let index):
            fuzzCheck(index >= 0 && index < FormLimits.default.fieldsMax, "a field index out of range")
        case .bodyTooLarge, .tooManyFields, .repeatedField:
            break
        }
    }
}

/// A second, deliberately plain reading of the same rules (WHATWG form-urlencoded, made strict): split at `&`, skip
/// empty parts, split each at its first `=`, `+` is a space, `%` takes exactly two hex digits, every name and value
/// must be UTF-8 and within the byte limit, names non-empty and unique, at most `fieldsMax` fields.
enum ReferenceFormDecoder {
    static func decode(_ body: [UInt8], limits: FormLimits) -> [[[UInt8]]]? {
        guard body.count <= limits.bodyBytesMax else { return nil }
        var result: [[[UInt8]]] = []
        var names: [[UInt8]] = []
        for part in body.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            guard result.count < limits.fieldsMax else { return nil }
            let name: ArraySlice<UInt8>
            let value: ArraySlice<UInt8>
            if let equals = part.firstIndex(of: UInt8(ascii: "=")) {
                name = part[..<equals]
                value = part[(equals + 1)...]
            } else {
                name = part
                value = []
            }
            guard let decodedName = Self.component(name, limits: limits),
                let decodedValue = Self.component(value, limits: limits)
            else { return nil }
            guard !decodedName.isEmpty else { return nil }
            // Names are unique as Swift strings (canonical equivalence), which is what the decoder promises.
            let text = String(decoding: decodedName, as: UTF8.self)
            guard !names.contains(where: { String(decoding: $0, as: UTF8.self) == text }) else { return nil }
            names.append(decodedName)
            result.append([decodedName, decodedValue])
        }
        return result
    }

    static func component(_ bytes: ArraySlice<UInt8>, limits: FormLimits) -> [UInt8]? {
        var out: [UInt8] = []
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+") {
                out.append(0x20)
                index += 1
            } else if byte == UInt8(ascii: "%") {
                guard bytes.endIndex - index >= 3, let high = Self.hex(bytes[index + 1]),
                    let low = Self.hex(bytes[index + 2])
                else { return nil }
                out.append(high * 16 + low)
                index += 3
            } else {
                out.append(byte)
                index += 1
            }
        }
        guard out.count <= limits.fieldBytesMax, String(validating: out, as: UTF8.self) != nil else { return nil }
        return out
    }

    static let hexDigits = Array("0123456789abcdef".utf8)
    static let upperHexDigits = Array("0123456789ABCDEF".utf8)

    static func hex(_ byte: UInt8) -> UInt8? {
        if let digit = Self.hexDigits.firstIndex(of: byte) ?? Self.upperHexDigits.firstIndex(of: byte) {
            return UInt8(digit)
        }
        return nil
    }
}
