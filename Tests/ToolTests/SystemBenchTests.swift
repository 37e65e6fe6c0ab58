import Foundation
import LedgerCore
import LedgerTesting
import Testing

/// `tools/bench system` in its smallest form, against the debug `ledgerd`: the benchmark's own checks (every
/// notification answered OK and found paid in the ledger, history answers for the asked order) hold, and its JSON
/// report carries every figure. Its figures measure a debug build and are not asserted: speed is the benchmark's
/// business, not a test's.
struct SystemBenchTests {
    static var loadGeneratorInstalled: Bool {
        ["/usr/bin/wrk", "/usr/local/bin/wrk"].contains { FileManager.default.isExecutableFile(atPath: $0) }
    }

    @Test func quickRunReportsEveryFigure() throws {
        let inCI = ProcessInfo.processInfo.environment["CI"] == "true"
        var parts = "callbacks,forward,control,rebuild,memory"
        if !Self.loadGeneratorInstalled {
            // CI installs wrk (.ci/run); elsewhere the callback runs are skipped, visibly.
            #expect(!inCI, "wrk must be installed in CI")
            print(
                "SystemBenchTests: wrk is not installed; the callback runs of the smoke test are skipped (apt-get install wrk)."
            )
            parts = "control,rebuild,memory"
        }
        let run = try StoreBenchTests.run([
            "system", "--quick", "--orders", "4000", "--callback-orders", "8000", "--seconds", "1", "--control-seconds",
            "1",
            "--only", parts, "--json",
        ])
        let log = run.stderr
        #expect(run.status == 0, "\(log)")
        let report = try StoreBenchTests.parse(run.stdout)
        #expect(report["benchmark"]?.stringValue == "system")
        guard case .object(let figures)? = report["figures"] else {
            Issue.record("the report has no figures: \(log)")
            return
        }
        var expected = ["control.history.c1", "control.history.c8.p99", "rebuild.seconds", "memory.rssAnon"]
        if parts.hasPrefix("callbacks") {
            expected += [
                "callbacks.c1", "callbacks.c64.p99", "callbacks.vsBareOK", "callbacks.vsOneFsync", "bareOK",
                // The forwarding run, which counts only once the forwarder delivered every outcome it made.
                "callbacks.forwarding",
            ]
        }
        for key in expected {
            #expect(figures[key]?["value"]?.numberText != nil, "figure \(key) is missing or not a number")
        }
        // The rebuild replayed the seeded ledger.
        let rebuildNote = figures["rebuild.seconds"]?["note"]?.stringValue
        #expect(rebuildNote?.contains("events replayed") == true)
    }
}
