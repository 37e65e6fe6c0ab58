import CLMDB
import Glibc
import Synchronization

/// One open LMDB environment: the data directory holding `data.mdb` and `lock.mdb`, claimed by this process.
///
/// C resources stay inside closures, in the manner of GRDB's `dbQueue.write { db in … }`: `read` and `write` hand a
/// transaction to a synchronous closure and end it when the closure returns, so no `MDB_txn*` or cursor escapes.
///
/// The environment is always opened with `MDB_NOTLS`. lmdb.h, mdb_env_open: "Don't use Thread-Local Storage. Tie
/// reader locktable slots to MDB_txn objects instead of to threads. ... Applications that multiplex many user
/// threads over individual OS threads need this option." Swift tasks hop between OS threads, so a reader slot tied
/// to a thread would be reused by unrelated tasks; with `MDB_NOTLS` each read transaction owns its slot. The same
/// paragraph adds "Such an application must also serialize the write transactions in an OS thread, since LMDB's
/// write locking is unaware of the user threads": `write` runs its closure synchronously, so a write transaction
/// begins and ends on one thread, and the ledger has a single writer anyway. A write started on a second thread
/// while one runs simply waits in `mdb_txn_begin`, which is LMDB's own behaviour.
///
/// It is never opened with `MDB_NOSYNC`, `MDB_NOMETASYNC` or `MDB_WRITEMAP | MDB_MAPASYNC`. lmdb.h documents that
/// each of those trades away durability ("a system crash may undo the final transactions"), and the ledger
/// acknowledges a payment callback only once its event is on disk.
///
/// The class is `@unchecked Sendable` because sharing it between threads is sound: lmdb.h allows one `MDB_env` to
/// be used by many threads at once (the environment handle is thread-safe; only transactions and cursors are tied to
/// a thread, and those never leave their closures). The few things the wrapper itself mutates are guarded: the
/// count of open transactions and the closed state by `LMDBTransactionGate`'s mutex, the directory lock and database
/// opening by `Mutex`es. Resizing the map and closing the environment go through the gate, which waits until no
/// transaction of this process is open, as lmdb.h requires of `mdb_env_set_mapsize` and `mdb_env_close`.
public final class LMDBEnvironment: @unchecked Sendable {
    /// The limits and modes of an environment. Each bound has a name; `init` checks how they relate.
    public struct Options: Sendable, Hashable {
        /// The initial size of the memory map in bytes, rounded up to the OS page size. It is also the most the
        /// database can hold until the map grows. LMDB keeps a larger size from an earlier run only until the used
        /// data, so after a restart the map may start small again and `writeGrowing` grows it as needed.
        public var mapSize: Int
        /// The ceiling in bytes that `growMap` never passes (rounded down to the page size), so that a runaway
        /// writer fails with a clear error instead of filling the disk.
        public var mapSizeMax: Int
        /// The number of named databases the environment may hold (lmdb.h, mdb_env_set_maxdbs).
        public var maxDatabases: Int
        /// The size of the reader lock table: the most read transactions open at once across every process
        /// (lmdb.h, mdb_env_set_maxreaders; LMDB's default is 126).
        public var maxReaders: Int
        /// The permissions of the created `data.mdb` and `lock.mdb` files.
        public var fileMode: UInt32
        /// Opens with `MDB_RDONLY` and a shared directory lock: no writes, and no creation of the directory.
        public var readOnly: Bool
        /// How long `growMap` waits for this process's open transactions to finish before failing.
        public var mapGrowthWaitMax: Duration

        public init(
            mapSize: Int = 64 << 20,
            mapSizeMax: Int = 64 << 30,
            maxDatabases: Int = 16,
            maxReaders: Int = 126,
            fileMode: UInt32 = 0o600,
            readOnly: Bool = false,
            mapGrowthWaitMax: Duration = .seconds(10)
        ) {
            self.mapSize = mapSize
            self.mapSizeMax = mapSizeMax
            self.maxDatabases = maxDatabases
            self.maxReaders = maxReaders
            self.fileMode = fileMode
            self.readOnly = readOnly
            self.mapGrowthWaitMax = mapGrowthWaitMax
        }

