import Foundation
import LedgerCore
import LedgerTesting
import Testing

@testable import LedgerStore

/// What only the LMDB store does: survive restarts, detect damage on disk, grow, back up, refuse a second opener.
struct LMDBEventStoreTests {
    let fixture = StoreFixture()

    /// Everything committed is there after the store is closed and opened again.
    @Test func survivesReopen() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/ledger"
        var store = try LMDBEventStore(path: path)
        _ = try await store.append(AppendRequest([self.fixture.created("A1")]))
        _ = try await store.append(AppendRequest([self.fixture.callback("A1")]))
        let head = try await store.head()
        let state = try await store.order("A1")
        await store.close()
        store = try LMDBEventStore(path: path)
        #expect(try await store.head() == head)
        #expect(try await store.order("A1") == state)
        let next = try #require(try await store.append(AppendRequest([self.fixture.created("A2")])).events?.first)
        #expect(next.sequence == 3)
        #expect(next.previousHash == head.hash)
        await store.close()
    }

    /// A second opener of the same data directory is refused with a clear message.
    @Test func secondOpenerRefused() async throws {
        let directory = TemporaryDirectory()
        let store = try LMDBEventStore(path: directory.path + "/ledger")
        #expect {
            _ = try LMDBEventStore(path: directory.path + "/ledger")
        } throws: { error in
            (error as? LMDBError)?.isDirectoryInUse == true && "\(error)".contains("already open")
        }
        await store.close()
    }

    /// A ledger written in another format is refused at open with a message naming both formats, and is left as
    /// it was.
    @Test func otherFormatRefused() async throws {
        let directory = TemporaryDirectory()
        let store = try LMDBEventStore(path: directory.path + "/ledger")
        _ = try await store.append(AppendRequest([self.fixture.created("F1")]))
        try store.environment.write { txn in try txn.put(store.layout.meta, key: LMDBLayout.formatKey, value: [1]) }
        await store.close()
        let data = directory.path + "/ledger/data.mdb"
        let before = try Data(contentsOf: URL(fileURLWithPath: data))
        #expect {
            _ = try LMDBEventStore(path: directory.path + "/ledger")
        } throws: { error in
            let message = "\(error)"
            return (error as? StoreError)?.code == .corrupted && message.contains("format 1")
                && message.contains("reads format \(LMDBLayout.formatVersion)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: data)) == before, "the refused ledger's data file changed")
    }

    /// A byte flipped on disk is caught by the checksum on read and reported by chain verification, never served.
    @Test func corruptedRecordDetected() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/ledger"
        var store = try LMDBEventStore(path: path)
        _ = try await store.append(AppendRequest([self.fixture.created("A1")]))
        var marked = self.fixture.created("A2")
        if case .orderCreated(var created) = marked.payload {
            created.request = try PayRequest.build(
                OrderRequest(orderId: "A2", amount: "1.00", bankCode: "940", productName: "MARKER-PRODUCT-NAME"),
                settings: self.fixture.settings,
                key: self.fixture.key,
                appliedAt: self.fixture.start
            ).get()
            marked.payload = .orderCreated(created)
        }
        _ = try await store.append(AppendRequest([marked]))
        _ = try await store.append(AppendRequest([self.fixture.created("A3")]))
        await store.close()

        // Flip one byte of the marker inside the data file, as a failing disk would. LMDB copies pages on write,
        // so stale copies of the page may hold the marker too: damage every copy, the live one among them.
        let file = path + "/data.mdb"
        var data = try Data(contentsOf: URL(fileURLWithPath: file))
        let marker = Data("MARKER-PRODUCT-NAME".utf8)
        var searchFrom = data.startIndex
        var flipped = 0
        while let range = data.range(of: marker, in: searchFrom..<data.endIndex) {
            data[range.lowerBound + 3] ^= 0x20
            searchFrom = range.upperBound
            flipped += 1
        }
        #expect(flipped > 0)
        try data.write(to: URL(fileURLWithPath: file))

        store = try LMDBEventStore(path: path)
        await #expect {
            _ = try await store.readEvents(from: 1, limit: 10)
        } throws: { error in
            (error as? StoreError)?.code == .corrupted && "\(error)".contains("Event 2")
        }
        let report = try await store.verifyChain(progress: nil)
        #expect(report.firstBreak?.sequence == 2)
        if case .corrupted = report.firstBreak {
        } else {
            Issue.record("expected a checksum break, got \(String(describing: report.firstBreak))")
        }
        // Other events are still served.
        #expect(try await store.readEvents(from: 3, limit: 1).first?.orderId == "A3")
        await store.close()
    }

    /// From a tiny initial map the store grows as the log grows, without losing an append.
    @Test func mapGrowsFromTinyMap() async throws {
        let directory = TemporaryDirectory()
        let store = try LMDBEventStore(
            path: directory.path + "/ledger",
            options: .init(limits: StoreLimits(mapSize: 64 << 10, mapSizeMax: 256 << 20))
        )
        for index in 0..<2000 { _ = try await store.append(AppendRequest([self.fixture.created("G\(index)")])) }
        #expect(try await store.head().sequence == 2000)
        let stats = try await store.statistics()
        #expect(try #require(stats.mapBytes) > 64 << 10)
        #expect(try await store.verifyChain(progress: nil).isIntact)
        await store.close()
    }

    /// At the map ceiling an append fails with a "store full" error, nothing half-written, and reads go on.
    @Test func mapFullFailsCleanly() async throws {
        let directory = TemporaryDirectory()
        let store = try LMDBEventStore(
            path: directory.path + "/ledger",
            options: .init(limits: StoreLimits(mapSize: 64 << 10, mapSizeMax: 512 << 10))
        )
        var stored = 0
        var failure: (any Error)?
        for index in 0..<5000 {
            do {
                _ = try await store.append(AppendRequest([self.fixture.created("F\(index)")]))
                stored += 1
            } catch {
                failure = error
                break
            }
        }
        let error = try #require(failure as? StoreError)
        #expect(error.code == .full)
        #expect(error.message.contains("mapSizeMax"))
        // The cause is kept whole, with LMDB's code and the failing call, and the error says where it was raised.
        let cause = try #require(error.cause as? LMDBError, "\(String(reflecting: error))")
        #expect(cause.code == .mapFull)
        #expect(!cause.operation.isEmpty)
        #expect(error.location.file.hasPrefix("LedgerStore/"), "\(error.location)")
        #expect(
            String(reflecting: error).contains("store-full: ") && String(reflecting: error).contains(cause.operation)
        )
        #expect(try await store.head().sequence == UInt64(stored))
        #expect(try await store.verifyChain(progress: nil).isIntact)
        #expect(try await store.order("F0")?.status == .created)
        await store.close()
    }

    /// A rebuild runs while appends go on; afterwards the projection equals a fresh verification and no append
    /// was lost.
    @Test func rebuildWhileAppending() async throws {
        let directory = TemporaryDirectory()
        let store = try LMDBEventStore(
            path: directory.path + "/ledger",
            options: .init(limits: StoreLimits(rebuildChunkEvents: 50))
        )
        for index in 0..<1000 { _ = try await store.append(AppendRequest([self.fixture.created("W\(index)")])) }
        let fixture = self.fixture
        async let appended: Int = {
            var count = 0
            for index in 0..<300 {
                _ = try await store.append(AppendRequest([fixture.callback("W\(index)")]))
                count += 1
            }
            return count
        }()
        let progress = ProgressLog()
        let report = try await store.rebuildProjection(progress: { progress.record($0) })
        #expect(try await appended == 300)
        #expect(report.orders == 1000)
        #expect(try await store.head().sequence == 1300)
        let verify = try await store.verifyProjection(differencesMax: 5, progress: nil)
        #expect(verify.differenceCount == 0)
        #expect(try await store.orders(status: .paid, after: nil, limit: 1000).count == 300)
        #expect(progress.last?.phase == "rebuild")
        await store.close()
    }

    /// A damaged projection is found by verification, order by order, and a rebuild repairs it.
    @Test func verifyFindsAndRebuildRepairs() async throws {
        let directory = TemporaryDirectory()
        let store = try LMDBEventStore(path: directory.path + "/ledger")
        _ = try await store.append(AppendRequest([self.fixture.created("V1")]))
        _ = try await store.append(AppendRequest([self.fixture.created("V2")]))
        // Write a wrong state straight into the live projection table.
        var wrong = try #require(try await store.order("V2"))
        wrong.status = .paid
        try store.environment.write { txn in
            let generation = Int(try txn.get(store.layout.meta, key: LMDBLayout.generationKey)?.first ?? 0)
            let handle = try #require(try LMDBLayout.u64(txn.get(store.layout.orderIds, key: Array("V2".utf8))))
            try txn.put(
                store.layout.orders[generation],
                key: LMDBUInt64Key(handle),
                value: OrderStateCodec.encode(wrong)
            )
        }
        let verify = try await store.verifyProjection(differencesMax: 5, progress: nil)
        #expect(verify.differenceCount == 1)
        #expect(verify.differences.first?.orderId == "V2")
        #expect(verify.differences.first?.live?.status == .paid)
        #expect(verify.differences.first?.rebuilt?.status == .created)
        _ = try await store.rebuildProjection(progress: nil)
        #expect(try await store.order("V2")?.status == .created)
        #expect(try await store.verifyProjection(differencesMax: 5, progress: nil).differenceCount == 0)
        await store.close()
    }

    /// A hot backup taken while appends go on opens as a store with an intact chain.
    @Test func backupWhileAppending() async throws {
        let directory = TemporaryDirectory()
        let store = try LMDBEventStore(path: directory.path + "/ledger")
        for index in 0..<500 { _ = try await store.append(AppendRequest([self.fixture.created("B\(index)")])) }
        let fixture = self.fixture
        async let more: Void = {
            for index in 0..<200 { _ = try await store.append(AppendRequest([fixture.callback("B\(index)")])) }
        }()
        let backup = try await store.backup(to: directory.path + "/backup")
        try await more
        #expect(backup.bytes > 0)
        #expect(backup.head.sequence >= 500)
        await store.close()
        let copy = try LMDBEventStore(path: directory.path + "/backup")
        let report = try await copy.verifyChain(progress: nil)
        #expect(report.isIntact)
        #expect(report.eventsChecked >= 500)
        #expect(try await copy.order("B0") != nil)
        await copy.close()
    }

    /// With group commit off every append is its own commit; with it on, concurrent appends share commits.
    @Test func groupCommitBatches() async throws {
        for batchCountMax in [1, 1024] {
            let directory = TemporaryDirectory()
            let store = try LMDBEventStore(
                path: directory.path + "/ledger",
                options: .init(limits: StoreLimits(batchCountMax: batchCountMax))
            )
            let fixture = self.fixture
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<64 {
                    group.addTask { _ = try await store.append(AppendRequest([fixture.created("G\(index)")])) }
                }
                try await group.waitForAll()
            }
            let sizes = store.takeCommitBatchSizes()
            #expect(sizes.reduce(0, +) == 64)
            if batchCountMax == 1 { #expect(sizes.allSatisfy { $0 == 1 }) } else { #expect(sizes.count < 64) }
            await store.close()
        }
    }
}

final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var reports: [StoreProgress] = []

    func record(_ progress: StoreProgress) {
        self.lock.lock()
        self.reports.append(progress)
        self.lock.unlock()
    }

    var last: StoreProgress? {
        self.lock.lock()
        defer { self.lock.unlock() }
        return self.reports.last
    }
}
