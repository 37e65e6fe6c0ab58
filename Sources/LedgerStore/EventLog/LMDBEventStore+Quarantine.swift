import FoundationEssentials
public import LedgerCore

/// The quarantine's tables in the ledger's LMDB environment, outside the hash chain.
///
/// - `quarantine`: big-endian u64 entry id → `QuarantineCodec` entry. Ids rise with arrival, so the first key is
///   the oldest entry and a reverse scan pages newest first.
/// - `quarantine-index`: three kinds of key, by their first byte, all with empty values:
///   - `s` + u16 length + source + u64 id: each source's entries, oldest first (the entry to drop);
///   - `w` + u64 count + source: the sources by how many entries each holds, so the last key names the heaviest
///     (of two holding as many, the one whose name sorts last, as `QuarantineBook` decides);
///   - `c` + source → u64 count: how many entries the source holds, to find its `w` key.
/// - `quarantine-counts`: order id → 32-byte `QuarantineCounts` for orders the ledger held when the notification
///   arrived; `#status` → the entries, bytes, drops and next id, then the counts of all and of unknown orders. `#`
///   cannot begin an order id, so the two kinds of key never meet.
enum LMDBQuarantine {
    static let statusKey = Array("#status".utf8)

    struct Record {
        var status = QuarantineStatus()
        var nextId: UInt64 = 1

        init() {}

        init(_ buffer: UnsafeRawBufferPointer) throws {
            guard buffer.count == 96 else {
                throw StoreError(.corrupted, "The quarantine's status record is \(buffer.count) bytes, not 96.")
            }
            func u64(_ offset: Int) -> UInt64 {
                UInt64(bigEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            }
            do {
                self.status = QuarantineStatus(
                    entries: u64(0),
                    bytes: u64(8),
                    dropped: u64(16),
                    total: try QuarantineCodec.decodeCounts(UnsafeRawBufferPointer(rebasing: buffer[32..<64])),
                    unknownOrders: try QuarantineCodec.decodeCounts(UnsafeRawBufferPointer(rebasing: buffer[64..<96]))
                )
            } catch {
                throw StoreError(.corrupted, "The quarantine's status record does not decode: \(error.description)")
            }
            self.nextId = u64(24)
        }

        var bytes: [UInt8] {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(96)
            for value in [self.status.entries, self.status.bytes, self.status.dropped, self.nextId] {
                withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
            }
            bytes.append(contentsOf: QuarantineCodec.encode(self.status.total))
            bytes.append(contentsOf: QuarantineCodec.encode(self.status.unknownOrders))
            return bytes
        }
    }

    static func sourceKey(_ source: String, id: UInt64) -> [UInt8] {
        var key = Self.sourcePrefix(source)
        withUnsafeBytes(of: id.bigEndian) { key.append(contentsOf: $0) }
        return key
    }

    static func sourcePrefix(_ source: String) -> [UInt8] {
        let name = Array(source.utf8)
        var key: [UInt8] = [UInt8(ascii: "s")]
        withUnsafeBytes(of: UInt16(clamping: name.count).bigEndian) { key.append(contentsOf: $0) }
        key.append(contentsOf: name)
        return key
    }

    static func weightKey(_ source: String, count: UInt64) -> [UInt8] {
        var key: [UInt8] = [UInt8(ascii: "w")]
        withUnsafeBytes(of: count.bigEndian) { key.append(contentsOf: $0) }
        key.append(contentsOf: source.utf8)
        return key
    }

    static func countKey(_ source: String) -> [UInt8] { [UInt8(ascii: "c")] + Array(source.utf8) }