        /// The options with the map sizes rounded to the page size, or an error naming the bound that is wrong.
        func validated() throws(LMDBError) -> Options {
            func invalid(_ sentence: String) -> LMDBError {
                LMDBError(code: .invalidArgument, operation: "LMDBEnvironment.Options", detail: sentence)
            }
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            guard self.mapSize > 0 else { throw invalid("mapSize must be positive, but it is \(self.mapSize).") }
            var options = self
            options.mapSize = (self.mapSize + page - 1) / page * page
            options.mapSizeMax = self.mapSizeMax / page * page
            guard options.mapSizeMax >= options.mapSize else {
                throw invalid(
                    "mapSizeMax (\(self.mapSizeMax) bytes) must be at least mapSize (\(options.mapSize) bytes)."
                )
            }
            guard self.maxDatabases >= 0, self.maxDatabases <= Int(UInt32.max) else {
                throw invalid("maxDatabases must be between 0 and \(UInt32.max), but it is \(self.maxDatabases).")
            }
            guard self.maxReaders >= 1, self.maxReaders <= Int(UInt32.max) else {
                throw invalid("maxReaders must be between 1 and \(UInt32.max), but it is \(self.maxReaders).")
            }
            guard self.mapGrowthWaitMax >= .zero else {
                throw invalid("mapGrowthWaitMax must not be negative, but it is \(self.mapGrowthWaitMax).")
            }
            return options
        }
    }

    /// The canonical (symlink-free, absolute) path of the data directory.
    public let path: String
    /// The options in force, with the map sizes rounded to the page size.
    public let options: Options
    /// The number of stale reader slots (left by processes that died inside a read transaction) that
    /// `mdb_reader_check` cleared while opening.
    public let staleReadersClearedAtOpen: Int

    let env: OpaquePointer
    let gate = LMDBTransactionGate()
    /// lmdb.h, mdb_dbi_open: "This function must not be called from multiple concurrent transactions in the same
    /// process." This lock serializes the wrapper's own calls.
    private let databaseOpening = Mutex(())
    /// Held from a successful open until `close`.
    private let directoryLock: Mutex<LMDBDirectoryLock?>

    /// Opens (creating if needed) the environment in the directory at `path`.
    ///
    /// Creates the directory with mode 0700 if it is missing (not in read-only mode), claims it with
    /// `<path>/ledgerd.lock` (throwing an `isDirectoryInUse` error if another process or another environment of
    /// this process holds it), opens LMDB with `MDB_NOTLS`, and clears stale reader slots.
    public init(path: String, options: Options = Options()) throws(LMDBError) {
        let options = try options.validated()
        if !options.readOnly {
            try Self.makeDirectory(path)
        }
        let canonical = try Self.canonicalPath(path)
        let lock = try LMDBDirectoryLock(directory: canonical, shared: options.readOnly)

        var handle: OpaquePointer?
        try check(mdb_env_create(&handle), "mdb_env_create")
        guard let env = handle else { throw LMDBError(code: .outOfMemory, operation: "mdb_env_create") }
        var cleared: Int32 = 0
        do {
            try check(mdb_env_set_mapsize(env, options.mapSize), "mdb_env_set_mapsize(\(options.mapSize))")
            try check(mdb_env_set_maxreaders(env, UInt32(options.maxReaders)), "mdb_env_set_maxreaders")
            try check(mdb_env_set_maxdbs(env, UInt32(options.maxDatabases)), "mdb_env_set_maxdbs")
            var flags = UInt32(MDB_NOTLS)
            if options.readOnly {
                flags |= UInt32(MDB_RDONLY)
            }
            try check(mdb_env_open(env, canonical, flags, mode_t(options.fileMode)), "mdb_env_open(\(canonical))")
            // lmdb.h, mdb_reader_check: "Check for stale entries in the reader lock table." A process killed inside
            // a read transaction leaves its slot taken, which pins old pages and makes the file grow; clearing the
            // slots at open undoes the damage of an earlier crash.
            let rc = mdb_reader_check(env, &cleared)
            if rc != MDB_SUCCESS && !options.readOnly {
                try check(rc, "mdb_reader_check(\(canonical))")
            }
        } catch {
            // lmdb.h, mdb_env_open: "If this function fails, mdb_env_close() must be called to discard the
            // MDB_env handle."
            mdb_env_close(env)
            throw error
        }
        self.env = env
        self.path = canonical
        self.options = options
        self.staleReadersClearedAtOpen = Int(cleared)
        self.directoryLock = Mutex(lock)
    }

    deinit {
        self.close()
    }

    /// Closes the environment and releases the directory, waiting for any transaction still open on another
    /// thread. Later calls on this environment throw. Closing twice is harmless.
    ///
    /// lmdb.h, mdb_env_close: "Only a single thread may call this function. All transactions, databases, and
    /// cursors must already be closed before calling this function." The gate guarantees the first part and the
    /// closures guarantee the rest.
    public func close() {
        guard self.gate.close() else { return }
        mdb_env_close(self.env)
        self.directoryLock.withLock { $0 = nil }
    }

