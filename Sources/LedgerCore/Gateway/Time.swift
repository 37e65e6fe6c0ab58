#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A point in time as milliseconds since the Unix epoch. The core never reads a clock: callers pass instants in.
public struct Instant: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var millisecondsSinceEpoch: Int64

    public init(millisecondsSinceEpoch: Int64) {
        self.millisecondsSinceEpoch = millisecondsSinceEpoch
    }

    public static func < (lhs: Instant, rhs: Instant) -> Bool {
        lhs.millisecondsSinceEpoch < rhs.millisecondsSinceEpoch
    }

    public func adding(milliseconds: Int64) -> Instant {
        Instant(millisecondsSinceEpoch: self.millisecondsSinceEpoch + milliseconds)
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-27T10:00:00.000Z`.
    public var description: String {
        let civil = CivilTime(secondsSinceEpoch: Self.floorDiv(self.millisecondsSinceEpoch, 1000))
        let millis = Self.floorMod(self.millisecondsSinceEpoch, 1000)
        return civil.formatted(dateSeparator: "-", middle: "T", timeSeparator: ":") + "." + Self.pad(Int(millis), 3)
            + "Z"
    }

    /// Division rounding towards negative infinity; safe at `Int64.min` (no negation, no overflowing product).
    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : (a + 1) / b - 1 }
    static func floorMod(_ a: Int64, _ b: Int64) -> Int64 {
        let remainder = a % b
        return remainder < 0 ? remainder + b : remainder
    }
    static func pad(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }
}

extension Instant {
    /// Reads an RFC 3339 time: `2026-11-27T09:30:00Z`, `2026-11-27T17:30:00.250+08:00`. The date and time are
    /// two-digit fields after a four-digit year, joined by an uppercase `T`; a fraction of any length is truncated to
    /// milliseconds; the offset is `Z`, `z` or `±HH:MM`. Nil for anything else: a day the month does not have, hour
    /// 24, second 60, a field of another width, a byte before or after. Dates are proleptic Gregorian, as RFC 3339
    /// says, so the answer needs no calendar object and no locale.
    public init?(rfc3339 text: String) {
        let bytes = Array(text.utf8)
        func digits(_ range: Range<Int>) -> Int? { decimal(bytes, range) }
        func byte(_ index: Int, is expected: Unicode.Scalar) -> Bool {
            index < bytes.count && bytes[index] == UInt8(ascii: expected)
        }
        guard byte(4, is: "-"), byte(7, is: "-"), byte(10, is: "T"), byte(13, is: ":"), byte(16, is: ":"),
            let year = digits(0..<4), let month = digits(5..<7), let day = digits(8..<10),
            let hour = digits(11..<13), let minute = digits(14..<16), let second = digits(17..<19)
        else { return nil }
        var index = 19
        var milliseconds: Int64 = 0
        if byte(index, is: ".") {
            let start = index + 1
            index = start
            while digits(index..<(index + 1)) != nil { index += 1 }
            guard index > start else { return nil }
            // Truncated, not rounded: a fraction never carries into the next second.
            for position in start..<(start + 3) {
                milliseconds = milliseconds * 10 + Int64(position < index ? digits(position..<(position + 1))! : 0)
            }
        }
        let offsetSeconds: Int
        if index == bytes.count - 1, byte(index, is: "Z") || byte(index, is: "z") {
            offsetSeconds = 0
        } else if index + 6 == bytes.count, byte(index, is: "+") || byte(index, is: "-"), byte(index + 3, is: ":"),
            let offsetHours = digits((index + 1)..<(index + 3)), offsetHours <= 23,
            let offsetMinutes = digits((index + 4)..<(index + 6)), offsetMinutes <= 59
        {
            let magnitude = offsetHours * 3600 + offsetMinutes * 60
            offsetSeconds = byte(index, is: "-") ? -magnitude : magnitude
        } else {
            return nil
        }
        let civil = CivilTime(year: Int64(year), month: month, day: day, hour: hour, minute: minute, second: second)
        guard civil.isValid else { return nil }
        self.init(millisecondsSinceEpoch: (civil.secondsSinceEpoch - Int64(offsetSeconds)) * 1000 + milliseconds)
    }
}

/// A calendar date and time of day without a zone (proleptic Gregorian), computed with Howard Hinnant's
/// days-from-civil algorithm so formatting needs no locale, no calendar object and no clock.
struct CivilTime: Hashable {
    var year: Int64
    var month: Int
    var day: Int
    var hour: Int
    var minute: Int
    var second: Int

    init(year: Int64, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second
    }

    init(secondsSinceEpoch seconds: Int64) {
        let days = Instant.floorDiv(seconds, 86_400)
        let secondOfDay = Int(Instant.floorMod(seconds, 86_400))
        let z = days + 719_468
        let era = Instant.floorDiv(z, 146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = Int(dayOfYear - (153 * mp + 2) / 5 + 1)
        let month = Int(mp < 10 ? mp + 3 : mp - 9)
        self.year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        self.month = month
        self.day = day
        self.hour = secondOfDay / 3600
        self.minute = secondOfDay / 60 % 60
        self.second = secondOfDay % 60
    }

    var secondsSinceEpoch: Int64 {
        let y = self.month <= 2 ? self.year - 1 : self.year
        let era = Instant.floorDiv(y, 400)
        let yearOfEra = y - era * 400
        let m = Int64(self.month)
        let dayOfYear = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(self.day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return days * 86_400 + Int64(self.hour * 3600 + self.minute * 60 + self.second)
    }

    func formatted(dateSeparator: String, middle: String, timeSeparator: String) -> String {
        Instant.pad(Int(self.year), 4) + dateSeparator + Instant.pad(self.month, 2) + dateSeparator
            + Instant.pad(self.day, 2) + middle + Instant.pad(self.hour, 2) + timeSeparator
            + Instant.pad(self.minute, 2) + timeSeparator + Instant.pad(self.second, 2)
    }

    var isValid: Bool {
        guard (1...12).contains(self.month), (0...23).contains(self.hour), (0...59).contains(self.minute),
            (0...59).contains(self.second), self.day >= 1
        else { return false }
        let leap = (self.year % 4 == 0 && self.year % 100 != 0) || self.year % 400 == 0
        let lengths = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        return self.day <= lengths[self.month - 1]
    }
}

/// The gateway's local time zone (the document's times are China Standard Time). Resolved once from the tz
/// database by identifier; formatting afterwards is arithmetic.
public struct GatewayTimeZone: Sendable, Hashable, CustomStringConvertible {
    public let identifier: String
    let zone: TimeZone

    /// Resolves a tz database identifier such as `Asia/Shanghai`; nil for an unknown one.
    public init?(identifier: String) {
        guard let zone = TimeZone(identifier: identifier) else { return nil }
        self.identifier = identifier
        self.zone = zone
    }

    /// China Standard Time, the document's zone. China has kept UTC+8 without daylight saving since 1991.
    public static let shanghai = GatewayTimeZone(identifier: "Asia/Shanghai")!

    public var description: String { self.identifier }

    /// The gateway's `YYYY-MM-DD HH:MM:SS` text for an instant (seconds truncated).
    public func applyDate(for instant: Instant) -> String {
        let seconds = Instant.floorDiv(instant.millisecondsSinceEpoch, 1000)
        let offset = self.zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(seconds)))
        return CivilTime(secondsSinceEpoch: seconds + Int64(offset))
            .formatted(dateSeparator: "-", middle: " ", timeSeparator: ":")
    }
}

/// A transaction time as the gateway sends it: `YYYY-MM-DD HH:MM:SS` per the document, `YYYYMMDDHHMMSS` as
/// deployments also send. Kept as received; `normalized` gives the document's form.
public struct GatewayDateTime: Sendable, Hashable, CustomStringConvertible {
    public let text: String
    let civil: CivilTime

    public init?(_ text: String) {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? { decimal(bytes, range) }
        let civil: CivilTime?
        if bytes.count == 14 {
            civil = zip6(number(0..<4), number(4..<6), number(6..<8), number(8..<10), number(10..<12), number(12..<14))
        } else if bytes.count == 19, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            bytes[10] == UInt8(ascii: " "), bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":")
        {
            civil = zip6(
                number(0..<4),
                number(5..<7),
                number(8..<10),
                number(11..<13),
                number(14..<16),
                number(17..<19)
            )
        } else {
            civil = nil
        }
        guard let civil, civil.isValid else { return nil }
        self.text = text
        self.civil = civil
    }

    /// The document's `YYYY-MM-DD HH:MM:SS` form.
    public var normalized: String { self.civil.formatted(dateSeparator: "-", middle: " ", timeSeparator: ":") }

    public var description: String { self.text }
}

private func zip6(_ a: Int?, _ b: Int?, _ c: Int?, _ d: Int?, _ e: Int?, _ f: Int?) -> CivilTime? {
    guard let a, let b, let c, let d, let e, let f else { return nil }
    return CivilTime(year: Int64(a), month: b, day: c, hour: d, minute: e, second: f)
}

extension Duration {
    /// The duration in seconds, for reports, progress and rates.
    public var seconds: Double {
        Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18
    }
}

/// The value of the ASCII decimal digits of `bytes` at `range` (a few, so no overflow); nil when the range runs past
/// the end or holds any other byte.
private func decimal(_ bytes: [UInt8], _ range: Range<Int>) -> Int? {
    guard range.upperBound <= bytes.count else { return nil }
    var value = 0
    for index in range {
        let byte = bytes[index]
        guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
        value = value * 10 + Int(byte - UInt8(ascii: "0"))
    }
    return value
}
