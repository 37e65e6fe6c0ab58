import Foundation
import LedgerTesting
import Testing

/// `ledgerd demo`, the README's first quick-start command, run as a real process.
struct DemoTests {
    /// The demo runs the whole flow against the simulator, converges, the shop receives every outcome, and it
    /// exits 0.
    @Test func demoConverges() throws {
        let demo = try ChildProcess.run(try BuiltProducts.path("ledgerd"), ["demo", "--timeout", "90"])
        let text = demo.output
        #expect(demo.status == 0, "\(text)")
        #expect(text.contains("The ledger converged to the truth: 9 paid, 1 expired."))
        #expect(text.contains("Duplicate-callback audit"))
        #expect(text.contains("Hash chain: intact"))
        #expect(
            text.contains("The shop received every outcome: 9 order.paid, 1 order.expired, each signature verified.")
        )
    }
}
