/// Why a notification was kept out of the log.
///
/// The hash-chained log holds only facts the gateway vouched for and the daemon's own actions
/// (architecture.md, "Nothing unverified enters the log"). A notification that parses but that the gateway did not
/// vouch for goes to the quarantine instead: bounded, prunable, counted.
public enum QuarantineReason: String, Sendable, Hashable, CaseIterable, Codable {
    /// The signature is missing, malformed or does not verify under the merchant key and the dialect in force.
    case badSignature = "bad-signature"
    /// Validly signed, but for another member id than the daemon's `gateway.memberId`.
    case foreignMember = "foreign-member"

    /// The stored code; stable across builds.
    public var code: UInt8 {
        switch self {
        case .badSignature: return 1
        case .foreignMember: return 2
        }
    }

    public init?(code: UInt8) {
        switch code {
        case 1: self = .badSignature
        case 2: self = .foreignMember
        default: return nil
        }
    }
}

extension QuarantineLimits {
    /// The most one entry can account for: a body cut to `bodyBytesMax`, and texts no longer than their bounds.
    public var entryBytesMax: Int {
        self.bodyBytesMax + QuarantineLimits.textBytesMax * 4 + QuarantineEntry.overheadBytes
    }

    /// Why these bounds cannot work together, or nil when they can.
    public var problem: String? {
        if self.entriesMax < 1 { return "quarantine.entriesMax must be at least 1." }
        if self.bodyBytesMax < 64 { return "quarantine.bodyBytesMax must be at least 64." }
        if self.bytesMax < self.entryBytesMax {
            return "quarantine.bytesMax (\(self.bytesMax)) must hold at least one whole entry "
                + "(\(self.entryBytesMax) bytes with quarantine.bodyBytesMax \(self.bodyBytesMax))."
        }
        return nil
    }
}

/// One notification kept out of the log: what arrived, from where, when, and why it was not believed.
public struct QuarantineEntry: Sendable, Hashable {
    /// The entry's number, assigned by the store in arrival order (0 before it is stored). Numbers are never reused.
    public var id: UInt64
    public var receivedAt: Instant
    /// The peer as the HTTP server saw it, port included.
    public var remoteAddress: String
    /// The sender the quarantine's fairness is kept per: the peer's IPv4 address, or its IPv6 /64 (one host holds
    /// a whole /64, so counting IPv6 addresses one by one would let one host pose as millions).
    public var source: String
    public var reason: QuarantineReason
    /// What exactly failed, for an operator: the signature verdict, or the member id the notification named.
    public var detail: String
    /// The order id the notification named, when one parsed.
    public var orderId: String?
    /// The body as received, cut to the quarantine's `bodyBytesMax`.
    public var body: [UInt8]
    /// The body's length as received.
    public var bodyBytes: Int

    /// What an entry accounts for beyond its texts and body: its number, time, lengths and index keys.
    public static let overheadBytes = 64

    public init(
        id: UInt64 = 0,
        receivedAt: Instant,
        remoteAddress: String,
        source: String,
        reason: QuarantineReason,
        detail: String,
        orderId: String?,
        body: [UInt8],
        bodyBytes: Int
    ) {
        self.id = id
        self.receivedAt = receivedAt
        self.remoteAddress = Self.cut(remoteAddress)
        self.source = Self.cut(source)
        self.reason = reason
        self.detail = Self.cut(detail)
        self.orderId = orderId.map(Self.cut)
        self.body = body
        self.bodyBytes = bodyBytes
    }

    /// An entry for a body, cut to `limits.bodyBytesMax`.
    public init(
        receivedAt: Instant,
        remoteAddress: String,
        reason: QuarantineReason,
        detail: String,
        orderId: String?,
        body: some Collection<UInt8>,
        limits: QuarantineLimits
    ) {
        self.init(
            receivedAt: receivedAt,
            remoteAddress: remoteAddress,
            source: RemoteSource.of(remoteAddress),
            reason: reason,
            detail: detail,
            orderId: orderId,
            body: Array(body.prefix(limits.bodyBytesMax)),
            bodyBytes: body.count
        )
    }

    /// Whether the body was cut.
    public var isBodyCut: Bool { self.body.count < self.bodyBytes }

