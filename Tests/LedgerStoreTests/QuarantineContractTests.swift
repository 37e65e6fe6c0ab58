import Foundation
import LedgerCore
import LedgerPostgres
import LedgerStore
import LedgerTesting
import Testing

extension StoreKind {
    /// A fresh store with these quarantine bounds.
    func make(quarantine limits: QuarantineLimits) async throws -> (any EventStore, TemporaryDirectory) {
        let directory = TemporaryDirectory()
        switch self {
        case .lmdb:
            let options = LMDBEventStore.Options(limits: StoreLimits(mapSize: 1 << 20), quarantineLimits: limits)
            return (try LMDBEventStore(path: directory.path + "/ledger", options: options), directory)
        case .memory:
            return (InMemoryEventStore(quarantineLimits: limits), directory)
        case .postgres:
            return (try await PostgresTestDatabase.freshStore(options: .init(quarantineLimits: limits)), directory)
        case .handle:
            let options = LMDBEventStore.Options(limits: StoreLimits(mapSize: 1 << 20), quarantineLimits: limits)
            return (
                try await Self.handle(LMDBEventStore(path: directory.path + "/ledger", options: options)), directory
            )
        }
    }
}

/// The quarantine's contract, run against every store: notifications the gateway did not vouch for are kept outside
/// the log, bounded, counted exactly, and a flood from one sender displaces only its own entries.
struct QuarantineContractTests {
    let fixture = StoreFixture()

    func entry(
        _ remote: String,
        order: String? = "A1",
        reason: QuarantineReason = .badSignature,
        body: Int = 32,
        at offset: Int64 = 0,
        limits: QuarantineLimits = .default
    ) -> QuarantineEntry {
        QuarantineEntry(
            receivedAt: self.fixture.start.adding(milliseconds: offset),
            remoteAddress: remote,
            reason: reason,
            detail: "test",
            orderId: order,
            body: Array(repeating: UInt8(ascii: "b"), count: body),
            limits: limits
        )
    }

    /// A quarantined notification makes no event, no order, no status entry; it is counted per order only when the
    /// order exists, and otherwise among the unknown orders.
    @Test(arguments: StoreKind.allCases)
    func keptOutsideTheLogAndCounted(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make(quarantine: .default)
        _ = try await store.append(AppendRequest([self.fixture.created("A1")]))
        let head = try await store.head()
        let first = try await store.quarantine(self.entry("198.51.100.7:4000", order: "A1", at: 10))
        #expect(first == QuarantineReceipt(id: 1, dropped: 0, orderKnown: true))
        let second = try await store.quarantine(
            self.entry("198.51.100.7:4001", order: "NOPE", reason: .foreignMember, at: 20)
        )
        #expect(second == QuarantineReceipt(id: 2, dropped: 0, orderKnown: false))
        #expect(try await store.head() == head)
        #expect(try await store.order("NOPE") == nil)
        #expect(try await store.events(forOrder: "NOPE").isEmpty)
        #expect(try await store.orders(status: .unknown, after: nil, limit: 10).isEmpty)
        let counts = try await store.quarantineCounts(orderId: nil)
        #expect(counts.keys.sorted() == ["A1"])
        #expect(counts["A1"]?.badSignature == 1)
        #expect(counts["A1"]?.firstAt == self.fixture.start.adding(milliseconds: 10))
        #expect(try await store.quarantineCounts(orderId: "NOPE").isEmpty)
        let status = try await store.quarantineStatus()
        #expect(status.entries == 2)
        #expect(status.dropped == 0)
        #expect(status.total.badSignature == 1 && status.total.foreignMember == 1)
        #expect(status.unknownOrders.foreignMember == 1 && status.unknownOrders.badSignature == 0)
        let page = try await store.quarantined(QuarantineQuery())
        #expect(page.entries.map(\.id) == [2, 1])
        #expect(page.entries[0].source == "198.51.100.7")
        #expect(page.entries[1].body.count == 32)
        #expect(page.nextCursor == nil)
        await store.close()
    }

