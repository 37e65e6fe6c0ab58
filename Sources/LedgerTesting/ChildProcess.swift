public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// Child processes for the tests, the fault suite, the benchmarks and the crash test: finding the built binaries,
// running a command to its end, free ports, and stopping a child on every path. One copy of each.

/// What a command printed and how it ended.
public struct ProcessOutput: Sendable {
    /// The exit status, or 128 + the signal's number when a signal ended it (as a shell reports it).
    public var status: Int32
    public var stdout: String
    public var stderr: String

    /// Standard output then standard error.
    public var output: String { self.stdout + self.stderr }
}

/// The error of a harness: a binary missing, a process that did not start or answer.
public struct HarnessError: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

public enum ChildProcess {
    /// Runs a program to its end, reading standard output and standard error at the same time as it runs (so a
    /// full pipe never blocks it). `input` is written to its standard input, which is then closed.
    public static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        input: [UInt8]? = nil,
        directory: String? = nil
    ) throws -> ProcessOutput {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let stdin = input.map { _ in Pipe() }
        process.standardInput = stdin ?? FileHandle.nullDevice
        try process.run()
        if let stdin, let input {
            // From a thread of its own, so a child that writes before it has read everything cannot block both.
            let writer = Thread {
                stdin.fileHandleForWriting.write(Data(input))
                try? stdin.fileHandleForWriting.close()
            }
            writer.start()
        }
        let errData = ThreadResult<Data>()
        let reader = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return ProcessOutput(
            status: Self.status(process),
            stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData.wait(), as: UTF8.self)
        )
    }

    /// The exit status as a shell reports it: 128 + the signal for a process a signal ended.
    public static func status(_ process: Process) -> Int32 {
        process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus
    }

    /// SIGTERM, up to `graceSeconds` for a graceful drain, then SIGKILL; waits for the end. Safe on a process that
    /// has already exited. (Children of a test process inherit an ignored SIGTERM and need the SIGKILL.)
    public static func stop(_ process: Process, graceSeconds: Double = 30) {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(graceSeconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// The value a background thread produces, waited for by another.
final class ThreadResult<T>: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: T?

    func set(_ value: T) {
        self.condition.lock()
        self.value = value
        self.condition.broadcast()
        self.condition.unlock()
    }

    func wait() -> T {
        self.condition.lock()
        defer { self.condition.unlock() }
        while self.value == nil { self.condition.wait() }
        return self.value!
    }
}

/// Runs blocking work (socket reads, process waits) on its own thread, so it never holds one of the few
/// cooperative threads (two on a two-core machine) that the code under test needs.
public func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 4 << 20
        thread.start()
    }
}

/// The binaries SwiftPM built: next to the running executable (the test bundle, the fault suite and the benchmark
/// are built into the same directory as `ledgerd`), or under `.build/debug` of the package.
public enum BuiltProducts {
    /// The directory of the running executable.
    public static var directory: String {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
    }

    /// The path of a built executable, or an error that says how to build it.
    public static func path(_ name: String, in directory: String? = nil, filePath: String = #filePath) throws -> String
    {
        var candidates = [(directory ?? Self.directory) + "/" + name]
        // The package root, from a source file under Sources/ or Tests/.
        let root = URL(fileURLWithPath: filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/\(name)").path)
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw HarnessError("\(name) is not built in \(candidates[0]); run swift build --build-tests first")
        }
        return found
    }
}

/// A free TCP port on loopback, below the kernel's ephemeral range. A daemon restarted after SIGKILL needs its port
/// again, and a port from the ephemeral range can meanwhile become the local end of another connection: a client
/// reconnecting to the dead daemon can even be given that very port and connect to itself (TCP self-connect), and
/// the restart then fails with "address in use". Ports below the range are never handed out that way.
public func freeTCPPort() -> Int {
    let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
        .split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
    let ephemeralLow = range?.first ?? 32768
    if ephemeralLow > 12_000 {
        for _ in 0..<200 {
            let port = Int.random(in: 10_000..<ephemeralLow)
            if bindLoopback(port: port) != nil { return port }
        }
    }
    return bindLoopback(port: 0) ?? 0
}

/// CPU seconds (user + system) a running process has used so far (/proc/PID/stat, fields 14 and 15).
public func processCPUSeconds(_ pid: Int32) -> Double? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return nil }
    // The fields after the command name (which may hold spaces) start at field 3.
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// The PostgreSQL the tests, the fault suite and the benchmarks use: `LEDGER_TEST_POSTGRES_URL` (for example
/// postgres://USER@127.0.0.1:5432/DB, or postgres://USER@/DB?host=/socket/dir). `.ci/run` starts a throwaway
/// cluster and sets it, with `CI=true`.
public enum PostgresTestURL {
    public static let variable = "LEDGER_TEST_POSTGRES_URL"

    /// The URL; nil when it is unset outside CI (the caller skips, saying so); an error when it is unset in CI,
    /// where the PostgreSQL store must be tested.
    public static func value() throws -> String? {
        let environment = ProcessInfo.processInfo.environment
        if let url = environment[Self.variable], !url.isEmpty { return url }
        if environment["CI"] == "true" {
            throw HarnessError(
                "CI=true but \(Self.variable) is not set: the PostgreSQL event store must be tested in CI (.ci/run "
                    + "starts a cluster and sets it)."
            )
        }
        return nil
    }

