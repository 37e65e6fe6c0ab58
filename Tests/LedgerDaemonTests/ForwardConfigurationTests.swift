import Foundation
import LedgerCore
import LedgerDaemon
import LedgerTesting
import Testing

/// `forward.*`: receivers with their secret files, the schedule and the bounds, and refusals that name the key.
struct ForwardConfigurationTests {
    static let key = GatewaySettings.testingEnvironment(["LEDGERD_GATEWAY_KEY": "forward-config-key-1"])

    /// Without forward.url nothing is forwarded; one URL and one secret file from the environment are enough.
    @Test func oneReceiverFromTheEnvironment() async throws {
        let off = try await DaemonConfiguration.load(flags: [:], environment: Self.key, file: nil)
        #expect(!off.forward.enabled)
        let directory = TemporaryDirectory()
        let secret = try TemporaryDirectory.writeSecret(
            "shop-secret-0123456789\n",
            to: directory.path + "/forward.secret"
        )
        let environment = Self.key.merging([
            "LEDGERD_FORWARD_URL": "https://shop.example/ledger-hook", "LEDGERD_FORWARD_SECRET_FILE": secret,
        ]) { $1 }
        let loaded = try await DaemonConfiguration.load(flags: [:], environment: environment, file: nil)
        #expect(
            loaded.forward.receivers == [
                ForwardReceiver(
                    url: "https://shop.example/ledger-hook",
                    secrets: [Array("shop-secret-0123456789".utf8)]
                )
            ]
        )
        #expect(loaded.forward.schedule == .standard)
        #expect(loaded.forward.timeout == .seconds(10))
        #expect(loaded.forward.concurrency == 8)
        #expect(loaded.forward.concurrencyUnderLoad == 1)
        #expect(loaded.forward.yieldMax == .seconds(10))
    }

    /// Two receivers from the file, each with its secret file (one during a rotation, with two secrets), and the
    /// schedule, timeout and bounds.
    @Test func receiversAndBoundsFromTheFile() async throws {
        let directory = TemporaryDirectory()
        let one = try TemporaryDirectory.writeSecret("first-secret-0123456\n", to: directory.path + "/one.secret")
        let two = try TemporaryDirectory.writeSecret(
            "old-secret-0123456789\nnew-secret-0123456789\n",
            to: directory.path + "/two.secret"
        )
        let file = directory.path + "/ledgerd.json"
        try """
        {"forward": {"url": ["http://127.0.0.1:9001/a", "http://127.0.0.1:9002/b"], "secretFile": ["\(one)", "\(two)"],
         "timeoutMs": 2500, "schedule": "0, 1000, 60000", "concurrency": 3, "outboxMax": 500, "pollIntervalMs": 250,
         "concurrencyUnderLoad": 2, "yieldMaxMs": 0}}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let loaded = try await DaemonConfiguration.load(flags: [:], environment: Self.key, file: file)
        #expect(loaded.forward.receivers.map(\.url) == ["http://127.0.0.1:9001/a", "http://127.0.0.1:9002/b"])
        #expect(loaded.forward.receivers.map(\.secrets.count) == [1, 2])
        #expect(loaded.forward.schedule.delaysMilliseconds == [0, 1000, 60000])
        #expect(loaded.forward.timeout == .milliseconds(2500))
        #expect(loaded.forward.concurrency == 3)
        #expect(loaded.forward.outboxMax == 500)
        #expect(loaded.forward.concurrencyUnderLoad == 2)
        #expect(loaded.forward.yieldMax == .zero)
        #expect(loaded.forward.pollInterval == .milliseconds(250))
    }

    /// Each unusable setting stops the start with its key named and what to do.
    @Test func refusalsNameTheKey() async throws {
        let directory = TemporaryDirectory()
        let good = try TemporaryDirectory.writeSecret("shop-secret-0123456789", to: directory.path + "/good.secret")
        let open = try TemporaryDirectory.writeSecret("shop-secret-0123456789", to: directory.path + "/open.secret")
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: open)
        let three = try TemporaryDirectory.writeSecret(
            "aaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbb\ncccccccccccccccc",
            to: directory.path + "/three.secret"
        )
        let short = try TemporaryDirectory.writeSecret("short", to: directory.path + "/short.secret")
        let url = "http://127.0.0.1:9/hook"
        let cases: [([String: String], String, String)] = [
            (["LEDGERD_FORWARD_URL": url, "LEDGERD_FORWARD_SECRET_FILE": open], "forward.secretFile", "chmod 600"),
            (["LEDGERD_FORWARD_URL": url, "LEDGERD_FORWARD_SECRET_FILE": three], "forward.secretFile", "at most 2"),
            (["LEDGERD_FORWARD_URL": url, "LEDGERD_FORWARD_SECRET_FILE": short], "forward.secretFile", "at least 16"),
            (
                ["LEDGERD_FORWARD_URL": url, "LEDGERD_FORWARD_SECRET_FILE": directory.path + "/none"],
                "forward.secretFile", "cannot read"
            ),
            (["LEDGERD_FORWARD_URL": url], "forward.secretFile", "same order"),
            (["LEDGERD_FORWARD_SECRET_FILE": good], "forward.url", "same order"),
            (["LEDGERD_FORWARD_URL": "ftp://shop", "LEDGERD_FORWARD_SECRET_FILE": good], "forward.url", "http"),
            (
                ["LEDGERD_FORWARD_URL": "\(url),\(url)", "LEDGERD_FORWARD_SECRET_FILE": "\(good),\(good)"],
                "forward.url", "twice"
            ),
            (["LEDGERD_FORWARD_SCHEDULE": "0,soon"], "forward.schedule", "soon"),
            (["LEDGERD_FORWARD_SCHEDULE": ""], "forward.schedule", "number"),
            (["LEDGERD_FORWARD_TIMEOUT_MS": "5"], "forward.timeoutMs", "outside"),
            (["LEDGERD_FORWARD_CONCURRENCY": "0"], "forward.concurrency", "outside"),
            (["LEDGERD_FORWARD_CONCURRENCY_UNDER_LOAD": "0"], "forward.concurrencyUnderLoad", "outside"),
            (["LEDGERD_FORWARD_YIELD_MAX_MS": "-1"], "forward.yieldMaxMs", "outside"),
        ]
        for (environment, key, words) in cases {
            await #expect {
                _ = try await DaemonConfiguration.load(
                    flags: [:],
                    environment: Self.key.merging(environment) { $1 },
                    file: nil
                )
            } throws: { error in
                let error = error as? ConfigurationError
                return error?.key == key && error?.message.contains(words) == true
            }
        }
    }
}
