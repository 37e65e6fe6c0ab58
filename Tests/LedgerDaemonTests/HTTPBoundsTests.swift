import Foundation
import LedgerCore
import LedgerDaemon
import LedgerStore
import LedgerTesting
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A blocking TCP client on loopback from a chosen source address (any of 127.0.0.0/8), for tests that need
/// connections from several addresses.
final class LoopbackClient: @unchecked Sendable {
    let fd: Int32

    init(port: Int, from source: String? = nil, receiveTimeoutSeconds: Int = 20) throws {
        self.fd = try connectLoopbackSocket(port: port, from: source, receiveTimeoutSeconds: receiveTimeoutSeconds)
    }

    deinit { close(self.fd) }

    /// Writes all bytes; false when the peer has gone.
    @discardableResult
    func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.send(self.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            == bytes.count
    }

    /// What arrives until the peer closes (true) or the receive timeout passes (false).
    func readToEnd() -> (text: String, closed: Bool) {
        var received: [UInt8] = []
        while true {
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = chunk.withUnsafeMutableBytes { read(self.fd, $0.baseAddress, $0.count) }
            if count > 0 {
                received += chunk[..<count]
                continue
            }
            let closed = count == 0 || errno == ECONNRESET
            return (String(decoding: received, as: UTF8.self), closed)
        }
    }

    /// Whether the peer has answered or closed, without blocking: a read would not wait.
    var peerSpoke: Bool {
        var byte: UInt8 = 0
        let count = recv(self.fd, &byte, 1, Int32(MSG_DONTWAIT | MSG_PEEK))
        return count >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)
    }
}

/// A flag one task sets and others read.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { self.value.load(ordering: .relaxed) }
    func set() { self.value.store(true, ordering: .relaxed) }
}

/// The HTTP server's bounds against hostile clients, over real sockets against the real daemon.
@Suite(.serialized) struct HTTPBoundsTests {
    /// The new bounds have keys with ranges; the per-address bound defaults to at most connectionsMax and may
    /// not be set above it.
    @Test func boundsConfiguration() async throws {
        let environment = GatewaySettings.testingEnvironment([
            "LEDGERD_LIMITS_HTTP_CONNECTIONS_MAX": "8",
            "LEDGERD_LIMITS_HTTP_REQUEST_TIMEOUT_MS": "2500", "LEDGERD_POLL_QUERIES_PER_SECOND_MAX": "7",
        ])
        let configuration = try await DaemonConfiguration.load(flags: [:], environment: environment, file: nil)
        #expect(configuration.limits.http.connectionsPerAddressMax == 8)
        #expect(configuration.limits.http.requestTimeout == .milliseconds(2500))
        #expect(configuration.poll.queriesPerSecondMax == 7)
        let defaults = try await DaemonConfiguration.load(
            flags: [:],
            environment: GatewaySettings.testingEnvironment(),
            file: nil
        )
        #expect(defaults.limits.http.connectionsPerAddressMax == 128)
        #expect(defaults.limits.http.requestTimeout == .seconds(10))
        #expect(defaults.poll.queriesPerSecondMax == 20)
        let refusals: [(variable: String, value: String, key: String)] = [
            ("LEDGERD_LIMITS_HTTP_CONNECTIONS_PER_ADDRESS_MAX", "16", "limits.http.connectionsPerAddressMax"),
            ("LEDGERD_LIMITS_HTTP_REQUEST_TIMEOUT_MS", "0", "limits.http.requestTimeoutMs"),
            ("LEDGERD_POLL_QUERIES_PER_SECOND_MAX", "0", "poll.queriesPerSecondMax"),
        ]
        await expectRefusals(environment, refusals)
    }

