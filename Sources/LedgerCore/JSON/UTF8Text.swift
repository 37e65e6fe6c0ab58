extension String {
    /// Whether the two texts are the same bytes: how text from outside is compared. String's `==` compares
    /// canonical equivalence, so it would take `cafe` + U+0301 for `café` and U+212A KELVIN SIGN for `K`; and
    /// iterating `String.UTF8View` generically is many times slower than comparing the two contiguous buffers, which
    /// native strings have.
    @inlinable
    public func hasSameBytes(as other: String) -> Bool {
        guard self.utf8.count == other.utf8.count else { return false }
        let compared = self.utf8.withContiguousStorageIfAvailable { mine in
            other.utf8.withContiguousStorageIfAvailable { theirs in
                mine.elementsEqual(theirs)
            }
        }
        guard let same = compared ?? nil else { return self.utf8.elementsEqual(other.utf8) }
        return same
    }

    /// The text of `bytes` when they are valid UTF-8, else nil.
    ///
    /// The standard library's `String(validating:as:)` is generic over the encoding and is not specialized across
    /// modules: every call looks up generic metadata at run time, which made it the largest cost of decoding a
    /// stored event. `String(decoding:as: UTF8.self)` on a buffer is specialized and validates internally, but
    /// repairs what it rejects (each maximal invalid subsequence becomes U+FFFD): so the bytes are valid exactly
    /// when the repaired text has the same bytes as the input.
    public init?(checkedUTF8 bytes: UnsafeRawBufferPointer) {
        let utf8 = bytes.assumingMemoryBound(to: UInt8.self)
        // ASCII (nearly every stored field) is valid UTF-8: nothing to compare.
        if Self.isASCII(bytes) {
            self = String(decoding: utf8, as: UTF8.self)
            return
        }
        var text = String(decoding: utf8, as: UTF8.self)
        // Compared as two buffers: iterating `String.UTF8View` generically is many times slower.
        let same = text.withUTF8 { decoded in decoded.count == utf8.count && decoded.elementsEqual(utf8) }
        guard same else { return nil }
        self = text
    }

    /// Whether every byte is below 0x80, eight bytes at a time.
    @inline(__always)
    static func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var bits: UInt64 = 0
        var index = 0
        while index + 8 <= bytes.count {
            bits |= bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            index += 8
        }
        while index < bytes.count {
            bits |= UInt64(bytes[index])
            index += 1
        }
        return bits & 0x8080_8080_8080_8080 == 0
    }

    /// The same for an array.
    public init?(checkedUTF8 bytes: [UInt8]) {
        guard let text = bytes.withUnsafeBytes({ String(checkedUTF8: $0) }) else { return nil }
        self = text
    }
}
