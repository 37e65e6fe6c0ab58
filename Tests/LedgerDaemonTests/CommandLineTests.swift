import Foundation
import LedgerCore
import LedgerTesting
import Testing

/// The three executables' common command line: `--version`, and the exit status of a usage error.
struct CommandLineTests {
    static let executables = ["ledgerd", "ledgerctl", "gateway-sim"]

    /// `--version` on every executable prints the build's version and commit, and exits 0.
    @Test(arguments: Self.executables)
    func versionLine(_ name: String) throws {
        let (status, out, err) = try ChildProcess.run(try BuiltProducts.path(name), ["--version"]).fields
        #expect(status == 0, "\(err)")
        #expect(out == BuildInfo.versionLine + "\n")
        #expect(out.hasPrefix(BuildInfo.version + " (commit "))
    }

    /// The commit is recorded by the build: twelve hex digits naming a commit of this checkout when it has a `.git`,
    /// `unknown` otherwise.
    @Test func commitIsRecorded() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        guard FileManager.default.fileExists(atPath: root.appendingPathComponent(".git").path) else {
            #expect(BuildInfo.commit == "unknown")
            return
        }
        #expect(BuildInfo.commit.utf8.count == 12)
        #expect(BuildInfo.commit.utf8.allSatisfy { "0123456789abcdef".utf8.contains($0) })
        let arguments = ["git", "-C", root.path, "cat-file", "-e", BuildInfo.commit + "^{commit}"]
        let (status, _) = try ChildProcess.run("/usr/bin/env", arguments).statusAndOutput
        #expect(status == 0, "\(BuildInfo.commit) is not a commit of \(root.path)")
    }

    /// A usage error (an unknown option, a missing argument, an unknown subcommand) exits 64 from ledgerd and
    /// gateway-sim and 2 from ledgerctl, with the problem on standard error.
    @Test(arguments: [
        ("ledgerd", ["--no-such-option"], 64), ("ledgerd", ["run", "--no-such-option"], 64),
        ("ledgerd", ["verify-store"], 64), ("ledgerd", ["no-such-command"], 64),
        ("gateway-sim", ["--no-such-option"], 64), ("gateway-sim", ["--listen", "nowhere", "--member-id", "1"], 64),
        ("ledgerctl", ["--no-such-option"], 2), ("ledgerctl", ["get"], 2), ("ledgerctl", ["no-such-command"], 2),
    ])
    func usageErrorStatus(_ name: String, _ arguments: [String], _ expected: Int32) throws {
        let (status, out, err) = try ChildProcess.run(try BuiltProducts.path(name), arguments, environment: [:]).fields
        #expect(status == expected, "\(name) \(arguments): \(out) \(err)")
        #expect(!err.isEmpty)
    }
}