    // MARK: Databases

    /// Opens the database `name` (nil for the unnamed main database) and returns its handle for use in any later
    /// transaction.
    ///
    /// Call it once per database at startup. The handle is opened in its own transaction that commits at once,
    /// because lmdb.h, mdb_dbi_open, says: "The database handle will be private to the current transaction until
    /// the transaction is successfully committed. ... After a successful commit the handle will reside in the
    /// shared environment, and may be used by other transactions." Opening a database that is already open
    /// returns the same handle ("The old database handle is returned if the database was already open").
    public func openDatabase(name: String?, flags: LMDBDatabaseFlags = [.create]) throws(LMDBError) -> LMDBDatabase {
        var openFlags = flags
        if self.options.readOnly {
            openFlags.remove(.create)
        }
        let operation = "mdb_dbi_open(\(name ?? "main"))"
        let readOnly = self.options.readOnly
        return try self.databaseOpening.withLock { _ throws(LMDBError) -> LMDBDatabase in
            let txn = try self.beginTransaction(readOnly: readOnly)
            defer { self.gate.leave() }
            var dbi: MDB_dbi = 0
            let rc: Int32
            if let name {
                rc = mdb_dbi_open(txn, name, openFlags.rawValue, &dbi)
            } else {
                rc = mdb_dbi_open(txn, nil, openFlags.rawValue, &dbi)
            }
            guard rc == MDB_SUCCESS else {
                mdb_txn_abort(txn)
                if rc == MDB_DBS_FULL {
                    throw LMDBError(
                        code: .dbsFull,
                        operation: operation,
                        detail: "The environment may hold at most maxDatabases (\(self.options.maxDatabases)) "
                            + "named databases, and opening \(name ?? "main") would pass that."
                    )
                }
                throw LMDBError(code: LMDBResultCode(rawValue: rc), operation: operation)
            }
            try check(mdb_txn_commit(txn), "mdb_txn_commit(\(operation))")
            return LMDBDatabase(handle: dbi, name: name, flags: flags)
        }
    }

    // MARK: Transactions

    /// Runs `body` in a read-only transaction: a snapshot that later commits do not change.
    ///
    /// The transaction, and every buffer it returns, is valid only inside `body`. It never blocks the writer and
    /// the writer never blocks it (lmdb.h: "writers cannot block readers, and readers don't block writers"), but
    /// keep it short: while it is open LMDB cannot reuse the pages it sees, and `growMap` waits for it.
    public func read<T>(_ body: (borrowing LMDBReadTransaction) throws -> T) throws -> T {
        let txn = try self.beginTransaction(readOnly: true)
        defer {
            // A read transaction has nothing to commit; aborting it releases its reader slot (lmdb.h,
            // mdb_txn_abort: "The transaction handle is freed").
            mdb_txn_abort(txn)
            self.gate.leave()
        }
        // Bound to a `let` first: see LMDBOperations.withCursor on the Swift 6.3 optimizer crash it avoids.
        let transaction = LMDBReadTransaction(txn)
        return try body(transaction)
    }

    /// Runs `body` in a read-write transaction that commits (durably: every commit is synced) when `body` returns
    /// and aborts, leaving nothing behind, when it throws.
    ///
    /// LMDB allows one write transaction at a time per environment; the caller (the ledger's single writer)
    /// serializes writes, and a second concurrent `write` waits in `mdb_txn_begin`. If a write in the
    /// transaction returned `MDB_MAP_FULL`, the transaction cannot commit (LMDB marks it failed), so `write`
    /// aborts it and throws `.mapFull` even if `body` caught that error; `writeGrowing` grows the map and retries.
    @discardableResult
    public func write<T>(_ body: (borrowing LMDBWriteTransaction) throws -> T) throws -> T {
        let txn = try self.beginTransaction(readOnly: false)
        defer { self.gate.leave() }
        var mapFullSeen = false
        let result: T
        do {
            result = try withUnsafeMutablePointer(to: &mapFullSeen) { flag in
                let transaction = LMDBWriteTransaction(txn, mapFullSeen: flag)
                return try body(transaction)
            }
        } catch {
            mdb_txn_abort(txn)
            if mapFullSeen && !(LMDBResultCode.mapFull ~= error) {
                throw LMDBError(
                    code: .mapFull,
                    operation: "mdb_put",
                    detail: "A write in the transaction hit MDB_MAP_FULL, and the closure then threw: \(error)"
                )
            }
            throw error
        }
        if mapFullSeen {
            mdb_txn_abort(txn)
            throw LMDBError(
                code: .mapFull,
                operation: "mdb_txn_commit",
                detail: """
                    A write in the transaction hit MDB_MAP_FULL and the closure went on; LMDB cannot commit a \
                    transaction after a failed write, so it was aborted.
                    """
            )
        }
        // lmdb.h, mdb_txn_commit: "The transaction handle is freed", whether the commit succeeds or not.
        try check(mdb_txn_commit(txn), "mdb_txn_commit")
        return result
    }

