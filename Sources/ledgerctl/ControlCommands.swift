import ArgumentParser
import Foundation
import LedgerCore
import LedgerControlClient
import LedgerDaemon

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

    /// Connects, calls, and turns failures into the documented exit codes: 1 for an error answer, 3 when the
    /// daemon cannot be reached.
    func call(
        _ method: String,
        _ params: JSONObject = [:],
        onNotification: (String, JSONValue) -> Bool = { _, _ in true }
    ) throws -> JSONValue {
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
            case .daemon(let code, let name, let message):
                object = ["code": .number(String(code)), "name": .string(name), "message": .string(message)]
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
    func callWithProgress(_ method: String, _ params: JSONObject = [:]) throws -> JSONValue {
        var last: JSONValue?
        let result = try self.call(method, params) { notification, progress in
            if notification == method + ".progress", !self.json {
                last = progress
                _ = progressLine(progress)
            }
            return true
        }
        if let last {
            var finished = last
            if case .object(var members) = last {
                members["done"] = last["total"] ?? .null
                finished = .object(members)
            }
            _ = progressLine(finished)
            Output.error("")
        }
        return result
    }

    /// Prints the result as JSON with `--json`, or as `human` renders it.
    func show(_ result: JSONValue, _ human: (JSONValue) -> String) {
        if self.json {
            print(JSONWriter.write(result, options: [.sortedKeys, .prettyPrinted]))
        } else {
            print(human(result))
        }
    }
}