    /// What the entry counts against `quarantine.bytesMax`: the same figure in every store.
    public var accountedBytes: Int {
        self.body.count + self.remoteAddress.utf8.count + self.source.utf8.count + self.detail.utf8.count
            + (self.orderId?.utf8.count ?? 0) + Self.overheadBytes
    }

    /// `text` cut to `textBytesMax` UTF-8 bytes, at a Unicode scalar boundary.
    static func cut(_ text: String) -> String {
        guard text.utf8.count > QuarantineLimits.textBytesMax else { return text }
        var kept = String.UnicodeScalarView()
        var bytes = 0
        for scalar in text.unicodeScalars {
            bytes += UTF8.width(scalar)
            if bytes > QuarantineLimits.textBytesMax { break }
            kept.append(scalar)
        }
        return String(kept)
    }
}

/// The source a peer address counts under in the quarantine: the IPv4 address without its port, or the /64 of an
/// IPv6 address; anything else (a Unix socket path, "unknown") as it is.
public enum RemoteSource {
    public static func of(_ remoteAddress: String) -> String {
        let scalars = Array(remoteAddress.unicodeScalars)
        if scalars.first == "[", let close = scalars.firstIndex(of: "]") {
            return Self.ipv6Prefix(String(String.UnicodeScalarView(scalars[1..<close])))
        }
        let colons = scalars.lazy.filter { $0 == ":" }.count
        if colons == 1, let colon = scalars.firstIndex(of: ":") {
            return String(String.UnicodeScalarView(scalars[..<colon]))
        }
        if colons > 1 { return Self.ipv6Prefix(remoteAddress) }
        return remoteAddress
    }

    /// `2001:db8:1:2::/64` for any address in that /64; the text as it is when it is not an IPv6 address.
    static func ipv6Prefix(_ text: String) -> String {
        guard let groups = Self.ipv6Groups(text) else { return text }
        // An IPv4-mapped address (`::ffff:a.b.c.d`, how a dual-stack listener sees IPv4 peers) is that IPv4 peer.
        if groups[0..<5].allSatisfy({ $0 == 0 }) && groups[5] == 0xFFFF {
            return [groups[6] >> 8, groups[6] & 0xFF, groups[7] >> 8, groups[7] & 0xFF].map { String($0) }
                .joined(separator: ".")
        }
        let prefix = groups[0..<4].map { String($0, radix: 16) }.joined(separator: ":")
        return prefix + "::/64"
    }

    /// The eight 16-bit groups of an IPv6 address in text form (RFC 4291 §2.2, with `::` and a dotted IPv4 tail).
    static func ipv6Groups(_ text: String) -> [UInt16]? {
        let scalars = Array(text.unicodeScalars)
        // A zone index (`%eth0`) names the interface, not the address.
        let end = scalars.firstIndex(of: "%") ?? scalars.endIndex
        let address = Array(scalars[..<end])
        // Split at the one `::` an address may have.
        var halves: [String] = []
        var start = 0
        var index = 0
        while index < address.count {
            if address[index] == ":", index + 1 < address.count, address[index + 1] == ":" {
                halves.append(String(String.UnicodeScalarView(address[start..<index])))
                index += 2
                start = index
            } else {
                index += 1
            }
        }
        halves.append(String(String.UnicodeScalarView(address[start...])))
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if index == pieces.count - 1, piece.unicodeScalars.contains(".") {
                    let octets = piece.split(separator: ".", omittingEmptySubsequences: false).compactMap { UInt8($0) }
                    guard octets.count == 4 else { return nil }
                    result.append(UInt16(octets[0]) << 8 | UInt16(octets[1]))
                    result.append(UInt16(octets[2]) << 8 | UInt16(octets[3]))
                    continue
                }
                guard (1...4).contains(piece.utf8.count), let group = UInt16(piece, radix: 16) else { return nil }
                result.append(group)
            }
            return result
        }
        guard let head = groups(halves[0]) else { return nil }
        if halves.count == 1 { return head.count == 8 ? head : nil }
        guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
        return head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
    }
}

