import Foundation
import Glibc
import LedgerCore
import LedgerDaemon
import LedgerPostgres
import LedgerStore
import LedgerTesting
import NIOCore
import Synchronization
import Testing

/// The daemon's parts are services whose resources exist only while the daemon runs.
struct LifecycleTests {
    /// Whether a callback ran, for a check after the daemon stopped.
    final class Flag: Sendable {
        private let raised = Mutex(false)
        func raise() { self.raised.withLock { $0 = true } }
        var isRaised: Bool { self.raised.withLock { $0 } }
    }

    /// A TCP listener on loopback that never accepts and so never answers: a database server that hangs.
    final class SilentListener {
        let descriptor: Int32
        let port: Int

        init() throws {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                    bind(descriptor, pointer, length) == 0 && listen(descriptor, 8) == 0
                        && getsockname(descriptor, pointer, &length) == 0
                }
            }
            guard descriptor >= 0, bound else {
                close(descriptor)
                throw TestFailure("cannot listen on loopback: \(errno)")
            }
            self.descriptor = descriptor
            self.port = Int(UInt16(bigEndian: address.sin_port))
        }

        deinit { close(self.descriptor) }

        /// Whether a connection waits in the backlog, unaccepted.
        var hasPendingConnection: Bool {
            var entry = pollfd(fd: self.descriptor, events: Int16(POLLIN), revents: 0)
            return poll(&entry, 1, 0) == 1
        }
    }

    /// A graceful shutdown while the store is still opening (its PostgreSQL server connected but silent) stops the
    /// daemon without an error and without starting a listener, instead of waiting for the connection's deadline.
    @Test(.timeLimit(.minutes(1))) func shutdownWhileTheStoreOpens() async throws {
        let server = try SilentListener()
        let directory = TemporaryDirectory()
        var configuration = try testConfiguration(directory: directory)
        let url = "postgres://ledger@127.0.0.1:\(server.port)/ledger"
        var postgres = PostgresStoreSettings(url: url, connection: try PostgresConnectionSettings(url: url))
        postgres.connectTimeout = .seconds(600)
        configuration.storeBackend = .postgres(postgres)
        let listened = Flag()
        let daemon = LedgerDaemon(configuration: configuration, seed: 7, logger: testLogger)
        let task = Task { try await daemon.run(onHTTPRunning: { _ in listened.raise() }) }
        while !server.hasPendingConnection { try await Task.sleep(for: .milliseconds(20)) }
        await daemon.shutdownHandle.shutdown()
        try await task.value
        #expect(!listened.isRaised)
        await #expect(throws: StoreError.self) { try await daemon.store.head() }
    }

    /// A daemon that never runs holds nothing: no data directory is made, and it is dropped with no store or HTTP
    /// client left to close.
    @Test func unrunDaemonHoldsNothing() async throws {
        let directory = TemporaryDirectory()
        let configuration = try testConfiguration(directory: directory)
        do {
            let daemon = LedgerDaemon(configuration: configuration, seed: 7, logger: testLogger)
            await #expect(throws: StoreError.self) { try await daemon.ledger.order("A1") }
        }
        #expect(!FileManager.default.fileExists(atPath: configuration.dataDirectory))
    }

    /// A daemon opens its store only when it runs and has closed it when run returns: before and after, its store
    /// answers `closed` and another opener may take the data directory; while it runs, the directory is its own.
    @Test func storeOpenOnlyWhileRunning() async throws {
        let directory = TemporaryDirectory()
        let configuration = try testConfiguration(directory: directory)
        let daemon = LedgerDaemon(configuration: configuration, seed: 7, logger: testLogger)
        await #expect {
            try await daemon.store.head()
        } throws: { error in
            (error as? StoreError)?.code == .closed && "\(error)".contains("not open yet")
        }
        let before = try LMDBEventStore(path: configuration.dataDirectory)
        await before.close()
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let task = Task {
            defer { continuation.finish() }
            try await daemon.run(onHTTPRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) })
        }
        var iterator = ports.makeAsyncIterator()
        #expect(await iterator.next() != nil, "the daemon did not start")
        #expect(try await daemon.store.head() == .empty)
        #expect {
            _ = try LMDBEventStore(path: configuration.dataDirectory)
        } throws: { error in
            (error as? LMDBError)?.isDirectoryInUse == true
        }
        await daemon.shutdownHandle.shutdown()
        try await task.value
        await #expect {
            try await daemon.store.head()
        } throws: { error in
            (error as? StoreError)?.code == .closed && "\(error)" == "The ledger store is closed."
        }
        let after = try LMDBEventStore(path: configuration.dataDirectory)
        await after.close()
    }

    /// A store that cannot open stops the daemon with the store's error, and no HTTP listener was started.
    @Test func storeFailureStopsTheDaemonBeforeAnyListener() async throws {
        let directory = TemporaryDirectory()
        let configuration = try testConfiguration(directory: directory)
        let holder = try LMDBEventStore(path: configuration.dataDirectory)
        let listened = Flag()
        let daemon = LedgerDaemon(configuration: configuration, seed: 7, logger: testLogger)
        await #expect {
            try await daemon.run(onHTTPRunning: { _ in listened.raise() })
        } throws: { error in
            (error as? LMDBError)?.isDirectoryInUse == true
        }
        #expect(!listened.isRaised)
        #expect(!FileManager.default.fileExists(atPath: configuration.socketPath))
        await holder.close()
    }
}