    /// A schema name of its own for one store (PostgreSQL folds names to lower case, so the name is lower case),
    /// so tests run in parallel and never share data.
    public static func freshSchemaName() -> String {
        "ledger_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20)
    }
}

extension ProcessOutput {
    /// The three parts, for `let (status, out, err) = …`.
    public var fields: (status: Int32, stdout: String, stderr: String) { (self.status, self.stdout, self.stderr) }

    /// The status and both streams together, for `let (status, output) = …`.
    public var statusAndOutput: (status: Int32, output: String) { (self.status, self.output) }
}

// Loopback sockets: one way to make the address, bind and connect, for the port picker, the readiness checks, a
// peer that is down and the raw HTTP clients of the tests and the fault suite.

private func loopbackAddress(port: Int, host: String = "127.0.0.1") -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr(host)
    address.sin_port = UInt16(port).bigEndian
    return address
}

/// Calls `body` (bind, connect) with `address` as the `sockaddr` the socket calls take, and its length.
private func withSocketAddress(
    _ address: sockaddr_in,
    _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32
) -> Int32 {
    var address = address
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}

/// A TCP socket bound to 127.0.0.1:`port` (0: any) and the port it got, or nil when the port is taken. The caller
/// closes the descriptor.
private func boundLoopbackSocket(port: Int, reuseAddress: Bool = false) -> (port: Int, descriptor: Int32)? {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { return nil }
    if reuseAddress {
        var reuse: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
    }
    var address = loopbackAddress(port: port)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    guard withSocketAddress(address, { bind(descriptor, $0, $1) }) == 0 else {
        close(descriptor)
        return nil
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
    }
    return (Int(UInt16(bigEndian: address.sin_port)), descriptor)
}

/// Binds 127.0.0.1:`port` (0: any) and closes it; the port bound, or nil when it was taken.
private func bindLoopback(port: Int) -> Int? {
    guard let (bound, descriptor) = boundLoopbackSocket(port: port) else { return nil }
    close(descriptor)
    return bound
}

/// A TCP socket connected to 127.0.0.1:`port`, from `source` when given (any address of 127.0.0.0/8, so a test or a
/// scenario can be several clients), with a receive timeout. The caller closes the descriptor. Throws, saying which
/// call failed and why, when the source cannot be bound or nothing accepts on the port.
///
/// Without a source the kernel picks the local address and port at `connect`, as any client does. With one, the port
/// is still picked at `connect` (`IP_BIND_ADDRESS_NO_PORT`): a port picked at `bind` cannot be shared with another
/// destination or taken from a connection in TIME_WAIT, and a suite that opens thousands of short connections (the
/// fault suite's floods) would run out of them, so that even a readiness probe fails to connect.
public func connectLoopbackSocket(
    port: Int,
    from source: String? = nil,
    receiveTimeoutSeconds: Int
) throws -> Int32 {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw HarnessError("socket: \(String(cString: strerror(errno)))") }
    func fail(_ call: String) -> HarnessError {
        let code = errno
        close(descriptor)
        return HarnessError("\(call): \(String(cString: strerror(code)))")
    }
    if let source {
        var on: Int32 = 1
        // IP_BIND_ADDRESS_NO_PORT (Linux 4.2, linux/in.h), which the C library's headers may not name.
        let bindAddressNoPort: Int32 = 24
        setsockopt(descriptor, Int32(IPPROTO_IP), bindAddressNoPort, &on, socklen_t(MemoryLayout<Int32>.size))
        guard withSocketAddress(loopbackAddress(port: 0, host: source), { bind(descriptor, $0, $1) }) == 0 else {
            throw fail("bind \(source)")
        }
    }
    guard withSocketAddress(loopbackAddress(port: port), { connect(descriptor, $0, $1) }) == 0 else {
        throw fail("connect 127.0.0.1:\(port)" + (source.map { " from \($0)" } ?? ""))
    }
    var timeout = timeval(tv_sec: receiveTimeoutSeconds, tv_usec: 0)
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    return descriptor
}

/// A TCP socket connected to 127.0.0.1:`port`, with a receive timeout, or nil when nothing accepts there.
private func connectedLoopbackSocket(port: Int, receiveTimeoutSeconds: Int = 3) -> Int32? {
    try? connectLoopbackSocket(port: port, receiveTimeoutSeconds: receiveTimeoutSeconds)
}

/// Whether something accepts TCP connections on the loopback port.
public func portAccepts(_ port: Int) -> Bool {
    guard let descriptor = connectedLoopbackSocket(port: port) else { return false }
    close(descriptor)
    return true
}

/// Whether an HTTP server answers `GET path` on the loopback port within a few seconds (any status).
public func httpAnswers(port: Int, path: String) -> Bool {
    guard let descriptor = connectedLoopbackSocket(port: port) else { return false }
    defer { close(descriptor) }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
    guard request.withUnsafeBytes({ send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count
    else { return false }
    var buffer = [UInt8](repeating: 0, count: 16)
    let received = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
    return received >= 5 && buffer.starts(with: "HTTP/".utf8)
}

/// A loopback TCP port bound (not listening) by the returned descriptor: connections to it are refused, and no
/// other server can take it until the descriptor is closed. For a peer that is down.
public func boundTCPPort() throws -> (port: Int, descriptor: Int32) {
    guard let bound = boundLoopbackSocket(port: 0, reuseAddress: true) else {
        throw HarnessError("cannot bind a loopback port")
    }
    return bound
}
