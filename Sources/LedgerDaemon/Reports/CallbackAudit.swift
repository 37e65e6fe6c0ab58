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
        rowsMax: Int = ControlLimits.auditRowsMax
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
                    let page = try await store.orders(status: status, after: after, limit: StoreLimits.scanPageMax)
                    for state in page { include(state) }
                    guard let last = page.last, page.count == StoreLimits.scanPageMax else { break }
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