    /// Begins a transaction, registered with the gate; the caller must `gate.leave()` after ending it.
    ///
    /// lmdb.h, mdb_txn_begin, MDB_MAP_RESIZED: "another process wrote data beyond this MDB_env's mapsize and this
    /// environment's map must be resized as well. See mdb_env_set_mapsize()", which says "This function may be
    /// called with a size of zero to adopt the new size." Only a read-only opener can meet this, since a
    /// read-write environment holds the directory exclusively, but it is handled for both.
    func beginTransaction(readOnly: Bool) throws(LMDBError) -> OpaquePointer {
        var resizes = 0
        while true {
            try self.gate.enter("mdb_txn_begin")
            var txn: OpaquePointer?
            let rc = mdb_txn_begin(self.env, nil, readOnly ? UInt32(MDB_RDONLY) : 0, &txn)
            if rc == MDB_SUCCESS, let txn {
                return txn
            }
            self.gate.leave()
            if rc == MDB_MAP_RESIZED && resizes < 3 {
                resizes += 1
                try self.gate.exclusively(timeout: self.options.mapGrowthWaitMax, operation: "mdb_env_set_mapsize(0)") {
                    () throws(LMDBError) in
                    try check(mdb_env_set_mapsize(self.env, 0), "mdb_env_set_mapsize(0)")
                }
                continue
            }
            throw LMDBError(
                code: LMDBResultCode(rawValue: rc),
                operation: readOnly ? "mdb_txn_begin(read-only)" : "mdb_txn_begin(read-write)",
                detail: rc == MDB_READERS_FULL
                    ? "All maxReaders (\(self.options.maxReaders)) reader slots are taken by open read transactions."
                    : nil
            )
        }
    }

    // MARK: Maintenance

    /// Clears the reader slots of processes that died inside a read transaction and returns how many it cleared.
    ///
    /// lmdb.h, mdb_reader_check: "Check for stale entries in the reader lock table." Call it now and then (the
    /// daemon does so periodically), because a stale slot pins old pages and makes the data file grow.
    public func clearStaleReaders() throws(LMDBError) -> Int {
        try self.gate.enter("mdb_reader_check")
        defer { self.gate.leave() }
        var cleared: Int32 = 0
        try check(mdb_reader_check(self.env, &cleared), "mdb_reader_check(\(self.path))")
        return Int(cleared)
    }

    /// The map size, last page, last transaction id and reader table use of the environment (mdb_env_info).
    public func info() throws(LMDBError) -> LMDBEnvironmentInfo {
        try self.gate.enter("mdb_env_info")
        defer { self.gate.leave() }
        return self.rawInfo()
    }

    /// Statistics of the environment's main database, whose `pageSize` is the page size of every database.
    public func stat() throws(LMDBError) -> LMDBDatabaseStatistics {
        try self.gate.enter("mdb_env_stat")
        defer { self.gate.leave() }
        var stat = MDB_stat()
        try check(mdb_env_stat(self.env, &stat), "mdb_env_stat(\(self.path))")
        return LMDBDatabaseStatistics(stat)
    }

    /// The bytes of the map in use: (last page number + 1) × page size. The data file may be larger, since pages
    /// freed by earlier transactions are reused rather than returned.
    public var usedBytes: Int {
        get throws(LMDBError) {
            let info = try self.info()
            return (info.lastPageNumber + 1) * (try self.stat().pageSize)
        }
    }

