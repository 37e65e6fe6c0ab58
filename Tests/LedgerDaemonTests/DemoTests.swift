import Foundation
import LedgerTesting
import Testing

/// `ledgerd demo`, the README's first quick-start command, run as a real process.
struct DemoTests {
    static func executable(_ name: String) throws -> URL { try builtExecutable(name) }

    /// The demo runs the whole flow against the simulator, converges, the shop receives every outcome, and it exits 0.
    @Test func demoConverges() throws {
        let process = Process()
        process.executableURL = try Self.executable("ledgerd")
        process.arguments = ["demo", "--timeout", "90"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("The ledger converged to the truth: 9 paid, 1 expired."))
        #expect(text.contains("Duplicate-callback audit"))
        #expect(text.contains("Hash chain: intact"))
        #expect(
            text.contains("The shop received every outcome: 9 order.paid, 1 order.expired, each signature verified.")
        )
    }
}