enum Output {
    static func error(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// A value as table text: strings bare, null empty, everything else as JSON.
    static func text(_ value: JSONValue?) -> String {
        switch value {
        case nil, .null?: return ""
        case .string(let text)?: return text
        case .number(let text)?: return text
        case .bool(let flag)?: return flag ? "yes" : "no"
        case .array(let items)?: return items.map { Self.text($0) }.joined(separator: ",")
        case .object?: return value!.description
        }
    }

    /// `key  value` lines, for one object.
    static func fields(_ rows: [(String, JSONValue?)]) -> String {
        TextTable.render(["field", "value"], rows.map { [$0.0, Self.text($0.1)] })
    }

    static func orderRows(_ orders: [JSONValue]) -> String {
        TextTable.render(
            ["order", "state", "amount", "bank", "paid by", "transaction", "flags", "queries"],
            orders.map { order in
                [
                    Self.text(order["orderId"]), Self.text(order["state"]), Self.text(order["order"]?["amount"]),
                    Self.text(order["order"]?["bankCode"]), Self.text(order["payment"]?["source"]),
                    Self.text(order["payment"]?["transactionId"]), Self.text(order["flags"]), Self.text(order["queryAttempts"]),
                ]
            }
        )
    }

    static func order(_ order: JSONValue) -> String {
        Self.fields([
            ("order", order["orderId"]), ("state", order["state"]), ("flags", order["flags"]),
            ("amount", order["order"]?["amount"]), ("bank code", order["order"]?["bankCode"]),
            ("product", order["order"]?["productName"]), ("created", order["order"]?["createdAt"]),
            ("paid by", order["payment"]?["source"]), ("transaction", order["payment"]?["transactionId"]),
            ("paid at", order["payment"]?["paidAt"]), ("paid amount", order["payment"]?["amount"]),
            ("callbacks", order["callbacks"]?["received"]), ("queries", order["queryAttempts"]),
            ("events", order["eventCount"]),
        ])
    }

    /// One line on what the quarantine holds, has dropped and has counted.
    static func quarantineSummary(_ status: JSONValue?) -> String {
        "quarantine: \(Self.text(status?["entries"])) entries, \(Self.text(status?["bytes"])) bytes held, "
            + "\(Self.text(status?["dropped"])) dropped; counted \(Self.text(status?["badSignature"])) bad signatures, "
            + "\(Self.text(status?["foreignMember"])) foreign member ids (\(Self.text(status?["unknownOrders"])) for "
            + "unknown orders)"
    }

    static let auditColumns = [
        ("received", "received"), ("accepted", "accepted"), ("duplicate", "duplicate"), ("conflicting", "conflicting"),
        ("amount", "amountMismatch"), ("member", "memberMismatch"), ("not-00", "notSuccess"), ("bad-sign", "badSignature"),
        ("unknown", "unknownOrder"),
    ]

    static func events(_ events: [JSONValue]) -> String {
        TextTable.render(
            ["seq", "recorded", "event", "order"],
            events.map { [Self.text($0["sequence"]), Self.text($0["recordedAt"]), Self.text($0["type"]), Self.text($0["orderId"])] }
        )
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
        var params: JSONObject = ["amount": .string(self.amount), "bankCode": .string(self.bank), "productName": .string(self.product)]
        if let orderId { params["orderId"] = .string(orderId) }
        if let attach { params["attach"] = .string(attach) }
        let result = try self.daemon.call("order.create", params)
        self.daemon.show(result) { result in
            let fields = result["fields"]?.objectValue.map { $0.map { ($0.key, Optional($0.value)) } } ?? []
            return "order \(Output.text(result["orderId"])) \(result["created"] == .bool(true) ? "created" : "already existed with these fields")\n"
                + "pay page: \(Output.text(result["payUrl"]))\ngateway:  \(Output.text(result["gatewayUrl"]))\n\n"
                + Output.fields(fields)
        }
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
        let result = try self.daemon.call("order.get", ["orderId": .string(self.orderId)])
        self.daemon.show(result, Output.order)
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
        var entries: [JSONValue] = []
        var cursor: JSONValue = .null
        repeat {
            var params: JSONObject = ["orderId": .string(self.orderId), "limit": .number("1000")]
            if cursor != .null { params["cursor"] = cursor }
            let page = try self.daemon.call("order.history", params)
            entries += page["entries"]?.arrayValue ?? []
            cursor = page["nextCursor"] ?? .null
        } while cursor != .null
        let result: JSONValue = .object([
            "orderId": .string(self.orderId), "entries": .array(entries), "nextCursor": .null,
        ])
        self.daemon.show(result) { result in
            TextTable.render(
                ["seq", "recorded", "event", "effect", "state after", "flags"],
                (result["entries"]?.arrayValue ?? []).map { entry in
                    let effect = entry["effect"]
                    let effectText = [Output.text(effect?["kind"]), Output.text(effect?["classification"])].filter { !$0.isEmpty }
                        .joined(separator: ": ")
                    return [
                        Output.text(entry["event"]?["sequence"]), Output.text(entry["event"]?["recordedAt"]),
                        Output.text(entry["event"]?["type"]), effectText, Output.text(entry["stateAfter"]),
                        Output.text(entry["flagsAfter"]),
                    ]
                }
            )
        }
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
        var params: JSONObject = ["limit": .number(String(self.limit))]
        if let status { params["status"] = .string(status) }
        if let flag { params["flag"] = .string(flag) }
        if let bank { params["bankCode"] = .string(bank) }
        if let from { params["createdFrom"] = .string(from) }
        if let to { params["createdTo"] = .string(to) }
        if let cursor { params["cursor"] = .string(cursor) }
        let result = try self.daemon.call("order.list", params)
        self.daemon.show(result) { result in
            var text = Output.orderRows(result["orders"]?.arrayValue ?? [])
            if let counts = result["counts"]?.objectValue {
                text += "\n\n" + counts.map { "\($0.key) \(Output.text($0.value))" }.joined(separator: ", ")
            }
            if let next = result["nextCursor"]?.stringValue { text += "\nmore: --cursor \(next)" }
            return text
        }
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
        let result = try self.daemon.call("order.queryNow", ["orderId": .string(self.orderId)])
        self.daemon.show(result) { result in
            "query #\(Output.text(result["result"]?["attempt"])): \(Output.text(result["result"]?["outcome"]?["kind"])), "
                + "\(Output.text(result["classification"]))\n\n" + Output.order(result["order"] ?? .null)
        }
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
        var params: JSONObject = [:]
        if let orderId { params["orderId"] = .string(orderId) }
        if let from { params["from"] = .string(from) }
        if let to { params["to"] = .string(to) }
        let result = try self.daemon.call("callbacks.audit", params)
        self.daemon.show(result) { result in
            func cells(_ name: String, _ state: String, _ counts: JSONValue?) -> [String] {
                [name, state] + Output.auditColumns.map { Output.text(counts?[$0.1]) }
            }
            var rows = (result["orders"]?.arrayValue ?? []).map { cells(Output.text($0["orderId"]), Output.text($0["state"]), $0["counts"]) }
            rows.append(cells("total", "", result["total"]))
            return TextTable.render(["order", "state"] + Output.auditColumns.map(\.0), rows) + "\n\n"
                + Output.quarantineSummary(result["quarantine"])
        }
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
        var params: JSONObject = ["limit": .number(String(self.limit))]
        if let reason { params["reason"] = .string(reason) }
        if let orderId { params["orderId"] = .string(orderId) }
        if let remote { params["remoteAddress"] = .string(remote) }
        if let cursor { params["cursor"] = .string(cursor) }
        let result = try self.daemon.call("quarantine.read", params)
        self.daemon.show(result) { result in
            let entries = result["entries"]?.arrayValue ?? []
            var text = TextTable.render(
                ["id", "received", "remote", "reason", "order", "bytes", "detail"],
                entries.map { entry in
                    [
                        Output.text(entry["id"]), Output.text(entry["receivedAt"]), Output.text(entry["remoteAddress"]),
                        Output.text(entry["reason"]), Output.text(entry["orderId"]), Output.text(entry["bodyBytes"]),
                        Output.text(entry["detail"]),
                    ]
                }
            )
            if self.showBody {
                for entry in entries {
                    let cut = entry["bodyCut"] == .bool(true) ? " (cut)" : ""
                    text += "\n\n#\(Output.text(entry["id"]))\(cut): \(LogText.escape(entry["body"]?.stringValue ?? ""))"
                }
            }
            if let next = result["nextCursor"]?.stringValue { text += "\nmore: --cursor \(next)" }
            return text + "\n\n" + Output.quarantineSummary(result["quarantine"])
        }
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Head, events by kind, orders by state, store size, poller queue.")

    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        let result = try self.daemon.call("ledger.stats")
        self.daemon.show(result) { result in
            var rows: [(String, JSONValue?)] = [
                ("head sequence", result["head"]?["sequence"]), ("head hash", result["head"]?["hash"]),
            ]
            for member in result["eventsByType"]?.objectValue ?? [:] { rows.append(("events " + member.key, member.value)) }
            for member in result["ordersByState"]?.objectValue ?? [:] { rows.append(("orders " + member.key, member.value)) }
            rows += [
                ("store bytes", result["storeBytes"]), ("map bytes", result["mapBytes"]),
                ("poller pending", result["pollerPending"]), ("poll leader", result["pollLeader"]),
                ("control connections", result["connections"]), ("event subscribers", result["subscribers"]),
                ("uptime seconds", result["uptimeSeconds"]),
            ]
            return Output.fields(rows)
        }
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Walk the hash chain of the event log.",
        discussion: "Exit 0 when the chain is whole, 1 at the first break."
    )

    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        let result = try self.daemon.callWithProgress("ledger.verify")
        self.daemon.show(result) { result in
            if result["intact"] == .bool(true) {
                return "chain intact: \(Output.text(result["eventsChecked"])) events, head \(Output.text(result["head"]?["sequence"])) \(Output.text(result["head"]?["hash"]))"
            }
            return "chain BROKEN at sequence \(Output.text(result["firstBreak"]?["sequence"])): \(Output.text(result["firstBreak"]?["reason"]))"
        }
        if result["intact"] != .bool(true) { throw ExitCode(1) }
    }
}