    /// Full, the quarantine drops the oldest entry of the sender holding the most: a flood from one address
    /// displaces its own entries, never what the others sent, and every drop is counted.
    @Test(arguments: StoreKind.allCases)
    func floodDisplacesOnlyItsOwnEntries(_ kind: StoreKind) async throws {
        let limits = QuarantineLimits(entriesMax: 5)
        let (store, _) = try await kind.make(quarantine: limits)
        _ = try await store.quarantine(self.entry("192.0.2.1:1", limits: limits))
        _ = try await store.quarantine(self.entry("192.0.2.1:2", limits: limits))
        _ = try await store.quarantine(self.entry("192.0.2.2:1", limits: limits))
        var dropped = 0
        for port in 1...10 {
            dropped += try await store.quarantine(self.entry("203.0.113.9:\(port)", limits: limits)).dropped
        }
        #expect(dropped == 8)
        let page = try await store.quarantined(QuarantineQuery())
        #expect(page.entries.map(\.id) == [13, 12, 3, 2, 1])
        #expect(page.entries.map(\.source) == ["203.0.113.9", "203.0.113.9", "192.0.2.2", "192.0.2.1", "192.0.2.1"])
        let status = try await store.quarantineStatus()
        #expect(status.entries == 5)
        #expect(status.dropped == 8)
        // The counters are exact whatever was dropped.
        #expect(status.total.badSignature == 13)
        #expect(status.bytes == UInt64(page.entries.reduce(0) { $0 + $1.accountedBytes }))
        await store.close()
    }

    /// The byte bound holds as the entry bound does; a body is cut to `bodyBytesMax` and says how long it was.
    @Test(arguments: StoreKind.allCases)
    func byteBoundAndCutBodies(_ kind: StoreKind) async throws {
        let limits = QuarantineLimits(entriesMax: 100, bytesMax: 3_500, bodyBytesMax: 1_024)
        let (store, _) = try await kind.make(quarantine: limits)
        for offset in 0..<5 {
            _ = try await store.quarantine(self.entry("192.0.2.1:1", body: 5_000, at: Int64(offset), limits: limits))
        }
        let status = try await store.quarantineStatus()
        #expect(status.entries == 3)
        #expect(status.dropped == 2)
        #expect(status.bytes <= 3_500)
        let page = try await store.quarantined(QuarantineQuery())
        #expect(page.entries.map(\.id) == [5, 4, 3])
        #expect(page.entries.allSatisfy { $0.body.count == 1_024 && $0.bodyBytes == 5_000 && $0.isBodyCut })
        await store.close()
    }

    /// Pages go newest first through the cursor; reason, order id and address filters apply to every page.
    @Test(arguments: StoreKind.allCases)
    func pagesAndFilters(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make(quarantine: .default)
        for index in 1...7 {
            let reason: QuarantineReason = index % 2 == 0 ? .foreignMember : .badSignature
            let remote = index <= 4 ? "[2001:db8:1:2::\(index)]:443" : "192.0.2.\(index):80"
            _ = try await store.quarantine(self.entry(remote, order: index == 7 ? "B2" : "A1", reason: reason))
        }
        let first = try await store.quarantined(QuarantineQuery(limit: 3))
        #expect(first.entries.map(\.id) == [7, 6, 5])
        let second = try await store.quarantined(QuarantineQuery(before: first.nextCursor, limit: 3))
        #expect(second.entries.map(\.id) == [4, 3, 2])
        let last = try await store.quarantined(QuarantineQuery(before: second.nextCursor, limit: 3))
        #expect(last.entries.map(\.id) == [1])
        #expect(last.nextCursor == nil)
        let foreign = try await store.quarantined(QuarantineQuery(reason: .foreignMember))
        #expect(foreign.entries.map(\.id) == [6, 4, 2])
        #expect(try await store.quarantined(QuarantineQuery(orderId: "B2")).entries.map(\.id) == [7])
        // The four IPv6 peers share one /64, which is how they count and how they are found.
        let subnet = try await store.quarantined(QuarantineQuery(remoteAddress: "2001:db8:1:2::/64"))
        #expect(subnet.entries.map(\.id) == [4, 3, 2, 1])
        #expect(try await store.quarantined(QuarantineQuery(remoteAddress: "192.0.2.6:80")).entries.map(\.id) == [6])
        await store.close()
    }
}

/// The quarantine in LMDB survives a reopen, and a ledger written before it existed opens with an empty one.
struct LMDBQuarantineTests {
    /// A forged notification for order A1, as the daemon quarantines it.
    static func forgery(_ fixture: StoreFixture) -> QuarantineEntry {
        QuarantineEntry(
            receivedAt: fixture.start,
            remoteAddress: "192.0.2.1:5",
            reason: .badSignature,
            detail: "test",
            orderId: "A1",
            body: Array("memberid=1".utf8),
            limits: .default
        )
    }

