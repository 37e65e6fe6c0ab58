public import LedgerCore
public import LedgerStore

/// The duplicate-callback audit: per order and in total, notifications received and what became of them.
public struct CallbackAudit: Sendable, Hashable {
    public struct Row: Sendable, Hashable {
        public var orderId: String
        public var status: OrderStatus
        public var counts: CallbackCounts
    }

    public var rows: [Row]
    /// Every row's counts added up, and, for an audit of every order, the quarantined notifications that named no
    /// order the ledger held: exact, from the counters kept beside the quarantine.
    public var total: CallbackCounts
    /// What the quarantine holds now and has dropped.
    public var quarantine: QuarantineStatus

    /// Builds the audit from the projection and the quarantine's counters: every order with at least one
    /// callback, in order id order, filtered by order and by the time of the last callback.
    public static func build(
        store: any EventStore,
        orderId: String? = nil,
        from: Instant? = nil,
        to: Instant? = nil,
        rowsMax: Int = 10_000
    ) async throws -> CallbackAudit {
        var rows: [Row] = []
        var total = CallbackCounts()
        // Kept only for orders the ledger held, so as many as there are orders at most.
        let quarantined = try await store.quarantineCounts(orderId: orderId)
        let quarantine = try await store.quarantineStatus()
        func inWindow(_ counts: CallbackCounts) -> Bool {
            guard counts.received > 0 else { return false }
            if let from, let last = counts.lastAt, last < from { return false }
            if let to, let first = counts.firstAt, first > to { return false }
            return true
        }
        func addToTotal(_ counts: CallbackCounts) {
            for classification in CallbackClassification.allCases { total[classification] &+= counts[classification] }
            total.received &+= counts.received
            if let first = counts.firstAt, total.firstAt.map({ first < $0 }) ?? true { total.firstAt = first }
            if let last = counts.lastAt, total.lastAt.map({ last > $0 }) ?? true { total.lastAt = last }
        }
        func include(_ state: OrderState) {
            var counts = state.callbacks
            if let kept = quarantined[state.orderId] { counts.add(quarantined: kept) }
            guard inWindow(counts) else { return }
            addToTotal(counts)
            if rows.count < rowsMax { rows.append(Row(orderId: state.orderId, status: state.status, counts: counts)) }
        }
        if let orderId {
            if let state = try await store.order(orderId) { include(state) }
        } else {
            for status in OrderStatus.allCases {
                var after: String?
                while true {
                    let page = try await store.orders(status: status, after: after, limit: 1000)
                    for state in page { include(state) }
                    guard let last = page.last, page.count == 1000 else { break }
                    after = last.orderId
                }
            }
            rows.sort { $0.orderId.utf8.lexicographicallyPrecedes($1.orderId.utf8) }
            var unknown = CallbackCounts()
            unknown.add(quarantined: quarantine.unknownOrders)
            if inWindow(unknown) { addToTotal(unknown) }
        }
        return CallbackAudit(rows: rows, total: total, quarantine: quarantine)
    }
}

/// Plain-text tables for people (`ledgerctl` without `--json`, and `ledgerd demo`).
public enum TextTable {
    public static func render(_ header: [String], _ rows: [[String]]) -> String {
        // Cells quote outside text (a gateway's error message, a peer's body): a control character in one would
        // end the row early or drive the terminal, so every cell is escaped as log lines are.
        let rows = rows.map { $0.map(LogText.escape) }
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], Self.width(cell))
            }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                cell + String(repeating: " ", count: max(0, widths[index] - Self.width(cell)))
            }.joined(separator: "  ").trimmingTrailingSpaces()
        }
        var lines = [line(header), line(widths.map { String(repeating: "-", count: $0) })]
        lines.append(contentsOf: rows.map(line))
        return lines.joined(separator: "\n")
    }

    /// Display width: CJK characters take two columns in a terminal.
    static func width(_ text: String) -> Int {
        text.unicodeScalars.reduce(0) { total, scalar in
            let wide = (0x1100...0x115F).contains(scalar.value) || (0x2E80...0xA4CF).contains(scalar.value)
                || (0xAC00...0xD7A3).contains(scalar.value) || (0xF900...0xFAFF).contains(scalar.value)
                || (0xFF00...0xFF60).contains(scalar.value) || (0xFFE0...0xFFE6).contains(scalar.value)
            return total + (wide ? 2 : 1)
        }
    }

    public static func audit(_ audit: CallbackAudit) -> String {
        let header = ["order", "state", "received", "accepted", "duplicate", "conflicting", "amount", "member", "not-00", "bad-sign", "unknown"]
        func cells(_ name: String, _ state: String, _ counts: CallbackCounts) -> [String] {
            [
                name, state, "\(counts.received)", "\(counts.accepted)", "\(counts.duplicate)", "\(counts.conflicting)",
                "\(counts.amountMismatch)", "\(counts.memberMismatch)", "\(counts.notSuccess)", "\(counts.badSignature)",
                "\(counts.unknownOrder)",
            ]
        }
        var rows = audit.rows.map { cells($0.orderId, $0.status.rawValue, $0.counts) }
        rows.append(cells("total", "", audit.total))
        return Self.render(header, rows)
    }

    public static func orders(_ states: [OrderState]) -> String {
        Self.render(
            ["order", "state", "amount", "bank", "paid by", "transaction", "flags", "queries"],
            states.map { state in
                [
                    state.orderId, state.status.rawValue, state.order?.amount.text ?? "", state.order?.bankCode ?? "",
                    state.payment?.source.rawValue ?? "", state.payment?.transactionId ?? "",
                    state.flags.names.joined(separator: ","), "\(state.queryAttempts)",
                ]
            }
        )
    }

    public static func history(_ entries: [HistoryEntry]) -> String {
        Self.render(
            ["seq", "recorded", "event", "effect", "state after"],
            entries.map { entry in
                [
                    "\(entry.event.sequence)", entry.event.recordedAt.description, entry.event.type.rawValue,
                    Self.describe(entry.effect, entry.event), entry.state.status.rawValue,
                ]
            }
        )
    }

    static func describe(_ effect: EventEffect, _ event: Event) -> String {
        switch effect {
        case .created: return "created"
        case .ignoredSecondCreate: return "second create ignored"
        case .callback(let classification):
            return "callback: \(classification.rawValue)"
        case .query(let classification):
            if case .queryResult(let result) = event.payload {
                switch result.outcome {
                case .reply(let fields, _, _, _):
                    let state = fields.first { $0.name == "trade_state" }?.value ?? "?"
                    return "query #\(result.attempt) \(state): \(classification.rawValue)" + (result.final ? " (final)" : "")
                case .gatewayError(let message): return "query #\(result.attempt) gateway error \(message)"
                case .unreadable(let reason): return "query #\(result.attempt) unreadable: \(reason)" + (result.final ? " (final)" : "")
                case .transportError(let message): return "query #\(result.attempt) \(message)" + (result.final ? " (final)" : "")
                }
            }
            return "query: \(classification.rawValue)"
        }
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var text = self
        while text.hasSuffix(" ") { text.removeLast() }
        return text
    }
}
