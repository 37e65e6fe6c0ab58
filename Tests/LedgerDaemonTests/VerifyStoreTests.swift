import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerDaemon
import LedgerStore
import LedgerTesting
import Testing

/// `ledgerd verify-store`: a ledger checked offline, as an operator checks a backup before trusting it.
struct VerifyStoreTests {
    /// A whole ledger passes (exit 0) with its chain and projection reported; a directory without one is refused.
    @Test func verifiesOffline() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/ledger"
        let store = try LMDBEventStore(path: path)
        let ledger = Ledger(
            store: store,
            settings: .testing(),
            key: try MerchantKey("verify-store-key"),
            publicURL: "http://127.0.0.1:8080",
            logger: testLogger
        )
        _ = try await ledger.createOrder(.testing(orderId: "V1", amount: "1.00"))
        await store.close()
        let ledgerd = try BuiltProducts.path("ledgerd")
        let verified = try await blocking { try ChildProcess.run(ledgerd, ["verify-store", path]) }
        #expect(verified.status == 0, "\(verified.stderr)")
        #expect(verified.stdout.contains("chain intact: 1 events"), "\(verified.stdout)")
        #expect(
            verified.stdout.contains("projection: 1 orders compared after 1 events, 0 differ"),
            "\(verified.stdout)"
        )
        let missing = try await blocking {
            try ChildProcess.run(ledgerd, ["verify-store", directory.path + "/nothing"])
        }
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("holds no ledger"), "\(missing.stderr)")
    }
}
