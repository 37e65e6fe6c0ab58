import ArgumentParser
import LedgerControlProtocol
import LedgerCore

/// `ledgerctl forward status|retry|replay`: the forwarder of order outcomes to the shop (`forward.*` methods).
struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Forwarding of order outcomes to the shop: status, retry of dead deliveries, replay.",
        subcommands: [ForwardStatusCommand.self, ForwardRetryCommand.self, ForwardReplayCommand.self]
    )
}

struct ForwardStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Pending deliveries, failing ones with their last error and next attempt, and dead ones.",
        discussion: "Example:\n  ledgerctl forward status --limit 50"
    )

    @OptionGroup var daemon: DaemonOptions
    @Option(help: "Failing and dead deliveries listed, each (0-1000).") var limit: Int = 20

    func run() throws {
        let result = try self.daemon.call(ForwardStatus.self, given: ["limit": .number(String(self.limit))])
        self.daemon.show(result, result.text)
    }
}

struct ForwardRetryCommand: ParsableCommand {
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
        let given: JSONObject = self.orderId.map { ["orderId": .string($0)] } ?? ["allDead": .bool(true)]
        let result = try self.daemon.call(ForwardRetry.self, given: given)
        self.daemon.show(result, result.text)
    }
}

struct ForwardReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Derive the outcomes of the log again from a sequence and deliver them again, with their same ids.",
        discussion: "Example:\n  ledgerctl forward replay --from 1200"
    )

    @OptionGroup var daemon: DaemonOptions
    @Option(help: "The first ledger sequence to derive again.") var from: UInt64

    func run() throws {
        let result = try self.daemon.call(ForwardReplay.self, ForwardReplay.Params(from: self.from))
        self.daemon.show(result, result.text)
    }
}