    /// Bodies dripped one byte at a time on every allowed connection are cut off at limits.http.requestTimeoutMs
    /// with a 408, and /healthz on another connection is answered.
    @Test func drippedBodiesMeetTheDeadline() async throws {
        let directory = TemporaryDirectory()
        var configuration = try testConfiguration(directory: directory)
        configuration.limits.http.connectionsMax = 8
        configuration.limits.http.connectionsPerAddressMax = 8
        configuration.limits.http.idleTimeout = .seconds(2)
        configuration.limits.http.requestTimeout = .seconds(1)
        try await withRunningDaemon(configuration) { running in
            let port = Int(running.baseURL.split(separator: ":").last!)!
            let answered = Flag()
            let drippers = try (0..<8).map { _ in try LoopbackClient(port: port, receiveTimeoutSeconds: 1) }
            for client in drippers {
                client.send(
                    "POST /notify HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 8000\r\n\r\n"
                )
            }
            // Each drips a byte every 200 ms until the daemon closes it, /healthz is answered, or 30 s pass: far
            // longer than /healthz waits below, so without the deadline /healthz is never answered.
            let dripping = Task {
                try await withThrowingTaskGroup(of: (String, Bool).self) { group in
                    for client in drippers {
                        group.addTask {
                            try await blocking {
                                for _ in 0..<150 {
                                    if client.peerSpoke || answered.isSet { break }
                                    client.send("x")
                                    Thread.sleep(forTimeInterval: 0.2)
                                }
                                // A connection whose deadline has not fired yet (the timers fire one by one on a
                                // busy machine) has its receive timeout, a second, to be closed.
                                return client.readToEnd()
                            }
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
            }
            try await Task.sleep(for: .milliseconds(100))
            let health = try await blocking { try rawExchange(port: port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") }
            answered.set()
            #expect(health.hasPrefix("HTTP/1.1 200"), "\(health)")
            let results = try await dripping.value
            let closed = results.filter { $0.1 }.count
            #expect(closed == 8, "every dripping connection is closed by the daemon")
            for (received, _) in results where !received.isEmpty {
                #expect(received.hasPrefix("HTTP/1.1 408"), "\(received)")
            }
            #expect(results.contains { $0.0.hasPrefix("HTTP/1.1 408") }, "a cut-off request hears 408")
            #expect(try await running.daemon.store.head().sequence == 0, "nothing of the dripped bodies is stored")
        }
    }

    /// A request head trickled in more slowly than limits.http.requestTimeoutMs allows is cut off with a 408,
    /// although each piece comes well within the idle timeout.
    @Test func trickledHeadMeetsTheDeadline() async throws {
        let directory = TemporaryDirectory()
        var configuration = try testConfiguration(directory: directory)
        configuration.limits.http.idleTimeout = .seconds(5)
        configuration.limits.http.requestTimeout = .seconds(1)
        try await withRunningDaemon(configuration) { running in
            let port = Int(running.baseURL.split(separator: ":").last!)!
            let result = try await blocking {
                let client = try LoopbackClient(port: port)
                client.send("GET /healthz HTTP/1.1\r\n")
                for index in 0..<100 {
                    if client.peerSpoke { break }
                    client.send("X-Slow-\(index): 1\r\n")
                    Thread.sleep(forTimeInterval: 0.2)
                }
                return client.readToEnd()
            }
            #expect(result.closed)
            #expect(result.text.hasPrefix("HTTP/1.1 408"), "\(result.text)")
        }
    }

    /// One address gets limits.http.connectionsPerAddressMax connections; one more is closed at once without an
    /// answer, while another address is served, and the address is served again once one of its own closes.
    @Test func connectionsPerAddressAreBounded() async throws {
        let directory = TemporaryDirectory()
        var configuration = try testConfiguration(directory: directory)
        configuration.limits.http.connectionsMax = 4
        configuration.limits.http.connectionsPerAddressMax = 2
        try await withRunningDaemon(configuration) { running in
            let port = Int(running.baseURL.split(separator: ":").last!)!
            // The socket work runs on its own thread and reports what it saw; the expectations follow here.
            let seen = try await blocking {
                () throws -> (heldServed: Int, refused: [(String, Bool)], other: String, again: Bool) in
                let held = try (0..<2).map { _ in try LoopbackClient(port: port, from: "127.0.0.3") }
                // Each held connection is surely accepted and counted: it answers a request and stays open.
                var heldServed = 0
                for client in held {
                    client.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    var byte: UInt8 = 0
                    if recv(client.fd, &byte, 1, 0) == 1 { heldServed += 1 }
                }
                // Several refused ones, more than connectionsMax leaves free: refused connections never count.
                var refused: [(String, Bool)] = []
                for _ in 0..<4 {
                    let extra = try LoopbackClient(port: port, from: "127.0.0.3", receiveTimeoutSeconds: 5)
                    extra.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    refused.append(extra.readToEnd())
                }
                let other = try LoopbackClient(port: port, from: "127.0.0.4")
                other.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                let otherAnswer = other.readToEnd().text
                shutdown(held[0].fd, Int32(SHUT_RDWR))
                // The slot comes back once the daemon has seen the close; try until it has.
                var served = false
                for _ in 0..<100 where !served {
                    let again = try LoopbackClient(port: port, from: "127.0.0.3", receiveTimeoutSeconds: 5)
                    again.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    served = again.readToEnd().text.hasPrefix("HTTP/1.1 200")
                    if !served { Thread.sleep(forTimeInterval: 0.05) }
                }
                _ = held
                return (heldServed, refused, otherAnswer, served)
            }
            #expect(seen.heldServed == 2)
            for (text, closed) in seen.refused {
                #expect(closed && text.isEmpty, "the connection over the bound is closed unanswered: \(text)")
            }
            #expect(seen.other.hasPrefix("HTTP/1.1 200"), "\(seen.other)")
            #expect(seen.again)
        }
    }
}
