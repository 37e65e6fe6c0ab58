import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The control socket's file: probing for a live daemon, and putting a freshly bound socket in place with its
/// final mode and no looser window.
enum ControlSocketFile {
    /// What is at the socket path before the daemon binds.
    enum Probe: Equatable {
        case absent
        /// A socket nobody listens on: a daemon died without removing it. Safe to replace.
        case stale
        /// A daemon answers there.
        case live
    }

    /// Looks at `path` and, when it is a socket, connects to it: only a refused connection proves it stale.
    static func probe(_ path: String) throws(ControlServerError) -> Probe {
        var status = stat()
        guard lstat(path, &status) == 0 else {
            if errno == ENOENT { return .absent }
            throw .socketPath(path, "cannot be examined: \(String(cString: strerror(errno)))")
        }
        guard (status.st_mode & mode_t(S_IFMT)) == mode_t(S_IFSOCK) else {
            throw .socketPath(path, "exists and is not a socket; move it away or choose another control socket path")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw .socketPath(path, "cannot be probed: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let result = withUnixAddress(path) { address, length in connect(fd, address, length) }
        if result == 0 { return .live }
        switch errno {
        case ECONNREFUSED: return .stale
        default: throw .socketPath(path, "cannot be probed: \(String(cString: strerror(errno)))")
        }
    }

    /// Calls `body` with a `sockaddr_un` for `path`; -1 with ENAMETOOLONG when the path does not fit.
    static func withUnixAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else {
            errno = ENAMETOOLONG
            return -1
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                body($0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }

    /// A private directory (mode 0700, from mkdtemp) next to `path` to bind in. Binding there and renaming the
    /// socket into place after chmod means nobody else can ever connect while the mode is looser than asked:
    /// bind(2) creates the file with the process umask, and changing the umask around bind would race with every
    /// other thread of the daemon that creates files.
    static func privateDirectory(near path: String) throws(ControlServerError) -> String {
        let parent = (path as NSString).deletingLastPathComponent
        var template = Array(((parent.isEmpty ? "." : parent) + "/.ledgerd-bind-XXXXXX").utf8CString)
        let made: String? = template.withUnsafeMutableBufferPointer { buffer in
            guard let result = mkdtemp(buffer.baseAddress!) else { return nil }
            return String(cString: result)
        }
        guard let made else {
            throw .socketPath(path, "cannot get a private directory next to it: \(String(cString: strerror(errno)))")
        }
        return made
    }

    /// Sets the bound socket's mode, then moves it to `path` (replacing a stale socket atomically) and removes the
    /// private directory. Returns the socket's inode, so shutdown removes only our own file.
    static func install(bound: String, directory: String, at path: String, mode: UInt32) throws(ControlServerError)
        -> UInt64
    {
        defer {
            unlink(bound)
            rmdir(directory)
        }
        guard chmod(bound, mode_t(mode)) == 0 else {
            throw .socketPath(
                path,
                "cannot be given mode \(String(mode, radix: 8)): \(String(cString: strerror(errno)))"
            )
        }
        guard rename(bound, path) == 0 else {
            throw .socketPath(path, "cannot be put in place: \(String(cString: strerror(errno)))")
        }
        var status = stat()
        guard lstat(path, &status) == 0 else { return 0 }
        return UInt64(status.st_ino)
    }

    /// Removes the socket file at shutdown, only when it is still the one this daemon bound.
    static func remove(_ path: String, inode: UInt64) {
        var status = stat()
        guard lstat(path, &status) == 0, UInt64(status.st_ino) == inode else { return }
        unlink(path)
    }
}

/// glibc's `struct ucred` (<bits/socket.h>, only visible with _GNU_SOURCE, hence declared here): the peer's pid,
/// uid and gid, as `getsockopt(SOL_SOCKET, SO_PEERCRED)` fills it in (socket(7)).
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// `SO_PEERCRED` from <asm-generic/socket.h>, where Glibc's Swift overlay does not always surface it.
let peerCredentialsOption: Int32 = 17

/// Why the control server cannot start.
public enum ControlServerError: Error, Sendable, CustomStringConvertible {
    case socketPath(String, String)
    case alreadyRunning(String)

    public var description: String {
        switch self {
        case .socketPath(let path, let problem): return "The control socket \(path) \(problem)."
        case .alreadyRunning(let path):
            return
                "Another ledgerd is already listening on the control socket \(path); refusing to start. Stop it first, or give this one another socket (--socket) and data directory."
        }
    }
}