/// Exact counts of quarantined notifications, kept beside the quarantine (never derived from the entries it still
/// holds, which are dropped as it fills).
public struct QuarantineCounts: Sendable, Hashable {
    public var badSignature: UInt64 = 0
    public var foreignMember: UInt64 = 0
    public var firstAt: Instant?
    public var lastAt: Instant?

    public init(badSignature: UInt64 = 0, foreignMember: UInt64 = 0, firstAt: Instant? = nil, lastAt: Instant? = nil) {
        self.badSignature = badSignature
        self.foreignMember = foreignMember
        self.firstAt = firstAt
        self.lastAt = lastAt
    }

    public var total: UInt64 { self.badSignature &+ self.foreignMember }

    public subscript(reason: QuarantineReason) -> UInt64 {
        get {
            switch reason {
            case .badSignature: return self.badSignature
            case .foreignMember: return self.foreignMember
            }
        }
        set {
            switch reason {
            case .badSignature: self.badSignature = newValue
            case .foreignMember: self.foreignMember = newValue
            }
        }
    }

    /// Counts one more notification for `reason` received at `instant`.
    public mutating func count(_ reason: QuarantineReason, at instant: Instant) {
        self[reason] &+= 1
        if self.firstAt.map({ instant < $0 }) ?? true { self.firstAt = instant }
        if self.lastAt.map({ instant > $0 }) ?? true { self.lastAt = instant }
    }

    /// Adds another set of counts to these.
    public mutating func add(_ other: QuarantineCounts) {
        self.badSignature &+= other.badSignature
        self.foreignMember &+= other.foreignMember
        if let first = other.firstAt, self.firstAt.map({ first < $0 }) ?? true { self.firstAt = first }
        if let last = other.lastAt, self.lastAt.map({ last > $0 }) ?? true { self.lastAt = last }
    }
}

/// The quarantine as a whole: what it holds now and what it has counted since the ledger began.
public struct QuarantineStatus: Sendable, Hashable {
    /// Entries held now.
    public var entries: UInt64
    /// Accounted bytes held now.
    public var bytes: UInt64
    /// Entries dropped to keep within the bounds, since the ledger began.
    public var dropped: UInt64
    /// Every quarantined notification, since the ledger began.
    public var total: QuarantineCounts
    /// Those that named an order the ledger did not hold when they arrived (their per-order counts are not kept,
    /// so invented order ids cannot grow the counters without bound).
    public var unknownOrders: QuarantineCounts

    public init(
        entries: UInt64 = 0,
        bytes: UInt64 = 0,
        dropped: UInt64 = 0,
        total: QuarantineCounts = .init(),
        unknownOrders: QuarantineCounts = .init()
    ) {
        self.entries = entries
        self.bytes = bytes
        self.dropped = dropped
        self.total = total
        self.unknownOrders = unknownOrders
    }
}

/// A page request over the quarantine, newest first.
public struct QuarantineQuery: Sendable, Hashable {
    /// Entries older than this id (exclusive): the previous page's `nextCursor`.
    public var before: UInt64?
    public var limit: Int
    public var reason: QuarantineReason?
    public var orderId: String?
    /// Matches the peer address exactly, or its source (an IPv4 address without port, an IPv6 /64).
    public var remoteAddress: String?

    public init(
        before: UInt64? = nil,
        limit: Int = 100,
        reason: QuarantineReason? = nil,
        orderId: String? = nil,
        remoteAddress: String? = nil
    ) {
        self.before = before
        self.limit = limit
        self.reason = reason
        self.orderId = orderId
        self.remoteAddress = remoteAddress
    }

    /// Whether `entry` passes the filters (not the cursor).
    public func matches(_ entry: QuarantineEntry) -> Bool {
        if let reason = self.reason, entry.reason != reason { return false }
        if let orderId = self.orderId, entry.orderId != orderId { return false }
        if let remote = self.remoteAddress, entry.remoteAddress != remote, entry.source != remote { return false }
        return true
    }
}

/// One page of the quarantine, newest first.
public struct QuarantinePage: Sendable, Hashable {
    public var entries: [QuarantineEntry]
    /// The cursor of the next (older) page, or nil when this page is the last.
    public var nextCursor: UInt64?

