import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Tells the service manager how the daemon is doing, by the readiness protocol of `Type=notify` units: one datagram
/// per state (`READY=1`, `STOPPING=1`) to the Unix socket named by `NOTIFY_SOCKET`. A name starting with `@` is an
/// abstract address (Linux): its first byte becomes NUL and the address ends with the name, without a terminator
/// (unix(7)). With no `NOTIFY_SOCKET` there is nothing to tell and no notifier.
public struct ServiceManagerNotifier: Sendable {
    /// The socket address's `sun_path` bytes, as they go into the address.
    let pathBytes: [UInt8]

    public init?(environment: [String: String]) {
        guard let name = environment["NOTIFY_SOCKET"], !name.isEmpty else { return nil }
        var bytes = Array(name.utf8)
        if bytes[0] == UInt8(ascii: "@") {
            bytes[0] = 0
        } else if bytes[0] != UInt8(ascii: "/") {
            // Only absolute paths and abstract names are defined; anything else is not ours to guess at.
            return nil
        }
        let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
        guard bytes.count < capacity else { return nil }
        self.pathBytes = bytes
    }

    /// Sends one state line. Failures are returned, not thrown: the daemon runs the same whether or not the service
    /// manager hears it, and the caller decides whether to log.
    @discardableResult
    public func send(_ state: String) -> Bool {
        #if canImport(Glibc)
            let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            // A manager that went away must not kill the daemon with SIGPIPE.
            let sendFlags = Int32(MSG_NOSIGNAL)
        #else
            let descriptor = socket(AF_UNIX, SOCK_DGRAM, 0)
            let sendFlags: Int32 = 0
        #endif
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            path.copyBytes(from: self.pathBytes)
        }
        // The path's length counts exactly: an abstract name's trailing NULs would be part of the name.
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + self.pathBytes.count)
        let message = Array(state.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                message.withUnsafeBytes { bytes in
                    sendto(descriptor, bytes.baseAddress, bytes.count, sendFlags, socketAddress, length)
                }
            }
        }
        return sent == message.count
    }
}

/// Counts the parts that must be up before the daemon is ready (the control socket bound, the HTTP listener
/// running) and sends `READY=1` once, when the last one comes up.
final class ReadinessReport: Sendable {
    private let notifier: ServiceManagerNotifier?
    private let pending: Mutex<Int>

    init(notifier: ServiceManagerNotifier?, parts: Int) {
        self.notifier = notifier
        self.pending = Mutex(parts)
    }

    /// One part is up.
    func partUp() {
        let ready = self.pending.withLock { pending -> Bool in
            pending -= 1
            return pending == 0
        }
        if ready { self.notifier?.send("READY=1") }
    }
}
