import CLMDB
public import FoundationEssentials

/// A read-only transaction: a consistent snapshot of the whole environment as of the moment it began.
///
/// It exists only inside the closure passed to `LMDBEnvironment.read`, which hands it over `borrowing`. The type is
/// `~Copyable` and not `Sendable`, so the closure cannot copy it out, store it, or pass it to another task: no
/// `MDB_txn*` outlives the closure. (A `~Escapable` type would say the same thing more directly, but declaring one
/// needs the experimental `Lifetimes` feature, which this package does not enable.)
///
/// Buffers returned by `get` and by cursors point into LMDB's memory map. lmdb.h, mdb_get: "The memory pointed to
/// by the returned values is owned by the database. The caller need not dispose of the memory, and may not modify
/// it in any way. ... Values returned from the database are valid only until a subsequent update operation, or the
/// end of the transaction." Copy what must outlive the closure (`getBytes` does).
public struct LMDBReadTransaction: ~Copyable {
    let txn: OpaquePointer

    init(_ txn: OpaquePointer) {
        self.txn = txn
    }

    /// The transaction's id: for a read transaction, the id of the snapshot it reads (lmdb.h, mdb_txn_id).
    public var id: Int { mdb_txn_id(self.txn) }

    /// The value stored under `key`, as a buffer valid only inside this transaction's closure, or nil if absent.
    /// In a DUPSORT database it is the first (smallest) value of the key.
    public func get(_ db: LMDBDatabase, key: some ContiguousBytes) throws(LMDBError) -> UnsafeRawBufferPointer? {
        try LMDBOperations.get(self.txn, db, key: key)
    }

    /// The value stored under `key`, copied into an array that may outlive the transaction, or nil if absent.
    public func getBytes(_ db: LMDBDatabase, key: some ContiguousBytes) throws(LMDBError) -> [UInt8]? {
        try LMDBOperations.get(self.txn, db, key: key).map { Array($0) }
    }

    /// The statistics of `db` as this transaction sees it; `entries` is its number of key/value pairs.
    public func stat(_ db: LMDBDatabase) throws(LMDBError) -> LMDBDatabaseStatistics {
        try LMDBOperations.stat(self.txn, db)
    }

    /// Runs `body` with a cursor over `db` that is closed when `body` returns.
    public func withCursor<T>(_ db: LMDBDatabase, _ body: (borrowing LMDBCursor) throws -> T) throws -> T {
        try LMDBOperations.withCursor(self.txn, db, body)
    }

    /// Calls `body` for each entry of `db` whose key is at or after `startKey`, in key order (and, in a DUPSORT
    /// database, for each duplicate in value order), until `body` returns `.stop` or the entries run out.
    public func forEach(
        _ db: LMDBDatabase,
        from startKey: some ContiguousBytes,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> LMDBIterationControl
    ) throws {
        try self.withCursor(db) { cursor in try cursor.forEach(from: startKey, body) }
    }

    /// Calls `body` for each entry of `db` in key order until it returns `.stop` or the entries run out.
    public func forEach(
        _ db: LMDBDatabase,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> LMDBIterationControl
    ) throws {
        try self.withCursor(db) { cursor in try cursor.forEach(body) }
    }
}

@available(*, unavailable, message: "A transaction must stay on the thread running its closure")
extension LMDBReadTransaction: Sendable {}

/// A read-write transaction. It commits when the closure passed to `LMDBEnvironment.write` returns and aborts when
/// the closure throws.
///
/// Like `LMDBReadTransaction` it is `~Copyable`, not `Sendable`, and handed to the closure `borrowing`, so it cannot
/// outlive the closure. lmdb.h, mdb_txn_begin: "A transaction and its cursors must only be used by a single
/// thread". The closure is synchronous, so the transaction begins, is used and ends on one thread, which also keeps
/// LMDB's writer mutex (a pthread mutex, owned by the thread that locked it) on the thread that unlocks it.
///
/// Reads inside a write transaction see the transaction's own uncommitted writes. Buffers returned by `get` and by
/// cursors are valid until the next update operation in this transaction or its end (lmdb.h, mdb_get).
public struct LMDBWriteTransaction: ~Copyable {
    let txn: OpaquePointer
    /// Set when a call returned MDB_MAP_FULL, so that `write` knows the transaction is spoiled and
    /// `writeGrowing` knows to grow, even if the closure caught the error and went on.
    let mapFullSeen: UnsafeMutablePointer<Bool>

