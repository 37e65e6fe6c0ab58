public import CoreMetrics
public import LedgerCore
public import LedgerStore
import Metrics
public import Prometheus

/// The daemon's metrics, through swift-metrics with a Prometheus registry of its own (not the process-wide
/// bootstrap, so several daemons in one test process keep separate figures). `GET /metrics` emits the registry.
public final class LedgerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory
    private let callbacks: [CallbackClassification: CoreMetrics.Counter]
    private let rejected: CoreMetrics.Counter
    private let appends: CoreMetrics.Counter
    private let appendLatency: CoreMetrics.Timer
    private let pollAttempts: [String: CoreMetrics.Counter]
    private let pending: CoreMetrics.Gauge
    private let batchSizes: CoreMetrics.Recorder
    private let leader: CoreMetrics.Gauge
    private let quarantined: [QuarantineReason: CoreMetrics.Counter]
    private let quarantineDrops: CoreMetrics.Counter
    private let quarantineEntries: CoreMetrics.Gauge
    private let quarantineBytes: CoreMetrics.Gauge
    private let quarantineDroppedStored: CoreMetrics.Gauge

    public init() {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
        ]
        self.registry = registry
        self.factory = factory
        var callbacks: [CallbackClassification: CoreMetrics.Counter] = [:]
        for classification in CallbackClassification.allCases {
            callbacks[classification] = CoreMetrics.Counter(
                label: "ledger_callbacks_total",
                dimensions: [("verdict", classification.rawValue)],
                factory: factory
            )
        }
        self.callbacks = callbacks
        self.rejected = CoreMetrics.Counter(label: "ledger_callbacks_rejected_total", factory: factory)
        self.appends = CoreMetrics.Counter(label: "ledger_events_appended_total", factory: factory)
        self.appendLatency = CoreMetrics.Timer(label: "ledger_append_seconds", factory: factory)
        var attempts: [String: CoreMetrics.Counter] = [:]
        for outcome in QueryClassification.allCases.map(\.rawValue) {
            attempts[outcome] = CoreMetrics.Counter(label: "ledger_poll_attempts_total", dimensions: [("outcome", outcome)], factory: factory)
        }
        self.pollAttempts = attempts
        self.pending = CoreMetrics.Gauge(label: "ledger_orders_pending", factory: factory)
        self.batchSizes = CoreMetrics.Recorder(label: "ledger_commit_batch_size", aggregate: true, factory: factory)
        self.leader = CoreMetrics.Gauge(label: "ledger_poll_leader", factory: factory)
        var quarantined: [QuarantineReason: CoreMetrics.Counter] = [:]
        for reason in QuarantineReason.allCases {
            quarantined[reason] = CoreMetrics.Counter(
                label: "ledger_quarantined_total",
                dimensions: [("reason", reason.rawValue)],
                factory: factory
            )
        }
        self.quarantined = quarantined
        self.quarantineDrops = CoreMetrics.Counter(label: "ledger_quarantine_drops_total", factory: factory)
        self.quarantineEntries = CoreMetrics.Gauge(label: "ledger_quarantine_entries", factory: factory)
        self.quarantineBytes = CoreMetrics.Gauge(label: "ledger_quarantine_bytes", factory: factory)
        self.quarantineDroppedStored = CoreMetrics.Gauge(label: "ledger_quarantine_dropped", factory: factory)
    }

    /// A notification kept in the quarantine by this daemon, and the entries dropped to make room for it.
    func notificationQuarantined(_ reason: QuarantineReason, dropped: Int) {
        self.quarantined[reason]?.increment()
        if dropped > 0 { self.quarantineDrops.increment(by: dropped) }
    }

    /// What the store's quarantine holds, and has dropped since the ledger began (every daemon's, on a shared store).
    public func quarantineStatus(_ status: QuarantineStatus) {
        self.quarantineEntries.record(Int64(clamping: status.entries))
        self.quarantineBytes.record(Int64(clamping: status.bytes))
        self.quarantineDroppedStored.record(Int64(clamping: status.dropped))
    }

    func callbackRecorded(_ classification: CallbackClassification) { self.callbacks[classification]?.increment() }
    func notificationRejected() { self.rejected.increment() }

    func recordAppend(events: Int, since start: ContinuousClock.Instant) {
        self.appends.increment(by: events)
        let elapsed = ContinuousClock.now - start
        self.appendLatency.recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }

    func pollAttempt(_ classification: QueryClassification) { self.pollAttempts[classification.rawValue]?.increment() }
    func pendingOrders(_ count: Int) { self.pending.record(count) }
    /// 1 while this daemon polls (always, on an embedded store), 0 while another daemon leads.
    func pollLeader(_ leading: Bool) { self.leader.record(leading ? 1 : 0) }

    /// A histogram of commit batch sizes, filled from the store's writer.
    public func commitBatchSizes(_ sizes: [Int]) {
        for size in sizes { self.batchSizes.record(size) }
    }

    /// The Prometheus text format of every metric.
    public func render() -> String {
        var buffer: [UInt8] = []
        self.registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
