import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Why a `LineSocket` could not connect: the failing call and its `errno`.
package struct LineSocketError: Error, CustomStringConvertible {
    package let operation: String
    package let code: Int32

    package var description: String { "\(self.operation): \(String(cString: strerror(self.code)))" }
}

/// A blocking connection to a Unix stream socket that carries lines: bytes out, newline-terminated lines in.
///
/// `ControlClient` speaks the control protocol over it; the fault suite and the tests use it directly to send the
/// daemon raw, partial or hostile bytes. Blocking suits them all: a command-line tool that does one thing, and
/// harnesses that run it on threads of their own.
package final class LineSocket {
    package let fd: Int32
    private var buffer: [UInt8] = []

    /// Connects to the socket at `path`. With `receiveTimeoutSeconds`, a read that waits longer ends as if the
    /// stream had ended (`SO_RCVTIMEO`).
    package init(path: String, receiveTimeoutSeconds: Int? = nil) throws(LineSocketError) {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LineSocketError(operation: "socket", code: errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw LineSocketError(operation: "connect \(path)", code: ENAMETOOLONG)
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
            throw LineSocketError(operation: "connect \(path)", code: code)
        }
        if let receiveTimeoutSeconds {
            var timeout = timeval(tv_sec: receiveTimeoutSeconds, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
        self.fd = fd
    }

    deinit { close(self.fd) }

    /// Writes every byte; false once the peer has closed (then `errno` says how). `MSG_NOSIGNAL`: a closed peer is
    /// an answer, not a SIGPIPE.
    @discardableResult
    package func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                Glibc.send(self.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return false }
            offset += written
        }
        return true
    }

    /// The next line without its newline, or nil at the end of the stream, a reset or the receive timeout.
    package func readLine() -> [UInt8]? {
        while true {
            if let newline = self.buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(self.buffer[..<newline])
                self.buffer.removeSubrange(...newline)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { read(self.fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return nil }
            self.buffer.append(contentsOf: chunk[..<count])
        }
    }

    /// Whether the peer closes the connection (an end of stream or a reset) within the receive timeout, reading
    /// and dropping whatever it still sends.
    package func closedByPeer() -> Bool {
        while true {
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { read(self.fd, $0.baseAddress, $0.count) }
            if count == 0 { return true }
            if count < 0 {
                if errno == EINTR { continue }
                return errno == ECONNRESET
            }
        }
    }
}
