import LedgerCore
import LedgerTesting
import PropertyBased
import Testing

/// Parses `text` and returns the error it is refused with, or `nil` if it parses.
private func refusal(_ text: String, limits: JSONLimits = .default) -> JSONParseError? {
    refusal(Array(text.utf8), limits: limits)
}

/// Parses `bytes` and returns the error they are refused with, or `nil` if they parse.
private func refusal(_ bytes: [UInt8], limits: JSONLimits = .default) -> JSONParseError? {
    do {
        _ = try JSONParser.parse(bytes, limits: limits)
        return nil
    } catch {
        return error
    }
}

/// `"` + bytes + `"`, for strings with content that is not valid UTF-8.
private func quoted(_ bytes: [UInt8]) -> [UInt8] {
    [UInt8(ascii: "\"")] + bytes + [UInt8(ascii: "\"")]
}

@Suite("JSON")
struct JSONTests {
    // MARK: Every refusal

    /// Each reason for refusal is produced by a concrete input, at the expected offset.
    @Test(
        arguments: [
            ("", JSONParseError.Reason.empty, 0),
            (" \n\t\r", .empty, 4),
            ("[1,", .unexpectedEnd, 3),
            ("\"abc", .unexpectedEnd, 4),
            ("nul", .unexpectedEnd, 3),
            ("{\"a\"", .unexpectedEnd, 4),
            ("\"\\u12", .unexpectedEnd, 5),
            ("[1,]", .unexpectedByte(UInt8(ascii: "]")), 3),
            ("[1 2]", .unexpectedByte(UInt8(ascii: "2")), 3),
            ("{\"a\" 1}", .unexpectedByte(UInt8(ascii: "1")), 5),
            ("{,}", .unexpectedByte(UInt8(ascii: ",")), 1),
            ("{'a':1}", .unexpectedByte(UInt8(ascii: "'")), 1),
            ("{\"a\":1,}", .unexpectedByte(UInt8(ascii: "}")), 7),
            ("/* c */ 1", .unexpectedByte(UInt8(ascii: "/")), 0),
            ("NaN", .unexpectedByte(UInt8(ascii: "N")), 0),
            ("Infinity", .unexpectedByte(UInt8(ascii: "I")), 0),
            ("tru e", .unexpectedByte(UInt8(ascii: " ")), 3),
            ("[1]\u{0B}", .trailingData, 3),
            ("\u{0C}1", .unexpectedByte(0x0C), 0),
            ("\"\\x\"", .invalidEscape, 1),
            ("\"ab\\U0041\"", .invalidEscape, 3),
            ("\"\\u12G4\"", .invalidUnicodeEscape, 1),
            ("\"\\uD800\"", .loneSurrogate, 1),
            ("\"\\uDC00\"", .loneSurrogate, 1),
            ("\"a\\ud800\\u0041\"", .loneSurrogate, 2),
            ("\"\\uD800\\uD800\"", .loneSurrogate, 1),
            ("\"a\tb\"", .controlCharacterInString, 2),
            ("\"\n\"", .controlCharacterInString, 1),
            ("\"\u{0}\"", .controlCharacterInString, 1),
            ("01", .invalidNumber, 1),
            ("-", .invalidNumber, 1),
            ("1 2", .trailingData, 2),
            ("[1]]", .trailingData, 3),
            ("{} x", .trailingData, 3),
            ("truex", .trailingData, 4),
            ("{\"a\":1,\"a\":2}", .duplicateKey("a"), 7),
            ("0x10", .trailingData, 1),
        ] as [(String, JSONParseError.Reason, Int)]
    )
    func refusedWithReasonAndOffset(text: String, reason: JSONParseError.Reason, offset: Int) {
        #expect(refusal(text) == JSONParseError(reason: reason, offset: offset), "\(text.debugDescription)")
    }

