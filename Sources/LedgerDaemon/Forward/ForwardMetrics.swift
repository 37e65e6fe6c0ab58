import CoreMetrics
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

    private let attempts: [Outcome: CoreMetrics.Counter]
    private let pending: CoreMetrics.Gauge
    private let dead: CoreMetrics.Gauge
    private let oldestAge: CoreMetrics.Gauge
    private let position: CoreMetrics.Gauge

    init(metrics: LedgerMetrics) {
        var attempts: [Outcome: CoreMetrics.Counter] = [:]
        for outcome in Outcome.allCases {
            attempts[outcome] = CoreMetrics.Counter(
                label: "ledger_forward_deliveries_total",
                dimensions: [("outcome", outcome.rawValue)],
                factory: metrics.factory
            )
        }
        self.attempts = attempts
        self.pending = CoreMetrics.Gauge(label: "ledger_forward_pending", factory: metrics.factory)
        self.dead = CoreMetrics.Gauge(label: "ledger_forward_dead", factory: metrics.factory)
        self.oldestAge = CoreMetrics.Gauge(label: "ledger_forward_oldest_pending_seconds", factory: metrics.factory)
        self.position = CoreMetrics.Gauge(label: "ledger_forward_position", factory: metrics.factory)
    }

    func attempt(_ outcome: Outcome) { self.attempts[outcome]?.increment() }

    func outbox(pending: Int, dead: Int, oldestAgeSeconds: Double, position: UInt64) {
        self.pending.record(pending)
        self.dead.record(dead)
        self.oldestAge.record(oldestAgeSeconds)
        self.position.record(Int64(clamping: position))
    }
}
