import Prometheus

/// Forwarding's metrics, in the daemon's registry: deliveries by outcome, the pending count and the age of the
/// oldest pending delivery.
final class ForwardMetrics: Sendable {
    /// The outcomes of one attempt: delivered (2xx in time), failed (to be retried), dead (the last attempt failed).
    enum Outcome: String, CaseIterable {
        case delivered
        case failed
        case dead
    }

    private let attempts: [Outcome: Counter]
    private let pending: Gauge
    private let dead: Gauge
    private let oldestAge: Gauge
    private let position: Gauge

    init(metrics: LedgerMetrics) {
        let registry = metrics.registry
        self.attempts = registry.makeCounters(
            .init(
                "ledger_forward_deliveries_total",
                help: "Delivery attempts to the shop, by outcome: delivered, failed (retried later), dead."
            ),
            by: "outcome"
        )
        self.pending = registry.makeGauge(
            descriptor: .init("ledger_forward_pending", help: "Deliveries to the shop waiting for a first or next try.")
        )
        self.dead = registry.makeGauge(
            descriptor: .init("ledger_forward_dead", help: "Deliveries to the shop that ran out of attempts.")
        )
        self.oldestAge = registry.makeGauge(
            descriptor: .init(
                "ledger_forward_oldest_pending_seconds",
                help: "Age of the oldest delivery to the shop still pending."
            )
        )
        self.position = registry.makeGauge(
            descriptor: .init(
                "ledger_forward_position",
                help: "The ledger sequence the forwarder has derived outcomes up to."
            )
        )
    }

    func attempt(_ outcome: Outcome) { self.attempts[outcome]?.increment() }

    func outbox(pending: Int, dead: Int, oldestAgeSeconds: Double, position: UInt64) {
        self.pending.set(Int64(pending))
        self.dead.set(Int64(dead))
        self.oldestAge.set(oldestAgeSeconds)
        self.position.set(Int64(clamping: position))
    }
}
