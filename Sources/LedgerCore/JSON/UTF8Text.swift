extension String {
    /// The text of `bytes` when they are valid UTF-8, else nil.
    ///
    /// The standard library's `String(validating:as:)` is generic over the encoding and is not specialized across
    /// modules: every call looks up generic metadata at run time, which made it the largest cost of decoding a
    /// stored event. `String(decoding:as: UTF8.self)` on a buffer is specialized and validates internally, but
    /// repairs what it rejects (each maximal invalid subsequence becomes U+FFFD): so the bytes are valid exactly
    /// when the repaired text has the same bytes as the input.
    public init?(checkedUTF8 bytes: UnsafeRawBufferPointer) {
        let utf8 = bytes.assumingMemoryBound(to: UInt8.self)
        var text = String(decoding: utf8, as: UTF8.self)
        // Compared as two buffers: iterating `String.UTF8View` generically is many times slower.
        let same = text.withUTF8 { decoded in decoded.count == utf8.count && decoded.elementsEqual(utf8) }
        guard same else { return nil }
        self = text
    }

    /// The same for an array.
    public init?(checkedUTF8 bytes: [UInt8]) {
        guard let text = bytes.withUnsafeBytes({ String(checkedUTF8: $0) }) else { return nil }
        self = text
    }
}
