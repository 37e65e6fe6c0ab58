#if canImport(Glibc)
    import Glibc
#endif

/// Why a `LineSocket` call failed, with the `errno` of the system call that failed.
package enum LineSocketError: Error, CustomStringConvertible {
    /// `socket()` failed: out of descriptors or memory, or denied.
    case socket(Int32)
    /// The path does not fit in a Unix socket address (107 bytes).
    case pathTooLong(String)
    /// `connect()` failed: no socket there (ENOENT), nobody listening (ECONNREFUSED), no permission (EACCES).
    case connect(String, Int32)
    /// `setsockopt()` refused the receive timeout.
    case receiveTimeout(Int32)
    /// `send()` failed, or the peer has closed the connection (EPIPE).
    case send(Int32)

    package var description: String {
        switch self {
        case .socket(let code): return "socket: \(Self.text(code))"
        case .pathTooLong(let path):
            return "connect \(path): the path is too long for a Unix socket (at most 107 bytes)"
        case .connect(let path, let code): return "connect \(path): \(Self.text(code))"
        case .receiveTimeout(let code): return "setsockopt SO_RCVTIMEO: \(Self.text(code))"
        case .send(let code): return "send: \(Self.text(code))"
        }
    }

    package static func text(_ code: Int32) -> String { String(cString: strerror(code)) }
}

/// A blocking connection to a Unix stream socket that carries lines: bytes out, newline-terminated lines in.
///
/// `ControlClient` speaks the control protocol over it; the fault suite and the tests use it directly to send the
/// daemon raw, partial or hostile bytes. Blocking suits them all: a command-line tool that does one thing, and
/// harnesses that run it on threads of their own.
package final class LineSocket {
    /// The connected socket. It belongs to this object, which closes it in `deinit`: callers may `shutdown` it,
    /// never `close` it.
    package let fd: Int32
    private var buffer: [UInt8] = []
    /// What one read fills, kept between reads: a fresh 64 KiB array per read cost more than a small answer.
    private var chunk = [UInt8](repeating: 0, count: 65536)

    /// Connects to the socket at `path`. With `receiveTimeoutSeconds` (at least 1), a read that waits longer ends
    /// as if the stream had ended (`SO_RCVTIMEO`); without it, reads wait as long as the peer does.
    package init(path: String, receiveTimeoutSeconds: Int? = nil) throws(LineSocketError) {
        precondition((receiveTimeoutSeconds ?? 1) > 0, "A receive timeout of 0 would mean none at all.")
        // SOCK_CLOEXEC: the fault suite and the tests start processes while connections are open.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .socket(errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw .pathTooLong(path)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw .connect(path, code)
        }
        if let receiveTimeoutSeconds {
            var timeout = timeval(tv_sec: receiveTimeoutSeconds, tv_usec: 0)
            guard setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
                let code = errno
                close(fd)
                throw .receiveTimeout(code)
            }
        }
        self.fd = fd
    }

    deinit { close(self.fd) }

    /// Writes every byte, or throws `.send` with the error (EPIPE once the peer has closed). `MSG_NOSIGNAL`: a
    /// closed peer is an error to report, not a SIGPIPE.
    package func send(_ bytes: [UInt8]) throws(LineSocketError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                Glibc.send(self.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                let code = errno
                if code == EINTR { continue }
                throw .send(code)
            }
            // A stream socket writes at least a byte of a non-empty buffer or fails; 0 is treated as closed.
            guard written > 0 else { throw .send(EPIPE) }
            offset += written
        }
    }

    /// The next line without its newline, or nil at the end of the stream, a reset or the receive timeout.
    package func readLine() -> [UInt8]? {
        while true {
            if let newline = self.buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(self.buffer[..<newline])
                self.buffer.removeSubrange(...newline)
                return line
            }
            let count = self.chunk.withUnsafeMutableBytes { read(self.fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return nil }
            self.buffer.append(contentsOf: self.chunk[..<count])
        }
    }

    /// Waits for the peer to close the connection: true at the end of the stream or a reset, false when the
    /// receive timeout passes first (or another error ends the wait). What the peer still sends is read and
    /// dropped; lines `readLine` already buffered are not looked at.
    package func closedByPeer() -> Bool {
        while true {
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { read(self.fd, $0.baseAddress, $0.count) }
            if count == 0 { return true }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                return code == ECONNRESET
            }
        }
    }
}
