import Foundation
import LedgerCore
import LedgerDaemon
import LedgerStore
import LedgerTesting
import Testing

/// `ledgerctl` as a real process against a real daemon: output, `--json` and exit codes.
@Suite(.serialized) struct ControlCtlTests {
    static func executable() throws -> String { try BuiltProducts.path("ledgerctl") }

    /// Runs ledgerctl with its output on pipes; with `timeoutSeconds`, under `timeout`, which ends it with SIGKILL
    /// then (exit status 137). Not SIGTERM: a child of this test process inherits the daemon's ignored SIGTERM.
    static func ctl(
        _ arguments: [String],
        environment: [String: String] = [:],
        timeoutSeconds: Int? = nil
    ) async throws -> (status: Int32, out: String, err: String) {
        let path = try Self.executable()
        let (command, all) =
            timeoutSeconds.map { ("/usr/bin/timeout", ["-s", "KILL", "\($0)", path] + arguments) } ?? (path, arguments)
        let environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let result = try await blocking { try ChildProcess.run(command, all, environment: environment) }
        return (result.status, result.stdout, result.stderr)
    }

    /// Every subcommand prints a table, `--json` prints the raw result, and exit codes follow the contract.
    @Test func subcommandsEndToEnd() async throws {
        try await withControlDaemon { harness in
            let socket = ["--socket", harness.socketPath]
            let created = try await Self.ctl(
                ["create", "--order-id", "K1", "--amount", "12.50", "--bank", "942", "--product", "年卡", "--json"]
                    + socket
            )
            #expect(created.status == 0, "\(created.err)")
            let result = try JSONParser.parse(created.out)
            #expect(result["orderId"] == "K1")
            #expect(result["fields"]?["pay_amount"] == "12.50")

            let human = try await Self.ctl(
                ["create", "--order-id", "K2", "--amount", "1.00", "--bank", "942", "--product", "x"] + socket
            )
            #expect(human.status == 0)
            #expect(human.out.contains("order K2 created"))
            #expect(human.out.contains("pay_md5sign"))

            let get = try await Self.ctl(["get", "K1"] + socket)
            #expect(get.status == 0)
            #expect(get.out.contains("state"))
            #expect(get.out.contains("created"))
            let getJSON = try await Self.ctl(["get", "K1", "--json"] + socket)
            #expect(try JSONParser.parse(getJSON.out)["state"] == "created")

            let history = try await Self.ctl(["history", "K1"] + socket)
            #expect(history.status == 0)
            #expect(history.out.contains("order.created.v1"))
            let list = try await Self.ctl(["list", "--status", "created"] + socket)
            #expect(list.out.contains("K1") && list.out.contains("K2"))
            let audit = try await Self.ctl(["audit"] + socket)
            #expect(audit.status == 0)
            #expect(audit.out.contains("total"))
            #expect(audit.out.contains("quarantine: 0 entries"), "\(audit.out)")
            try await harness.quarantineForgedNotification(
                orderId: "K1",
                body: "memberid=10001&orderid=K1&attach=\u{1B}[2J\n"
            )
            let quarantine = try await Self.ctl(["quarantine", "--reason", "bad-signature", "--show-body"] + socket)
            #expect(quarantine.status == 0, "\(quarantine.err)")
            #expect(
                quarantine.out.contains("192.0.2.1:5") && quarantine.out.contains("bad-signature"),
                "\(quarantine.out)"
            )
            // The body is shown escaped: no terminal control sequence or newline from outside reaches the screen.
            #expect(quarantine.out.contains(#"attach=\u{1B}[2J\n"#), "\(quarantine.out)")
            #expect(!quarantine.out.contains("\u{1B}"))
            #expect(quarantine.out.contains("quarantine: 1 entries"))
            let quarantineJSON = try await Self.ctl(["quarantine", "--order", "K1", "--json"] + socket)
            #expect(try JSONParser.parse(quarantineJSON.out)["entries"]?.arrayValue?.count == 1)
            let badReason = try await Self.ctl(["quarantine", "--reason", "nonsense"] + socket)
            #expect(badReason.status == 1)
            #expect(badReason.err.contains("reason must be one of"), "\(badReason.err)")
            let stats = try await Self.ctl(["stats"] + socket)
            #expect(stats.out.contains("head sequence"))
            // On LMDB the daemon always polls; the table says so, and how many event subscribers there are.
            let statsLines = stats.out.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            #expect(statsLines.contains { $0.hasPrefix("poll leader") && $0.hasSuffix("yes") }, "\(stats.out)")
            #expect(statsLines.contains { $0.hasPrefix("event subscribers") && $0.hasSuffix("0") }, "\(stats.out)")
            let verify = try await Self.ctl(["verify"] + socket)
            #expect(verify.status == 0)
            #expect(verify.out.contains("chain intact: 2 events"))
            let projection = try await Self.ctl(["verify-projection"] + socket)
            #expect(projection.status == 0, "\(projection.err)")
            let rebuild = try await Self.ctl(["rebuild"] + socket)
            #expect(rebuild.status == 0)
            #expect(rebuild.out.contains("rebuilt: 2 events"))
            // The bar's last drawing is full: it ends at 100% when the answer comes.
            let lastBar = rebuild.err.split(separator: "\r").last?.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(lastBar?.contains("[" + String(repeating: "#", count: 30) + "]") == true, "\(rebuild.err)")
            let events = try await Self.ctl(["events", "--from", "1"] + socket)
            #expect(events.out.contains("K2"))
            let tail = try await Self.ctl(["tail", "--from", "1", "--count", "2", "--json"] + socket)
            #expect(tail.status == 0)
            #expect(tail.out.split(separator: "\n").count == 2)
            // The test gateway is unreachable: the attempt is recorded as failed.
            let query = try await Self.ctl(["query-now", "K1"] + socket)
            #expect(query.status == 0, "\(query.err)")
            #expect(query.out.contains("failed"))
            let backup = try await Self.ctl(["backup", harness.directory.path + "/ctl-backup"] + socket)
            #expect(backup.status == 0, "\(backup.err)")

            // The environment chooses the socket when --socket is absent.
            let byEnvironment = try await Self.ctl(
                ["stats", "--json"],
                environment: ["LEDGERD_SOCKET": harness.socketPath]
            )
            #expect(byEnvironment.status == 0)

            // 1: the daemon said no.
            let missing = try await Self.ctl(["get", "NOPE"] + socket)
            #expect(missing.status == 1)
            #expect(missing.err.contains("order-not-found"))
            // 2: usage.
            let usage = try await Self.ctl(["get"] + socket)
            #expect(usage.status == 2)
            let badOption = try await Self.ctl(["list", "--limit", "many"] + socket)
            #expect(badOption.status == 2)
        }
    }

    /// Exit 3 with a message that says whether the socket is missing, refusing, or its path too long.
    @Test func cannotConnectSaysWhy() async throws {
        let directory = TemporaryDirectory()
        let missing = try await Self.ctl(["stats", "--socket", directory.path + "/none.sock"])
        #expect(missing.status == 3)
        #expect(missing.err.contains("no socket at"))
        #expect(missing.err.contains("Is ledgerd running?"))
        // A socket file nobody listens on.
        let path = directory.path + "/dead.sock"
        let script = "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.close()"
        _ = try await blocking { try ChildProcess.run("/usr/bin/env", ["python3", "-c", script, path]) }
        let refused = try await Self.ctl(["stats", "--socket", path])
        #expect(refused.status == 3)
        #expect(refused.err.contains("refuses connections"))
        // A path longer than a Unix socket address holds.
        let long = try await Self.ctl([
            "stats", "--socket", directory.path + "/" + String(repeating: "s", count: 120) + ".sock",
        ])
        #expect(long.status == 3)
        #expect(long.err.contains("too long for a Unix socket"))
    }

    /// Global options may stand before the subcommand; with `--json` an error is one JSON object on standard output.
    @Test func globalOptionsAndJSONErrors() async throws {
        try await withControlDaemon { harness in
            let before = try await Self.ctl(["--socket", harness.socketPath, "--json", "stats"])
            #expect(before.status == 0, "\(before.err)")
            #expect(try JSONParser.parse(before.out)["head"]?["sequence"] == .number("0"))
            let equals = try await Self.ctl(["--socket=\(harness.socketPath)", "get", "NOPE", "--json"])
            #expect(equals.status == 1)
            let error = try JSONParser.parse(equals.out)["error"]
            #expect(error?["name"] == "order-not-found")
            #expect(error?["code"]?.int64Value != nil)
            #expect(error?["message"]?.stringValue?.contains("NOPE") == true)
            #expect(equals.err.isEmpty)
        }
        let directory = TemporaryDirectory()
        let unreachable = try await Self.ctl(["--json", "stats", "--socket", directory.path + "/none.sock"])
        #expect(unreachable.status == 3)
        let error = try JSONParser.parse(unreachable.out)["error"]
        #expect(error?["name"] == "cannot-connect")
        #expect(error?["code"] == .null)
    }

    /// `tail --json` through a pipe writes each event as it arrives: killed while it waits for more, it has
    /// already handed over what it printed (block-buffered, the line would die with the process).
    @Test func tailThroughAPipeIsNotBuffered() async throws {
        try await withControlDaemon { harness in
            _ = try await harness.call(
                "order.create",
                ["orderId": "P1", "amount": "1.00", "bankCode": "942", "productName": "x"]
            )
            let tail = try await Self.ctl(
                ["tail", "--json", "--from", "1", "--socket", harness.socketPath],
                timeoutSeconds: 3
            )
            // Ended by SIGKILL: `timeout` reports 137, or is itself reported killed by signal 9.
            #expect([9, 137].contains(tail.status), "\(tail.status) \(tail.err)")
            let first = try JSONParser.parse(String(tail.out.split(separator: "\n").first ?? ""))
            #expect(first["orderId"] == "P1")
        }
    }

    /// `sign` still works offline.
    @Test func signStillWorks() async throws {
        let signed = try await Self.ctl(
            ["sign", "--for", "query", "pay_memberid=10001", "pay_orderid=A1"],
            environment: ["LEDGER_KEY": "secret"]
        )
        #expect(signed.status == 0)
        #expect(signed.out.contains("sign:"))
    }
}
