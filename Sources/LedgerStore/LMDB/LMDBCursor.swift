import CLMDB
public import FoundationEssentials

/// A position in one database within one transaction, for ordered scans and for walking the values of a DUPSORT
/// key.
///
/// It exists only inside the closure passed to `withCursor`, borrowed and `~Copyable`, for the same reason the
/// transactions are: lmdb.h, mdb_cursor_open, "Cursors may not span transactions." Every move returns the entry it
/// lands on as `(key, value)` buffers into the memory map, valid until the next update in the transaction or its
/// end, or nil when there is no such entry (MDB_NOTFOUND).
public struct LMDBCursor: ~Copyable {
    /// One key/value pair as buffers into LMDB's memory map.
    public typealias Entry = (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)

    let cursor: OpaquePointer
    let database: LMDBDatabase

    init(_ cursor: OpaquePointer, database: LMDBDatabase) {
        self.cursor = cursor
        self.database = database
    }

    /// Moves to the first entry of the database (MDB_FIRST).
    public func first() throws(LMDBError) -> Entry? { try self.move(MDB_FIRST) }

    /// Moves to the last entry of the database (MDB_LAST).
    public func last() throws(LMDBError) -> Entry? { try self.move(MDB_LAST) }

    /// Moves to the next entry, which in a DUPSORT database is the next value of this key if there is one
    /// (MDB_NEXT). An unpositioned cursor moves to the first entry.
    public func next() throws(LMDBError) -> Entry? { try self.move(MDB_NEXT) }

    /// Moves to the previous entry (MDB_PREV). An unpositioned cursor moves to the last entry.
    public func prev() throws(LMDBError) -> Entry? { try self.move(MDB_PREV) }

    /// Returns the entry at the cursor without moving (MDB_GET_CURRENT).
    public func current() throws(LMDBError) -> Entry? { try self.move(MDB_GET_CURRENT) }

    /// Moves to the first entry whose key is at or after `key` (MDB_SET_RANGE).
    public func seek(_ key: some ContiguousBytes) throws(LMDBError) -> Entry? {
        try self.move(MDB_SET_RANGE, key: key)
    }

    /// Moves to `key` itself, or returns nil if it is absent (MDB_SET_KEY). In a DUPSORT database the cursor lands
    /// on the key's first value.
    public func seekExactly(_ key: some ContiguousBytes) throws(LMDBError) -> Entry? {
        try self.move(MDB_SET_KEY, key: key)
    }

    // DUPSORT moves. lmdb.h marks each "Only for MDB_DUPSORT"; on another database LMDB answers EINVAL or
    // MDB_INCOMPATIBLE, which these throw.

    /// Moves to the next value of the current key, or returns nil after its last value (MDB_NEXT_DUP).
    public func nextDuplicate() throws(LMDBError) -> Entry? { try self.move(MDB_NEXT_DUP) }

    /// Moves to the previous value of the current key (MDB_PREV_DUP).
    public func prevDuplicate() throws(LMDBError) -> Entry? { try self.move(MDB_PREV_DUP) }

    /// Moves to the first value of the current key (MDB_FIRST_DUP).
    public func firstDuplicate() throws(LMDBError) -> Entry? { try self.move(MDB_FIRST_DUP) }

    /// Moves to the last value of the current key (MDB_LAST_DUP).
    public func lastDuplicate() throws(LMDBError) -> Entry? { try self.move(MDB_LAST_DUP) }

    /// Moves to the first value of the next key, skipping the rest of this key's values (MDB_NEXT_NODUP).
    public func nextKey() throws(LMDBError) -> Entry? { try self.move(MDB_NEXT_NODUP) }

    /// Moves to the last value of the previous key (MDB_PREV_NODUP).
    public func prevKey() throws(LMDBError) -> Entry? { try self.move(MDB_PREV_NODUP) }

