import Foundation
import LedgerCore
import LedgerStore
import LedgerTesting
import Testing

/// The crash test, run as real processes: a writer killed with SIGKILL at random moments, twenty times.
struct CrashTestTests {
    static func run(_ arguments: [String]) throws -> (Int32, String) {
        let run = try ChildProcess.run(try BuiltProducts.path("ledger-crash"), arguments)
        return (run.status, run.output)
    }

    /// Twenty kill -9 cycles under concurrent appends lose no acknowledged event and leave chain and projection
    /// intact.
    @Test func twentyCyclesSurvive() throws {
        let (status, output) = try Self.run(["run", "--cycles", "20", "--max-run-milliseconds", "400"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("20 cycles passed"))
    }

    /// The checker is not a rubber stamp: an acknowledged event the log does not hold fails the check.
    @Test func checkerCatchesLostEvent() async throws {
        let directory = TemporaryDirectory()
        let store = try LMDBEventStore(path: directory.path + "/ledger")
        let event = try #require(try await store.append(AppendRequest([StoreFixture().created("L1")])).events?.first)
        await store.close()
        let ackFile = directory.path + "/acks"
        let lines = "\(event.sequence) \(event.hash.hex) L1\n2 \(event.hash.hex) L2\n"
        try lines.write(toFile: ackFile, atomically: true, encoding: .utf8)
        let (status, output) = try Self.run(["check", "--data-dir", directory.path + "/ledger", "--ack-file", ackFile])
        #expect(status != 0)
        #expect(output.contains("acknowledged event 2 (order L2) is missing"))
        try "\(event.sequence) \(event.hash.hex) L1\n".write(toFile: ackFile, atomically: true, encoding: .utf8)
        let (okStatus, _) = try Self.run(["check", "--data-dir", directory.path + "/ledger", "--ack-file", ackFile])
        #expect(okStatus == 0)
    }
}
