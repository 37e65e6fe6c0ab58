import Foundation
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
        _ = try await ledger.createOrder(CreateOrderRequest(orderId: "V1", amount: "1.00", bankCode: "940", productName: "p"))
        await store.close()
        let ledgerd = try builtExecutable("ledgerd").path
        let (status, out, err) = try await blocking { try runProcessSplit(ledgerd, ["verify-store", path]) }
        #expect(status == 0, "\(err)")
        #expect(out.contains("chain intact: 1 events"), "\(out)")
        #expect(out.contains("projection: 1 orders compared after 1 events, 0 differ"), "\(out)")
        let (missing, _, missingErr) = try await blocking {
            try runProcessSplit(ledgerd, ["verify-store", directory.path + "/nothing"])
        }
        #expect(missing != 0)
        #expect(missingErr.contains("holds no ledger"), "\(missingErr)")
    }
}
