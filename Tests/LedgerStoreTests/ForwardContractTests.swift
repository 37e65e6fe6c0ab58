import Foundation
import LedgerCore
import LedgerStore
import LedgerTesting
import Testing

/// The forwarder's stored state, run against every store: the derivation position and the outbox change together
/// or not at all, survive a reopen, page in key order, and never run ahead of the log.
struct ForwardContractTests {
    let fixture = StoreFixture()

    func delivery(_ receiver: String, _ sequence: UInt64, _ type: ForwardEventType = .orderPaid, attempts: UInt32 = 0)
        -> ForwardDelivery
    {
        ForwardDelivery(
            receiver: receiver,
            event: ForwardEvent(
                type: type,
                orderId: "F\(sequence)",
                status: .paid,
                amount: "12.50",
                paidAt: "2026-11-27 10:00:05",
                transactionId: "T\(sequence)",
                source: .callback,
                flags: [],
                flagsRaised: [],
                sequence: sequence,
                createdAt: self.fixture.start
            ),
            attempts: attempts,
            nextAttemptAt: self.fixture.start.adding(milliseconds: Int64(attempts) * 5000),
            lastError: attempts == 0 ? nil : "HTTP 500"
        )
    }

    /// A new store is at position 0 with an empty outbox; a write sets the position and keeps its deliveries.
    @Test(arguments: StoreKind.allCases)
    func positionAndOutboxTogether(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make()
        #expect(try await store.forwardPosition() == 0)
        #expect(try await store.forwardOutbox(after: nil, limit: 10).isEmpty)
        for index in 1...3 { _ = try await store.append(AppendRequest([self.fixture.created("F\(index)")])) }
        let deliveries = [
            self.delivery("http://b.example/hook", 1), self.delivery("http://a.example/hook", 3, .orderFlagged),
            self.delivery("http://a.example/hook", 3), self.delivery("http://a.example/hook", 2),
        ]
        try await store.forwardWrite(ForwardWrite(position: 3, put: deliveries))
        #expect(try await store.forwardPosition() == 3)
        let all = try await store.forwardOutbox(after: nil, limit: 10)
        #expect(all.map(\.key) == deliveries.map(\.key).sorted())
        #expect(all == deliveries.sorted { $0.key < $1.key })
        // Pages follow on from the last key of the previous page.
        let first = try await store.forwardOutbox(after: nil, limit: 2)
        let rest = try await store.forwardOutbox(after: first.last?.key, limit: 10)
        #expect((first + rest).map(\.key) == all.map(\.key))
        await store.close()
    }

    /// A delivery is replaced under its key (a failed attempt) and removed once delivered; removing one not held is
    /// no error; a write without a position leaves the position alone.
    @Test(arguments: StoreKind.allCases)
    func updateAndRemove(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make()
        _ = try await store.append(AppendRequest([self.fixture.created("F1"), self.fixture.created("F2")]))
        try await store.forwardWrite(
            ForwardWrite(position: 2, put: [self.delivery("http://a/", 1), self.delivery("http://a/", 2)])
        )
        var failed = self.delivery("http://a/", 2, attempts: 1)
        failed.dead = true
        try await store.forwardWrite(
            ForwardWrite(put: [failed], remove: [ForwardKey(receiver: "http://a/", sequence: 1, type: .orderPaid)])
        )
        try await store.forwardWrite(
            ForwardWrite(remove: [ForwardKey(receiver: "http://z/", sequence: 9, type: .orderPaid)])
        )
        #expect(try await store.forwardPosition() == 2)
        #expect(try await store.forwardOutbox(after: nil, limit: 10) == [failed])
        await store.close()
    }

    /// A position beyond the head is refused, and nothing of that write is kept.
    @Test(arguments: StoreKind.allCases)
    func neverAheadOfTheLog(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make()
        _ = try await store.append(AppendRequest([self.fixture.created("F1")]))
        await #expect(throws: StoreError.self) {
            try await store.forwardWrite(ForwardWrite(position: 2, put: [self.delivery("http://a/", 2)]))
        }
        #expect(try await store.forwardPosition() == 0)
        #expect(try await store.forwardOutbox(after: nil, limit: 10).isEmpty)
        await store.close()
    }

    /// The position and the outbox survive closing and reopening the LMDB store.
    @Test func survivesReopen() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/ledger"
        let store = try LMDBEventStore(path: path, options: .init(limits: StoreLimits(mapSize: 1 << 20)))
        _ = try await store.append(AppendRequest([self.fixture.created("F1")]))
        try await store.forwardWrite(ForwardWrite(position: 1, put: [self.delivery("http://a/", 1, attempts: 2)]))
        await store.close()
        let reopened = try LMDBEventStore(path: path, options: .init(limits: StoreLimits(mapSize: 1 << 20)))
        #expect(try await reopened.forwardPosition() == 1)
        #expect(try await reopened.forwardOutbox(after: nil, limit: 10) == [self.delivery("http://a/", 1, attempts: 2)])
        await reopened.close()
    }
}