    /// Sets the number of entries `source` holds, keeping its weight key in step.
    static func setCount(
        _ source: String,
        from old: UInt64,
        to new: UInt64,
        layout: LMDBLayout,
        in txn: borrowing LMDBWriteTransaction
    ) throws {
        if old > 0 { try txn.delete(layout.quarantineIndex, key: Self.weightKey(source, count: old)) }
        if new > 0 {
            try txn.put(layout.quarantineIndex, key: Self.weightKey(source, count: new), value: [UInt8]())
            try txn.put(layout.quarantineIndex, key: Self.countKey(source), value: LMDBUInt64Key(new))
        } else {
            try txn.delete(layout.quarantineIndex, key: Self.countKey(source))
        }
    }

    static func count(of source: String, layout: LMDBLayout, in txn: borrowing LMDBWriteTransaction) throws -> UInt64 {
        LMDBLayout.u64(try txn.get(layout.quarantineIndex, key: Self.countKey(source))) ?? 0
    }

    /// Keeps `entry` inside the caller's write transaction (the writer's batch), counts it and drops what the
    /// bounds require, by `QuarantineBook`'s rule.
    static func add(
        _ entry: QuarantineEntry,
        orderKnown: Bool,
        limits: QuarantineLimits,
        layout: LMDBLayout,
        in txn: borrowing LMDBWriteTransaction
    ) throws -> QuarantineReceipt {
        var record = try txn.get(layout.quarantineCounts, key: Self.statusKey).map(Record.init) ?? Record()
        var entry = entry
        entry.id = record.nextId
        record.nextId += 1
        try txn.put(
            layout.quarantine,
            key: LMDBUInt64Key(entry.id),
            value: QuarantineCodec.encode(entry),
            flags: .append
        )
        try txn.put(layout.quarantineIndex, key: Self.sourceKey(entry.source, id: entry.id), value: [UInt8]())
        let held = try Self.count(of: entry.source, layout: layout, in: txn)
        try Self.setCount(entry.source, from: held, to: held + 1, layout: layout, in: txn)
        record.status.entries += 1
        record.status.bytes += UInt64(entry.accountedBytes)
        record.status.total.count(entry.reason, at: entry.receivedAt)
        if orderKnown, let orderId = entry.orderId {
            let key = Array(orderId.utf8)
            var counts = try txn.get(layout.quarantineCounts, key: key).map(Self.decodeCounts) ?? QuarantineCounts()
            counts.count(entry.reason, at: entry.receivedAt)
            try txn.put(layout.quarantineCounts, key: key, value: QuarantineCodec.encode(counts))
        } else {
            record.status.unknownOrders.count(entry.reason, at: entry.receivedAt)
        }
        var dropped = 0
        while record.status.entries > UInt64(limits.entriesMax) || record.status.bytes > UInt64(limits.bytesMax) {
            // The heaviest source: the last `w` key, which is the last key of the index (`w` sorts after `c`, `s`).
            let heaviest: String? = try txn.withCursor(layout.quarantineIndex) { cursor in
                guard let (key, _) = try cursor.last(), key.count >= 9, key[0] == UInt8(ascii: "w") else { return nil }
                return String(decoding: UnsafeRawBufferPointer(rebasing: key[9...]), as: UTF8.self)
            }
            guard let source = heaviest else {
                throw StoreError(
                    .corrupted,
                    "The quarantine holds \(record.status.entries) entries but its index names no source."
                )
            }
            // Its oldest entry: the first `s` key under its prefix.
            let prefix = Self.sourcePrefix(source)
            let oldest: UInt64? = try txn.withCursor(layout.quarantineIndex) { cursor in
                guard let (key, _) = try cursor.seek(prefix), key.count == prefix.count + 8,
                    key.starts(with: prefix)
                else { return nil }
                return LMDBUInt64Key(bytes: UnsafeRawBufferPointer(rebasing: key[prefix.count...]))?.value
            }
            guard let oldest, let stored = try txn.get(layout.quarantine, key: LMDBUInt64Key(oldest)) else {
                throw StoreError(.corrupted, "The quarantine's index names source \(source) with no entry.")
            }
            let removed = try Self.decodeEntry(stored, id: oldest)
            try txn.delete(layout.quarantine, key: LMDBUInt64Key(oldest))
            try txn.delete(layout.quarantineIndex, key: Self.sourceKey(source, id: oldest))
            let count = try Self.count(of: source, layout: layout, in: txn)
            try Self.setCount(source, from: count, to: count - 1, layout: layout, in: txn)
            record.status.entries -= 1
            record.status.bytes -= UInt64(removed.accountedBytes)
            record.status.dropped += 1
            dropped += 1
        }
        try txn.put(layout.quarantineCounts, key: Self.statusKey, value: record.bytes)
        return QuarantineReceipt(id: entry.id, dropped: dropped, orderKnown: orderKnown)
    }

