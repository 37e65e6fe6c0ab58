import Crypto

/// A canonical string, the text that is hashed: the included pairs sorted by name, each followed by `&`, then
/// `key=` and the key (gateway-protocol.md §2; this is exactly how the gateway's PHP code builds it, so a message
/// whose signed fields are all empty hashes `key=SECRET`).
public struct CanonicalString: Sendable, Hashable {
    /// The pairs that take part, in signing order.
    public let pairs: [FormField]
    public let joiner: PairJoiner

    /// The canonical string with the key replaced by `***`, safe to display and log.
    public var masked: String {
        String(decoding: self.bytes(keyBytes: Array(MerchantKey.mask.utf8)), as: UTF8.self)
    }

    func bytes(keyBytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(
            64 + keyBytes.count + self.pairs.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
        )
        for pair in self.pairs {
            out.append(contentsOf: pair.name.utf8)
            out.append(contentsOf: self.joiner.rawValue.utf8)
            out.append(contentsOf: pair.value.utf8)
            out.append(UInt8(ascii: "&"))
        }
        out.append(contentsOf: "key".utf8)
        out.append(contentsOf: self.joiner.rawValue.utf8)
        out.append(contentsOf: keyBytes)
        return out
    }

    /// The MD5 of the canonical string with the key, as 32 uppercase hexadecimal digits.
    public func signature(key: MerchantKey) -> String {
        var bytes = self.bytes(keyBytes: key.bytes)
        defer {
            // The buffer held the secret; clear it before it is freed.
            for index in bytes.indices { bytes[index] = 0 }
        }
        let digest = Insecure.MD5.hash(data: bytes)
        return Hex.upper(digest)
    }
}

/// Which fields go into a signature.
public enum SignedFieldSelection: String, Sendable, Hashable, CaseIterable {
    /// The fields the document marks as signed.
    case documented
    /// The documented fields and the attach field.
    case documentedWithAttach = "documented+attach"
    /// Every received field except the signature and attach.
    case allReceived = "all-received"
    /// Every received field except the signature.
    case allReceivedWithAttach = "all-received+attach"
}

/// One way of building the canonical string; the dialect in force picks one, the diagnosis tries them all.
public struct SigningRecipe: Sendable, Hashable, CustomStringConvertible {
    public var selection: SignedFieldSelection
    public var emptyValueRule: EmptyValueRule
    public var joiner: PairJoiner

    public init(selection: SignedFieldSelection, emptyValueRule: EmptyValueRule, joiner: PairJoiner = .equals) {
        self.selection = selection
        self.emptyValueRule = emptyValueRule
        self.joiner = joiner
    }

    /// The recipe a dialect uses for a message kind.
    public init(_ dialect: SigningDialect, for kind: GatewayMessageKind) {
        let selection: SignedFieldSelection =
            kind == .notify && dialect.notificationFieldSet == .allReceived ? .allReceived : .documented
        self.init(selection: selection, emptyValueRule: dialect.emptyValueRule, joiner: .equals)
    }

    public var description: String {
        "fields \(self.selection.rawValue), empty rule \(self.emptyValueRule.rawValue), pairs joined with '\(self.joiner.rawValue)'"
    }
}

/// The outcome of checking a received signature. A forged message is an ordinary outcome, not an error.
public enum SignatureVerdict: String, Sendable, Hashable, CaseIterable, Codable {
    /// The signature matches the canonical string under the dialect in force.
    case valid
    /// The signature field is absent or empty.
    case missing
    /// The signature is not 32 hexadecimal digits (or is lowercase while lowercase is not accepted).
    case malformed
    /// The signature is well formed and does not match.
    case mismatch
}

