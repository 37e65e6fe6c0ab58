import LedgerTesting
import Testing

@testable import LedgerCore

@Suite("Checked UTF-8 text")
struct UTF8TextTests {
    @Test("valid text comes back unchanged", arguments: ["", "ORDER-20261127-0001", "商品名称 ✓", "𝄞 music", "\u{0}nul"])
    func valid(_ text: String) {
        #expect(String(checkedUTF8: Array(text.utf8)) == text)
    }

    @Test(
        "invalid UTF-8 is refused, including repairs that keep the length",
        arguments: [
            [0x80],  // a lone continuation byte
            [0xC0, 0xAF],  // an overlong "/"
            [0xED, 0xA0, 0x80],  // a surrogate
            [0xF0, 0x90, 0x80, 0x41],  // a truncated 4-byte sequence: repairs to U+FFFD "A", four bytes again
            [0xE4, 0xB8],  // truncated at the end
            [0xF4, 0x90, 0x80, 0x80],  // above U+10FFFF
            [0x41, 0xFF, 0x42],
            [0xEF, 0xBF, 0xBD, 0xFF],  // a real U+FFFD, then an invalid byte
        ] as [[UInt8]]
    )
    func invalid(_ bytes: [UInt8]) {
        #expect(String(checkedUTF8: bytes) == nil)
    }

    @Test("agrees with the standard library's validation on random bytes")
    func agreesWithStandardLibrary() {
        var generator = SystemRandomNumberGenerator()
        // Short random strings biased towards multibyte lead and continuation bytes, where the two could differ.
        let alphabet: [UInt8] = [
            0x41, 0x7F, 0x80, 0xBF, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xA0, 0x9F, 0x90,
        ]
        for _ in 0..<20_000 {
            let bytes = (0..<Int.random(in: 0...20, using: &generator)).map { _ in
                alphabet.randomElement(using: &generator)!
            }
            #expect(String(checkedUTF8: bytes) == String(validating: bytes, as: UTF8.self), "\(bytes)")
        }
    }

    @Test("one invalid byte anywhere in ASCII text is found, in the 8-byte words and in the tail")
    func invalidByteInASCII() {
        let ascii = Array("ORDER-20261127-000123".utf8)
        for position in ascii.indices {
            var bytes = ascii
            bytes[position] = 0xFF
            #expect(String(checkedUTF8: bytes) == nil, "position \(position)")
            bytes[position] = 0xC3  // a lead byte whose continuation is missing
            #expect(String(checkedUTF8: bytes) == nil, "position \(position)")
        }
    }
}
