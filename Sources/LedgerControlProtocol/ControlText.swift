public import LedgerCore

/// Plain-text tables for people (`ledgerctl` without `--json`, and `ledgerd demo`).
public enum TextTable {
    public static func render(_ header: [String], _ rows: [[String]]) -> String {
        // Cells quote outside text (a gateway's error message, a peer's body): a control character in one would
        // end the row early or drive the terminal, so every cell is escaped as log lines are.
        let rows = rows.map { $0.map(LogText.escape) }
        var widths = header.map(Self.width)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], Self.width(cell))
            }
        }
        func line(_ cells: [String]) -> String {
            var text = cells.enumerated().map { index, cell in
                cell + String(repeating: " ", count: max(0, widths[index] - Self.width(cell)))
            }.joined(separator: "  ")
            while text.utf8.last == UInt8(ascii: " ") { text.removeLast() }
            return text
        }
        var lines = [line(header), line(widths.map { String(repeating: "-", count: $0) })]
        lines.append(contentsOf: rows.map(line))
        return lines.joined(separator: "\n")
    }

    /// Display width: CJK characters take two columns in a terminal.
    static func width(_ text: String) -> Int {
        text.unicodeScalars.reduce(0) { total, scalar in
            let wide =
                (0x1100...0x115F).contains(scalar.value) || (0x2E80...0xA4CF).contains(scalar.value)
                || (0xAC00...0xD7A3).contains(scalar.value) || (0xF900...0xFAFF).contains(scalar.value)
                || (0xFF00...0xFF60).contains(scalar.value) || (0xFFE0...0xFFE6).contains(scalar.value)
            return total + (wide ? 2 : 1)
        }
    }

    /// `field  value` lines, for one object.
    public static func fields(_ rows: [(String, String?)]) -> String {
        Self.render(["field", "value"], rows.map { [$0.0, $0.1 ?? ""] })
    }
}

// How each result reads as text. One rendering per message, shared by `ledgerctl` and `ledgerd demo`.

extension OrderView {
    /// One order, field by field.
    public var text: String {
        TextTable.fields([
            ("order", self.orderId), ("state", self.state.rawValue), ("flags", self.flags.joined(separator: ",")),
            ("amount", self.order?.amount), ("bank code", self.order?.bankCode),
            ("product", self.order?.productName), ("created", self.order?.createdAt),
            ("paid by", self.payment?.source), ("transaction", self.payment?.transactionId),
            ("paid at", self.payment?.paidAt), ("paid amount", self.payment?.amount),
            ("callbacks", String(self.callbacks.received)), ("queries", String(self.queryAttempts)),
            ("events", String(self.eventCount)),
        ])
    }

    /// Orders, one row each.
    public static func table(_ orders: [OrderView]) -> String {
        TextTable.render(
            ["order", "state", "amount", "bank", "paid by", "transaction", "flags", "queries"],
            orders.map { order in
                [
                    order.orderId, order.state.rawValue, order.order?.amount ?? "", order.order?.bankCode ?? "",
                    order.payment?.source ?? "", order.payment?.transactionId ?? "",
                    order.flags.joined(separator: ","), String(order.queryAttempts),
                ]
            }
        )
    }
}

extension EventView {
    /// Events, one row each.
    public static func table(_ events: [EventView]) -> String {
        TextTable.render(
            ["seq", "recorded", "event", "order"],
            events.map { [String($0.sequence), $0.recordedAt, $0.type, $0.orderId] }
        )
    }

    /// One line, as `ledgerctl tail` prints an event.
    public var line: String {
        [String(self.sequence), self.recordedAt, self.type, self.orderId].joined(separator: "  ")
    }
}

extension OrderCreate.Result {
    public var text: String {
        "order \(self.orderId) \(self.created ? "created" : "already existed with these fields")\n"
            + "pay page: \(self.payUrl)\ngateway:  \(self.gatewayUrl)\n\n"
            + TextTable.fields(self.fields.map { ($0.name, $0.value) })
    }
}

extension OrderHistory.Result {
    public var text: String {
        TextTable.render(
            ["seq", "recorded", "event", "effect", "state after", "flags"],
            self.entries.map { entry in
                [
                    String(entry.event.sequence), entry.event.recordedAt, entry.event.type, entry.effect.text,
                    entry.stateAfter, entry.flagsAfter.joined(separator: ","),
                ]
            }
        )
    }
}

extension OrderList.Result {
    public var text: String {
        var text = OrderView.table(self.orders)
        if !self.counts.isEmpty {
            text += "\n\n" + self.counts.map { "\($0.state) \($0.count)" }.joined(separator: ", ")
        }
        if let nextCursor { text += "\nmore: --cursor \(nextCursor)" }
        return text
    }
}

