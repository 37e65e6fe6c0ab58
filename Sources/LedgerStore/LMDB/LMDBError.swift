import CLMDB
import Glibc

/// A result code returned by an LMDB call: one of LMDB's own codes (lmdb.h, "Return Codes", -30799 ... -30780) or
/// an `errno` value, which lmdb.h documents as the other possible results (ENOSPC, EIO, EACCES, EINVAL, ...).
///
/// The static members pattern-match, so a caller can write `case .mapFull:` in a `switch` over `error.code`, or
/// `catch LMDBResultCode.notFound` directly, in the manner of GRDB's `ResultCode`.
public struct LMDBResultCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    // LMDB's own codes, with the meaning lmdb.h gives each.

    /// lmdb.h: MDB_KEYEXIST, "key/data pair already exists".
    public static let keyExist = LMDBResultCode(rawValue: MDB_KEYEXIST)
    /// lmdb.h: MDB_NOTFOUND, "key/data pair not found (EOF)".
    public static let notFound = LMDBResultCode(rawValue: MDB_NOTFOUND)
    /// lmdb.h: MDB_PAGE_NOTFOUND, "Requested page not found - this usually indicates corruption".
    public static let pageNotFound = LMDBResultCode(rawValue: MDB_PAGE_NOTFOUND)
    /// lmdb.h: MDB_CORRUPTED, "Located page was wrong type".
    public static let corrupted = LMDBResultCode(rawValue: MDB_CORRUPTED)
    /// lmdb.h: MDB_PANIC, "Update of meta page failed or environment had fatal error".
    public static let panic = LMDBResultCode(rawValue: MDB_PANIC)
    /// lmdb.h: MDB_VERSION_MISMATCH, "Environment version mismatch".
    public static let versionMismatch = LMDBResultCode(rawValue: MDB_VERSION_MISMATCH)
    /// lmdb.h: MDB_INVALID, "File is not a valid LMDB file".
    public static let invalid = LMDBResultCode(rawValue: MDB_INVALID)
    /// lmdb.h: MDB_MAP_FULL, "Environment mapsize reached".
    public static let mapFull = LMDBResultCode(rawValue: MDB_MAP_FULL)
    /// lmdb.h: MDB_DBS_FULL, "Environment maxdbs reached".
    public static let dbsFull = LMDBResultCode(rawValue: MDB_DBS_FULL)
    /// lmdb.h: MDB_READERS_FULL, "Environment maxreaders reached".
    public static let readersFull = LMDBResultCode(rawValue: MDB_READERS_FULL)
    /// lmdb.h: MDB_TXN_FULL, "Txn has too many dirty pages".
    public static let txnFull = LMDBResultCode(rawValue: MDB_TXN_FULL)
    /// lmdb.h: MDB_CURSOR_FULL, "Cursor stack too deep - internal error".
    public static let cursorFull = LMDBResultCode(rawValue: MDB_CURSOR_FULL)
    /// lmdb.h: MDB_PAGE_FULL, "Page has not enough space - internal error".
    public static let pageFull = LMDBResultCode(rawValue: MDB_PAGE_FULL)
    /// lmdb.h: MDB_MAP_RESIZED, "Database contents grew beyond environment mapsize".
    public static let mapResized = LMDBResultCode(rawValue: MDB_MAP_RESIZED)
    /// lmdb.h: MDB_INCOMPATIBLE, "Operation and DB incompatible, or DB type changed".
    public static let incompatible = LMDBResultCode(rawValue: MDB_INCOMPATIBLE)
    /// lmdb.h: MDB_BAD_RSLOT, "Invalid reuse of reader locktable slot".
    public static let badReaderSlot = LMDBResultCode(rawValue: MDB_BAD_RSLOT)
    /// lmdb.h: MDB_BAD_TXN, "Transaction must abort, has a child, or is invalid".
    public static let badTxn = LMDBResultCode(rawValue: MDB_BAD_TXN)
    /// lmdb.h: MDB_BAD_VALSIZE, "Unsupported size of key/DB name/data, or wrong DUPFIXED size".
    public static let badValSize = LMDBResultCode(rawValue: MDB_BAD_VALSIZE)
    /// lmdb.h: MDB_BAD_DBI, "The specified DBI was changed unexpectedly".
    public static let badDBI = LMDBResultCode(rawValue: MDB_BAD_DBI)

    // The errno values lmdb.h lists among the possible results of its calls, and the ones this wrapper uses itself.

    /// ENOSPC: the file system is full, so a commit could not write its pages.
    public static let diskFull = LMDBResultCode(rawValue: ENOSPC)
    /// EIO: the disk reported an I/O error.
    public static let ioError = LMDBResultCode(rawValue: EIO)
    /// EACCES: no permission, or a write attempted in a read-only transaction or environment.
    public static let accessDenied = LMDBResultCode(rawValue: EACCES)
    /// EINVAL: an invalid parameter, or (for mdb_env_set_mapsize) an active write transaction.
    public static let invalidArgument = LMDBResultCode(rawValue: EINVAL)
    /// ENOMEM: out of memory.
    public static let outOfMemory = LMDBResultCode(rawValue: ENOMEM)
    /// ENOENT: the directory or file does not exist.
    public static let noSuchFile = LMDBResultCode(rawValue: ENOENT)
    /// EEXIST: the destination already exists (for example a backup's data.mdb).
    public static let fileExists = LMDBResultCode(rawValue: EEXIST)
    /// EWOULDBLOCK (EAGAIN): the directory lock is held by another process.
    public static let wouldBlock = LMDBResultCode(rawValue: EWOULDBLOCK)
    /// EBUSY: the directory is already open in this process, or transactions stayed open too long for a resize.
    public static let busy = LMDBResultCode(rawValue: EBUSY)

    /// The symbolic name of the code ("MDB_MAP_FULL", "ENOSPC"), or "errno N" for codes this type does not name.
    public var name: String {
        switch self.rawValue {
        case MDB_SUCCESS: return "MDB_SUCCESS"
        case MDB_KEYEXIST: return "MDB_KEYEXIST"
        case MDB_NOTFOUND: return "MDB_NOTFOUND"
        case MDB_PAGE_NOTFOUND: return "MDB_PAGE_NOTFOUND"
        case MDB_CORRUPTED: return "MDB_CORRUPTED"
        case MDB_PANIC: return "MDB_PANIC"
        case MDB_VERSION_MISMATCH: return "MDB_VERSION_MISMATCH"
        case MDB_INVALID: return "MDB_INVALID"
        case MDB_MAP_FULL: return "MDB_MAP_FULL"
        case MDB_DBS_FULL: return "MDB_DBS_FULL"
        case MDB_READERS_FULL: return "MDB_READERS_FULL"
        case MDB_TLS_FULL: return "MDB_TLS_FULL"
        case MDB_TXN_FULL: return "MDB_TXN_FULL"
        case MDB_CURSOR_FULL: return "MDB_CURSOR_FULL"
        case MDB_PAGE_FULL: return "MDB_PAGE_FULL"
        case MDB_MAP_RESIZED: return "MDB_MAP_RESIZED"
        case MDB_INCOMPATIBLE: return "MDB_INCOMPATIBLE"
        case MDB_BAD_RSLOT: return "MDB_BAD_RSLOT"
        case MDB_BAD_TXN: return "MDB_BAD_TXN"
        case MDB_BAD_VALSIZE: return "MDB_BAD_VALSIZE"
        case MDB_BAD_DBI: return "MDB_BAD_DBI"
        case ENOSPC: return "ENOSPC"
        case EIO: return "EIO"
        case EACCES: return "EACCES"
        case EINVAL: return "EINVAL"
        case ENOMEM: return "ENOMEM"
        case ENOENT: return "ENOENT"
        case EEXIST: return "EEXIST"
        case EWOULDBLOCK: return "EWOULDBLOCK"
        case EBUSY: return "EBUSY"
        default: return "errno \(self.rawValue)"
        }
    }

    public var description: String {
        "\(self.name) (\(self.rawValue))"
    }

    /// Lets `catch LMDBResultCode.mapFull { … }` match an `LMDBError` carrying that code.
    public static func ~= (pattern: LMDBResultCode, error: any Error) -> Bool {
        guard let error = error as? LMDBError else { return false }
        return error.code == pattern
    }
}

