import Foundation
import Testing

/// `ledgerd demo`, the README's first quick-start command, run as a real process.
struct DemoTests {
    static func executable(_ name: String) throws -> URL {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let selfDirectory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let candidates = [selfDirectory.appendingPathComponent(name), root.appendingPathComponent(".build/debug/\(name)")]
        return try #require(
            candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) },
            "\(name) must be built next to the tests (swift build --build-tests)"
        )
    }

    /// The demo runs the whole flow against the simulator, converges, and exits 0.
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
    }
}
