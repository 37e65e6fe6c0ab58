import FoundationEssentials
import LedgerCore

/// The named databases of the ledger's LMDB environment and how their keys and values are laid out.
///
/// Every per-order table is keyed by the order's *handle*, not by the merchant's order id: the handle is the
/// sequence number of the first event that named the order, so orders created close together in time sit close
/// together in every B-tree. A commit of concurrent callbacks then dirties a few adjacent leaf pages per table
/// instead of one random page per order per table, and the pages written (and synced) per commit fall with them.
/// Only `order-ids`, written once per order, is keyed by the merchant's id.
///
/// - `events`: big-endian u64 sequence → CRC-32C (4 bytes, big-endian) + encoded event. Appended with
///   `MDB_APPEND`, so the log is append-only by construction.
/// - `order-ids`: order id → big-endian u64 handle (`MDB_NOOVERWRITE`: a handle never changes).
/// - `order-events` (DUPSORT): handle → big-endian u64 sequence of each of the order's events.
/// - `callback-dedup`: handle, signed content key → sequence of the first validly signed callback with that
///   content (`MDB_NOOVERWRITE`: the first one stays).
/// - `orders.0`, `orders.1`: handle → encoded `OrderState`; two generations, one live, one scratch for rebuilds.
/// - `by-status.0`, `by-status.1` (DUPSORT): status code byte → handle, so each status lists its orders in the
///   order the ledger first recorded them.
/// - `meta`: `format` → u8; `head` → u64 sequence + 32-byte hash; `generation` → u8 (the live one);
///   `checkpoint.0`, `checkpoint.1` → u64, the last sequence applied to each generation; `count.<type>` → u64,
///   the events of each type.
/// - `quarantine`, `quarantine-index`, `quarantine-counts`: notifications kept out of the log, outside the chain
///   (`LMDBQuarantine`). A ledger written before they existed gets them, empty, when it is opened.
/// - `forward-outbox`: `ForwardKey.bytes` (receiver, sequence, type) → `ForwardCodec` delivery, pending or dead;
///   `meta` `forward.position` → u64, the sequence outcomes have been derived up to (`LMDBForward`). Also made,
///   empty, when an older ledger is opened.
struct LMDBLayout: Sendable {
    /// 2: per-order tables keyed by handle (1 keyed them by order id).
    static let formatVersion: UInt8 = 2

    let events: LMDBDatabase
    let orderIds: LMDBDatabase
    let orderEvents: LMDBDatabase
    let callbackDedup: LMDBDatabase
    let orders: [LMDBDatabase]
    let byStatus: [LMDBDatabase]
    let meta: LMDBDatabase
    let quarantine: LMDBDatabase
    let quarantineIndex: LMDBDatabase
    let quarantineCounts: LMDBDatabase
    let forwardOutbox: LMDBDatabase

    init(environment: LMDBEnvironment) throws {
        self.events = try environment.openDatabase(name: "events")
        self.orderIds = try environment.openDatabase(name: "order-ids")
        // lmdb.h, MDB_DUPFIXED: all duplicates of a key have the same size (8 bytes here), stored packed.
        self.orderEvents = try environment.openDatabase(name: "order-events", flags: [.create, .dupSort, .dupFixed])
        self.callbackDedup = try environment.openDatabase(name: "callback-dedup")
        self.orders = [
            try environment.openDatabase(name: "orders.0"), try environment.openDatabase(name: "orders.1"),
        ]
        self.byStatus = [
            try environment.openDatabase(name: "by-status.0", flags: [.create, .dupSort, .dupFixed]),
            try environment.openDatabase(name: "by-status.1", flags: [.create, .dupSort, .dupFixed]),
        ]
        self.meta = try environment.openDatabase(name: "meta")
        self.quarantine = try environment.openDatabase(name: "quarantine")
        self.quarantineIndex = try environment.openDatabase(name: "quarantine-index")
        self.quarantineCounts = try environment.openDatabase(name: "quarantine-counts")
        self.forwardOutbox = try environment.openDatabase(name: "forward-outbox")
    }