    public init(entries: [QuarantineEntry], nextCursor: UInt64?) {
        self.entries = entries
        self.nextCursor = nextCursor
    }
}

/// What became of a quarantined notification.
public struct QuarantineReceipt: Sendable, Hashable {
    /// The entry's id.
    public var id: UInt64
    /// Entries dropped to make room for it.
    public var dropped: Int
    /// Whether it named an order the ledger holds (its counts are then kept per order).
    public var orderKnown: Bool

    public init(id: UInt64, dropped: Int, orderKnown: Bool) {
        self.id = id
        self.dropped = dropped
        self.orderKnown = orderKnown
    }
}

/// The quarantine's storage format: one entry to bytes and back, the same for every store.
public enum QuarantineCodec {
    public static let formatVersion: UInt8 = 1

    public static func encode(_ entry: QuarantineEntry) -> [UInt8] {
        var writer = ByteWriter(capacity: entry.accountedBytes + 16)
        writer.append(Self.formatVersion)
        writer.append(entry.id)
        writer.append(UInt64(bitPattern: entry.receivedAt.millisecondsSinceEpoch))
        writer.append(entry.reason.code)
        writer.append(UInt32(clamping: entry.bodyBytes))
        writer.appendText(entry.remoteAddress)
        writer.appendText(entry.source)
        writer.appendText(entry.detail)
        writer.appendOptionalText(entry.orderId)
        writer.appendBytes(entry.body)
        return writer.bytes
    }

    public static func decode(_ buffer: UnsafeRawBufferPointer) throws(EventDecodingError) -> QuarantineEntry {
        var reader = ByteReader(buffer)
        let start = reader.offset
        guard try reader.u8() == Self.formatVersion else {
            throw EventDecodingError(reason: .invalidValue("quarantine format"), offset: start)
        }
        let id = try reader.u64()
        let receivedAt = Instant(millisecondsSinceEpoch: Int64(bitPattern: try reader.u64()))
        let reasonOffset = reader.offset
        guard let reason = QuarantineReason(code: try reader.u8()) else {
            throw EventDecodingError(reason: .invalidValue("quarantine reason"), offset: reasonOffset)
        }
        let bodyBytes = Int(try reader.u32())
        let remoteAddress = try reader.text()
        let source = try reader.text()
        let detail = try reader.text()
        let orderId = try reader.optionalText()
        let body = try reader.bytes()
        guard reader.isAtEnd else {
            throw EventDecodingError(reason: .invalidValue("trailing bytes"), offset: reader.offset)
        }
        return QuarantineEntry(
            id: id,
            receivedAt: receivedAt,
            remoteAddress: remoteAddress,
            source: source,
            reason: reason,
            detail: detail,
            orderId: orderId,
            body: body,
            bodyBytes: bodyBytes
        )
    }

    public static func decode(_ bytes: [UInt8]) throws(EventDecodingError) -> QuarantineEntry {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(EventDecodingError) -> QuarantineEntry in try Self.decode(buffer) }
        }
        return try result.get()
    }

    /// A `QuarantineCounts` in 32 bytes: the two counts, then first and last time (`Int64.min` for none).
    public static func encode(_ counts: QuarantineCounts) -> [UInt8] {
        var writer = ByteWriter(capacity: 32)
        writer.append(counts.badSignature)
        writer.append(counts.foreignMember)
        writer.append(UInt64(bitPattern: counts.firstAt?.millisecondsSinceEpoch ?? Int64.min))
        writer.append(UInt64(bitPattern: counts.lastAt?.millisecondsSinceEpoch ?? Int64.min))
        return writer.bytes
    }

    public static func decodeCounts(_ buffer: UnsafeRawBufferPointer) throws(EventDecodingError) -> QuarantineCounts {
        var reader = ByteReader(buffer)
        guard buffer.count == 32 else {
            throw EventDecodingError(reason: .invalidValue("quarantine counts"), offset: 0)
        }
        let bad = try reader.u64()
        let foreign = try reader.u64()
        let first = Int64(bitPattern: try reader.u64())
        let last = Int64(bitPattern: try reader.u64())
        return QuarantineCounts(
            badSignature: bad,
            foreignMember: foreign,
            firstAt: first == Int64.min ? nil : Instant(millisecondsSinceEpoch: first),
            lastAt: last == Int64.min ? nil : Instant(millisecondsSinceEpoch: last)
        )
    }
}