extension OrderQueryNow.Result {
    public var text: String {
        "query #\(Self.text(self.result["attempt"])): \(Self.text(self.result["outcome"]?["kind"])), "
            + "\(self.classification)\n\n" + self.order.text
    }

    static func text(_ value: JSONValue?) -> String {
        switch value {
        case .string(let text)?, .number(let text)?: return text
        case nil, .null?, .bool?, .array?, .object?: return ""
        }
    }
}

extension QuarantineStatusView {
    /// One line on what the quarantine holds, has dropped and has counted.
    public var summary: String {
        "quarantine: \(self.entries) entries, \(self.bytes) bytes held, \(self.dropped) dropped; counted "
            + "\(self.badSignature) bad signatures, \(self.foreignMember) foreign member ids (\(self.unknownOrders) for "
            + "unknown orders)"
    }
}

extension CallbacksAudit.Result {
    /// Per order and in total, what became of every notification, then the quarantine's line.
    public var text: String {
        let columns = CountsView().named.map(\.column)
        func cells(_ name: String, _ state: String, _ counts: CountsView) -> [String] {
            [name, state] + counts.named.map { String($0.value) }
        }
        var rows = self.orders.map { cells($0.orderId, $0.state, $0.counts) }
        rows.append(cells("total", "", self.total))
        return TextTable.render(["order", "state"] + columns, rows) + "\n\n" + self.quarantine.summary
    }
}

extension QuarantineRead.Result {
    /// The page as a table; with `bodies`, each entry's body (escaped) under it.
    public func text(bodies: Bool) -> String {
        var text = TextTable.render(
            ["id", "received", "remote", "reason", "order", "bytes", "detail"],
            self.entries.map { entry in
                [
                    String(entry.id), entry.receivedAt, entry.remoteAddress, entry.reason.rawValue,
                    entry.orderId ?? "", String(entry.bodyBytes), entry.detail,
                ]
            }
        )
        if bodies {
            for entry in self.entries {
                let cut = entry.bodyCut ? " (cut)" : ""
                text += "\n\n#\(entry.id)\(cut): \(LogText.escape(entry.body))"
            }
        }
        if let nextCursor { text += "\nmore: --cursor \(nextCursor)" }
        return text + "\n\n" + self.quarantine.summary
    }
}

extension ProjectionRebuild.Result {
    public var text: String {
        "rebuilt: \(self.eventsReplayed) events, \(self.orders) orders, head \(self.head.sequence), "
            + "\(self.seconds ?? "") s"
    }
}

extension ProjectionVerify.Result {
    public var text: String {
        var text = "compared \(self.ordersCompared) orders after \(self.eventsReplayed) events: "
        text += "\(self.differenceCount) differ"
        let rows = self.differences.map { difference in
            [difference.orderId, difference.live?.state.rawValue ?? "", difference.rebuilt?.state.rawValue ?? ""]
        }
        if !rows.isEmpty { text += "\n\n" + TextTable.render(["order", "live", "rebuilt"], rows) }
        return text
    }
}

extension LedgerVerify.Result {
    public var text: String {
        if self.intact {
            return "chain intact: \(self.eventsChecked) events, head \(self.head.sequence) \(self.head.hash)"
        }
        return "chain BROKEN at sequence \(self.firstBreak.map { String($0.sequence) } ?? ""): "
            + (self.firstBreak?.reason ?? "")
    }
}

extension LedgerStats.Result {
    public var text: String {
        var rows: [(String, String?)] = [("head sequence", String(self.head.sequence)), ("head hash", self.head.hash)]
        for (type, count) in self.eventsByType { rows.append(("events " + type, String(count))) }
        for (state, count) in self.ordersByState { rows.append(("orders " + state, String(count))) }
        rows += [
            ("store bytes", String(self.storeBytes)), ("map bytes", self.mapBytes.map { String($0) }),
            ("poller pending", String(self.pollerPending)), ("poll leader", self.pollLeader ? "yes" : "no"),
            ("control connections", String(self.connections)), ("event subscribers", String(self.subscribers)),
            ("uptime seconds", String(self.uptimeSeconds)),
        ]
        return TextTable.fields(rows)
    }
}

extension LedgerBackup.Result {
    public var text: String { "backup written to \(self.path): \(self.bytes) bytes, head \(self.head.sequence)" }
}

extension EventsRead.Result {
    public var text: String { EventView.table(self.events) + "\nnext: --from \(self.nextSequence)" }
}

extension ProgressView {
    /// `phase [#####.....] done/total`, for a line rewritten in place.
    public var bar: String {
        let total = max(self.total, 1)
        let width = 30
        let filled = Int(min(UInt64(width), self.done * UInt64(width) / total))
        return "\(self.phase) [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            + "] \(self.done)/\(self.total)"
    }
}