/// Signing and verification with exactly the document's algorithm (gateway-protocol.md §2).
public enum Signer {
    /// Builds the canonical string of `fields` for a message kind under a recipe.
    public static func canonical(
        _ fields: some Sequence<FormField>,
        kind: GatewayMessageKind,
        recipe: SigningRecipe
    ) -> CanonicalString {
        let documented = kind.documentedSignedFields
        // Names from outside are compared as bytes; a handful of them, so a scan beats hashing.
        func isDocumented(_ name: String) -> Bool { documented.contains { $0.hasSameBytes(as: name) } }
        func isSignature(_ name: String) -> Bool { kind.signatureField.hasSameBytes(as: name) }
        func isAttach(_ name: String) -> Bool { kind.attachField?.hasSameBytes(as: name) ?? false }
        var pairs: [FormField] = []
        for field in fields {
            let included: Bool
            switch recipe.selection {
            case .documented:
                included = isDocumented(field.name)
            case .documentedWithAttach:
                included = isDocumented(field.name) || isAttach(field.name)
            case .allReceived:
                included = !isSignature(field.name) && !isAttach(field.name)
            case .allReceivedWithAttach:
                included = !isSignature(field.name)
            }
            if included && !recipe.emptyValueRule.isEmpty(field.value) { pairs.append(field) }
        }
        // ASCII order of the names, compared byte by byte (PHP's ksort on string keys).
        pairs.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        return CanonicalString(pairs: pairs, joiner: recipe.joiner)
    }

    /// The canonical string of `fields` under a dialect.
    public static func canonical(
        _ fields: some Sequence<FormField>,
        kind: GatewayMessageKind,
        dialect: SigningDialect = .document
    ) -> CanonicalString {
        Self.canonical(fields, kind: kind, recipe: SigningRecipe(dialect, for: kind))
    }

    /// Signs `fields` (the signature field itself, if present, is never part of the string).
    public static func sign(
        _ fields: some Sequence<FormField>,
        kind: GatewayMessageKind,
        key: MerchantKey,
        dialect: SigningDialect = .document
    ) -> String {
        Self.canonical(fields, kind: kind, dialect: dialect).signature(key: key)
    }

    /// Verifies the signature carried in `fields` under the dialect, comparing in constant time.
    public static func verify(
        _ fields: some Collection<FormField>,
        kind: GatewayMessageKind,
        key: MerchantKey,
        dialect: SigningDialect = .document
    ) -> SignatureVerdict {
        guard let received = fields.first(where: { $0.name.hasSameBytes(as: kind.signatureField) })?.value,
            !received.isEmpty
        else {
            return .missing
        }
        guard let normalized = Self.normalizedSignature(received, acceptLowercase: dialect.acceptLowercaseHex) else {
            return .malformed
        }
        let expected = Self.canonical(fields, kind: kind, dialect: dialect).signature(key: key)
        return Self.constantTimeEquals(Array(expected.utf8), normalized) ? .valid : .mismatch
    }

    /// The received signature as 32 uppercase hex bytes, or nil when it is not a signature at all.
    static func normalizedSignature(_ text: String, acceptLowercase: Bool) -> [UInt8]? {
        let bytes = Array(text.utf8)
        guard bytes.count == 32 else { return nil }
        var out = [UInt8](repeating: 0, count: 32)
        for (index, byte) in bytes.enumerated() {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "F"):
                out[index] = byte
            case UInt8(ascii: "a")...UInt8(ascii: "f") where acceptLowercase:
                out[index] = byte - 0x20
            default:
                return nil
            }
        }
        return out
    }

    /// Compares two byte strings in time that depends only on their lengths, never on where they differ, so a
    /// forger cannot learn a signature a byte at a time from response times.
    public static func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in 0..<lhs.count { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }
}

/// Hexadecimal text through a lookup table (`String(format:)` costs ~29× more and dominated signing), and the
/// value of one hex digit, for every decoder of hex and percent escapes.
public enum Hex {
    private static let upperDigits: [UInt8] = Array("0123456789ABCDEF".utf8)
    private static let lowerDigits: [UInt8] = Array("0123456789abcdef".utf8)

    static func upper(_ bytes: some Sequence<UInt8>) -> String { Self.encode(bytes, Self.upperDigits) }
    static func lower(_ bytes: some Sequence<UInt8>) -> String { Self.encode(bytes, Self.lowerDigits) }

    private static func encode(_ bytes: some Sequence<UInt8>, _ digits: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes hexadecimal text of either case; nil for anything else.
    static func decode(_ text: String) -> [UInt8]? {
        let bytes = Array(text.utf8)
        guard bytes.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count / 2)
        var index = 0
        while index < bytes.count {
            guard let high = Self.digitValue(bytes[index]), let low = Self.digitValue(bytes[index + 1]) else {
                return nil
            }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    /// The value of one hexadecimal digit of either case, or nil for any other byte.
    public static func digitValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
