import Glibc
import Synchronization

/// The exclusive claim of one process, and of one environment handle in it, on a data directory.
///
/// Two things must never happen to the ledger's data directory: two daemons writing it, and one process opening it
/// twice. LMDB itself allows several writer processes (it serializes them), but the ledger's design has exactly
/// one writer, whose group commit and in-memory state assume nobody else appends. And lmdb.h (Caveats) warns:
/// "Do not have open an LMDB database twice in the same process at the same time. Not even from a plain open()
/// call - close()ing it breaks fcntl() advisory locking."
///
/// So the lock has two layers. Across processes, `flock(LOCK_EX | LOCK_NB)` on `<dir>/ledgerd.lock`, with the
/// holder's pid written into the file for the error message; the kernel drops the lock when the process dies, even
/// on SIGKILL, so a crash never leaves the directory claimed. Within the process, a set of the canonical paths that
/// are open. flock(2) locks belong to an open file description, so a second `open()` plus `flock` in the same
/// process would in fact be refused too; the set is kept anyway because it also refuses a second read-only handle
/// (two shared locks never conflict), it names the real cause ("already open in this process") instead of
/// pointing at our own pid as "another process", and it does not depend on a lock file that a careless operator
/// could delete while the daemon runs.
final class LMDBDirectoryLock: Sendable {
    /// The canonical directory paths that an environment handle of this process has open.
    private static let openPaths = Mutex<Set<String>>([])

    /// The file name of the lock inside the data directory.
    static let fileName = "ledgerd.lock"

    let directory: String
    private let descriptor: Int32

    /// Claims `directory` (a canonical path) for this environment handle, or throws a clear "in use" error.
    ///
    /// A read-write environment takes the lock exclusively; a read-only one takes it shared, so read-only tools
    /// may run side by side but never next to the daemon.
    init(directory: String, shared: Bool) throws(LMDBError) {
        let lockPath = directory + "/" + Self.fileName
        let operation = "lock(\(lockPath))"
        let inserted = Self.openPaths.withLock { $0.insert(directory).inserted }
        guard inserted else {
            throw LMDBError(
                code: .busy,
                operation: operation,
                detail: """
                    The data directory \(directory) is already open in this process (pid \(getpid())); LMDB must \
                    not be opened twice in one process, so close the other LMDBEnvironment first.
                    """
            )
        }
        // O_CLOEXEC keeps the descriptor, and with it the lock, from leaking into child processes. A read-only
        // opener creates the lock file too (a backup made by mdb_env_copy2 has none), but falls back to opening it
        // read-only where it may not write, since flock works on a read-only descriptor as well.
        var fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 && shared && (errno == EACCES || errno == EROFS) {
            fd = open(lockPath, O_RDONLY | O_CLOEXEC)
        }
        guard fd >= 0 else {
            let code = errno
            Self.openPaths.withLock { _ = $0.remove(directory) }
            throw LMDBError(
                code: LMDBResultCode(rawValue: code),
                operation: "open(\(lockPath))",
                detail: "The lock file of the data directory \(directory) could not be opened."
            )
        }
        if flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0 {
            let code = errno
            let holder = Self.readHolder(fd)
            close(fd)
            Self.openPaths.withLock { _ = $0.remove(directory) }
            let who = holder.map { "pid \($0)" } ?? "pid unknown"
            throw LMDBError(
                code: LMDBResultCode(rawValue: code),
                operation: operation,
                detail: """
                    The data directory \(directory) is in use by another process (\(who)); stop that process or \
                    choose another data directory.
                    """
            )
        }
        if !shared {
            // The pid is written only after the lock is held, so a refused opener never truncates the holder's pid.
            let text = Array("\(getpid())\n".utf8)
            _ = ftruncate(fd, 0)
            _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        }
        self.directory = directory
        self.descriptor = fd
    }

    /// Releases the lock: closing the only descriptor of the file description drops the `flock`.
    deinit {
        close(self.descriptor)
        Self.openPaths.withLock { _ = $0.remove(self.directory) }
    }

    /// Reads the pid the holder wrote into the lock file, if it wrote one.
    private static func readHolder(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        let digits = buffer[..<count].prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        return Int32(String(decoding: digits, as: UTF8.self))
    }
}