    init(_ txn: OpaquePointer, mapFullSeen: UnsafeMutablePointer<Bool>) {
        self.txn = txn
        self.mapFullSeen = mapFullSeen
    }

    /// The transaction's id (lmdb.h, mdb_txn_id): the id the environment will have after this commit.
    public var id: Int { mdb_txn_id(self.txn) }

    /// The value stored under `key`, as a buffer valid until the next update in this transaction or its end.
    public func get(_ db: LMDBDatabase, key: some ContiguousBytes) throws(LMDBError) -> UnsafeRawBufferPointer? {
        try LMDBOperations.get(self.txn, db, key: key)
    }

    /// The value stored under `key`, copied, or nil if absent.
    public func getBytes(_ db: LMDBDatabase, key: some ContiguousBytes) throws(LMDBError) -> [UInt8]? {
        try LMDBOperations.get(self.txn, db, key: key).map { Array($0) }
    }

    /// The statistics of `db` including this transaction's writes.
    public func stat(_ db: LMDBDatabase) throws(LMDBError) -> LMDBDatabaseStatistics {
        try LMDBOperations.stat(self.txn, db)
    }

    /// Runs `body` with a cursor over `db` that is closed when `body` returns.
    public func withCursor<T>(_ db: LMDBDatabase, _ body: (borrowing LMDBCursor) throws -> T) throws -> T {
        try LMDBOperations.withCursor(self.txn, db, body)
    }

    /// Calls `body` for each entry at or after `startKey` until it returns `.stop`; see `LMDBReadTransaction`.
    public func forEach(
        _ db: LMDBDatabase,
        from startKey: some ContiguousBytes,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> LMDBIterationControl
    ) throws {
        try self.withCursor(db) { cursor in try cursor.forEach(from: startKey, body) }
    }

    /// Calls `body` for each entry of `db` in key order until it returns `.stop`.
    public func forEach(
        _ db: LMDBDatabase,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> LMDBIterationControl
    ) throws {
        try self.withCursor(db) { cursor in try cursor.forEach(body) }
    }

    /// Stores `value` under `key`.
    ///
    /// With `.noOverwrite` or `.noDupData` an existing key (pair) is reported as `.keyExists` and nothing changes.
    /// With `.append` or `.appendDup` a key that does not sort after the last one throws `.keyExist`, because
    /// lmdb.h returns the same MDB_KEYEXIST for "out of order" and "equal to the last key" and both are caller
    /// bugs. `.mapFull` means the transaction is spoiled (lmdb.h marks it failed); let the error propagate so the
    /// transaction aborts, and use `writeGrowing` to grow the map and retry.
    @discardableResult
    public func put(
        _ db: LMDBDatabase,
        key: some ContiguousBytes,
        value: some ContiguousBytes,
        flags: LMDBPutFlags = []
    ) throws(LMDBError) -> LMDBPutResult {
        let rc = key.withUnsafeBytes { keyBytes in
            value.withUnsafeBytes { valueBytes in
                var keyValue = MDB_val(keyBytes)
                var dataValue = MDB_val(valueBytes)
                return mdb_put(self.txn, db.handle, &keyValue, &dataValue, flags.rawValue)
            }
        }
        return try self.putResult(rc, db, flags, "mdb_put")
    }

    /// Stores `value` under `key` unless the key is present, and then returns the value already stored (valid
    /// until the transaction changes the database or ends): one B-tree search where a get and a put take two.
    ///
    /// lmdb.h, mdb_put with MDB_NOOVERWRITE: "The data parameter will be set to point to the existing item" when
    /// it returns MDB_KEYEXIST. Not for DUPSORT databases, where that flag means something else.
    public func insertOrGet(
        _ db: LMDBDatabase,
        key: some ContiguousBytes,
        value: some ContiguousBytes
    ) throws(LMDBError) -> UnsafeRawBufferPointer? {
        precondition(!db.flags.contains(.dupSort), "insertOrGet is not for DUPSORT databases")
        var existing: UnsafeRawBufferPointer?
        let rc = key.withUnsafeBytes { keyBytes in
            value.withUnsafeBytes { valueBytes in
                var keyValue = MDB_val(keyBytes)
                var dataValue = MDB_val(valueBytes)
                let rc = mdb_put(self.txn, db.handle, &keyValue, &dataValue, UInt32(MDB_NOOVERWRITE))
                if rc == MDB_KEYEXIST {
                    existing = UnsafeRawBufferPointer(start: dataValue.mv_data, count: dataValue.mv_size)
                }
                return rc
            }
        }
        if rc == MDB_KEYEXIST { return existing }
        _ = try self.putResult(rc, db, .noOverwrite, "mdb_put")
        return nil
    }