/// An operating error from LMDB or from the wrapper's own handling of the environment (locks, growth, options).
///
/// It carries the result code, LMDB's own message for it (`mdb_strerror`, which also covers `errno` values), the
/// operation that failed, such as "mdb_put(events)", and, where the wrapper knows more than the code says, a
/// sentence of detail: "The data directory /srv/ledger is in use by another process (pid 4711)."
public struct LMDBError: Error, Sendable, CustomStringConvertible {
    /// The result code of the failed call.
    public let code: LMDBResultCode
    /// LMDB's message for the code, from `mdb_strerror`.
    public let message: String
    /// The call that failed, with the database or path it was about: "mdb_put(events)".
    public let operation: String
    /// A full sentence of context the code alone does not carry, if any.
    public let detail: String?

    /// Set where the wrapper refuses work because the environment is closed, so callers need not read the detail.
    public let isEnvironmentClosed: Bool

    public init(code: LMDBResultCode, operation: String, detail: String? = nil) {
        self.init(code: code, operation: operation, detail: detail, environmentClosed: false)
    }

    private init(code: LMDBResultCode, operation: String, detail: String?, environmentClosed: Bool) {
        self.code = code
        self.message = String(cString: mdb_strerror(code.rawValue))
        self.operation = operation
        self.detail = detail
        self.isEnvironmentClosed = environmentClosed
    }

    /// The environment was closed before `operation` could begin (the daemon is stopping).
    static func environmentClosed(operation: String, detail: String) -> LMDBError {
        LMDBError(code: .badTxn, operation: operation, detail: detail, environmentClosed: true)
    }

    /// True when the failure is the data directory being held by another process or by another environment handle
    /// in this one.
    public var isDirectoryInUse: Bool {
        (self.code == .wouldBlock || self.code == .busy) && self.operation.hasPrefix("lock(")
    }

    public var description: String {
        let call = "The LMDB operation \(self.operation) failed with \(self.code): \(self.message)."
        guard let detail = self.detail else { return call }
        return "\(detail) \(call)"
    }
}

/// Throws an `LMDBError` for any result other than `MDB_SUCCESS`.
///
/// The operation is an autoclosure so that the hot path (a successful `mdb_put`) never builds its name string.
@inline(__always)
func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws(LMDBError) {
    if rc != MDB_SUCCESS {
        throw LMDBError(code: LMDBResultCode(rawValue: rc), operation: operation())
    }
}
