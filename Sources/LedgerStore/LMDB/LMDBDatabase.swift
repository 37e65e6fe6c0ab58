import CLMDB
public import FoundationEssentials

/// A handle to one named database (a B-tree) inside an environment: a value wrapping LMDB's `MDB_dbi`.
///
/// lmdb.h, mdb_dbi_open: "After a successful commit the handle will reside in the shared environment, and may be
/// used by other transactions." `LMDBEnvironment.openDatabase` opens each handle once, in its own committed
/// transaction at startup, so the handle is then valid in every later transaction of any thread until the
/// environment closes (or `drop(_:delete: true)` deletes the database).
public struct LMDBDatabase: Hashable, Sendable, CustomStringConvertible {
    /// The `MDB_dbi`, kept as its underlying integer so that no CLMDB type appears in the public interface.
    let handle: UInt32
    /// The database's name, or nil for the environment's unnamed main database.
    public let name: String?
    /// The flags it was opened with.
    public let flags: LMDBDatabaseFlags

    /// The name used in error messages: "events", or "main" for the unnamed database.
    public var description: String { self.name ?? "main" }
}

/// Options for `LMDBEnvironment.openDatabase`, one for each `mdb_dbi_open` flag (lmdb.h describes each).
public struct LMDBDatabaseFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32

    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// lmdb.h: MDB_CREATE, "Create the named database if it doesn't exist." Ignored in a read-only environment,
    /// where lmdb.h does not allow it.
    public static let create = LMDBDatabaseFlags(rawValue: UInt32(MDB_CREATE))
    /// lmdb.h: MDB_DUPSORT, "Duplicate keys may be used in the database ... stored in sorted order."
    public static let dupSort = LMDBDatabaseFlags(rawValue: UInt32(MDB_DUPSORT))
    /// lmdb.h: MDB_DUPFIXED, with MDB_DUPSORT: "the data items for this database are all the same size".
    public static let dupFixed = LMDBDatabaseFlags(rawValue: UInt32(MDB_DUPFIXED))
    /// lmdb.h: MDB_INTEGERKEY, "Keys are binary integers in native byte order". The ledger prefers big-endian
    /// keys, which sort correctly as plain bytes and read the same on every machine.
    public static let integerKey = LMDBDatabaseFlags(rawValue: UInt32(MDB_INTEGERKEY))
    /// lmdb.h: MDB_INTEGERDUP, "duplicate data items are binary integers, similar to MDB_INTEGERKEY keys".
    public static let integerDup = LMDBDatabaseFlags(rawValue: UInt32(MDB_INTEGERDUP))
    /// lmdb.h: MDB_REVERSEKEY, keys compared from the end of the strings to the beginning.
    public static let reverseKey = LMDBDatabaseFlags(rawValue: UInt32(MDB_REVERSEKEY))
    /// lmdb.h: MDB_REVERSEDUP, duplicate data items compared in reverse order.
    public static let reverseDup = LMDBDatabaseFlags(rawValue: UInt32(MDB_REVERSEDUP))
}

/// Options for `LMDBWriteTransaction.put`, one for each `mdb_put` flag this wrapper supports.
public struct LMDBPutFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32

    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// lmdb.h: MDB_NOOVERWRITE, "enter the new key/data pair only if the key does not already appear in the
    /// database. The function will return MDB_KEYEXIST if the key already appears in the database, even if the
    /// database supports duplicates (MDB_DUPSORT)." `put` reports that as `.keyExists`, not as an error, because
    /// the callback dedup index relies on it as an ordinary outcome.
    public static let noOverwrite = LMDBPutFlags(rawValue: UInt32(MDB_NOOVERWRITE))
    /// lmdb.h: MDB_NODUPDATA, "enter the new key/data pair only if it does not already appear in the database.
    /// This flag may only be specified if the database was opened with MDB_DUPSORT." Reported as `.keyExists`.
    public static let noDupData = LMDBPutFlags(rawValue: UInt32(MDB_NODUPDATA))
    /// lmdb.h: MDB_APPEND, "append the given key/data pair to the end of the database. This option allows fast
    /// bulk loading when keys are already known to be in the correct order. Loading unsorted keys with this flag
    /// will cause a MDB_KEYEXIST error." With this flag `put` throws that `.keyExist` error, because an
    /// out-of-order append is a bug in the caller, not an outcome.
    public static let append = LMDBPutFlags(rawValue: UInt32(MDB_APPEND))
    /// lmdb.h: MDB_APPENDDUP, "as above, but for sorted dup data."
    public static let appendDup = LMDBPutFlags(rawValue: UInt32(MDB_APPENDDUP))
}

/// What `put` did.
public enum LMDBPutResult: Hashable, Sendable {
    /// The key/value pair was stored.
    case stored
    /// Nothing was stored: with `.noOverwrite` the key was already present, with `.noDupData` the key/value pair
    /// was (lmdb.h: MDB_KEYEXIST, "key/data pair already exists").
    case keyExists
}

/// What a per-entry closure of a scan wants next.
public enum LMDBIterationControl: Hashable, Sendable {
    /// Go on to the next entry.
    case `continue`
    /// End the scan after this entry.
    case stop
}

/// Statistics for one database, or for the environment's main database (lmdb.h, `MDB_stat`).
public struct LMDBDatabaseStatistics: Hashable, Sendable {
    /// The size of a database page in bytes; the same for all databases.
    public let pageSize: Int
    /// The depth (height) of the B-tree.
    public let depth: Int
    /// The number of internal (non-leaf) pages.
    public let branchPages: Int
    /// The number of leaf pages.
    public let leafPages: Int
    /// The number of overflow pages (values larger than about half a page live in overflow pages).
    public let overflowPages: Int
    /// The number of data items: key/value pairs, counting each duplicate of a DUPSORT key.
    public let entries: Int

    init(_ stat: MDB_stat) {
        self.pageSize = Int(stat.ms_psize)
        self.depth = Int(stat.ms_depth)
        self.branchPages = stat.ms_branch_pages
        self.leafPages = stat.ms_leaf_pages
        self.overflowPages = stat.ms_overflow_pages
        self.entries = stat.ms_entries
    }
}

/// Information about the environment (lmdb.h, `MDB_envinfo`).
public struct LMDBEnvironmentInfo: Hashable, Sendable {
    /// The size of the memory map in bytes, which is also the most the data file can hold before it must grow.
    public let mapSize: Int
    /// The number of the last page in use; pages are numbered from 0.
    public let lastPageNumber: Int
    /// The id of the last committed transaction.
    public let lastTransactionID: Int
    /// The size of the reader lock table.
    public let maxReaders: Int
    /// The number of reader slots in use (live or stale).
    public let numReaders: Int
}

/// A big-endian `UInt64` key: 8 bytes that sort as plain bytes in the order of the numbers, which is what
/// `MDB_APPEND` on LMDB's default byte-wise comparison needs. It lives on the stack, so using it allocates nothing.
public struct LMDBUInt64Key: ContiguousBytes, Hashable, Sendable {
    /// The number, in native byte order.
    public let value: UInt64

    public init(_ value: UInt64) {
        self.value = value
    }

    /// Decodes 8 big-endian bytes, or returns nil if `bytes` is not exactly 8 bytes long.
    public init?(bytes: UnsafeRawBufferPointer) {
        guard bytes.count == 8 else { return nil }
        self.value = UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self))
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: self.value.bigEndian, body)
    }
}