    /// A leading UTF-8 byte order mark is refused as an unexpected byte, as RFC 8259 §8.1 forbids sending one.
    @Test func byteOrderMarkRefused() {
        #expect(
            refusal([0xEF, 0xBB, 0xBF] + Array("{}".utf8)) == JSONParseError(reason: .unexpectedByte(0xEF), offset: 0)
        )
    }

    /// A non-ASCII byte outside a string is invalid UTF-8 when it starts no well-formed sequence.
    @Test func invalidUTF8OutsideStringRefused() {
        #expect(refusal([0xFF]) == JSONParseError(reason: .invalidUTF8, offset: 0))
        #expect(refusal(Array("[1,".utf8) + [0xC0, 0xAF]) == JSONParseError(reason: .invalidUTF8, offset: 3))
        #expect(
            refusal(Array("[1,".utf8) + Array("é".utf8)) == JSONParseError(reason: .unexpectedByte(0xC3), offset: 3)
        )
    }

    /// The size, depth, string and member limits each refuse with their reason and the limit they hit.
    @Test func limitReasons() {
        #expect(
            refusal("[1, 2]", limits: JSONLimits(bytesMax: 5)) == JSONParseError(reason: .tooLarge(max: 5), offset: 5)
        )
        #expect(
            refusal("[[1]]", limits: JSONLimits(depthMax: 1))
                == JSONParseError(reason: .depthExceeded(max: 1), offset: 1)
        )
        #expect(
            refusal("[\"abcd\"]", limits: JSONLimits(stringBytesMax: 3))
                == JSONParseError(reason: .stringTooLong(max: 3), offset: 1)
        )
        #expect(
            refusal("[1, 2, 3]", limits: JSONLimits(membersMax: 2))
                == JSONParseError(reason: .tooManyMembers(max: 2), offset: 7)
        )
    }

    /// Every refusal describes itself in a full sentence that names the offset.
    @Test func descriptionsAreSentences() {
        let reasons: [JSONParseError.Reason] = [
            .empty, .unexpectedEnd, .unexpectedByte(0x2C), .unexpectedByte(0xEF), .invalidUTF8, .invalidEscape,
            .invalidUnicodeEscape, .loneSurrogate, .controlCharacterInString, .invalidNumber, .depthExceeded(max: 32),
            .tooLarge(max: 1024), .stringTooLong(max: 16), .tooManyMembers(max: 10), .duplicateKey("k"), .trailingData,
        ]
        for reason in reasons {
            let description = JSONParseError(reason: reason, offset: 17).description
            #expect(description.hasPrefix("The "), "\(description)")
            #expect(description.hasSuffix("."), "\(description)")
            #expect(description.contains("byte 17"), "\(description)")
        }
        #expect(
            JSONParseError(reason: .duplicateKey("amount"), offset: 41).description
                == "The JSON text repeats the key \"amount\" at byte 41; a repeated key is refused rather than"
                + " first- or last-wins."
        )
        #expect(JSONParseError(reason: .unexpectedByte(0x2C), offset: 3).description.contains("0x2C (\",\")"))
    }

    // MARK: Numbers

    /// Number literals are kept exactly as written, never through floating point.
    @Test(arguments: [
        "1.0000", "-0", "1e3", "10001", "0.1", "1.10", "0", "-0.0", "1E+10", "-1.5e-7", "2e0",
        "123456789012345678901234567890.123456789", "1e400",
    ])
    func numberTextKept(text: String) throws {
        #expect(try JSONParser.parse(text) == .number(text))
        #expect(try JSONParser.parse("[\(text)]") == [.number(text)])
        #expect(try JSONParser.parse("{\"n\":\(text)}")["n"]?.numberText == text)
        #expect(JSONWriter.write(.number(text)) == text)
    }

    /// Numbers outside the RFC 8259 grammar are refused as invalid numbers at the first byte that does not fit.
    @Test(
        arguments: [
            ("01", 1), ("1.", 2), (".5", 0), ("+1", 0), ("-", 1), ("1e", 2), ("1e+", 3), ("-01", 2), ("00", 1),
            ("1.e3", 2), ("1.5.3", 3), ("--1", 1), ("-a", 1), ("1e5e", 3), ("[01]", 2), ("{\"a\":-}", 6),
            ("-Infinity", 1), ("1-2", 1),
        ] as [(String, Int)]
    )
    func invalidNumberRefused(text: String, offset: Int) {
        #expect(refusal(text) == JSONParseError(reason: .invalidNumber, offset: offset), "\(text)")
    }

    /// `NaN` is not a JSON literal.
    @Test func notANumberRefused() {
        #expect(refusal("NaN") != nil)
        #expect(refusal("[NaN]") == JSONParseError(reason: .unexpectedByte(UInt8(ascii: "N")), offset: 1))
    }

    /// `int64Value` gives only integer literals within range.
    @Test func int64Value() {
        #expect(JSONValue.number("10001").int64Value == 10001)
        #expect(JSONValue.number("-0").int64Value == 0)
        #expect(JSONValue.number("9223372036854775807").int64Value == Int64.max)
        #expect(JSONValue.number("-9223372036854775808").int64Value == Int64.min)
        #expect(JSONValue.number("9223372036854775808").int64Value == nil)
        #expect(JSONValue.number("1.0").int64Value == nil)
        #expect(JSONValue.number("1e3").int64Value == nil)
        #expect(JSONValue.number("007").int64Value == nil)
        #expect(JSONValue.string("1").int64Value == nil)
    }

    /// `init(numberText:)` accepts exactly the grammar, and equality compares number text, not magnitude.
    @Test func numberTextValidation() {
        #expect(JSONValue(numberText: "1.10") == .number("1.10"))
        #expect(JSONValue(numberText: "1.") == nil)
        #expect(JSONValue(numberText: " 1") == nil)
        #expect(JSONValue(numberText: "") == nil)
        #expect(JSONValue.number("1.10") != .number("1.1"))
        let literal: JSONValue = 10001
        #expect(literal == .number("10001"))
    }

    // MARK: Strings

    /// Every short escape decodes to its character.
    @Test func shortEscapes() throws {
        #expect(try JSONParser.parse(#""\"\\\/\b\f\n\r\t""#) == .string("\"\\/\u{8}\u{C}\n\r\t"))
        #expect(try JSONParser.parse(#""a\u0000b\u001F\u007f""#) == .string("a\u{0}b\u{1F}\u{7F}"))
    }

    /// Surrogate pairs in either case decode to one scalar.
    @Test func surrogatePairs() throws {
        #expect(try JSONParser.parse(#""\ud83d\ude00""#) == .string("😀"))
        #expect(try JSONParser.parse(#""x\uD834\uDD1Ey""#) == .string("x𝄞y"))
        #expect(try JSONParser.parse("\"😀\"") == .string("😀"))
    }

    /// Chinese text reads the same raw and escaped, and keys work in both forms.
    @Test func chineseText() throws {
        #expect(try JSONParser.parse("\"订单已支付\"") == .string("订单已支付"))
        #expect(try JSONParser.parse(#""\u8ba2\u5355\u5DF2\u652F\u4ed8""#) == .string("订单已支付"))
        let object = try JSONParser.parse(#"{"商户":"\u5546\u6237"}"#)
        #expect(object["商户"] == "商户")
    }

    /// Raw DEL and every other byte from 0x20 up are allowed unescaped.
    @Test func rawPrintableBytes() throws {
        #expect(try JSONParser.parse("\"\u{7F} ~/\"") == .string("\u{7F} ~/"))
    }

    /// Ill-formed UTF-8 in a string is refused at the first byte of the bad sequence.
    @Test(
        arguments: [
            ([0xFF], 1),
            ([0x61, 0xC0, 0xAF], 2),  // an overlong "/"
            ([0xE0, 0x80, 0xAF], 1),  // an overlong "/" in three bytes
            ([0xED, 0xA0, 0x80], 1),  // a UTF-16 surrogate encoded as UTF-8 (CESU-8)
            ([0xF4, 0x90, 0x80, 0x80], 1),  // U+110000, past the last scalar
            ([0xE4, 0xB8], 1),  // a truncated sequence, before the closing quote
            ([0x80], 1),  // a lone continuation byte
            ([0xF8, 0x88, 0x80, 0x80, 0x80], 1),
        ] as [([UInt8], Int)]
    )
    func invalidUTF8InStringRefused(content: [UInt8], offset: Int) {
        #expect(refusal(quoted(content)) == JSONParseError(reason: .invalidUTF8, offset: offset))
    }

    /// A sequence truncated by the end of the input is refused as invalid UTF-8.
    @Test func truncatedUTF8AtEnd() {
        #expect(refusal([UInt8(ascii: "\""), 0xE4, 0xB8]) == JSONParseError(reason: .invalidUTF8, offset: 1))
    }

    /// The boundaries of well-formed UTF-8 are accepted.
    @Test func wellFormedUTF8Boundaries() throws {
        let text = "\u{80}\u{7FF}\u{800}\u{D7FF}\u{E000}\u{FFFF}\u{10000}\u{10FFFF}"
        #expect(try JSONParser.parse(quoted(Array(text.utf8))) == .string(text))
    }

    // MARK: Objects and limits

    /// A repeated key is refused at any depth, also when one of the two is spelled with an escape.
    @Test func duplicateKeysRefusedAtAnyDepth() throws {
        #expect(refusal(#"[{"x":{"k":1,"k":1}}]"#) == JSONParseError(reason: .duplicateKey("k"), offset: 13))
        #expect(refusal(#"{"a":1,"\u0061":2}"#) == JSONParseError(reason: .duplicateKey("a"), offset: 7))
        #expect(refusal(#"{"a":1,"b":{},"a":[]}"#)?.reason == .duplicateKey("a"))
        // The same key in different objects is not a repeat.
        #expect(try JSONParser.parse(#"{"a":{"a":1},"b":[{"a":2},{"a":3}]}"#)["a"]?["a"] == 1)
    }

    /// Keys that differ only in Unicode normalization are refused as repeated, since Swift treats them as equal.
    @Test func canonicallyEquivalentKeysRefused() {
        #expect(refusal("{\"\u{E9}\":1,\"e\u{301}\":2}")?.reason == .duplicateKey("e\u{301}"))
    }

    /// A member is looked up by its key's bytes: a key spelled with U+212A KELVIN SIGN, or decomposed, does not answer
    /// for the ASCII or precomposed name a reader asks for.
    @Test func keysLookedUpByBytes() throws {
        let object = try JSONParser.parse("{\"\u{212A}ind\":1,\"e\u{301}\":2,\"Key\":3}")
        #expect(object["Kind"] == nil)
        #expect(object["\u{212A}ind"] == 1)
        #expect(object["\u{E9}"] == nil)
        #expect(object["e\u{301}"] == 2)
        #expect(object["Key"] == 3)
    }

    /// Nesting of exactly `depthMax` is accepted and one more level is refused at the bracket that opens it.
    @Test func depthLimitBoundary() throws {
        let limits = JSONLimits.default
        #expect(limits.depthMax == 32)
        let deepest = String(repeating: "[", count: 32) + String(repeating: "]", count: 32)
        #expect(throws: Never.self) { try JSONParser.parse(deepest) }
        let tooDeep = String(repeating: "[", count: 33) + String(repeating: "]", count: 33)
        #expect(refusal(tooDeep) == JSONParseError(reason: .depthExceeded(max: 32), offset: 32))

        let objects = String(repeating: #"{"a":"#, count: 3) + "1" + String(repeating: "}", count: 3)
        #expect(throws: Never.self) { try JSONParser.parse(objects, limits: JSONLimits(depthMax: 3)) }
        #expect(
            refusal(objects, limits: JSONLimits(depthMax: 2))
                == JSONParseError(reason: .depthExceeded(max: 2), offset: 10)
        )
        // Empty containers count as a level too.
        #expect(
            refusal("[{}]", limits: JSONLimits(depthMax: 1))
                == JSONParseError(reason: .depthExceeded(max: 1), offset: 1)
        )
        #expect(refusal("[]", limits: JSONLimits(depthMax: 0))?.reason == .depthExceeded(max: 0))
        #expect(try JSONParser.parse("7", limits: JSONLimits(depthMax: 0)) == 7)
    }

    /// 100,000 opening brackets are refused as too deep, without exhausting the stack.
    @Test func deepNestingAttack() {
        #expect(
            refusal(String(repeating: "[", count: 100_000))
                == JSONParseError(reason: .depthExceeded(max: 32), offset: 32)
        )
        let objects = String(repeating: #"{"a":"#, count: 100_000)
        #expect(refusal(objects) == JSONParseError(reason: .depthExceeded(max: 32), offset: 32 * 5))
        let unlimited = JSONLimits(bytesMax: 1 << 22, depthMax: .max)
        #expect(refusal(String(repeating: "[", count: 100_000), limits: unlimited)?.reason == .unexpectedEnd)
    }

    /// A text of exactly `bytesMax` bytes parses, one byte more is refused before parsing.
    @Test func bytesMaxBoundary() throws {
        let limits = JSONLimits(bytesMax: 7)
        #expect(try JSONParser.parse("[1,2,3]", limits: limits) == [1, 2, 3])
        #expect(refusal("[1,2,3] ", limits: limits) == JSONParseError(reason: .tooLarge(max: 7), offset: 7))
        // Refused for size even though it is not JSON at all: the size is checked first.
        #expect(refusal("xxxxxxxx", limits: limits)?.reason == .tooLarge(max: 7))
    }

    /// A string or key of exactly `stringBytesMax` decoded bytes parses, one more is refused at its opening quote.
    @Test func stringBytesMaxBoundary() throws {
        let limits = JSONLimits(stringBytesMax: 4)
        #expect(try JSONParser.parse(#""abcd""#, limits: limits) == "abcd")
        #expect(refusal(#" "abcde""#, limits: limits) == JSONParseError(reason: .stringTooLong(max: 4), offset: 1))
        // Escapes count as the bytes they decode to: two "é" are four bytes, six escapes of "a" are six.
        #expect(try JSONParser.parse(#""\u00e9\u00e9""#, limits: limits) == "éé")
        #expect(refusal(#""\u00e9\u00e9a""#, limits: limits)?.reason == .stringTooLong(max: 4))
        #expect(try JSONParser.parse("\"😀\"", limits: limits) == "😀")
        #expect(refusal("\"a😀\"", limits: limits)?.reason == .stringTooLong(max: 4))
        #expect(try JSONParser.parse(#"{"abcd":1}"#, limits: limits)["abcd"] == 1)
        #expect(
            refusal(#"{"a":1,"abcde":1}"#, limits: limits) == JSONParseError(reason: .stringTooLong(max: 4), offset: 7)
        )
    }

    /// An array or object of exactly `membersMax` elements parses, one more is refused where that element starts.
    @Test func membersMaxBoundary() throws {
        let limits = JSONLimits(membersMax: 3)
        #expect(try JSONParser.parse("[1,2,3]", limits: limits) == [1, 2, 3])
        #expect(refusal("[1,2,3, 4]", limits: limits) == JSONParseError(reason: .tooManyMembers(max: 3), offset: 8))
        #expect(try JSONParser.parse(#"{"a":1,"b":2,"c":3}"#, limits: limits).objectValue?.count == 3)
        #expect(
            refusal(#"{"a":1,"b":2,"c":3,"d":4}"#, limits: limits)
                == JSONParseError(reason: .tooManyMembers(max: 3), offset: 19)
        )
        #expect(
            refusal("[1]", limits: JSONLimits(membersMax: 0))
                == JSONParseError(reason: .tooManyMembers(max: 0), offset: 1)
        )
        #expect(try JSONParser.parse("[]", limits: JSONLimits(membersMax: 0)) == [])
    }

    /// Members keep their order, lookups find them, and setting through the subscript replaces, appends or removes.
    @Test func objectMembers() throws {
        let value = try JSONParser.parse(#" { "b" : 1 , "a" : [ true , false , null ] , "c" : "x" } "#)
        var object = try #require(value.objectValue)
        #expect(object.members.map(\.key) == ["b", "a", "c"])
        #expect(object["a"] == [true, false, nil])
        #expect(value["c"]?.stringValue == "x")
        #expect(value["missing"] == nil)
        #expect(JSONValue.array([])["a"] == nil)
        object["a"] = "replaced"
        object["d"] = 4
        object["b"] = nil
        #expect(object.map(\.key) == ["a", "c", "d"])
        #expect(JSONWriter.write(.object(object)) == #"{"a":"replaced","c":"x","d":4}"#)
        #expect(object.count == 3)
    }

    /// Object equality ignores member order, and equal objects hash alike.
    @Test func objectEqualityIgnoresOrder() throws {
        let forward = try JSONParser.parse(#"{"a":1,"b":[1,2]}"#)
        let backward = try JSONParser.parse(#"{"b":[1,2],"a":1}"#)
        #expect(forward == backward)
        #expect(forward.hashValue == backward.hashValue)
        #expect(forward != (try JSONParser.parse(#"{"a":1,"b":[2,1]}"#)))
        #expect(forward != (try JSONParser.parse(#"{"a":1}"#)))
        // Large objects take the indexed path.
        let keys = (0..<40).map { "k\($0)" }
        let large = JSONObject(keys.map { ($0, JSONValue.string($0)) })
        let reversed = JSONObject(keys.reversed().map { ($0, JSONValue.string($0)) })
        #expect(large == reversed)
        #expect(Set([JSONValue.object(large), .object(reversed)]).count == 1)
    }

    /// Accessors give a value only for their own kind.
    @Test func accessors() {
        let string: JSONValue = "s"
        #expect(string.stringValue == "s" && string.boolValue == nil && string.numberText == nil)
        #expect(JSONValue.bool(false).boolValue == false)
        #expect(JSONValue.array([1]).arrayValue == [1])
        #expect(JSONValue.null.objectValue == nil && JSONValue.null.isNull)
        let object: JSONValue = ["k": nil]
        #expect(object.objectValue?.count == 1 && object["k"] == .null)
    }

    /// The byte-buffer and the non-contiguous collection paths give the same result as a String.
    @Test func parsesAnyCollectionOfBytes() throws {
        let text = #"{"订单":[1.10,"x"]}"#
        let expected = try JSONParser.parse(text)
        #expect(try JSONParser.parse(Array(text.utf8)) == expected)
        #expect(try JSONParser.parse(Array(text.utf8)[...]) == expected)
        #expect(try JSONParser.parse(text.utf8.lazy.map { $0 }) == expected)
        #expect(try JSONParser.parse(AnyCollection(text.utf8)) == expected)
    }

    // MARK: Writer

    /// The writer escapes quotes, backslashes and control characters, and leaves `/` and non-ASCII raw.
    @Test func writerEscaping() {
        let value = JSONValue.string("a\"b\\c/d\u{8}\u{C}\n\r\t\u{0}\u{1}\u{1B}\u{1F}\u{7F} é订😀")
        #expect(JSONWriter.write(value) == #""a\"b\\c/d\b\f\n\r\t\u0000\u0001\u001b\u001f"# + "\u{7F} é订😀\"")
        var bytes: [UInt8] = Array("prefix ".utf8)
        JSONWriter.write(["k": "é"], into: &bytes)
        #expect(bytes == Array(#"prefix {"k":"é"}"#.utf8))
    }

    /// Compact output has no whitespace and keeps member order.
    @Test func compactOutput() {
        let value: JSONValue = ["z": 1, "a": [true, false, nil, .number("1.10")], "m": [:], "e": []]
        #expect(JSONWriter.write(value) == #"{"z":1,"a":[true,false,null,1.10],"m":{},"e":[]}"#)
        #expect(value.description == JSONWriter.write(value))
        // Describing an invalid number shows it rather than stopping the program as the writer does.
        #expect(JSONValue.array([.number("1,5")]).description == "[1,5]")
    }

    /// `sortedKeys` orders keys by their UTF-8 bytes at every depth, not by Swift's `String` order.
    @Test func sortedKeysByBytes() {
        // "e" + U+0301 sorts before "f" by bytes, but after it in Swift, which compares it as the precomposed "é".
        let value: JSONValue = [
            "f": 1, "e\u{301}": 2, "b": ["y": 1, "x": [["d": 1, "c": 2]]], "B": 3, "aa": 4, "a": 5, "\u{7F}": 6, "ü": 7,
            "😀": 8, "": 9,
        ]
        #expect("f" < "e\u{301}")
        let expected =
            #"{"":9,"B":3,"a":5,"aa":4,"b":{"x":[{"c":2,"d":1}],"y":1},"e"# + "\u{301}" + #"":2,"f":1,"#
            + "\"\u{7F}\":6,"
            + #""ü":7,"😀":8}"#
        #expect(JSONWriter.write(value, options: .sortedKeys) == expected)
    }

    /// Pretty output indents by two spaces, is valid JSON and reads back as the same value.
    @Test func prettyOutput() throws {
        let value: JSONValue = [
            "order": ["id": "A1", "amount": .number("1.10"), "tags": ["x", 2]], "empty": [], "o": [:],
        ]
        let pretty = JSONWriter.write(value, options: [.prettyPrinted])
        #expect(
            pretty == """
                {
                  "order": {
                    "id": "A1",
                    "amount": 1.10,
                    "tags": [
                      "x",
                      2
                    ]
                  },
                  "empty": [],
                  "o": {}
                }
                """
        )
        #expect(try JSONParser.parse(pretty) == value)
        #expect(try JSONParser.parse(JSONWriter.write(value, options: [.prettyPrinted, .sortedKeys])) == value)
    }

    /// Hand-written values read back equal from the writer's output, in every layout, and rewrite to the same bytes.
    @Test func roundTrip() throws {
        let values: [JSONValue] = [
            nil, true, false, 0, -1, .number("-0"), .number("1.0000"), .number("1e3"), .number("-1.5E-7"), "", "é",
            "\u{0}\u{1F}\"\\/", "订单 😀", [], [:], [[[]]], [1, "two", [3], ["four": 4]],
            ["amount": .number("1.10"), "member": 10001, "memo": "a\nb", "items": [["sku": "X", "qty": 2]]],
            ["e\u{301}": 1, "f": ["\u{7F}": nil]],
        ]
        let layouts: [JSONWriter.Options] = [[], .sortedKeys, .prettyPrinted, [.sortedKeys, .prettyPrinted]]
        for value in values {
            for options in layouts {
                let text = JSONWriter.write(value, options: options)
                let parsed = try JSONParser.parse(text)
                #expect(parsed == value, "\(text)")
                #expect(JSONWriter.write(parsed, options: options) == text)
            }
        }
    }

    /// For generated values, parsing the written text gives back the value and the same text again.
    @Test func roundTripProperty() async {
        await propertyCheck(count: 300, input: generatedValues) { value in
            for options: JSONWriter.Options in [[], .sortedKeys, .prettyPrinted] {
                let text = JSONWriter.write(value, options: options)
                // propertyCheck discards errors thrown by its body, so a refusal is recorded here as an issue.
                do {
                    let parsed = try JSONParser.parse(text)
                    #expect(parsed == value, "\(text)")
                    #expect(JSONWriter.write(parsed, options: options) == text)
                } catch {
                    Issue.record("\(error) Text: \(text)")
                }
            }
        }
    }
}

// MARK: - Generated values

/// Random JSON values without shrinking; a failure reports its seed, which reproduces it.
private let generatedValues = Generator<JSONValue, Shrink.None<JSONValue>>(run: { rng in
    randomValue(depth: 4, using: &rng)
})

/// A random JSON value nested at most `depth` levels, drawing on the characters that stress escaping and UTF-8.
private func randomValue(depth: Int, using rng: inout any SeededRandomNumberGenerator) -> JSONValue {
    let kind = Int.random(in: 0..<(depth > 0 ? 7 : 5), using: &rng)
    switch kind {
    case 0:
        return .null
    case 1:
        return .bool(Bool.random(using: &rng))
    case 2:
        return .number(randomNumberText(using: &rng))
    case 3, 4:
        return .string(randomString(using: &rng))
    case 5:
        let count = Int.random(in: 0...4, using: &rng)
        return .array((0..<count).map { _ in randomValue(depth: depth - 1, using: &rng) })
    default:
        let count = Int.random(in: 0...4, using: &rng)
        var object = JSONObject([])
        for _ in 0..<count {
            // Setting through the subscript keeps keys unique even when the generator repeats one.
            object[randomString(using: &rng)] = randomValue(depth: depth - 1, using: &rng)
        }
        return .object(object)
    }
}

/// Text matching the RFC 8259 number grammar, with every optional part sometimes present.
private func randomNumberText(using rng: inout any SeededRandomNumberGenerator) -> String {
    func digits(_ count: ClosedRange<Int>) -> String {
        String((0..<Int.random(in: count, using: &rng)).map { _ in "0123456789".randomElement(using: &rng)! })
    }
    var text = Bool.random(using: &rng) ? "-" : ""
    text += Bool.random(using: &rng) ? "0" : String("123456789".randomElement(using: &rng)!) + digits(0...20)
    if Bool.random(using: &rng) {
        text += "." + digits(1...6)
    }
    if Int.random(in: 0..<4, using: &rng) == 0 {
        text += ["e", "E", "e+", "e-", "E-"].randomElement(using: &rng)! + digits(1...3)
    }
    return text
}

/// A short string mixing ASCII, characters that must be escaped, multi-byte UTF-8 and combining marks.
private func randomString(using rng: inout any SeededRandomNumberGenerator) -> String {
    let pieces: [String] = [
        "a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\u{0}", "\u{1F}", "\u{7F}", "é", "e\u{301}", "订", "单",
        "😀", "\u{2028}", "\u{FEFF}", "\u{10FFFF}", "amount",
    ]
    let count = Int.random(in: 0...6, using: &rng)
    return (0..<count).map { _ in pieces.randomElement(using: &rng)! }.joined()
}