    /// Writes a consistent copy of the environment into the new directory `path` (created here with mode 0700, in a
    /// parent that must exist), while writes go on. The copy's `data.mdb` is created owner-only (0600) before a
    /// byte is written, and neither the directory nor the file may exist already or be a symbolic link: a local
    /// user who can write the parent cannot slip in a directory or a link of theirs between a check and the copy,
    /// nor open the file while it fills.
    ///
    /// lmdb.h, mdb_env_copyfd2: "This function may be used to make a backup of an existing environment. No lockfile
    /// is created, since it gets recreated at need. ... This call can trigger significant file size growth if run
    /// in parallel with write transactions, because it employs a read-only transaction." With `compact`
    /// (MDB_CP_COMPACT) free pages are omitted and pages renumbered, so the copy is as small as the data. The copy
    /// holds its read transaction for its whole run, so `growMap` waits for it (up to `mapGrowthWaitMax`); it
    /// blocks the calling thread for as long as the copy takes, so run it off Swift's cooperative pool.
    public func copy(to path: String, compact: Bool = true) throws(LMDBError) {
        // Only the last component is created, and it must be new: a mistyped parent must fail, not appear as a new
        // directory tree, and an existing directory may belong to someone else.
        if mkdir(path, 0o700) != 0 {
            let error = errno
            throw LMDBError(
                code: LMDBResultCode(rawValue: error),
                operation: "mkdir(\(path))",
                detail: error == EEXIST
                    ? "The backup directory \(path) already exists; a backup goes into a new directory."
                    : "The backup directory \(path) could not be created; its parent must exist."
            )
        }
        let directory = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard directory >= 0 else {
            throw LMDBError(
                code: LMDBResultCode(rawValue: errno),
                operation: "open(\(path))",
                detail: "The backup directory could not be opened."
            )
        }
        defer { _ = Glibc.close(directory) }
        let file = openat(directory, "data.mdb", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard file >= 0 else {
            throw LMDBError(
                code: LMDBResultCode(rawValue: errno),
                operation: "openat(\(path)/data.mdb)",
                detail: "The backup's data file could not be created."
            )
        }
        defer { _ = Glibc.close(file) }
        try self.gate.enter("mdb_env_copyfd2")
        defer { self.gate.leave() }
        try check(
            mdb_env_copyfd2(self.env, file, compact ? UInt32(MDB_CP_COMPACT) : 0),
            "mdb_env_copyfd2(\(path)/data.mdb\(compact ? ", MDB_CP_COMPACT" : ""))"
        )
        if fsync(file) != 0 {
            throw LMDBError(
                code: LMDBResultCode(rawValue: errno),
                operation: "fsync(\(path)/data.mdb)",
                detail: "The backup could not be synced."
            )
        }
    }

    /// Flushes the data buffers to disk (mdb_env_sync). Commits already sync, since the environment is never
    /// opened with MDB_NOSYNC, so this matters only for `force`, which lmdb.h defines as "force a synchronous
    /// flush. Otherwise if the environment has the MDB_NOSYNC flag set the flushes will be omitted".
    public func sync(force: Bool = true) throws(LMDBError) {
        try self.gate.enter("mdb_env_sync")
        defer { self.gate.leave() }
        try check(mdb_env_sync(self.env, force ? 1 : 0), "mdb_env_sync(\(self.path))")
    }

    /// `mdb_env_info` without the gate, for callers that already hold it.
    func rawInfo() -> LMDBEnvironmentInfo {
        var info = MDB_envinfo()
        // lmdb.h documents no failure of mdb_env_info for a valid environment; it only copies fields.
        _ = mdb_env_info(self.env, &info)
        return LMDBEnvironmentInfo(
            mapSize: info.me_mapsize,
            lastPageNumber: info.me_last_pgno,
            lastTransactionID: info.me_last_txnid,
            maxReaders: Int(info.me_maxreaders),
            numReaders: Int(info.me_numreaders)
        )
    }

    // MARK: Paths

    /// Creates `path` and any missing parents with mode 0700, so that only the ledger's user can read the data.
    static func makeDirectory(_ path: String) throws(LMDBError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += component
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST {
                throw LMDBError(
                    code: LMDBResultCode(rawValue: errno),
                    operation: "mkdir(\(prefix))",
                    detail: "The data directory \(path) could not be created."
                )
            }
            prefix += "/"
        }
        // Opening with O_DIRECTORY fails with ENOTDIR unless the path is a directory (following symbolic links).
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if descriptor >= 0 {
            Glibc.close(descriptor)
        } else {
            throw LMDBError(
                code: LMDBResultCode(rawValue: errno),
                operation: "open(\(path), O_DIRECTORY)",
                detail: "The data directory path \(path) exists but is not a usable directory."
            )
        }
    }

    /// The absolute path of `path` with symbolic links resolved, so that two spellings of one directory are
    /// recognized as the same by the in-process lock.
    static func canonicalPath(_ path: String) throws(LMDBError) -> String {
        guard let resolved = realpath(path, nil) else {
            throw LMDBError(
                code: LMDBResultCode(rawValue: errno),
                operation: "realpath(\(path))",
                detail: "The data directory \(path) does not exist or cannot be reached."
            )
        }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
