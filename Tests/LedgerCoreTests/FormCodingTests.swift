import LedgerTesting
import Testing

@testable import LedgerCore

struct FormCodingTests {
    func decode(_ text: String, limits: FormLimits = .default) throws(FormDecodingError) -> FormFields {
        try FormCoding.decode(Array(text.utf8), limits: limits)
    }

    /// `+` is a space, percent escapes are decoded, and the raw bytes are kept.
    @Test func decodesPlusAndPercent() throws {
        let fields = try self.decode("a=1+2&b=%E6%94%AF%E4%BB%98&c=%26%3D%2B%25")
        #expect(fields["a"] == "1 2")
        #expect(fields["b"] == "支付")
        #expect(fields["c"] == "&=+%")
        #expect(fields.raw == Array("a=1+2&b=%E6%94%AF%E4%BB%98&c=%26%3D%2B%25".utf8))
        #expect(fields.names == ["a", "b", "c"])
    }

    /// Raw UTF-8 (unencoded Chinese, as deployments send) is accepted as is.
    @Test func acceptsRawUTF8() throws {
        #expect(try self.decode("attach=中文")["attach"] == "中文")
    }

    /// A field without `=` has an empty value; empty pairs between `&` are skipped.
    @Test func emptyValuesAndPairs() throws {
        let fields = try self.decode("&a&b=&&c=3&")
        #expect(fields.fields == [FormField("a", ""), FormField("b", ""), FormField("c", "3")])
        #expect(try self.decode("").count == 0)
    }

    /// A repeated field name is an error, never first- or last-wins.
    @Test func repeatedFieldRefused() {
        #expect(throws: FormDecodingError.repeatedField(name: "amount")) {
            try self.decode("amount=1&orderid=A&amount=2")
        }
        // Names that are equal once decoded are the same field.
        #expect(throws: FormDecodingError.repeatedField(name: "a b")) { try self.decode("a+b=1&a%20b=2") }
    }

    /// Invalid percent escapes are refused with their offset.
    @Test(arguments: [("a=%", 2), ("a=%4", 2), ("a=%G0", 2), ("abc=1&d=%zz", 8), ("%=1", 0)])
    func invalidEscape(_ text: String, _ offset: Int) {
        #expect(throws: FormDecodingError.invalidPercentEscape(offset: offset)) { try self.decode(text) }
    }

    /// Bytes that are not UTF-8 once decoded are refused, raw or escaped.
    @Test func invalidUTF8Refused() {
        #expect(throws: FormDecodingError.invalidUTF8(fieldIndex: 1)) { try self.decode("a=1&b=%FF") }
        #expect(throws: FormDecodingError.invalidUTF8(fieldIndex: 0)) { try FormCoding.decode([0x61, 0x3D, 0xC3]) }
        #expect(throws: FormDecodingError.invalidUTF8(fieldIndex: 0)) { try self.decode("a=%C0%AF") }
    }

    /// An empty field name is refused.
    @Test func emptyNameRefused() {
        #expect(throws: FormDecodingError.emptyName(fieldIndex: 1)) { try self.decode("a=1&=2") }
    }

    /// Body bytes, field count and field bytes are bounded.
    @Test func limits() throws {
        let limits = FormLimits(bodyBytesMax: 20, fieldsMax: 2, fieldBytesMax: 4)
        #expect(throws: FormDecodingError.bodyTooLarge(bytesMax: 20)) {
            try self.decode(String(repeating: "a", count: 21), limits: limits)
        }
        #expect(throws: FormDecodingError.tooManyFields(fieldsMax: 2)) {
            try self.decode("a=1&b=2&c=3", limits: limits)
        }
        #expect(throws: FormDecodingError.fieldTooLong(fieldIndex: 0, bytesMax: 4)) {
            try self.decode("a=12345", limits: limits)
        }
        #expect(try self.decode("a=1234&b=2", limits: limits).count == 2)
        #expect(try self.decode(String(repeating: "a", count: 4), limits: limits).count == 1)
    }

    /// Every error has a full-sentence message.
    @Test func errorMessages() {
        let errors: [FormDecodingError] = [
            .bodyTooLarge(bytesMax: 1), .tooManyFields(fieldsMax: 1), .fieldTooLong(fieldIndex: 0, bytesMax: 1),
            .invalidPercentEscape(offset: 0), .invalidUTF8(fieldIndex: 0), .emptyName(fieldIndex: 0),
            .repeatedField(name: "a"),
        ]
        for error in errors {
            #expect(error.description.hasPrefix("The form body") || error.description.hasPrefix("Field"))
        }
    }

    /// Encoding follows the WHATWG serializer and decodes back to the same fields.
    @Test func encodeRoundTrip() throws {
        let fields = [FormField("a b", "x&y=z+%"), FormField("中", "文 ~*-._"), FormField("e", "")]
        let body = FormCoding.encode(fields)
        #expect(body == "a+b=x%26y%3Dz%2B%25&%E4%B8%AD=%E6%96%87+%7E*-._&e=")
        #expect(try FormCoding.decode(Array(body.utf8)).fields == fields)
    }
}
