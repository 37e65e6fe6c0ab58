import Foundation
import LedgerCore
import LedgerPostgres
import LedgerStore
import LedgerTesting
import Testing

/// One contract, run against every event-store implementation.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case lmdb
    case memory
    /// A fresh schema in the database at `LEDGER_TEST_POSTGRES_URL`; cancelled (skipped) with a note when it is
    /// not set outside CI (`PostgresTestDatabase`).
    case postgres
    /// An LMDB store behind the handle a running daemon's parts hold, opened through it.
    case handle

    var testDescription: String { self.rawValue }

    /// `store` behind an opened handle.
    static func handle(_ store: any EventStore) async throws -> any EventStore {
        let handle = StoreHandle()
        try await handle.open(store)
        return handle
    }

    /// A fresh store, and the directory that must outlive it.
    func make() async throws -> (any EventStore, TemporaryDirectory) {
        let directory = TemporaryDirectory()
        switch self {
        case .lmdb:
            return (
                try LMDBEventStore(
                    path: directory.path + "/ledger",
                    options: .init(limits: StoreLimits(mapSize: 1 << 20, rebuildChunkEvents: 7))
                ), directory
            )
        case .memory:
            return (InMemoryEventStore(), directory)
        case .postgres:
            return (
                try await PostgresTestDatabase.freshStore(options: .init(limits: StoreLimits(rebuildChunkEvents: 7))),
                directory
            )
        case .handle:
            let options = LMDBEventStore.Options(limits: StoreLimits(mapSize: 1 << 20, rebuildChunkEvents: 7))
            return (
                try await Self.handle(LMDBEventStore(path: directory.path + "/ledger", options: options)), directory
            )
        }
    }
}

struct EventStoreContractTests {
    let fixture = StoreFixture()

    /// A new store is empty.
    @Test(arguments: StoreKind.allCases)
    func emptyStore(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make()
        #expect(try await store.head() == .empty)
        #expect(try await store.readEvents(from: 1, limit: 10).isEmpty)
        #expect(try await store.order("A1") == nil)
        #expect(try await store.events(forOrder: "A1").isEmpty)
        await store.close()
    }

    /// Appends get consecutive sequence numbers, chained hashes, and update the projection in the same commit.
    @Test(arguments: StoreKind.allCases)
    func appendChainsAndProjects(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make()
        let first = try #require(try await store.append(AppendRequest([self.fixture.created("A1")])).events)
        #expect(first.map(\.sequence) == [1])
        #expect(first[0].previousHash == .zero)
        #expect(first[0].hashIsValid)
        let second = try #require(try await store.append(AppendRequest([self.fixture.callback("A1")])).events)
        #expect(second[0].sequence == 2)
        #expect(second[0].previousHash == first[0].hash)
        #expect(try await store.head() == LogHead(sequence: 2, hash: second[0].hash))
        let state = try #require(try await store.order("A1"))
        #expect(state.status == .paid)
        #expect(state.payment?.transactionId == "T-A1")
        #expect(try await store.events(forOrder: "A1").map(\.sequence) == [1, 2])
        #expect(try await store.readEvents(from: 1, limit: 10) == first + second)
        await store.close()
    }

    /// The outcome carries what the projection made of each event, for the caller's reply.
    @Test(arguments: StoreKind.allCases)
    func outcomeCarriesEffects(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make()
        _ = try await store.append(AppendRequest([self.fixture.created("A1")]))
        let callbacks: [(PendingEvent, CallbackClassification)] = [
            (self.fixture.callback("A1", forged: true), .badSignature),
            (self.fixture.callback("A1", amount: "12.5001"), .amountMismatch),
            (self.fixture.callback("A1"), .accepted),
            (self.fixture.callback("A1"), .duplicate),
            (self.fixture.callback("ZZ"), .unknownOrder),
        ]
        for (event, expected) in callbacks {
            guard case .appended(let appended) = try await store.append(AppendRequest([event])) else {
                Issue.record("the append must be stored")
                continue
            }
            #expect(appended.effects == [.callback(expected)])
        }
        let state = try #require(try await store.order("A1"))
        #expect(state.callbacks.received == 4)
        #expect(state.callbacks.duplicate == 1)
        #expect(state.flags.contains(.amountMismatch))
        #expect(try await store.order("ZZ")?.status == .unknown)
        await store.close()
    }

