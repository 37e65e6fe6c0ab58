// A JSON value that keeps number text exactly as written, so amounts and ids never pass through floating point.
// The gateway signs the decimal text it sends ("1.10", "10001"); a Double would turn "1.10" into 1.1 and break the
// signature, so `.number` carries the literal text and callers convert it with the precision they need.

/// One JSON value as defined by RFC 8259.
///
/// Equality follows JSON's meaning rather than its spelling where the two differ only in ways JSON itself ignores:
/// object member order does not matter (RFC 8259 §4 calls an object unordered), while number text does, because
/// `1.10` and `1.1` are different amounts to a signer. Strings compare as Swift compares them.
public enum JSONValue: Sendable, Hashable {
    /// The literal `null`.
    case null
    /// The literal `true` or `false`.
    case bool(Bool)
    /// A number, as its literal text exactly as written (for example `"1.10"`, `"-0"`, `"1e3"`).
    ///
    /// The parser only produces text that matches the RFC 8259 number grammar. The writer emits the text verbatim and
    /// stops the program if it does not match, so build numbers from outside text with ``init(numberText:)``.
    case number(String)
    /// A string.
    case string(String)
    /// An array, in order.
    case array([JSONValue])
    /// An object with unique keys, in the order they were written.
    case object(JSONObject)
}

// MARK: - Accessors

extension JSONValue {
    /// A number from its literal text, or `nil` when the text does not follow the RFC 8259 number grammar
    /// (for example `"01"`, `"1."`, `"+1"` or `"NaN"`).
    public init?(numberText: String) {
        guard JSONNumberGrammar.classify(numberText) != nil else { return nil }
        self = .number(numberText)
    }

    /// The string, if this value is a string.
    public var stringValue: String? {
        if case .string(let string) = self { return string }
        return nil
    }

    /// The Boolean, if this value is `true` or `false`.
    public var boolValue: Bool? {
        if case .bool(let bool) = self { return bool }
        return nil
    }

    /// The literal text of the number, if this value is a number.
    public var numberText: String? {
        if case .number(let text) = self { return text }
        return nil
    }

    /// The object, if this value is an object.
    public var objectValue: JSONObject? {
        if case .object(let object) = self { return object }
        return nil
    }

    /// The elements, if this value is an array.
    public var arrayValue: [JSONValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// Whether this value is `null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The member named `key`, or `nil` when this value is not an object or has no such member.
    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    /// The number as an `Int64`, only when it is written as an integer (no fraction, no exponent) that fits.
    ///
    /// `1e3` and `1.0` give `nil` even though their value is integral: an id or an amount in minor units written that
    /// way is not what the gateway documents, and accepting it would let two spellings sign differently.
    public var int64Value: Int64? {
        guard case .number(let text) = self, JSONNumberGrammar.classify(text) == .integer else { return nil }
        return Int64(text)
    }
}

// MARK: - Literals

// There is deliberately no ExpressibleByFloatLiteral: a Swift float literal is already binary floating point, which is
// exactly what `.number` exists to avoid. Write `.number("1.10")` instead.

extension JSONValue: ExpressibleByNilLiteral {
    /// `nil` is JSON `null`.
    public init(nilLiteral: ()) {
        self = .null
    }
}

extension JSONValue: ExpressibleByBooleanLiteral {
    /// `true` and `false` are the JSON literals.
    public init(booleanLiteral value: Bool) {
        self = .bool(value)
    }
}

extension JSONValue: ExpressibleByIntegerLiteral {
    /// An integer literal becomes a number with its decimal text, so `10001` is `.number("10001")`.
    public init(integerLiteral value: Int) {
        self = .number(String(value))
    }
}

extension JSONValue: ExpressibleByStringLiteral {
    /// A string literal is a JSON string.
    public init(stringLiteral value: String) {
        self = .string(value)
    }
}

extension JSONValue: ExpressibleByArrayLiteral {
    /// An array literal is a JSON array.
    public init(arrayLiteral elements: JSONValue...) {
        self = .array(elements)
    }
}

extension JSONValue: ExpressibleByDictionaryLiteral {
    /// A dictionary literal is a JSON object keeping the literal's order; repeating a key stops the program.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements))
    }
}