/// The quarantine held in memory, with the eviction rule every store follows: while the quarantine holds more
/// than `entriesMax` entries or `bytesMax` accounted bytes, the oldest entry of the source holding the most entries
/// is dropped (of two sources holding as many, the one whose name sorts last by its UTF-8 bytes). A flood from one
/// source therefore displaces its own entries once it holds the most, never what other sources sent.
///
/// The in-memory store uses it as it is; the LMDB and PostgreSQL stores implement the same rule over their tables,
/// and the store contract suite holds them to it.
public struct QuarantineBook: Sendable {
    public let limits: QuarantineLimits
    private(set) var entries: [UInt64: QuarantineEntry] = [:]
    private var bySource: [String: [UInt64]] = [:]
    private var nextId: UInt64 = 1
    public private(set) var status = QuarantineStatus()
    public private(set) var perOrder: [String: QuarantineCounts] = [:]

    public init(limits: QuarantineLimits) {
        self.limits = limits
    }

    /// Keeps `entry`, counts it (per order when `orderKnown`), and drops what the bounds require.
    public mutating func add(_ entry: QuarantineEntry, orderKnown: Bool) -> QuarantineReceipt {
        var entry = entry
        entry.id = self.nextId
        self.nextId += 1
        self.entries[entry.id] = entry
        self.bySource[entry.source, default: []].append(entry.id)
        self.status.entries += 1
        self.status.bytes += UInt64(entry.accountedBytes)
        self.status.total.count(entry.reason, at: entry.receivedAt)
        if orderKnown, let orderId = entry.orderId {
            self.perOrder[orderId, default: QuarantineCounts()].count(entry.reason, at: entry.receivedAt)
        } else {
            self.status.unknownOrders.count(entry.reason, at: entry.receivedAt)
        }
        var dropped = 0
        while self.status.entries > UInt64(self.limits.entriesMax) || self.status.bytes > UInt64(self.limits.bytesMax) {
            let heaviest = self.bySource.max { lhs, rhs in
                lhs.value.count != rhs.value.count
                    ? lhs.value.count < rhs.value.count : lhs.key.utf8.lexicographicallyPrecedes(rhs.key.utf8)
            }
            guard let (source, ids) = heaviest, let oldest = ids.first,
                let removed = self.entries.removeValue(forKey: oldest)
            else { break }
            if ids.count == 1 {
                self.bySource[source] = nil
            } else {
                self.bySource[source]!.removeFirst()
            }
            self.status.entries -= 1
            self.status.bytes -= UInt64(removed.accountedBytes)
            self.status.dropped += 1
            dropped += 1
        }
        return QuarantineReceipt(id: entry.id, dropped: dropped, orderKnown: orderKnown)
    }

    /// A page, newest first.
    public func page(_ query: QuarantineQuery) -> QuarantinePage {
        let limit = max(query.limit, 0)
        var found: [QuarantineEntry] = []
        for id in self.entries.keys.sorted(by: >) where query.before.map({ id < $0 }) ?? true {
            guard let entry = self.entries[id], query.matches(entry) else { continue }
            if found.count == limit { return QuarantinePage(entries: found, nextCursor: found.last?.id) }
            found.append(entry)
        }
        return QuarantinePage(entries: found, nextCursor: nil)
    }
}

extension CallbackCounts {
    /// Adds quarantined notifications to an audit's counts: bad signatures as `badSignature`, foreign member ids as
    /// `memberMismatch` (the classifications the projection gives the same notifications in logs written before
    /// the quarantine existed), each also as received.
    public mutating func add(quarantined counts: QuarantineCounts) {
        self.received &+= UInt32(clamping: counts.total)
        self.badSignature &+= UInt32(clamping: counts.badSignature)
        self.memberMismatch &+= UInt32(clamping: counts.foreignMember)
        if let first = counts.firstAt, self.firstAt.map({ first < $0 }) ?? true { self.firstAt = first }
        if let last = counts.lastAt, self.lastAt.map({ last > $0 }) ?? true { self.lastAt = last }
    }
}