    /// A create for an existing order fails its precondition and stores nothing.
    @Test(arguments: StoreKind.allCases)
    func preconditionOrderAbsent(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make()
        let request = AppendRequest([self.fixture.created("A1")], precondition: .orderAbsent("A1"))
        #expect(try await store.append(request).events?.count == 1)
        let again = try await store.append(request)
        guard case .preconditionFailed(let existing) = again else {
            Issue.record("a second create must fail its precondition")
            return
        }
        #expect(existing.orderId == "A1")
        #expect(try await store.head().sequence == 1)
        await store.close()
    }

    /// The creation event of an order is read alone: callbacks before and after it, a second create and an order
    /// that was never created do not change what is found.
    @Test(arguments: StoreKind.allCases)
    func createdEventAlone(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make()
        #expect(try await store.createdEvent(forOrder: "A1") == nil)
        _ = try await store.append(AppendRequest([self.fixture.callback("A1", forged: true)]))
        #expect(try await store.createdEvent(forOrder: "A1") == nil, "callbacks alone are no creation")
        let created = try #require(try await store.append(AppendRequest([self.fixture.created("A1")])).events?.first)
        for _ in 0..<5 { _ = try await store.append(AppendRequest([self.fixture.callback("A1", forged: true)])) }
        _ = try await store.append(AppendRequest([self.fixture.created("A1", amount: "99.00")]))
        _ = try await store.append(AppendRequest([self.fixture.created("B1")]))
        #expect(try await store.createdEvent(forOrder: "A1") == created)
        #expect(try await store.createdEvent(forOrder: "B1")?.orderId == "B1")
        #expect(try await store.createdEvent(forOrder: "ZZ") == nil)
        #expect(try await store.createdEvent(forOrder: "") == nil)
        await store.close()
    }

    /// The de-duplication index remembers the first validly signed callback of each signed content.
    @Test(arguments: StoreKind.allCases)
    func dedupIndex(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make()
        _ = try await store.append(AppendRequest([self.fixture.created("A1")]))
        let first = try #require(try await store.append(AppendRequest([self.fixture.callback("A1")])).events?.first)
        _ = try await store.append(AppendRequest([self.fixture.callback("A1")]))
        guard case .callbackReceived(let callback) = first.payload, let key = callback.signedContentKey else {
            Issue.record("a valid callback has a content key")
            return
        }
        #expect(try await store.firstCallback(orderId: "A1", signedContentKey: key) == first.sequence)
        #expect(try await store.firstCallback(orderId: "A1", signedContentKey: "NOPE") == nil)
        await store.close()
    }

    /// Reads page through the log and through orders by status.
    @Test(arguments: StoreKind.allCases)
    func paging(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make()
        for index in 0..<10 { _ = try await store.append(AppendRequest([self.fixture.created("P\(index)")])) }
        for index in [1, 3, 5] { _ = try await store.append(AppendRequest([self.fixture.callback("P\(index)")])) }
        #expect(try await store.readEvents(from: 4, limit: 3).map(\.sequence) == [4, 5, 6])
        #expect(try await store.readEvents(from: 12, limit: 5).map(\.sequence) == [12, 13])
        let created = try await store.orders(status: .created, after: nil, limit: 4).map(\.orderId)
        #expect(created == ["P0", "P2", "P4", "P6"])
        let next = try await store.orders(status: .created, after: "P6", limit: 4).map(\.orderId)
        #expect(next == ["P7", "P8", "P9"])
        #expect(try await store.orders(status: .paid, after: nil, limit: 10).map(\.orderId) == ["P1", "P3", "P5"])
        let stats = try await store.statistics()
        #expect(stats.head.sequence == 13)
        #expect(stats.eventsByType[.orderCreated] == 10)
        #expect(stats.eventsByType[.callbackReceived] == 3)
        #expect(stats.ordersByStatus[.paid] == 3)
        #expect(stats.ordersByStatus[.created] == 7)
        await store.close()
    }

