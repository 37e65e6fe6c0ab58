/// When a failed delivery is tried again (`forward.schedule`): the first attempt is made `delays[0]` after the
/// outcome is derived, each next one `delays[n]` after the n-th failed, plus up to a tenth of that at random so a
/// receiver that comes back is not hit by every waiting delivery in the same second. After `delays.count` failed
/// attempts the delivery is dead.
public struct ForwardSchedule: Sendable, Hashable {
    /// Milliseconds, one per attempt.
    public var delaysMilliseconds: [Int64]

    /// Svix's schedule: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (a little over a day and a half).
    public static let standard = ForwardSchedule(
        delaysMilliseconds: [0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]
    )

    public init(delaysMilliseconds: [Int64]) {
        self.delaysMilliseconds = delaysMilliseconds
    }

    /// Why a configured schedule is refused, or nil when it is usable.
    public var problem: String? {
        if self.delaysMilliseconds.isEmpty { return "the schedule needs at least one attempt" }
        if self.delaysMilliseconds.count > ForwardLimits.scheduleAttemptsMax {
            return "at most \(ForwardLimits.scheduleAttemptsMax) attempts"
        }
        if self.delaysMilliseconds.contains(where: { $0 < 0 || $0 > ForwardLimits.scheduleDelayMillisecondsMax }) {
            return "each delay must be 0 to \(ForwardLimits.scheduleDelayMillisecondsMax) milliseconds"
        }
        return nil
    }

    /// When attempt `failedAttempts + 1` is due, `failedAt` being when the last one failed; nil when none is left.
    public func nextAttempt(
        afterFailed failedAttempts: UInt32,
        failedAt: Instant,
        random: inout some RandomNumberGenerator
    ) -> Instant? {
        guard Int(failedAttempts) < self.delaysMilliseconds.count else { return nil }
        let delay = self.delaysMilliseconds[Int(failedAttempts)]
        let jitter = delay >= 10 ? Int64.random(in: 0...(delay / 10), using: &random) : 0
        return failedAt.adding(milliseconds: delay + jitter)
    }
}

/// Where one outcome stands with one receiver: waiting for its next attempt, or dead after the last.
public struct ForwardDelivery: Sendable, Hashable {
    /// The receiver's URL, as configured: what the delivery belongs to across restarts.
    public var receiver: String
    public var event: ForwardEvent
    /// Attempts made and failed so far.
    public var attempts: UInt32
    /// When the next attempt is due (meaningless once dead).
    public var nextAttemptAt: Instant
    public var lastAttemptAt: Instant?
    /// Why the last attempt failed, in a sentence.
    public var lastError: String?
    /// Every scheduled attempt failed; kept for `forward.status` and `forward.retry`.
    public var dead: Bool

    public init(
        receiver: String,
        event: ForwardEvent,
        attempts: UInt32 = 0,
        nextAttemptAt: Instant,
        lastAttemptAt: Instant? = nil,
        lastError: String? = nil,
        dead: Bool = false
    ) {
        self.receiver = receiver
        self.event = event
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.lastAttemptAt = lastAttemptAt
        self.lastError = lastError
        self.dead = dead
    }

    public var key: ForwardKey {
        ForwardKey(receiver: self.receiver, sequence: self.event.sequence, type: self.event.type)
    }
}

/// A delivery's place in the outbox: by receiver, then log order, then type, so each receiver's deliveries of one
/// order come in the order the log made them.
public struct ForwardKey: Sendable, Hashable, Comparable {
    public var receiver: String
    public var sequence: UInt64
    public var type: ForwardEventType

    public init(receiver: String, sequence: UInt64, type: ForwardEventType) {
        self.receiver = receiver
        self.sequence = sequence
        self.type = type
    }

    public static func < (lhs: ForwardKey, rhs: ForwardKey) -> Bool {
        if lhs.receiver != rhs.receiver { return Array(lhs.receiver.utf8).lexicographicallyPrecedes(rhs.receiver.utf8) }
        if lhs.sequence != rhs.sequence { return lhs.sequence < rhs.sequence }
        return lhs.type.tag < rhs.type.tag
    }

    /// The key's bytes, which sort as keys do: u16 receiver length, receiver, u64 sequence, type tag (big-endian).
    public var bytes: [UInt8] {
        let receiver = Array(self.receiver.utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(receiver.count + 11)
        withUnsafeBytes(of: UInt16(clamping: receiver.count).bigEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: receiver)
        withUnsafeBytes(of: self.sequence.bigEndian) { bytes.append(contentsOf: $0) }
        bytes.append(self.type.tag)
        return bytes
    }
}

/// One atomic change of the forwarder's stored state: how far the log has been derived, deliveries to keep (new or
/// updated), and deliveries to drop (delivered). A derivation's deliveries and its new position are one write, so a
/// crash between them cannot lose an outcome nor derive one twice into different records.
public struct ForwardWrite: Sendable, Hashable {
    public var position: UInt64?
    public var put: [ForwardDelivery]
    public var remove: [ForwardKey]