    /// Stores a value of `count` bytes under `key`, letting `fill` write the bytes straight into LMDB's page.
    ///
    /// lmdb.h: MDB_RESERVE, "reserve space for data of the given size, but don't copy the given data. Instead,
    /// return a pointer to the reserved space, which the caller can fill in later - before the next update
    /// operation or the transaction ends. ... the caller is expected to modify all of the space requested. This
    /// flag must not be specified if the database was opened with MDB_DUPSORT." `fill` must write every byte and
    /// must not touch the transaction. If `fill` throws, let the error end the transaction, which then aborts,
    /// because the reserved value holds garbage. Returns `.keyExists` (and does not call `fill`) under the same
    /// conditions as `put`.
    @discardableResult
    public func putReserved(
        _ db: LMDBDatabase,
        key: some ContiguousBytes,
        count: Int,
        flags: LMDBPutFlags = [],
        _ fill: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws -> LMDBPutResult {
        guard !db.flags.contains(.dupSort) else {
            throw LMDBError(
                code: .invalidArgument,
                operation: "mdb_put(\(db), MDB_RESERVE)",
                detail: "MDB_RESERVE may not be used on a DUPSORT database, and \(db) is one."
            )
        }
        var reserved = MDB_val(mv_size: count, mv_data: nil)
        let rc = key.withUnsafeBytes { keyBytes in
            var keyValue = MDB_val(keyBytes)
            return mdb_put(self.txn, db.handle, &keyValue, &reserved, flags.rawValue | UInt32(MDB_RESERVE))
        }
        let result = try self.putResult(rc, db, flags, "mdb_put")
        if result == .stored {
            try fill(UnsafeMutableRawBufferPointer(start: reserved.mv_data, count: reserved.mv_size))
        }
        return result
    }

    /// Deletes `key` and, in a DUPSORT database, all its values. Returns false if the key was absent.
    @discardableResult
    public func delete(_ db: LMDBDatabase, key: some ContiguousBytes) throws(LMDBError) -> Bool {
        let rc = key.withUnsafeBytes { keyBytes in
            var keyValue = MDB_val(keyBytes)
            return mdb_del(self.txn, db.handle, &keyValue, nil)
        }
        return try self.deleteResult(rc, db)
    }

    /// Deletes one key/value pair of a DUPSORT database. Returns false if the pair was absent.
    ///
    /// lmdb.h, mdb_del: "If the database supports sorted duplicates and the data parameter is NULL, all of the
    /// duplicate data items for the key will be deleted. Otherwise, if the data parameter is non-NULL only the
    /// matching data item will be deleted."
    @discardableResult
    public func delete(
        _ db: LMDBDatabase,
        key: some ContiguousBytes,
        value: some ContiguousBytes
    ) throws(LMDBError) -> Bool {
        let rc = key.withUnsafeBytes { keyBytes in
            value.withUnsafeBytes { valueBytes in
                var keyValue = MDB_val(keyBytes)
                var dataValue = MDB_val(valueBytes)
                return mdb_del(self.txn, db.handle, &keyValue, &dataValue)
            }
        }
        return try self.deleteResult(rc, db)
    }

    /// Empties `db` (to rebuild a projection), or with `delete: true` deletes it from the environment.
    ///
    /// lmdb.h, mdb_drop: "0 to empty the DB, 1 to delete it from the environment and close the DB handle." After a
    /// delete, `db` must not be used again; reopen it with `LMDBEnvironment.openDatabase` after this commits.
    public func drop(_ db: LMDBDatabase, delete: Bool = false) throws(LMDBError) {
        let rc = mdb_drop(self.txn, db.handle, delete ? 1 : 0)
        if rc == MDB_MAP_FULL { self.mapFullSeen.pointee = true }
        try check(rc, "mdb_drop(\(db))")
    }

    private func putResult(
        _ rc: Int32,
        _ db: LMDBDatabase,
        _ flags: LMDBPutFlags,
        _ call: StaticString
    ) throws(LMDBError) -> LMDBPutResult {
        if rc == MDB_SUCCESS { return .stored }
        if rc == MDB_KEYEXIST {
            if !flags.isDisjoint(with: [.append, .appendDup]) {
                throw LMDBError(
                    code: .keyExist,
                    operation: "\(call)(\(db), MDB_APPEND)",
                    detail: """
                        An append to \(db) was refused because its key does not sort after the last key; \
                        MDB_APPEND requires keys in ascending order.
                        """
                )
            }
            if !flags.isDisjoint(with: [.noOverwrite, .noDupData]) { return .keyExists }
        }
        if rc == MDB_MAP_FULL { self.mapFullSeen.pointee = true }
        throw LMDBError(code: LMDBResultCode(rawValue: rc), operation: "\(call)(\(db))")
    }

    private func deleteResult(_ rc: Int32, _ db: LMDBDatabase) throws(LMDBError) -> Bool {
        if rc == MDB_NOTFOUND { return false }
        // A delete can need new pages (copy-on-write of the path to the leaf), so it too can fill the map.
        if rc == MDB_MAP_FULL { self.mapFullSeen.pointee = true }
        try check(rc, "mdb_del(\(db))")
        return true
    }
}

@available(*, unavailable, message: "A transaction must stay on the thread running its closure")
extension LMDBWriteTransaction: Sendable {}

/// The reading operations both transaction kinds share, on the raw `MDB_txn*` that never leaves this module.
enum LMDBOperations {
    @inline(__always)
    static func get(
        _ txn: OpaquePointer,
        _ db: LMDBDatabase,
        key: some ContiguousBytes
    ) throws(LMDBError) -> UnsafeRawBufferPointer? {
        var dataValue = MDB_val()
        let rc = key.withUnsafeBytes { keyBytes in
            var keyValue = MDB_val(keyBytes)
            return mdb_get(txn, db.handle, &keyValue, &dataValue)
        }
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "mdb_get(\(db))")
        return UnsafeRawBufferPointer(dataValue)
    }

