import Foundation
import LedgerTesting
import Testing

/// `tools/quick-start --check`, the dry run of the quick start's installer, on a machine made to look as if the
/// libraries and Python's jsonschema were missing.
struct QuickStartTests {
    /// With pkg-config finding neither LMDB nor SQLite and Python lacking jsonschema, --check names exactly those
    /// packages, exits 1, and calls neither apt-get nor sudo nor pip.
    @Test func checkListsWhatIsMissingAndInstallsNothing() throws {
        let directory = TemporaryDirectory()
        let bin = directory.path + "/bin"
        let calls = directory.path + "/calls"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(
            atPath: directory.path + "/pkgconfig",
            withIntermediateDirectories: true
        )
        // Stand-ins that record any call; python3 answers that no module imports.
        for (name, status) in [("apt-get", 0), ("sudo", 0), ("pip", 0), ("python3", 1)] {
            let path = bin + "/" + name
            try "#!/bin/sh\necho \"\(name) $*\" >> \(calls)\nexit \(status)\n"
                .write(toFile: path, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        }
        let script = ServiceInstallTests.root.appendingPathComponent("tools/quick-start").path
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = bin + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        environment["PKG_CONFIG_LIBDIR"] = directory.path + "/pkgconfig"
        let (status, output) = try ChildProcess.run(script, ["--check"], environment: environment).statusAndOutput
        #expect(status == 1, "\(output)")
        let debian = output.split(separator: "\n").first { $0.contains("would install Debian packages:") } ?? ""
        #expect(debian.contains("liblmdb-dev") && debian.contains("libsqlite3-dev"), "\(output)")
        #expect(output.contains("would install Python packages: jsonschema"), "\(output)")
        let recorded = (try? String(contentsOfFile: calls, encoding: .utf8)) ?? ""
        #expect(!recorded.contains("apt-get") && !recorded.contains("sudo") && !recorded.contains("pip"), "\(recorded)")
    }

    /// An unknown argument is a usage error (64), and nothing runs.
    @Test func unknownArgument() throws {
        let script = ServiceInstallTests.root.appendingPathComponent("tools/quick-start").path
        let (status, output) = try ChildProcess.run(script, ["--bogus"]).statusAndOutput
        #expect(status == 64)
        #expect(output.contains("unknown argument --bogus"))
    }
}
