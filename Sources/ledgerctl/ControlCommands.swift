import ArgumentParser
import LedgerControlClient
import LedgerControlProtocol
import LedgerCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

#if canImport(Glibc)
    import Glibc
#endif

/// Options every daemon command shares.
struct DaemonOptions: ParsableArguments {
    @Option(help: "The control socket (default: $LEDGERD_SOCKET, $LEDGER_SOCKET or ./ledgerd.sock).")
    var socket: String?

    @Flag(help: "Print the raw JSON result instead of a table, for scripts.")
    var json = false

    var socketPath: String {
        let environment = ProcessInfo.processInfo.environment
        return self.socket ?? environment["LEDGERD_SOCKET"] ?? environment["LEDGER_SOCKET"] ?? "./ledgerd.sock"
    }

    /// Reads what the user typed as the method's params with the protocol's own strict reader, so a bad value gets
    /// the very message the daemon would give (exit 1), then calls.
    func call<M: ControlMethod>(
        _ method: M.Type,
        given: JSONObject,
        onNotification: (ControlNotification) -> Void = { _ in }
    ) throws -> M.Result {
        try self.call(method, try self.params(method, given: given), onNotification: onNotification)
    }

    /// What the user typed, read as the method's params; a bad value fails as the daemon would answer it.
    func params<M: ControlMethod>(_ method: M.Type, given: JSONObject) throws -> M.Params {
        do throws(ControlError) {
            return try M.Params(json: .object(given), context: M.name.rawValue)
        } catch {
            throw self.fail(.daemon(error))
        }
    }

    /// Connects, calls, and turns failures into the documented exit codes: 1 for an error answer, 3 when the
    /// daemon cannot be reached.
    func call<M: ControlMethod>(
        _ method: M.Type,
        _ params: M.Params,
        onNotification: (ControlNotification) -> Void = { _ in }
    ) throws -> M.Result {
        do throws(ClientError) {
            let client = try ControlClient(path: self.socketPath)
            return try client.call(method, params, onNotification: onNotification)
        } catch {
            throw self.fail(error)
        }
    }

    /// Reports a failure the documented way and returns the exit code to throw: the message on standard error, or
    /// with `--json` one object on standard output, `{"error": {"code", "name", "message"}}` (`code` is the
    /// daemon's JSON-RPC code, null when the daemon was not reached).
    func fail(_ error: ClientError) -> ExitCode {
        if self.json {
            let object: JSONValue
            switch error {
            case .daemon(let error):
                object = [
                    "code": .number(String(error.code)), "name": .string(error.name), "message": .string(error.message),
                ]
            case .cannotConnect(let message):
                object = ["code": .null, "name": "cannot-connect", "message": .string(message)]
            case .protocolFailure(let message):
                object = ["code": .null, "name": "protocol-failure", "message": .string(message)]
            }
            print(JSONWriter.write(["error": object], options: .sortedKeys))
        } else {
            Output.error("ledgerctl: \(error.description)")
        }
        return ExitCode(error.exitCode)
    }

    /// Calls a method that reports progress, drawing it as a bar on standard error (not with `--json`) that ends at
    /// 100% when the answer comes.
    func callWithProgress<M: ControlMethod>(_ method: M.Type, given: JSONObject = [:]) throws -> M.Result {
        var last: ProgressView?
        let result = try self.call(method, given: given) { notification in
            if case .progress(let name, let progress) = notification, name == M.name, !self.json {
                last = progress
                Output.progress(progress)
            }
        }
        if var finished = last {
            finished.done = finished.total
            Output.progress(finished)
            Output.error("")
        }
        return result
    }

    /// Prints the result as JSON with `--json`, or as text.
    func show(_ result: some ControlMessage, _ text: String) {
        if self.json {
            print(JSONWriter.write(result.json, options: [.sortedKeys, .prettyPrinted]))
        } else {
            print(text)
        }
    }
}

enum Output {
    static func error(_ text: String) {
        Self.standardError(text + "\n")
    }

    /// Draws the progress bar on standard error, rewriting one line.
    static func progress(_ progress: ProgressView) {
        Self.standardError("\r" + progress.bar)
    }

    /// Writes the text's UTF-8 bytes, NULs included, straight to descriptor 2, unbuffered, as the progress bar
    /// needs.
    static func standardError(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            // A closed or failing standard error loses the text: there is nowhere left to report that.
            guard written > 0 else { return }
            offset += written
        }
    }
}

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create an order and print the signed request for the gateway.",
        discussion: "Example:\n  ledgerctl create --amount 100.00 --bank 942 --product 年卡"
    )

    @OptionGroup var daemon: DaemonOptions
    @Option(help: "The merchant order id (generated when left out).") var orderId: String?
    @Option(help: "The amount in yuan, e.g. 100.00.") var amount: String
    @Option(help: "The gateway's bank code, e.g. 942.") var bank: String
    @Option(help: "The product name.") var product: String
    @Option(help: "Free text the gateway returns in its notification.") var attach: String?

    func run() throws {
        let params = OrderCreate.Params(
            orderId: self.orderId,
            amount: self.amount,
            bankCode: self.bank,
            productName: self.product,
            attach: self.attach
        )
        let result = try self.daemon.call(OrderCreate.self, params)
        self.daemon.show(result, result.text)
    }
}

struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the current state of one order.",
        discussion: "Exit 1 when there is no such order.\n\nExample:\n  ledgerctl get L20261127093000ABCDE"
    )

    @OptionGroup var daemon: DaemonOptions
    @Argument(help: "The order id.") var orderId: String

    func run() throws {
        let result = try self.daemon.call(OrderGet.self, given: ["orderId": .string(self.orderId)])
        self.daemon.show(result, result.text)
    }
}

struct History: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show every event of one order, what the projection made of it, and the state after it."
    )

    @OptionGroup var daemon: DaemonOptions
    @Argument(help: "The order id.") var orderId: String

    func run() throws {
        // The daemon answers a page at a time; follow the cursors and show the whole history as one.
        let params = try self.daemon.params(OrderHistory.self, given: ["orderId": .string(self.orderId)])
        let entries: [OrderHistory.Entry]
        do {
            entries = try OrderHistory.allEntries(of: params.orderId) { try self.daemon.call(OrderHistory.self, $0) }
        } catch let error as ControlError {
            // Not an error the daemon answered: its answer broke the protocol (a cursor that names no event).
            throw self.daemon.fail(.protocolFailure(error.message))
        }
        let result = OrderHistory.Result(orderId: self.orderId, entries: entries, nextCursor: nil)
        self.daemon.show(result, result.text)
    }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List orders by state, flag, bank code and creation time, a page at a time.",
        discussion: "Example:\n  ledgerctl list --status paid --flag amount-mismatch --limit 50"
    )

    @OptionGroup var daemon: DaemonOptions
    @Option(help: "created, paid, expired or unknown.") var status: String?
    @Option(help: "A review flag, e.g. amount-mismatch.") var flag: String?
    @Option(help: "A bank code.") var bank: String?
    @Option(help: "Created at or after this RFC 3339 time.") var from: String?
    @Option(help: "Created at or before this RFC 3339 time.") var to: String?
    @Option(help: "Continue after this cursor (printed at the end of a page).") var cursor: String?
    @Option(help: "Orders per page (1-1000).") var limit: Int = 100

    func run() throws {
        var given: JSONObject = ["limit": .number(String(self.limit))]
        if let status { given["status"] = .string(status) }
        if let flag { given["flag"] = .string(flag) }
        if let bank { given["bankCode"] = .string(bank) }
        if let from { given["createdFrom"] = .string(from) }
        if let to { given["createdTo"] = .string(to) }
        if let cursor { given["cursor"] = .string(cursor) }
        let result = try self.daemon.call(OrderList.self, given: given)
        self.daemon.show(result, result.text)
    }
}

struct QueryNow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query-now",
        abstract: "Query the gateway for one order now, record the answer, and show what it did."
    )

    @OptionGroup var daemon: DaemonOptions
    @Argument(help: "The order id.") var orderId: String

    func run() throws {
        let result = try self.daemon.call(OrderQueryNow.self, given: ["orderId": .string(self.orderId)])
        self.daemon.show(result, result.text)
    }
}

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The duplicate-callback audit: per order and in total, what became of every notification.",
        discussion: "Example:\n  ledgerctl audit --from 2026-11-27T00:00:00Z"
    )

    @OptionGroup var daemon: DaemonOptions
    @Option(name: .customLong("order"), help: "Only this order.") var orderId: String?
    @Option(help: "Orders with a callback at or after this RFC 3339 time.") var from: String?
    @Option(help: "Orders with a callback at or before this RFC 3339 time.") var to: String?

    func run() throws {
        var given: JSONObject = [:]
        if let orderId { given["orderId"] = .string(orderId) }
        if let from { given["from"] = .string(from) }
        if let to { given["to"] = .string(to) }
        let result = try self.daemon.call(CallbacksAudit.self, given: given)
        self.daemon.show(result, result.text)
    }
}