    static func decodeCounts(_ buffer: UnsafeRawBufferPointer) throws -> QuarantineCounts {
        do {
            return try QuarantineCodec.decodeCounts(buffer)
        } catch {
            throw StoreError(.corrupted, "A quarantine count record does not decode: \(error.description)")
        }
    }

    static func decodeEntry(_ buffer: UnsafeRawBufferPointer, id: UInt64) throws -> QuarantineEntry {
        do {
            return try QuarantineCodec.decode(buffer)
        } catch {
            throw StoreError(.corrupted, "Quarantine entry \(id) does not decode: \(error.description)")
        }
    }
}

extension LMDBEventStore {
    public func quarantine(_ entry: QuarantineEntry) async throws -> QuarantineReceipt {
        try await self.writer.quarantine(entry)
    }

    public func quarantined(_ query: QuarantineQuery) async throws -> QuarantinePage {
        let limit = min(max(query.limit, 0), self.options.readPageMax)
        // The scan reads at most the quarantine's bounded number of entries; it runs off the cooperative pool.
        return try await DedicatedThread.run("ledger-quarantine") {
            [environment = self.environment, layout = self.layout] in
            try LMDBEventStore.read(environment) { txn in
                var found: [QuarantineEntry] = []
                var more = false
                try txn.withCursor(layout.quarantine) { cursor in
                    var entry: LMDBCursor.Entry?
                    if let before = query.before {
                        entry = try cursor.seek(LMDBUInt64Key(before)) != nil ? try cursor.prev() : try cursor.last()
                    } else {
                        entry = try cursor.last()
                    }
                    while let (key, value) = entry {
                        let id = LMDBUInt64Key(bytes: key)?.value ?? 0
                        let decoded = try LMDBQuarantine.decodeEntry(value, id: id)
                        if query.matches(decoded) {
                            if found.count == limit {
                                more = true
                                return
                            }
                            found.append(decoded)
                        }
                        entry = try cursor.prev()
                    }
                }
                return QuarantinePage(entries: found, nextCursor: more ? found.last?.id : nil)
            }
        }
    }

    public func quarantineCounts(orderId: String?) async throws -> [String: QuarantineCounts] {
        try await DedicatedThread.run("ledger-quarantine") { [environment = self.environment, layout = self.layout] in
            try LMDBEventStore.read(environment) { txn in
                if let orderId {
                    guard !orderId.isEmpty, let value = try txn.get(layout.quarantineCounts, key: Array(orderId.utf8))
                    else { return [:] }
                    return [orderId: try LMDBQuarantine.decodeCounts(value)]
                }
                var counts: [String: QuarantineCounts] = [:]
                try txn.forEach(layout.quarantineCounts) { key, value in
                    guard key.first != UInt8(ascii: "#") else { return .continue }
                    counts[String(decoding: key, as: UTF8.self)] = try LMDBQuarantine.decodeCounts(value)
                    return .continue
                }
                return counts
            }
        }
    }

    public func quarantineStatus() async throws -> QuarantineStatus {
        try self.read { txn in
            try txn.get(self.layout.quarantineCounts, key: LMDBQuarantine.statusKey).map(LMDBQuarantine.Record.init)?
                .status ?? QuarantineStatus()
        }
    }
}
