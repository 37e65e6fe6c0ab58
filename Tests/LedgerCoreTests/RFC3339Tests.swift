// ISO8601DateFormatter is the reader the control protocol used before it moved off full Foundation: kept here only
// as the oracle the new reader must agree with.
import Foundation
import PropertyBased
import Testing

@testable import LedgerCore

/// What the old reader gave for a text: milliseconds since the epoch, rounded from its `Date`.
private func formatterMilliseconds(_ text: String) -> Int64? {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    guard let date = formatter.date(from: text) ?? ISO8601DateFormatter().date(from: text) else { return nil }
    return Int64((date.timeIntervalSince1970 * 1000).rounded())
}

struct RFC3339Tests {
    /// Every RFC 3339 time, with any offset and fraction, reads to the instant the old formatter gave.
    @Test func agreesWithTheOldFormatter() async {
        // From 1583 on: the old formatter's calendar is Julian before October 1582, RFC 3339's is Gregorian. A day
        // of margin at each end keeps the local year of every offset within four digits and within that range.
        let first = CivilTime(year: 1583, month: 1, day: 2, hour: 0, minute: 0, second: 0).secondsSinceEpoch
        let last = CivilTime(year: 9999, month: 12, day: 30, hour: 23, minute: 59, second: 59).secondsSinceEpoch
        let offsetMinutesMax = 23 * 60 + 59
        await propertyCheck(
            count: 500,
            input: Gen.int64(in: first...last),
            Gen.int(in: 0...9),
            Gen.int(in: 0...999_999_999),
            Gen.int(in: -offsetMinutesMax...offsetMinutesMax)
        ) { seconds, fractionDigits, fraction, offsetMinutes in
            let local = CivilTime(secondsSinceEpoch: seconds + Int64(offsetMinutes * 60))
            var text = local.formatted(dateSeparator: "-", middle: "T", timeSeparator: ":")
            if fractionDigits > 0 { text += "." + String(Instant.pad(fraction, 9).prefix(fractionDigits)) }
            if offsetMinutes == 0 {
                text += "Z"
            } else {
                let magnitude = abs(offsetMinutes)
                text +=
                    (offsetMinutes < 0 ? "-" : "+") + Instant.pad(magnitude / 60, 2) + ":"
                    + Instant.pad(magnitude % 60, 2)
            }
            let read = Instant(rfc3339: text)?.millisecondsSinceEpoch
            #expect(read == formatterMilliseconds(text), "\(text)")
            #expect(read.map { Instant.floorDiv($0, 1000) } == seconds, "\(text)")
        }
    }

    /// Fractions are truncated to milliseconds, offsets move the instant, and `z` is read as `Z`.
    @Test func fractionsAndOffsets() {
        let base: Int64 = 1_795_771_800_000  // 2026-11-27T09:30:00Z
        #expect(Instant(rfc3339: "2026-11-27T09:30:00Z")?.millisecondsSinceEpoch == base)
        #expect(Instant(rfc3339: "2026-11-27T09:30:00z")?.millisecondsSinceEpoch == base)
        #expect(Instant(rfc3339: "2026-11-27T09:30:00.5Z")?.millisecondsSinceEpoch == base + 500)
        #expect(Instant(rfc3339: "2026-11-27T09:30:00.999999999Z")?.millisecondsSinceEpoch == base + 999)
        #expect(Instant(rfc3339: "2026-11-27T09:30:00.0015Z")?.millisecondsSinceEpoch == base + 1)
        #expect(Instant(rfc3339: "2026-11-27T17:30:00.250+08:00")?.millisecondsSinceEpoch == base + 250)
        #expect(Instant(rfc3339: "2026-11-27T04:00:00-05:30")?.millisecondsSinceEpoch == base)
        #expect(Instant(rfc3339: "2026-11-27T09:30:00-00:00")?.millisecondsSinceEpoch == base)
        #expect(Instant(rfc3339: "1969-12-31T23:59:59.999Z")?.millisecondsSinceEpoch == -1)
        #expect(Instant(rfc3339: "2024-02-29T00:00:00Z")?.millisecondsSinceEpoch == 1_709_164_800_000)
    }

    /// Text that is not an RFC 3339 time is refused, including forms the old formatter stretched to a time.
    @Test func refusesWhatIsNotRFC3339() {
        let refused = [
            "", "yesterday", "2026-11-27", "2026-11-27T09:30Z", "2026-11-27T09:30:00", "2026-11-27 09:30:00Z",
            "2026-11-27t09:30:00Z", "20261127T093000Z", "+2026-11-27T09:30:00Z", "2026-11-27T09:30:00.Z",
            "2026-11-27T09:30:00,5Z", "2026-11-27T09:30:60Z", "2026-13-01T00:00:00Z", "2026-11-00T00:00:00Z",
            // Accepted by the old formatter: a day or hour out of range carried over, one-digit fields, compact
            // or out-of-range offsets, bytes before or after the time, non-ASCII digits, zone names.
            "2026-11-31T09:30:00Z", "2026-02-29T09:30:00Z", "2026-11-27T24:00:00Z", "2026-1-27T09:30:00Z",
            "2026-11-27T9:30:00Z", "2026-11-27T09:30:00+0800", "2026-11-27T09:30:00+08", "2026-11-27T09:30:00+24:00",
            "2026-11-27T09:30:00+08:60", " 2026-11-27T09:30:00Z", "2026-11-27T09:30:00Z ", "2026-11-27T09:30:00Zjunk",
            "12026-11-27T09:30:00Z", "２０２６-11-27T09:30:00Z", "2026-11-27T09:30:00GMT", "2026-11-27T09:30:00UTC",
        ]
        for text in refused {
            #expect(Instant(rfc3339: text) == nil, "\(text)")
        }
    }
}
