import Foundation
import LedgerCore
import LedgerDaemon
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
