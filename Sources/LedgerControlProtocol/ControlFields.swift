public import LedgerCore

/// A message of the control protocol (a method's params or result, a notification's params, or a value inside
/// one): decoded from and encoded to JSON here, once, for the daemon, `ledgerctl`, the fault suite and the tests.
public protocol ControlMessage: Sendable {
    /// Reads the message from an object's members; a member of the wrong type or out of range is an
    /// `invalid-params` error that names it.
    init(fields: ControlFields) throws(ControlError)

    /// The message as the daemon writes it, as `schemas/control/` describes it.
    var json: JSONValue { get }
}

extension ControlMessage {
    /// Reads the message from a JSON value: absent and null read as an empty object, anything but an object is
    /// refused. `context` (a method name) starts every error message.
    public init(json: JSONValue?, context: String) throws(ControlError) {
        try self.init(fields: ControlFields(json, context: context))
    }
}

/// A params object with no members, for the methods that take none.
public struct NoParams: ControlMessage, Hashable {
    public init() {}

    public init(fields: ControlFields) throws(ControlError) {
        try fields.allow([])
    }

    public var json: JSONValue { .object([:]) }
}

/// An object's named members, read with type checks that answer -32602 naming the member. Params are read
/// strictly (`allow` refuses unknown names, so a typo is an error rather than a silently ignored filter); results
/// ignore members they do not know (a newer daemon may add some), but an enumeration's value (an order state, a
/// quarantine reason) must be one this build knows: `ledgerctl` and `ledgerd` are released together.
public struct ControlFields: Sendable {
    public let object: JSONObject
    /// The method whose message this is, for error messages.
    public let context: String

    public init(_ value: JSONValue?, context: String) throws(ControlError) {
        self.context = context
        switch value {
        case nil, .null?: self.object = [:]
        case .object(let object)?: self.object = object
        case .array?, .bool?, .number?, .string?:
            throw .invalidParams("\(context) takes its params by name, as an object.")
        }
    }

    /// Refuses names the method does not know, compared as bytes (a Set of Strings would take a name spelled with
    /// U+212A KELVIN SIGN for the one spelled with `K`).
    public func allow(_ names: Set<String>) throws(ControlError) {
        for key in self.object.keys where !names.contains(where: { $0.hasSameBytes(as: key) }) {
            throw .invalidParams(
                "\(self.context) has no parameter \(key); it takes \(names.sorted().joined(separator: ", "))."
            )
        }
    }

    public func string(_ name: String) throws(ControlError) -> String? {
        switch self.object[name] {
        case nil, .null?: return nil
        case .string(let value)?: return value
        case .bool?, .number?, .array?, .object?: throw .invalidParams("\(self.context): \(name) must be a string.")
        }
    }

    public func requiredString(_ name: String) throws(ControlError) -> String {
        guard let value = try self.string(name) else {
            throw .invalidParams("\(self.context) needs \(name), a string.")
        }
        return value
    }

    /// An order id to look up: 1 to 20 of `[A-Za-z0-9_-]`, as every stored order id is (notifications and
    /// pay requests with another are refused before anything is stored). An id no order can have is a
    /// parameter error, never a store lookup that fails.
    public func orderId(_ name: String = "orderId") throws(ControlError) -> String? {
        guard let value = try self.string(name) else { return nil }
        guard GatewayValidation.isOrderId(value) else { throw Self.impossibleOrderId(self.context, name) }
        return value
    }

    public func requiredOrderId(_ name: String = "orderId") throws(ControlError) -> String {
        guard let value = try self.orderId(name) else {
            throw .invalidParams("\(self.context) needs \(name), a string.")
        }
        return value
    }

    public static func impossibleOrderId(_ method: String, _ name: String) -> ControlError {
        .invalidParams(
            "\(method): \(name) must be 1 to \(GatewayValidation.orderIdBytesMax) ASCII letters, digits, '_' or '-'."
        )
    }

    public func int(_ name: String, _ range: ClosedRange<Int64>) throws(ControlError) -> Int64? {
        switch self.object[name] {
        case nil, .null?: return nil
        case .number(let text)?:
            guard let value = Int64(text), range.contains(value) else {
                throw Self.outOfRange(self.context, name, range)
            }
            return value
        case .bool?, .string?, .array?, .object?:
            throw .invalidParams("\(self.context): \(name) must be a whole number.")
        }
    }

    public static func outOfRange(_ method: String, _ name: String, _ range: ClosedRange<Int64>) -> ControlError {
        .invalidParams("\(method): \(name) must be a whole number in \(range.lowerBound)...\(range.upperBound).")
    }

    /// A count or sequence number of a result: a whole number from 0 up.
    public func count(_ name: String) throws(ControlError) -> UInt64 {
        guard case .number(let text)? = self.object[name], let value = UInt64(text) else {
            throw .invalidParams("\(self.context): \(name) must be a whole number from 0.")
        }
        return value
    }

    public func optionalCount(_ name: String) throws(ControlError) -> UInt64? {
        switch self.object[name] {
        case nil, .null?: return nil
        case .number?, .bool?, .string?, .array?, .object?: return try self.count(name)
        }
    }

