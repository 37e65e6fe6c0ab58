import ArgumentParser
import LedgerCore
import LedgerDaemon

/// `ledgerctl forward status|retry|replay`: the forwarder of order outcomes to the shop (`forward.*` methods).
struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Forwarding of order outcomes to the shop: status, retry of dead deliveries, replay.",
        subcommands: [ForwardStatus.self, ForwardRetry.self, ForwardReplay.self]
    )
}

struct ForwardStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Pending deliveries, failing ones with their last error and next attempt, and dead ones.",
        discussion: "Example:\n  ledgerctl forward status --limit 50"
    )

    @OptionGroup var daemon: DaemonOptions
    @Option(help: "Failing and dead deliveries listed, each (0-1000).") var limit: Int = 20

    func run() throws {
        let result = try self.daemon.call("forward.status", ["limit": .number(String(self.limit))])
        self.daemon.show(result) { result in
            guard result["enabled"]?.boolValue == true else {
                return "Forwarding is not configured (forward.url): nothing is forwarded."
            }
            var text = TextTable.render(
                ["field", "value"],
                [
                    ["active", Output.text(result["active"])], ["position", Output.text(result["position"])],
                    ["head", Output.text(result["head"])], ["pending", Output.text(result["pending"])],
                    ["dead", Output.text(result["dead"])], ["oldest pending", Output.text(result["oldestPendingAt"])],
                    [
                        "receivers",
                        (result["receivers"]?.arrayValue ?? []).map { Output.text($0) }.joined(separator: ", "),
                    ],
                ]
            )
            func table(_ title: String, _ key: String, _ when: String, _ whenKey: String) {
                let rows = (result[key]?.arrayValue ?? []).map { delivery in
                    [
                        Output.text(delivery["orderId"]), Output.text(delivery["eventId"]),
                        Output.text(delivery["attempts"]), Output.text(delivery[whenKey]),
                        Output.text(delivery["lastError"]), Output.text(delivery["receiver"]),
                    ]
                }
                guard !rows.isEmpty else { return }
                text += "\n\n" + title + "\n"
                text += TextTable.render(["order", "event", "attempts", when, "last error", "receiver"], rows)
            }
            table("failing", "failing", "next attempt", "nextAttemptAt")
            table("dead", "deadDeliveries", "last attempt", "lastAttemptAt")
            return text
        }
    }
}

struct ForwardRetry: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Send dead deliveries again from a first attempt: one order's, or every dead one.",
        discussion: "Examples:\n  ledgerctl forward retry L2026112710000012345\n  ledgerctl forward retry --dead"
    )

    @OptionGroup var daemon: DaemonOptions
    @Argument(help: "The order whose dead deliveries to retry.") var orderId: String?
    @Flag(help: "Retry every dead delivery.") var dead = false

    func validate() throws {
        guard (self.orderId != nil) != self.dead else {
            throw ValidationError("Give either an ORDER_ID or --dead.")
        }
    }

    func run() throws {
        let params: JSONObject = self.orderId.map { ["orderId": .string($0)] } ?? ["allDead": .bool(true)]
        let result = try self.daemon.call("forward.retry", params)
        self.daemon.show(result) { result in "\(Output.text(result["retried"])) dead deliveries pending again." }
    }
}

struct ForwardReplay: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Derive the outcomes of the log again from a sequence and deliver them again, with their same ids.",
        discussion: "Example:\n  ledgerctl forward replay --from 1200"
    )

    @OptionGroup var daemon: DaemonOptions
    @Option(help: "The first ledger sequence to derive again.") var from: UInt64

    func run() throws {
        let result = try self.daemon.call("forward.replay", ["from": .number(String(self.from))])
        self.daemon.show(result) { result in
            "Forwarding derives again after sequence \(Output.text(result["position"]))."
        }
    }
}