    /// The handle of an order, or nil when no event names it.
    func handle(of orderId: String, in txn: borrowing LMDBReadTransaction) throws -> UInt64? {
        guard Self.canBeKey(orderId) else { return nil }
        return try Self.u64(txn.get(self.orderIds, key: Array(orderId.utf8)))
    }

    /// The same inside a write transaction.
    func handle(of orderId: String, in txn: borrowing LMDBWriteTransaction) throws -> UInt64? {
        guard Self.canBeKey(orderId) else { return nil }
        return try Self.u64(txn.get(self.orderIds, key: Array(orderId.utf8)))
    }

    /// Whether an order id can be an LMDB key at all: lmdb.h, mdb_get fails with MDB_BAD_VALSIZE for an empty key
    /// or one longer than the maximum key size (511 bytes in the default build). No stored order has such an
    /// id, so a lookup for one finds nothing instead of failing.
    static func canBeKey(_ orderId: String) -> Bool {
        !orderId.isEmpty && orderId.utf8.count <= 511
    }

    static let formatKey = Array("format".utf8)
    static let headKey = Array("head".utf8)
    static let generationKey = Array("generation".utf8)
    static let forwardPositionKey = Array("forward.position".utf8)
    static func checkpointKey(_ generation: Int) -> [UInt8] { Array("checkpoint.\(generation)".utf8) }
    static func countKey(_ type: EventType) -> [UInt8] { Array("count.\(type.rawValue)".utf8) }

    static func dedupKey(handle: UInt64, signedContentKey: String) -> [UInt8] {
        var key = withUnsafeBytes(of: handle.bigEndian) { Array($0) }
        key.append(contentsOf: signedContentKey.utf8)
        return key
    }

    static func encodeHead(_ head: LogHead) -> [UInt8] {
        var bytes = withUnsafeBytes(of: head.sequence.bigEndian) { Array($0) }
        bytes.append(contentsOf: head.hash.bytes)
        return bytes
    }

    static func decodeHead(_ buffer: UnsafeRawBufferPointer) -> LogHead? {
        guard buffer.count == 40, let sequence = LMDBUInt64Key(bytes: UnsafeRawBufferPointer(rebasing: buffer[0..<8])),
            let hash = Digest32(bytes: UnsafeRawBufferPointer(rebasing: buffer[8..<40]))
        else { return nil }
        return LogHead(sequence: sequence.value, hash: hash)
    }

    static func u64(_ buffer: UnsafeRawBufferPointer?) -> UInt64? {
        guard let buffer, let key = LMDBUInt64Key(bytes: buffer) else { return nil }
        return key.value
    }

    /// Checks the CRC of a stored value and returns the encoded event inside it.
    static func checkedEvent(_ value: UnsafeRawBufferPointer, sequence: UInt64) throws -> UnsafeRawBufferPointer {
        guard value.count > 4 else {
            throw StoreError(.corrupted, "Event \(sequence) is \(value.count) bytes, too short to hold an event.")
        }
        let stored = UInt32(value[0]) << 24 | UInt32(value[1]) << 16 | UInt32(value[2]) << 8 | UInt32(value[3])
        let encoded = UnsafeRawBufferPointer(rebasing: value[4...])
        guard CRC32C.checksum(encoded) == stored else {
            throw StoreError(.corrupted, "Event \(sequence) fails its checksum: the stored bytes are damaged.")
        }
        return encoded
    }

    /// Reads, checks and decodes the event stored under `sequence`.
    static func decodeStored(
        _ value: UnsafeRawBufferPointer,
        sequence: UInt64,
        scope: EventCodec.Scope = .full
    ) throws -> Event {
        let encoded = try Self.checkedEvent(value, sequence: sequence)
        let event: Event
        do {
            // The CRC has just been checked; the hash is the chain walk's job (`verifyChain`).
            event = try EventCodec.decode(encoded, verifyHash: false, scope: scope)
        } catch {
            throw StoreError(.corrupted, "Event \(sequence) does not decode: \(error.description)")
        }
        guard event.sequence == sequence else {
            throw StoreError(.corrupted, "The event stored under \(sequence) says it is event \(event.sequence).")
        }
        return event
    }
}