    /// Moves to `key` and its first value at or after `value` (MDB_GET_BOTH_RANGE), or returns nil if the key is
    /// absent or all its values sort before `value`.
    public func seek(
        _ key: some ContiguousBytes,
        valueAtOrAfter value: some ContiguousBytes
    ) throws(LMDBError) -> Entry? {
        var keyValue = MDB_val()
        var dataValue = MDB_val()
        let rc = key.withUnsafeBytes { keyBytes in
            value.withUnsafeBytes { valueBytes in
                keyValue = MDB_val(keyBytes)
                dataValue = MDB_val(valueBytes)
                return mdb_cursor_get(self.cursor, &keyValue, &dataValue, MDB_GET_BOTH_RANGE)
            }
        }
        guard try self.entry(rc, keyValue, dataValue, MDB_GET_BOTH_RANGE) != nil else { return nil }
        // MDB_GET_BOTH_RANGE leaves the key pointing at the caller's bytes, which are gone once `withUnsafeBytes`
        // returns, so the entry is read back from the map where both buffers stay valid.
        return try self.current()
    }

    /// The number of values of the current key in a DUPSORT database (lmdb.h, mdb_cursor_count).
    public func duplicateCount() throws(LMDBError) -> Int {
        var count = 0
        try check(mdb_cursor_count(self.cursor, &count), "mdb_cursor_count(\(self.database))")
        return count
    }

    /// Calls `body` for each entry from the first, in order, until it returns `.stop` or the entries run out.
    public func forEach(
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> LMDBIterationControl
    ) throws {
        var entry = try self.first()
        while let (key, value) = entry {
            if try body(key, value) == .stop { return }
            entry = try self.next()
        }
    }

    /// Calls `body` for each entry from the first whose key is at or after `startKey`, in order, until it returns
    /// `.stop` or the entries run out.
    public func forEach(
        from startKey: some ContiguousBytes,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> LMDBIterationControl
    ) throws {
        var entry = try self.seek(startKey)
        while let (key, value) = entry {
            if try body(key, value) == .stop { return }
            entry = try self.next()
        }
    }

    /// Calls `body` for each value of `key` in a DUPSORT database, in value order, until it returns `.stop` or the
    /// values run out. Does nothing if the key is absent.
    public func forEachDuplicate(
        of key: some ContiguousBytes,
        _ body: (_ value: UnsafeRawBufferPointer) throws -> LMDBIterationControl
    ) throws {
        var entry = try self.seekExactly(key)
        while let (_, value) = entry {
            if try body(value) == .stop { return }
            entry = try self.nextDuplicate()
        }
    }

    @inline(__always)
    private func move(_ op: MDB_cursor_op) throws(LMDBError) -> Entry? {
        var keyValue = MDB_val()
        var dataValue = MDB_val()
        let rc = mdb_cursor_get(self.cursor, &keyValue, &dataValue, op)
        return try self.entry(rc, keyValue, dataValue, op)
    }

    @inline(__always)
    private func move(_ op: MDB_cursor_op, key: some ContiguousBytes) throws(LMDBError) -> Entry? {
        var keyValue = MDB_val()
        var dataValue = MDB_val()
        let rc = key.withUnsafeBytes { keyBytes in
            keyValue = MDB_val(keyBytes)
            return mdb_cursor_get(self.cursor, &keyValue, &dataValue, op)
        }
        return try self.entry(rc, keyValue, dataValue, op)
    }

    @inline(__always)
    private func entry(
        _ rc: Int32,
        _ keyValue: MDB_val,
        _ dataValue: MDB_val,
        _ op: MDB_cursor_op
    ) throws(LMDBError) -> Entry? {
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "mdb_cursor_get(\(self.database), op \(op.rawValue))")
        return (UnsafeRawBufferPointer(keyValue), UnsafeRawBufferPointer(dataValue))
    }
}

@available(*, unavailable, message: "A cursor must stay on the thread running its transaction's closure")
extension LMDBCursor: Sendable {}
