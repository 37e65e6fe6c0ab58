import Foundation
import LedgerCore
import LedgerDaemon
import LedgerTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The control socket's file, its mode, stale and live sockets, and the peer uid check.
@Suite(.serialized) struct ControlSecurityTests {
    /// The socket is created with mode 0600 by default.
    @Test func socketModeIs0600() async throws {
        try await withControlDaemon { harness in
            var status = stat()
            #expect(lstat(harness.socketPath, &status) == 0)
            #expect(status.st_mode & 0o777 == 0o600)
            #expect(status.st_mode & mode_t(S_IFMT) == mode_t(S_IFSOCK))
        }
    }

    /// With socketMode 0660 the group may connect too.
    @Test func socketMode0660() async throws {
        try await withControlDaemon(socketMode: 0o660) { harness in
            var status = stat()
            #expect(lstat(harness.socketPath, &status) == 0)
            #expect(status.st_mode & 0o777 == 0o660)
        }
    }

    /// A socket file nobody listens on (a dead daemon's) is replaced, and the daemon serves on it.
    @Test func staleSocketIsReplaced() async throws {
        let directory = TemporaryDirectory()
        var configuration = try testConfiguration(directory: directory)
        configuration.socketPath = directory.path + "/stale.sock"
        // Bind and close without unlinking: exactly what a killed daemon leaves behind.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(configuration.socketPath.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        #expect(bound == 0)
        close(fd)
        #expect(FileManager.default.fileExists(atPath: configuration.socketPath))
        let daemon = LedgerDaemon(configuration: configuration, seed: 7, logger: testLogger)
        let task = Task { try await daemon.run() }
        try await waitForSocket(configuration.socketPath)
        let path = configuration.socketPath
        let answer = try await blocking { try RPCSession(path).call("ledger.stats") }
        #expect(answer["result"] != nil)
        task.cancel()
        _ = try? await task.value
        // Shutdown removes the socket file.
        #expect(!FileManager.default.fileExists(atPath: configuration.socketPath))
    }

    /// A second daemon on a live daemon's socket refuses to start and leaves the first one serving.
    @Test func liveDaemonIsNotEvicted() async throws {
        try await withControlDaemon { harness in
            let other = TemporaryDirectory()
            var configuration = try testConfiguration(directory: other)
            configuration.socketPath = harness.socketPath
            let second = LedgerDaemon(configuration: configuration, seed: 7, logger: testLogger)
            var failure: (any Error)?
            do {
                try await second.run()
            } catch {
                failure = error
            }
            let message = "\(failure.map { "\($0)" } ?? "none")"
            #expect(message.contains("already listening"), "\(message)")
            let path = harness.socketPath
            #expect(try await blocking { try RPCSession(path).call("ledger.stats") }["result"] != nil)
        }
    }

    /// A file at the socket path that is not a socket stops the daemon with a message naming it.
    @Test func nonSocketFileIsNotReplaced() async throws {
        let directory = TemporaryDirectory()
        var configuration = try testConfiguration(directory: directory)
        configuration.socketPath = directory.path + "/notes.txt"
        try "keep me".write(toFile: configuration.socketPath, atomically: true, encoding: .utf8)
        let daemon = LedgerDaemon(configuration: configuration, seed: 7, logger: testLogger)
        await #expect(throws: (any Error).self) { try await daemon.run() }
        #expect(try String(contentsOfFile: configuration.socketPath, encoding: .utf8) == "keep me")
    }

    /// A peer whose uid is neither the daemon's, root's nor listed gets permission-denied and is closed.
    @Test(.enabled(if: getuid() == 0, "needs root to run a client under another uid"))
    func disallowedUidIsRefused() async throws {
        // 0660 and the client keeps gid 0, so the file permissions let it connect and the uid check is what
        // refuses it.
        try await withControlDaemon(socketMode: 0o660) { harness in
            let script = """
                import os, socket, sys
                os.setgroups([0]); os.setgid(0); os.setuid(65534)
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(sys.argv[1])
                s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"ledger.stats"}\\n')
                data = b''
                while True:
                    chunk = s.recv(65536)
                    if not chunk: break
                    data += chunk
                sys.stdout.write(data.decode())
                """
            let path = harness.socketPath
            let result = try await blocking { try ChildProcess.run("/usr/bin/env", ["python3", "-c", script, path]) }
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("permission-denied"), "\(result.output)")
            #expect(!result.output.contains("\"result\""))
            #expect(try await blocking { try RPCSession(path).call("ledger.stats") }["result"] != nil)
        }
    }
}