struct Quarantine: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Notifications kept out of the ledger (bad signature, foreign member id), newest first.",
        discussion: """
            The quarantine is bounded (quarantine.entriesMax, quarantine.bytesMax): when it is full, the oldest \
            entry of the sender holding the most is dropped, and drops are counted. The exact counts per order are \
            in `ledgerctl audit`.

            Examples:
              ledgerctl quarantine --reason bad-signature --limit 20
              ledgerctl quarantine --order L2026112710000012345 --show-body
            """
    )

    @OptionGroup var daemon: DaemonOptions
    @Option(help: "bad-signature or foreign-member.") var reason: String?
    @Option(name: .customLong("order"), help: "Only notifications naming this order id.") var orderId: String?
    @Option(help: "Only from this peer: an address as recorded, an IPv4 address, or an IPv6 /64 as shown.")
    var remote: String?
    @Option(help: "Continue after this cursor (printed at the end of a page).") var cursor: String?
    @Option(help: "Entries per page (1-1000).") var limit: Int = 100
    @Flag(help: "Print each entry's body (escaped) under the table.") var showBody = false

    func run() throws {
        var given: JSONObject = ["limit": .number(String(self.limit))]
        if let reason { given["reason"] = .string(reason) }
        if let orderId { given["orderId"] = .string(orderId) }
        if let remote { given["remoteAddress"] = .string(remote) }
        if let cursor { given["cursor"] = .string(cursor) }
        let result = try self.daemon.call(QuarantineRead.self, given: given)
        self.daemon.show(result, result.text(bodies: self.showBody))
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Head, events by kind, orders by state, store size, poller queue."
    )

    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        let result = try self.daemon.call(LedgerStats.self, NoParams())
        self.daemon.show(result, result.text)
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Walk the hash chain of the event log.",
        discussion: "Exit 0 when the chain is whole, 1 at the first break."
    )

    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        let result = try self.daemon.callWithProgress(LedgerVerify.self)
        self.daemon.show(result, result.text)
        if !result.intact { throw ExitCode(1) }
    }
}

struct Rebuild: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rebuild the projection from the log while the daemon keeps running, with a progress bar."
    )

    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        let result = try self.daemon.callWithProgress(ProjectionRebuild.self)
        self.daemon.show(result, result.text)
    }
}

struct VerifyProjection: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-projection",
        abstract: "Rebuild the projection into scratch space and compare it with the live one.",
        discussion: "Exit 0 when they match, 1 when any order differs."
    )

    @OptionGroup var daemon: DaemonOptions
    @Option(help: "The most differing orders to show.") var differencesMax: Int = 100

    func run() throws {
        let result = try self.daemon.callWithProgress(
            ProjectionVerify.self,
            given: ["differencesMax": .number(String(self.differencesMax))]
        )
        self.daemon.show(result, result.text)
        if !result.matches { throw ExitCode(1) }
    }
}

struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a hot, compacted copy of the store to a path (written by the daemon).",
        discussion: "Example:\n  ledgerctl backup /var/backups/ledger-2026-11-27"
    )

    @OptionGroup var daemon: DaemonOptions
    @Argument(help: "A new directory for the copy, in a parent that exists; relative paths are resolved here.")
    var path: String

    func run() throws {
        let absolute = self.path.hasPrefix("/") ? self.path : FileManager.default.currentDirectoryPath + "/" + self.path
        let result = try self.daemon.call(LedgerBackup.self, LedgerBackup.Params(path: absolute))
        self.daemon.show(result, result.text)
    }
}

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read events from a sequence number, one page.")

    @OptionGroup var daemon: DaemonOptions
    @Option(help: "The first sequence number.") var from: Int = 1
    @Option(help: "Events per page.") var limit: Int = 100

    func run() throws {
        let result = try self.daemon.call(
            EventsRead.self,
            given: ["fromSequence": .number(String(self.from)), "limit": .number(String(self.limit))]
        )
        self.daemon.show(result, result.text)
    }
}

struct Tail: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print events as they commit (one JSON line each with --json), until interrupted."
    )

    @OptionGroup var daemon: DaemonOptions
    @Option(help: "Start at this sequence number (default: only new events).") var from: Int?
    @Option(help: "Stop after this many events.") var count: Int?

    func run() throws {
        var given: JSONObject = [:]
        if let from { given["fromSequence"] = .number(String(from)) }
        let params = try self.daemon.params(EventsSubscribe.self, given: given)
        var seen = 0
        var dropped: String?
        let handle: (ControlNotification) -> Bool = { notification in
            switch notification {
            case .event(_, let event):
                print(self.daemon.json ? JSONWriter.write(event.json, options: .sortedKeys) : event.line)
                // Each event reaches a reader as it commits, even through a pipe (where standard output is
                // block-buffered), and none is lost in a buffer when tail is killed.
                fflush(nil)
                seen += 1
                return self.count.map { seen < $0 } ?? true
            case .dropped(_, let reason):
                dropped = reason
                return false
            case .progress:
                return true
            }
        }
        do throws(ClientError) {
            let client = try ControlClient(path: self.daemon.socketPath)
            _ = try client.call(EventsSubscribe.self, params)
            if self.count.map({ seen < $0 }) ?? true { try client.listenForNotifications(handle) }
        } catch {
            throw self.daemon.fail(error)
        }
        if let dropped {
            Output.error("ledgerctl: the daemon ended the subscription: \(dropped)")
            throw ExitCode(1)
        }
    }
}
