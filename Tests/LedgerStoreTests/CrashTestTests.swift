import Foundation
import LedgerCore
import LedgerStore
import LedgerTesting
import Testing

/// The crash test, run as real processes: a writer killed with SIGKILL at random moments, twenty times.
struct CrashTestTests {
    static func executable() throws -> URL {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let selfDirectory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let candidates = [
            selfDirectory.appendingPathComponent("ledger-crash"), root.appendingPathComponent(".build/debug/ledger-crash"),
        ]
        return try #require(
            candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) },
            "ledger-crash must be built next to the tests (swift build --build-tests)"
        )
    }

    static func run(_ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = try Self.executable()
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
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