    /// A decimal number of a result (seconds, rates), kept as its text so nothing is lost in a round trip.
    public func decimal(_ name: String) throws(ControlError) -> String? {
        switch self.object[name] {
        case nil, .null?: return nil
        case .number(let text)?: return text
        case .bool?, .string?, .array?, .object?: throw .invalidParams("\(self.context): \(name) must be a number.")
        }
    }

    public func bool(_ name: String) throws(ControlError) -> Bool? {
        switch self.object[name] {
        case nil, .null?: return nil
        case .bool(let value)?: return value
        case .string?, .number?, .array?, .object?:
            throw .invalidParams("\(self.context): \(name) must be true or false.")
        }
    }

    public func requiredBool(_ name: String) throws(ControlError) -> Bool {
        guard let value = try self.bool(name) else {
            throw .invalidParams("\(self.context) needs \(name), true or false.")
        }
        return value
    }

    /// A member kept as JSON as it is (an event's payload, whose schema is `schemas/events/`).
    public func value(_ name: String) -> JSONValue? {
        switch self.object[name] {
        case nil, .null?: return nil
        case let value?: return value
        }
    }

    public func members(_ name: String) throws(ControlError) -> JSONObject {
        switch self.object[name] {
        case nil, .null?: return [:]
        case .object(let object)?: return object
        case .bool?, .number?, .string?, .array?: throw .invalidParams("\(self.context): \(name) must be an object.")
        }
    }

    public func strings(_ name: String) throws(ControlError) -> [String] {
        switch self.object[name] {
        case nil, .null?: return []
        case .array(let items)?:
            var strings: [String] = []
            for item in items {
                guard case .string(let text) = item else {
                    throw .invalidParams("\(self.context): \(name) must be a list of strings.")
                }
                strings.append(text)
            }
            return strings
        case .bool?, .number?, .string?, .object?: throw .invalidParams("\(self.context): \(name) must be a list.")
        }
    }

    /// A nested message, or nil when absent or null.
    public func message<T: ControlMessage>(_ name: String, as type: T.Type = T.self) throws(ControlError) -> T? {
        switch self.object[name] {
        case nil, .null?: return nil
        case .object?: return try T(json: self.object[name], context: "\(self.context): \(name)")
        case .bool?, .number?, .string?, .array?: throw .invalidParams("\(self.context): \(name) must be an object.")
        }
    }

    public func requiredMessage<T: ControlMessage>(_ name: String, as type: T.Type = T.self) throws(ControlError) -> T {
        guard let value = try self.message(name, as: type) else {
            throw .invalidParams("\(self.context) needs \(name), an object.")
        }
        return value
    }

    public func messages<T: ControlMessage>(_ name: String, of type: T.Type = T.self) throws(ControlError) -> [T] {
        switch self.object[name] {
        case nil, .null?: return []
        case .array(let items)?:
            var values: [T] = []
            values.reserveCapacity(items.count)
            for item in items { values.append(try T(json: item, context: "\(self.context): \(name)")) }
            return values
        case .bool?, .number?, .string?, .object?: throw .invalidParams("\(self.context): \(name) must be a list.")
        }
    }

    /// One of an enumeration's raw values, or an error that lists them.
    public func choice<T: RawRepresentable & CaseIterable>(_ name: String, as type: T.Type = T.self)
        throws(ControlError)
        -> T? where T.RawValue == String
    {
        guard let text = try self.string(name) else { return nil }
        guard let value = T(exactly: text) else {
            let names = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw .invalidParams("\(self.context): \(name) must be one of \(names).")
        }
        return value
    }
}

extension RawRepresentable where Self: CaseIterable, RawValue == String {
    /// The case whose raw value is `text` byte for byte. `init(rawValue:)` compares with String's `==`, which takes a
    /// canonically equivalent spelling (U+212A KELVIN SIGN for "K") from outside as the name.
    public init?(exactly text: String) {
        guard let match = Self.allCases.first(where: { $0.rawValue.hasSameBytes(as: text) }) else {
            return nil
        }
        self = match
    }
}

/// The JSON forms of numbers and times in control messages.
public enum ControlJSON {
    public static func number<T: BinaryInteger>(_ value: T) -> JSONValue { .number(String(value)) }

    /// A finite double with three decimals: JSON has no NaN or infinity, and durations need no more.
    public static func seconds(_ value: Double) -> JSONValue {
        guard value.isFinite else { return .null }
        let thousandths = Int64((value * 1000).rounded())
        let sign = thousandths < 0 ? "-" : ""
        let magnitude = thousandths.magnitude
        let fraction = String(magnitude % 1000)
        return .number(
            sign + String(magnitude / 1000) + "." + String(repeating: "0", count: 3 - fraction.count) + fraction
        )
    }

    public static func optional(_ text: String?) -> JSONValue { text.map { .string($0) } ?? .null }

    public static func optionalNumber(_ text: String?) -> JSONValue { text.map { .number($0) } ?? .null }
}