    /// Status lists stay in first-recorded order whatever order orders are paid in: orders created and paid in
    /// one commit, older orders paid after newer ones, several new orders in one group commit. The projection
    /// then equals a replay of the log.
    @Test(arguments: StoreKind.allCases)
    func statusListsAcrossCommits(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make()
        let fixture = self.fixture
        _ = try await store.append(AppendRequest([fixture.created("N1"), fixture.callback("N1")]))
        _ = try await store.append(AppendRequest([fixture.created("O2")]))
        _ = try await store.append(AppendRequest([fixture.created("O3")]))
        _ = try await store.append(AppendRequest([fixture.callback("O3")]))
        _ = try await store.append(
            AppendRequest([fixture.created("N4"), fixture.callback("N4"), fixture.created("N5")])
        )
        _ = try await store.append(AppendRequest([fixture.callback("O2"), fixture.created("N6")]))
        // Several requests at once, so a group commit may hold several new orders and an old one's payment.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for id in ["G7", "G8", "G9"] {
                group.addTask {
                    _ = try await store.append(AppendRequest([fixture.created(id), fixture.callback(id)]))
                }
            }
            group.addTask { _ = try await store.append(AppendRequest([fixture.callback("N5")])) }
            try await group.waitForAll()
        }
        let paid = try await store.orders(status: .paid, after: nil, limit: 20).map(\.orderId)
        #expect(Array(paid.prefix(5)) == ["N1", "O2", "O3", "N4", "N5"])
        #expect(Set(paid.dropFirst(5)) == ["G7", "G8", "G9"])
        #expect(try await store.orders(status: .created, after: nil, limit: 20).map(\.orderId) == ["N6"])
        let verified = try await store.verifyProjection(differencesMax: 10, progress: nil)
        #expect(verified.differenceCount == 0)
        _ = try await store.rebuildProjection(progress: nil)
        #expect(try await store.orders(status: .paid, after: nil, limit: 20).map(\.orderId) == paid)
        await store.close()
    }

    /// Orders list oldest first, by the first event naming each, not by id; a cursor the ledger does not hold is
    /// an error, not an empty page.
    @Test(arguments: StoreKind.allCases)
    func listingIsOldestFirst(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make()
        for id in ["Z9", "A1", "M5", "B2"] { _ = try await store.append(AppendRequest([self.fixture.created(id)])) }
        _ = try await store.append(AppendRequest([self.fixture.callback("A1")]))
        #expect(try await store.orders(status: .created, after: nil, limit: 10).map(\.orderId) == ["Z9", "M5", "B2"])
        #expect(try await store.orders(status: .created, after: "Z9", limit: 10).map(\.orderId) == ["M5", "B2"])
        // The cursor may have changed status since the previous page: the listing still continues after it.
        #expect(try await store.orders(status: .created, after: "A1", limit: 10).map(\.orderId) == ["M5", "B2"])
        await #expect {
            _ = try await store.orders(status: .created, after: "NOT-AN-ORDER", limit: 10)
        } throws: { error in
            (error as? StoreError)?.code == .invalidArgument
        }
        await store.close()
    }

    /// Concurrent appends all land, with gap-free sequences and an intact chain.
    @Test(arguments: StoreKind.allCases)
    func concurrentAppends(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make()
        let fixture = self.fixture
        let sequences = try await withThrowingTaskGroup(of: [UInt64].self) { group in
            for index in 0..<200 {
                group.addTask {
                    try await store.append(
                        AppendRequest([fixture.created("C\(index)"), fixture.queryFailure("C\(index)")])
                    ).events!.map(\.sequence)
                }
            }
            var all: [[UInt64]] = []
            for try await sequences in group { all.append(sequences) }
            return all
        }
        // The events of one request are adjacent: a request is one unit.
        for pair in sequences { #expect(pair.count == 2 && pair[1] == pair[0] + 1) }
        #expect(sequences.flatMap { $0 }.sorted() == Array(1...400))
        let report = try await store.verifyChain(progress: nil)
        #expect(report.isIntact)
        #expect(report.eventsChecked == 400)
        await store.close()
    }

    /// A rebuild reproduces the live projection exactly, and verification finds nothing to change.
    @Test(arguments: StoreKind.allCases)
    func rebuildAndVerify(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make()
        for index in 0..<30 {
            _ = try await store.append(AppendRequest([self.fixture.created("R\(index)")]))
            if index % 2 == 0 { _ = try await store.append(AppendRequest([self.fixture.callback("R\(index)")])) }
            if index % 3 == 0 {
                _ = try await store.append(AppendRequest([self.fixture.queryFailure("R\(index)", final: true)]))
            }
        }
        var before: [OrderState] = []
        for index in 0..<30 { before.append(try #require(try await store.order("R\(index)"))) }
        let verify = try await store.verifyProjection(differencesMax: 10, progress: nil)
        #expect(verify.differenceCount == 0)
        #expect(verify.ordersCompared == 30)
        let rebuild = try await store.rebuildProjection(progress: nil)
        #expect(rebuild.orders == 30)
        #expect(rebuild.head.sequence == 55)
        for index in 0..<30 { #expect(try await store.order("R\(index)") == before[index]) }
        #expect(try await store.orders(status: .expired, after: nil, limit: 100).count == 5)
        await store.close()
    }

    /// A closed store refuses appends with a clear error.
    @Test(arguments: StoreKind.allCases)
    func closedStoreRefuses(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make()
        await store.close()
        await #expect(throws: StoreError.self) { try await store.append(AppendRequest([self.fixture.created("A1")])) }
    }
}