extension JSONValue: CustomStringConvertible {
    /// The compact JSON text of this value, so logs and test failures show JSON rather than enum cases.
    ///
    /// Unlike ``JSONWriter``, this writes a `.number` whose text is not a valid number as it is, since describing a
    /// value is often how a bad one gets noticed.
    public var description: String {
        JSONWriter.describe(self)
    }
}

// MARK: - JSONObject

/// The members of a JSON object: unique keys, kept in the order they were written.
///
/// Keys are unique as Swift compares strings, which treats canonically equivalent text (a precomposed "é" and "e"
/// followed by a combining accent) as equal. The parser therefore refuses such a pair as a repeated key: a consumer
/// that normalizes would otherwise see one key twice, which is the ambiguity duplicate keys are refused for.
///
/// Lookups scan the members, which is fastest for the small objects the gateway sends; equality of large objects
/// builds an index so it stays linear.
public struct JSONObject: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    /// The members in order. Read-only from outside so the keys stay unique; change members with the subscript.
    public private(set) var members: [(key: String, value: JSONValue)]

    /// An object with these members in this order.
    ///
    /// - Precondition: no key appears twice. A repeated key is a programming error here; text from outside goes
    ///   through ``JSONParser``, which reports it as ``JSONParseError/Reason/duplicateKey(_:)``.
    public init(_ members: [(String, JSONValue)]) {
        var seen = Set<String>(minimumCapacity: members.count)
        for (key, _) in members {
            precondition(seen.insert(key).inserted, "JSONObject: the key \(key.debugDescription) appears twice")
        }
        self.members = members.map { (key: $0.0, value: $0.1) }
    }

    /// Members the parser has already checked for repeated keys, taken without checking again.
    init(uncheckedMembers members: [(key: String, value: JSONValue)]) {
        self.members = members
    }

    /// An object with the literal's members in the literal's order; repeating a key stops the program.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements)
    }

    /// The number of members.
    public var count: Int {
        self.members.count
    }

    /// Whether the object has no members.
    public var isEmpty: Bool {
        self.members.isEmpty
    }

    /// The keys in order.
    public var keys: [String] {
        self.members.map(\.key)
    }

    /// The value for `key`. Setting a value replaces the member in place or appends it; setting `nil` removes it.
    ///
    /// A key is found by its bytes, as text from outside is compared: with String's `==`, a member named with
    /// U+212A KELVIN SIGN would answer for a `K` in the name the reader asked for.
    public subscript(key: String) -> JSONValue? {
        get {
            self.members.first { $0.key.hasSameBytes(as: key) }?.value
        }
        set {
            let index = self.members.firstIndex { $0.key == key }
            switch (index, newValue) {
            case (let index?, let value?):
                self.members[index].value = value
            case (let index?, nil):
                self.members.remove(at: index)
            case (nil, let value?):
                self.members.append((key: key, value: value))
            case (nil, nil):
                break
            }
        }
    }

    /// Iterates the members in order.
    public func makeIterator() -> IndexingIterator<[(key: String, value: JSONValue)]> {
        self.members.makeIterator()
    }

    /// Two objects are equal when they have the same keys with equal values, in any order (RFC 8259 §4).
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.members.count == rhs.members.count else { return false }
        // Below this size a scan per key beats building a dictionary; above it the scan would be quadratic.
        let indexThreshold = 16
        if lhs.members.count <= indexThreshold {
            // Canonically equivalent keys are one key here, as in the index below and in the hash.
            return lhs.members.allSatisfy { member in
                rhs.members.first { $0.key == member.key }?.value == member.value
            }
        }
        var index = [String: JSONValue](minimumCapacity: rhs.members.count)
        for member in rhs.members {
            index[member.key] = member.value
        }
        return lhs.members.allSatisfy { member in index[member.key] == member.value }
    }

    /// Hashes the members so that member order does not change the hash, matching ``==(_:_:)``.
    public func hash(into hasher: inout Hasher) {
        // Each member is hashed alone and the results are combined with a commutative operation, as Dictionary does.
        var combined = 0
        for member in self.members {
            var memberHasher = Hasher()
            memberHasher.combine(member.key)
            memberHasher.combine(member.value)
            combined ^= memberHasher.finalize()
        }
        hasher.combine(self.members.count)
        hasher.combine(combined)
    }
}
