import Foundation
import LedgerCore
import LedgerDaemon
import LedgerTesting
import Testing

/// `ledgerd check-config`, run as the real binary: what `run` would use, where each setting came from, secrets
/// masked, and exit status 78 on any problem.
struct CheckConfigTests {
    /// A directory with an owner-only key file and a configuration file that names it, the gateway and the
    /// member, and sets one poll bound.
    static func prepare(_ directory: TemporaryDirectory, extra: String = "") throws -> (config: String, key: String) {
        let key = try TemporaryDirectory.writeSecret("check-config-secret-key", to: directory.path + "/merchant.key")
        let config = directory.path + "/ledgerd.json"
        try """
        {"gateway": {"url": "https://pay.example.com", "memberId": "20002", "keyFile": "\(key)"},
         "poll": {"deadlineMs": 600000}\(extra)}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        return (config, key)
    }

    static func checkConfig(
        _ arguments: [String],
        environment: [String: String] = [:]
    ) throws -> (Int32, String, String) {
        let ledgerd = try BuiltProducts.path("ledgerd")
        return try ChildProcess.run(ledgerd, ["check-config"] + arguments, environment: environment).fields
    }

    /// A good configuration exits 0 and lists each setting with its source: the file (with its path), the
    /// environment (with the variable), a flag, and the defaults; the key's contents never appear.
    @Test func goodConfigurationShowsEverySource() throws {
        let directory = TemporaryDirectory()
        let (config, key) = try Self.prepare(directory)
        let (status, out, err) = try Self.checkConfig(
            ["--config", config, "--http", "127.0.0.1:7070"],
            environment: ["LEDGERD_POLL_CONCURRENCY": "3"]
        )
        #expect(status == 0, "\(err)")
        let lines = out.split(separator: "\n").map(String.init)
        func line(_ key: String) -> String? { lines.first { $0.hasPrefix(key + " ") } }
        #expect(line("gateway.memberId")?.contains("20002  (file \(config))") == true, "\(out)")
        #expect(line("poll.deadlineMs")?.contains("600000  (file \(config))") == true, "\(out)")
        #expect(line("poll.concurrency")?.contains("3  (environment LEDGERD_POLL_CONCURRENCY)") == true, "\(out)")
        #expect(line("http")?.contains("127.0.0.1:7070  (flag)") == true, "\(out)")
        #expect(line("dataDir")?.contains("./ledger-data  (default)") == true, "\(out)")
        #expect(line("gateway.keyFile")?.contains("\(key) (owner-only, mode 0600") == true, "\(out)")
        #expect(!out.contains("check-config-secret-key"))
        #expect(out.hasSuffix("configuration ok\n"))
    }

    /// With --json the same settings come as one object; an inline key is said to be set and never shown.
    @Test func jsonOutputMasksTheInlineKey() throws {
        let environment = GatewaySettings.testingEnvironment(["LEDGERD_GATEWAY_KEY": "inline-secret-key"])
        let (status, out, err) = try Self.checkConfig(["--json"], environment: environment)
        #expect(status == 0, "\(err)")
        let object = try JSONParser.parse(out)
        #expect(object["ok"] == .bool(true))
        let settings = object["settings"]?.arrayValue ?? []
        let key = settings.first { $0["key"] == .string("gateway.key") }
        #expect(key?["source"] == .string("environment") && key?["origin"] == .string("LEDGERD_GATEWAY_KEY"))
        #expect(key?["value"] == .string("(set, not shown)"))
        #expect(!out.contains("inline-secret-key"))
        #expect(settings.contains { $0["key"] == .string("gateway.url") && $0["source"] == .string("environment") })
    }

    /// An unknown key in the file fails the check with status 78, naming the key and the nearest known one.
    @Test func unknownKeyFails() throws {
        let directory = TemporaryDirectory()
        let (config, _) = try Self.prepare(directory, extra: #", "memberID": "1""#)
        let (status, out, err) = try Self.checkConfig(["--config", config])
        #expect(status == 78)
        #expect(out.isEmpty)
        #expect(err.contains("memberID") && err.contains("did you mean gateway.memberId?"), "\(err)")
        let (jsonStatus, json, _) = try Self.checkConfig(["--config", config, "--json"])
        #expect(jsonStatus == 78)
        let object = try JSONParser.parse(json)
        #expect(object["ok"] == .bool(false) && object["error"]?["key"] == .string("memberID"))
    }

    /// A missing required setting fails the check with status 78 and names its key, flag and variable.
    @Test func missingRequiredSettingFails() throws {
        var environment = GatewaySettings.testingEnvironment()
        environment["LEDGERD_GATEWAY_MEMBER_ID"] = nil
        let (status, _, err) = try Self.checkConfig([], environment: environment)
        #expect(status == 78)
        #expect(err.contains("gateway.memberId (--member-id, LEDGERD_GATEWAY_MEMBER_ID)"), "\(err)")
        #expect(!err.contains("gateway.url ("), "\(err)")
    }

    /// A key file the group can read fails the check with status 78 and the chmod to run.
    @Test func groupReadableKeyFileFails() throws {
        let directory = TemporaryDirectory()
        let (config, key) = try Self.prepare(directory)
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: key)
        let (status, _, err) = try Self.checkConfig(["--config", config])
        #expect(status == 78)
        #expect(err.contains("chmod 600 \(key)"), "\(err)")
    }

    /// `ledgerd run` refuses the same missing setting with the same status, before opening anything.
    @Test func runRefusesWithoutRequiredSettings() throws {
        let directory = TemporaryDirectory()
        let (status, _, err) = try ChildProcess.run(
            try BuiltProducts.path("ledgerd"),
            ["run", "--data-dir", directory.path + "/ledger", "--socket", directory.path + "/ledgerd.sock"],
            environment: [:]
        ).fields
        #expect(status == 78)
        #expect(err.contains("no default gateway, member id or key") && err.contains("--gateway-url"), "\(err)")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/ledger"))
    }
}