/// Draws `phase done/total` with a bar on standard error, rewriting one line.
func progressLine(_ params: JSONValue) -> Bool {
    let done = Double(params["done"]?.numberText ?? "0") ?? 0
    let total = max(Double(params["total"]?.numberText ?? "1") ?? 1, 1)
    let width = 30
    let filled = min(width, Int(done / total * Double(width)))
    let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
    let text = "\r\(Output.text(params["phase"])) [\(bar)] \(Int(done))/\(Int(total))"
    FileHandle.standardError.write(Data(text.utf8))
    return true
}

struct Rebuild: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rebuild the projection from the log while the daemon keeps running, with a progress bar."
    )

    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        let result = try self.daemon.callWithProgress("projection.rebuild")
        self.daemon.show(result) { result in
            "rebuilt: \(Output.text(result["eventsReplayed"])) events, \(Output.text(result["orders"])) orders, head \(Output.text(result["head"]?["sequence"])), \(Output.text(result["seconds"])) s"
        }
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
            "projection.verify",
            ["differencesMax": .number(String(self.differencesMax))]
        )
        self.daemon.show(result) { result in
            var text = "compared \(Output.text(result["ordersCompared"])) orders after \(Output.text(result["eventsReplayed"])) events: "
            text += "\(Output.text(result["differenceCount"])) differ"
            let rows = (result["differences"]?.arrayValue ?? []).map { difference in
                [Output.text(difference["orderId"]), Output.text(difference["live"]?["state"]), Output.text(difference["rebuilt"]?["state"])]
            }
            if !rows.isEmpty { text += "\n\n" + TextTable.render(["order", "live", "rebuilt"], rows) }
            return text
        }
        if result["matches"] != .bool(true) { throw ExitCode(1) }
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
        let result = try self.daemon.call("ledger.backup", ["path": .string(absolute)])
        self.daemon.show(result) { result in
            "backup written to \(Output.text(result["path"])): \(Output.text(result["bytes"])) bytes, head \(Output.text(result["head"]?["sequence"]))"
        }
    }
}

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read events from a sequence number, one page.")

    @OptionGroup var daemon: DaemonOptions
    @Option(help: "The first sequence number.") var from: Int = 1
    @Option(help: "Events per page.") var limit: Int = 100

    func run() throws {
        let result = try self.daemon.call(
            "events.read",
            ["fromSequence": .number(String(self.from)), "limit": .number(String(self.limit))]
        )
        self.daemon.show(result) { result in
            Output.events(result["events"]?.arrayValue ?? []) + "\nnext: --from \(Output.text(result["nextSequence"]))"
        }
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
        var params: JSONObject = [:]
        if let from { params["fromSequence"] = .number(String(from)) }
        var seen = 0
        var dropped: String?
        let handle: (String, JSONValue) -> Bool = { method, params in
            switch method {
            case "events.event":
                let event = params["event"] ?? .null
                if self.daemon.json {
                    print(JSONWriter.write(event, options: .sortedKeys))
                } else {
                    print([Output.text(event["sequence"]), Output.text(event["recordedAt"]), Output.text(event["type"]), Output.text(event["orderId"])].joined(separator: "  "))
                }
                // Each event reaches a reader as it commits, even through a pipe (where standard output is
                // block-buffered), and none is lost in a buffer when tail is killed.
                fflush(nil)
                seen += 1
                return self.count.map { seen < $0 } ?? true
            case "events.dropped":
                dropped = Output.text(params["reason"])
                return false
            default:
                return true
            }
        }
        do throws(ClientError) {
            let client = try ControlClient(path: self.daemon.socketPath)
            _ = try client.call("events.subscribe", params)
            if self.count.map({ seen < $0 }) ?? true { try client.listen(handle) }
        } catch {
            throw self.daemon.fail(error)
        }
        if let dropped {
            Output.error("ledgerctl: the daemon ended the subscription: \(dropped)")
            throw ExitCode(1)
        }
    }
}