    public init(position: UInt64? = nil, put: [ForwardDelivery] = [], remove: [ForwardKey] = []) {
        self.position = position
        self.put = put
        self.remove = remove
    }

    public var isEmpty: Bool { self.position == nil && self.put.isEmpty && self.remove.isEmpty }
}

/// Why a stored delivery does not decode.
public struct ForwardCodecError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// The stored form of a delivery: its JSON, the event's body members included, so what is stored is what is sent.
public enum ForwardCodec {
    public static func encode(_ delivery: ForwardDelivery) -> [UInt8] {
        var bytes: [UInt8] = []
        JSONWriter.write(
            .object([
                "receiver": .string(delivery.receiver),
                "event": delivery.event.json,
                "attempts": .number(String(delivery.attempts)),
                "nextAttemptAt": .number(String(delivery.nextAttemptAt.millisecondsSinceEpoch)),
                "lastAttemptAt": delivery.lastAttemptAt.map { .number(String($0.millisecondsSinceEpoch)) } ?? .null,
                "lastError": delivery.lastError.map { .string($0) } ?? .null,
                "dead": .bool(delivery.dead),
            ]),
            into: &bytes
        )
        return bytes
    }

    public static func decode(_ bytes: some Collection<UInt8>) throws -> ForwardDelivery {
        let value: JSONValue
        do {
            value = try JSONParser.parse(String(decoding: bytes, as: UTF8.self))
        } catch {
            throw ForwardCodecError(description: "a stored delivery is not JSON: \(error)")
        }
        func fail(_ what: String) -> ForwardCodecError {
            ForwardCodecError(description: "a stored delivery has no valid \(what)")
        }
        guard let receiver = value["receiver"]?.stringValue else { throw fail("receiver") }
        guard let event = value["event"].flatMap(Self.event) else { throw fail("event") }
        guard let attempts = value["attempts"]?.int64Value.flatMap(UInt32.init(exactly:)) else {
            throw fail("attempts")
        }
        guard let next = value["nextAttemptAt"]?.int64Value else { throw fail("nextAttemptAt") }
        guard let dead = value["dead"]?.boolValue else { throw fail("dead") }
        return ForwardDelivery(
            receiver: receiver,
            event: event,
            attempts: attempts,
            nextAttemptAt: Instant(millisecondsSinceEpoch: next),
            lastAttemptAt: value["lastAttemptAt"]?.int64Value.map { Instant(millisecondsSinceEpoch: $0) },
            lastError: value["lastError"]?.stringValue,
            dead: dead
        )
    }

    /// Reads an event back from its body's JSON (the store's copy of it).
    static func event(_ value: JSONValue) -> ForwardEvent? {
        guard let type = value["type"]?.stringValue.flatMap(ForwardEventType.init(rawValue:)),
            let orderId = value["orderId"]?.stringValue,
            let status = value["state"]?.stringValue.flatMap(OrderStatus.init(rawValue:)),
            let amount = value["amount"]?.stringValue,
            let sequence = value["sequence"]?.numberText.flatMap({ UInt64($0) }),
            let createdText = value["createdAt"]?.stringValue,
            let createdAt = Self.instant(rfc3339: createdText)
        else { return nil }
        func flags(_ name: String) -> ReviewFlags? {
            guard let names = value[name]?.arrayValue else { return nil }
            var flags: ReviewFlags = []
            for name in names {
                guard let flag = name.stringValue.flatMap(ReviewFlags.init(name:)) else { return nil }
                flags.insert(flag)
            }
            return flags
        }
        guard let all = flags("flags"), let raised = flags("flagsRaised") else { return nil }
        return ForwardEvent(
            type: type,
            orderId: orderId,
            status: status,
            amount: amount,
            paidAt: value["paidAt"]?.stringValue,
            transactionId: value["transactionId"]?.stringValue,
            source: value["source"]?.stringValue.flatMap(Payment.Source.init(rawValue:)),
            flags: all,
            flagsRaised: raised,
            sequence: sequence,
            createdAt: createdAt
        )
    }

    /// Parses `Instant.description`'s form back (`YYYY-MM-DDTHH:MM:SS.mmmZ`), the only form the body carries.
    static func instant(rfc3339 text: String) -> Instant? {
        let bytes = Array(text.utf8)
        guard bytes.count == 24, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            bytes[10] == UInt8(ascii: "T"), bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
            bytes[19] == UInt8(ascii: "."), bytes[23] == UInt8(ascii: "Z")
        else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for byte in bytes[range] {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            let millis = number(20..<23)
        else { return nil }
        let civil = CivilTime(year: Int64(year), month: month, day: day, hour: hour, minute: minute, second: second)
        guard civil.isValid else { return nil }
        return Instant(millisecondsSinceEpoch: civil.secondsSinceEpoch * 1000 + Int64(millis))
    }
}
