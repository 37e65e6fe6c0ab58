import Foundation
import LedgerCore
import LedgerTesting
import Testing

@testable import LedgerStore

/// A store's resources exist only while it is open: the writer's thread between its start and its stop, the
/// handle's store between its open and its close.
struct StoreLifecycleTests {
    let fixture = StoreFixture()

    /// A group-commit writer runs no job until it is started, runs them once started, and refuses them once
    /// stopped.
    @Test func writerRunsOnlyBetweenStartAndStop() async throws {
        let directory = TemporaryDirectory()
        let environment = try LMDBEnvironment(path: directory.path + "/ledger", options: .init(mapSize: 1 << 20))
        defer { environment.close() }
        let layout = try LMDBLayout(environment: environment)
        let writer = GroupCommitWriter(
            context: .init(environment: environment, layout: layout, head: .empty, liveGeneration: 0),
            limits: .init(batchCountMax: 8, batchBytesMax: 1 << 20, queueDepthMax: 8)
        )
        await #expect {
            try await writer.exclusive { _ in }
        } throws: { error in
            (error as? StoreError)?.code == .closed && "\(error)".contains("not open yet")
        }
        writer.start()
        #expect(try await writer.exclusive { context in context.head } == .empty)
        writer.stop()
        await #expect {
            try await writer.exclusive { _ in }
        } throws: { error in
            (error as? StoreError)?.code == .closed && "\(error)" == "The ledger store is closed."
        }
    }

    /// A store handle refuses every call before it is opened and after it is closed, hands calls to its store in
    /// between, closes that store when it closes, and opens no other afterwards.
    @Test func handleServesOnlyWhileOpen() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/ledger"
        let handle = StoreHandle()
        await #expect {
            try await handle.head()
        } throws: { error in
            (error as? StoreError)?.code == .closed && "\(error)".contains("not open yet")
        }
        try await handle.open(try LMDBEventStore(path: path))
        _ = try await handle.append(AppendRequest([self.fixture.created("A1")]))
        #expect(try await handle.head().sequence == 1)
        await handle.close()
        await #expect {
            try await handle.append(AppendRequest([self.fixture.created("A2")]))
        } throws: { error in
            (error as? StoreError)?.code == .closed && "\(error)" == "The ledger store is closed."
        }
        // The store it held was closed with it: the directory opens again, with what was appended.
        let reopened = try LMDBEventStore(path: path)
        #expect(try await reopened.head().sequence == 1)
        await reopened.close()
        // A closed handle opens no store again, and closes the one it was given.
        await #expect {
            try await handle.open(try LMDBEventStore(path: path))
        } throws: { error in
            (error as? StoreError)?.code == .closed
        }
        let again = try LMDBEventStore(path: path)
        await again.close()
    }
}