    static func stat(_ txn: OpaquePointer, _ db: LMDBDatabase) throws(LMDBError) -> LMDBDatabaseStatistics {
        var stat = MDB_stat()
        try check(mdb_stat(txn, db.handle, &stat), "mdb_stat(\(db))")
        return LMDBDatabaseStatistics(stat)
    }

    static func withCursor<T>(
        _ txn: OpaquePointer,
        _ db: LMDBDatabase,
        _ body: (borrowing LMDBCursor) throws -> T
    ) throws -> T {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, db.handle, &cursor), "mdb_cursor_open(\(db))")
        // lmdb.h, mdb_cursor_open: "A cursor in a read-only transaction must be closed explicitly ... A cursor in a
        // write-transaction can be closed before its transaction ends". Closing here, always, is right for both.
        defer { mdb_cursor_close(cursor) }
        // Bound to a `let` first: passing the fresh ~Copyable value straight to the `borrowing` parameter crashes
        // Swift 6.3's optimizer (GenericSpecializer, "Cannot initialize a nonCopyable type with a guaranteed value").
        let borrowed = LMDBCursor(cursor!, database: db)
        return try body(borrowed)
    }
}

extension MDB_val {
    /// A value describing `bytes` for LMDB to read. LMDB's input values are not written to (except by
    /// MDB_RESERVE, which this wrapper passes its own value for), so casting away `const` is sound.
    @inline(__always)
    init(_ bytes: UnsafeRawBufferPointer) {
        self.init(mv_size: bytes.count, mv_data: UnsafeMutableRawPointer(mutating: bytes.baseAddress))
    }
}

extension UnsafeRawBufferPointer {
    /// A buffer over the bytes an `MDB_val` that LMDB filled in describes.
    @inline(__always)
    init(_ value: MDB_val) {
        self.init(start: value.mv_data, count: value.mv_size)
    }
}