    /// Entries and counters are durable across a close and reopen.
    @Test func survivesReopen() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/ledger"
        let fixture = StoreFixture()
        do {
            let store = try LMDBEventStore(path: path, options: .init(limits: StoreLimits(mapSize: 1 << 20)))
            _ = try await store.append(AppendRequest([fixture.created("A1")]))
            _ = try await store.quarantine(Self.forgery(fixture))
            await store.close()
        }
        let store = try LMDBEventStore(path: path, options: .init(limits: StoreLimits(mapSize: 1 << 20)))
        #expect(try await store.quarantineStatus().entries == 1)
        #expect(try await store.quarantineCounts(orderId: "A1")["A1"]?.badSignature == 1)
        #expect(try await store.quarantined(QuarantineQuery()).entries.first?.body == Array("memberid=1".utf8))
        #expect(try await store.verifyChain(progress: nil).isIntact)
        await store.close()
    }
}

extension LMDBQuarantineTests {
    /// A ledger written before the quarantine existed (no quarantine databases) opens, verifies, and gets an empty
    /// quarantine that then works.
    @Test func ledgerWithoutQuarantineTablesOpens() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/ledger"
        let fixture = StoreFixture()
        do {
            let store = try LMDBEventStore(path: path, options: .init(limits: StoreLimits(mapSize: 1 << 20)))
            _ = try await store.append(AppendRequest([fixture.created("A1"), fixture.callback("A1", forged: true)]))
            await store.close()
        }
        // Remove the three databases, as an environment written by an earlier build lacks them.
        do {
            let environment = try LMDBEnvironment(path: path, options: .init(mapSize: 1 << 20, mapSizeMax: 1 << 30))
            for name in ["quarantine", "quarantine-index", "quarantine-counts"] {
                let database = try environment.openDatabase(name: name)
                try environment.write { txn in try txn.drop(database, delete: true) }
            }
            #expect(throws: LMDBError.self) { try environment.openDatabase(name: "quarantine", flags: []) }
            environment.close()
        }
        let store = try LMDBEventStore(path: path, options: .init(limits: StoreLimits(mapSize: 1 << 20)))
        #expect(try await store.quarantineStatus() == QuarantineStatus())
        #expect(try await store.verifyChain(progress: nil).isIntact)
        #expect(try await store.verifyProjection(differencesMax: 1, progress: nil).differenceCount == 0)
        #expect(try await store.order("A1")?.callbacks.badSignature == 1)
        let receipt = try await store.quarantine(Self.forgery(fixture))
        #expect(receipt == QuarantineReceipt(id: 1, dropped: 0, orderKnown: true))
        await store.close()
    }
}

extension QuarantineContractTests {
    /// Of two senders holding as many entries, the one whose name sorts last loses its oldest: every store agrees.
    @Test(arguments: StoreKind.allCases)
    func tieGoesToTheSourceThatSortsLast(_ kind: StoreKind) async throws {
        let limits = QuarantineLimits(entriesMax: 4)
        let (store, _) = try await kind.make(quarantine: limits)
        _ = try await store.quarantine(self.entry("192.0.2.9:1", limits: limits))  // 1: the source that sorts last
        _ = try await store.quarantine(self.entry("192.0.2.1:1", limits: limits))  // 2
        _ = try await store.quarantine(self.entry("192.0.2.9:2", limits: limits))  // 3
        _ = try await store.quarantine(self.entry("192.0.2.1:2", limits: limits))  // 4: two each
        let receipt = try await store.quarantine(self.entry("192.0.2.5:1", limits: limits))  // 5: full, a tie at two
        #expect(receipt.dropped == 1)
        #expect(try await store.quarantined(QuarantineQuery()).entries.map(\.id) == [5, 4, 3, 2])
        await store.close()
    }
}

/// Where a peer's notifications count: its IPv4 address, or its IPv6 /64.
struct RemoteSourceTests {
    /// Ports are dropped, IPv6 addresses fold into their /64, anything else stays as it is.
    @Test func sources() {
        #expect(RemoteSource.of("192.0.2.1:443") == "192.0.2.1")
        #expect(RemoteSource.of("[2001:db8:1:2:3:4:5:6]:443") == "2001:db8:1:2::/64")
        #expect(RemoteSource.of("[2001:db8::1]:80") == "2001:db8:0:0::/64")
        #expect(RemoteSource.of("[::ffff:192.0.2.1]:80") == "192.0.2.1")
        #expect(RemoteSource.of("2001:db8:1:2::9") == "2001:db8:1:2::/64")
        #expect(RemoteSource.of("unknown") == "unknown")
        #expect(RemoteSource.of("[not an address]:1") == "not an address")
    }
}
