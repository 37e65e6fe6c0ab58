import AsyncHTTPClient
import Foundation
import Glibc
import LedgerCore
import LedgerTesting
import Testing

/// Readiness over `NOTIFY_SOCKET`, with the real `ledgerd run` and a real Unix datagram socket standing in for the
/// service manager.
struct ReadinessTests {
    /// A bound datagram socket that receives the daemon's state lines; a receive waits at most 60 seconds.
    final class NotifySocket {
        let descriptor: Int32
        let name: String

        /// `abstract`: a name in the abstract namespace (`@…`), else a path in `directory`.
        init(directory: String, abstract: Bool) throws {
            self.descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            var bytes: [UInt8]
            if abstract {
                self.name = "@ledgerd-test-\(UUID().uuidString)"
                bytes = Array(self.name.utf8)
                bytes[0] = 0
            } else {
                self.name = directory + "/notify.sock"
                bytes = Array(self.name.utf8)
            }
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
            let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(self.descriptor, $0, length) }
            }
            guard self.descriptor >= 0, bound == 0 else { throw TestFailure("cannot bind \(self.name): \(errno)") }
            var timeout = timeval(tv_sec: 60, tv_usec: 0)
            setsockopt(self.descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit { close(self.descriptor) }

        /// The next datagram, or nil when none came in time.
        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(self.descriptor, &buffer, buffer.count, 0)
            guard count >= 0 else { return nil }
            return String(decoding: buffer[..<count], as: UTF8.self)
        }
    }

    /// `READY=1` arrives once the control socket and HTTP answer, `STOPPING=1` after SIGTERM, in that order and
    /// nothing else; for a socket path and for an abstract name.
    @Test(arguments: [false, true])
    func readyThenStopping(abstract: Bool) async throws {
        let directory = TemporaryDirectory()
        let notify = try NotifySocket(directory: directory.path, abstract: abstract)
        let key = try TemporaryDirectory.writeSecret(TestKeys.text, to: directory.path + "/merchant.key")
        let port = try freeTCPPort()
        let socketPath = directory.path + "/ledgerd.sock"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try BuiltProducts.path("ledgerd"))
        process.arguments = [
            "run", "--data-dir", directory.path + "/ledger", "--socket", socketPath, "--http", "127.0.0.1:\(port)",
            "--key-file", key, "--member-id", TestKeys.memberId, "--gateway-url", GatewaySettings.testing().baseURL,
            "--public-url", "http://127.0.0.1:\(port)", "--log-level", "warning",
        ]
        process.environment = ["NOTIFY_SOCKET": notify.name]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        #expect(notify.receive() == "READY=1")
        // Ready means ready: both listeners answer now, with no waiting.
        #expect(FileManager.default.fileExists(atPath: socketPath))
        let client = HTTPClient()
        defer { shutdownLater(client) }
        let (status, _) = try await get(client, "http://127.0.0.1:\(port)/healthz")
        #expect(status == 200)
        kill(process.processIdentifier, SIGTERM)
        #expect(notify.receive() == "STOPPING=1")
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }
}
