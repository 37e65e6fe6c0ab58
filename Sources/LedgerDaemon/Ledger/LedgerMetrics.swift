public import LedgerCore
public import LedgerStore
public import Prometheus
import Synchronization

/// Why `POST /notify` refused a body, as `ledger_notifications_refused_total` counts it. A fixed set, so no client
/// can create label values.
public enum RefusalCause: String, Sendable, CaseIterable {
    /// Over `limits.notify.bodyBytesMax`, declared or read.
    case tooLarge = "too-large"
    /// Not a notification: the form or the fields are wrong.
    case malformed
    /// No `sign` field, or an empty one.
    case signatureMissing = "signature-missing"
    /// A `sign` field that is not 32 hexadecimal digits.
    case signatureMalformed = "signature-malformed"
    /// A well-formed signature that does not verify under the merchant key and the dialect in force.
    case signatureMismatch = "signature-mismatch"
    /// Validly signed, for another member id.
    case foreignMember = "foreign-member"
}

extension MetricNameDescriptor {
    /// A family named in full, with the help text its `# HELP` line carries.
    init(_ name: String, help: String) {
        self.init(metricName: name, unitName: "", helpText: help)
    }
}

extension PrometheusCollectorRegistry {
    /// A counter family with one series per case of `Label`, labelled `labelName` with the case's raw value. Every
    /// series is made up front, so each is exposed (at 0) before its first event and no input can add a label value.
    func makeCounters<Label: CaseIterable & Hashable & RawRepresentable>(
        _ descriptor: MetricNameDescriptor,
        by labelName: String,
        for _: Label.Type = Label.self
    ) -> [Label: Counter] where Label.RawValue == String {
        Dictionary(
            uniqueKeysWithValues: Label.allCases.map { value in
                (value, self.makeCounter(descriptor: descriptor, labels: [(labelName, value.rawValue)]))
            }
        )
    }
}

/// The daemon's metrics, in a Prometheus registry of its own (not a process-wide bootstrap, so several daemons in one
/// test process keep separate figures). `GET /metrics` emits the registry.
///
/// Every family is made through the registry with its help text, so the exposition has a `# HELP` line beside the
/// `# TYPE` line of each; swift-metrics' factory has no place for help text and would leave it out.
public final class LedgerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let callbacks: [CallbackClassification: Counter]
    private let rejected: Counter
    private let refused: [RefusalCause: Counter]
    private let appends: Counter
    private let appendLatency: DurationHistogram
    private let pollAttempts: [QueryClassification: Counter]
    private let pending: Gauge
    private let batchSizes: ValueHistogram
    private let leader: Gauge
    private let quarantined: [QuarantineReason: Counter]
    private let quarantineDrops: Counter
    private let quarantineEntries: Gauge
    private let quarantineBytes: Gauge
    private let quarantineDroppedStored: Gauge
    private let forwardedMalformed: Counter
    private let storeUsed: Gauge
    let process: ProcessMetrics
    /// `ledger_http_requests_total` by route and status, made on first use. Both labels come from a bounded set:
    /// the route is the router's pattern (`/pay/{orderId}`, or `unmatched`), the status one the daemon answered.
    private let requests = Mutex<[RequestKey: Counter]>([:])

    /// A counter's labels as they come, so finding it builds no string.
    private struct RequestKey: Hashable {
        var route: String
        var status: Int
    }

    static let requestsHelp = "HTTP requests answered, by route pattern and status."
    /// Made on first use, so a store without a map (PostgreSQL) has no map families rather than zeros.
    static var storeMapFamily: MetricNameDescriptor {
        .init(
            "ledger_store_map_bytes",
            help: "The LMDB map's current size; it grows by doubling up to ledger_store_map_max_bytes."
        )
    }
    static var storeMapMaxFamily: MetricNameDescriptor {
        .init(
            "ledger_store_map_max_bytes",
            help: "store.mapSizeMax: the most the LMDB map may grow to; appends fail when it is full."
        )
    }

    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        self.callbacks = registry.makeCounters(
            .init(
                "ledger_callbacks_total",
                help: "Notifications the gateway vouched for, recorded, by what the projection made of them."
            ),
            by: "verdict"
        )
        self.rejected = registry.makeCounter(
            descriptor: .init(
                "ledger_callbacks_rejected_total",
                help: "Bodies POSTed to /notify that are not a notification (malformed or too large); nothing "
                    + "recorded."
            )
        )
        self.refused = registry.makeCounters(
            .init(
                "ledger_notifications_refused_total",
                help: "Bodies POSTed to /notify and not acknowledged, by cause."
            ),
            by: "cause"
        )
        self.appends = registry.makeCounter(
            descriptor: .init(
                "ledger_events_appended_total",
                help: "Events appended to the log."
            )
        )
        self.appendLatency = registry.makeDurationHistogram(
            descriptor: .init("ledger_append_seconds", help: "Time from an append's request to its durable commit."),
            labels: [],
            buckets: [
                .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                .seconds(1),
            ]
        )
        self.pollAttempts = registry.makeCounters(
            .init("ledger_poll_attempts_total", help: "Order queries sent to the gateway, by what the reply said."),
            by: "outcome"
        )
        self.pending = registry.makeGauge(
            descriptor: .init(
                "ledger_orders_pending",
                help: "Orders the poller is watching."
            )
        )
        self.batchSizes = registry.makeValueHistogram(
            descriptor: .init("ledger_commit_batch_size", help: "Appends committed together in one transaction."),
            labels: [],
            buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
        )
        self.leader = registry.makeGauge(
            descriptor: .init(
                "ledger_poll_leader",
                help: "1 while this daemon polls the gateway, 0 while another daemon sharing the store does."
            )
        )
        self.quarantined = registry.makeCounters(
            .init("ledger_quarantined_total", help: "Notifications this daemon put in the quarantine, by reason."),
            by: "reason"
        )
        self.quarantineDrops = registry.makeCounter(
            descriptor: .init(
                "ledger_quarantine_drops_total",
                help: "Quarantine entries this daemon dropped to make room for newer ones."
            )
        )
        self.quarantineEntries = registry.makeGauge(
            descriptor: .init(
                "ledger_quarantine_entries",
                help: "Entries in the quarantine."
            )
        )
        self.quarantineBytes = registry.makeGauge(
            descriptor: .init(
                "ledger_quarantine_bytes",
                help: "Bytes the quarantine holds."
            )
        )
        self.quarantineDroppedStored = registry.makeGauge(
            descriptor: .init(
                "ledger_quarantine_dropped",
                help: "Quarantine entries dropped since the ledger began, by every daemon of the store."
            )
        )
        self.forwardedMalformed = registry.makeCounter(
            descriptor: .init(
                "ledger_http_forwarded_malformed_total",
                help: "Requests from a trusted proxy whose X-Forwarded-For did not parse; the proxy's address was "
                    + "used."
            )
        )
        self.storeUsed = registry.makeGauge(
            descriptor: .init(
                "ledger_store_used_bytes",
                help: "Bytes the store uses: LMDB's pages in use, or PostgreSQL's size of the ledger's tables."
            )
        )
        registry.makeGauge(
            descriptor: .init(
                "ledger_build_info",
                help: "Always 1; the labels name the release and the commit this daemon was built from."
            ),
            labels: [("version", BuildInfo.version), ("commit", BuildInfo.commit)]
        ).set(Int64(1))
        self.process = ProcessMetrics(registry: registry)
    }

    /// A notification kept in the quarantine by this daemon, and the entries dropped to make room for it.
    func notificationQuarantined(_ reason: QuarantineReason, dropped: Int) {
        self.quarantined[reason]?.increment()
        if dropped > 0 { self.quarantineDrops.increment(by: Int64(dropped)) }
    }

    /// What the store's quarantine holds, and has dropped since the ledger began (every daemon's, on a shared store).
    public func quarantineStatus(_ status: QuarantineStatus) {
        self.quarantineEntries.set(Int64(clamping: status.entries))
        self.quarantineBytes.set(Int64(clamping: status.bytes))
        self.quarantineDroppedStored.set(Int64(clamping: status.dropped))
    }

    /// How much of its room the store uses.
    public func storeSize(_ size: StoreSize) {
        self.storeUsed.set(Int64(clamping: size.usedBytes))
        if let map = size.mapBytes {
            self.registry.makeGauge(descriptor: Self.storeMapFamily).set(Int64(clamping: map))
        }
        if let mapMax = size.mapBytesMax {
            self.registry.makeGauge(descriptor: Self.storeMapMaxFamily).set(Int64(clamping: mapMax))
        }
    }

    func callbackRecorded(_ classification: CallbackClassification) { self.callbacks[classification]?.increment() }

    /// A body that is not a notification (`ledger_callbacks_rejected_total`), counted by cause as well.
    func notificationRejected(_ cause: RefusalCause) {
        self.rejected.increment()
        self.notificationRefused(cause)
    }

    func notificationRefused(_ cause: RefusalCause) { self.refused[cause]?.increment() }

    func forwardedForMalformed() { self.forwardedMalformed.increment() }

    /// One answered request: `route` is the router's pattern, never the request's path.
    func httpRequest(route: String, status: Int) {
        let key = RequestKey(route: route, status: status)
        let counter = self.requests.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = self.registry.makeCounter(
                descriptor: .init("ledger_http_requests_total", help: Self.requestsHelp),
                labels: [("route", route), ("status", String(status))]
            )
            counters[key] = counter
            return counter
        }
        counter.increment()
    }

    func recordAppend(events: Int, since start: ContinuousClock.Instant) {
        self.appends.increment(by: Int64(events))
        self.appendLatency.record(ContinuousClock.now - start)
    }

    func pollAttempt(_ classification: QueryClassification) { self.pollAttempts[classification]?.increment() }
    func pendingOrders(_ count: Int) { self.pending.set(Int64(count)) }
    /// 1 while this daemon polls (always, on an embedded store), 0 while another daemon leads.
    func pollLeader(_ leading: Bool) { self.leader.set(Int64(leading ? 1 : 0)) }

    /// A histogram of commit batch sizes, filled from the store's writer.
    public func commitBatchSizes(_ sizes: [Int]) {
        for size in sizes { self.batchSizes.record(Double(size)) }
    }

    /// The Prometheus text format of every metric, with the process figures read now.
    public func render() -> String {
        self.process.withFreshFigures {
            var buffer: [UInt8] = []
            self.registry.emit(into: &buffer)
            return String(decoding: buffer, as: UTF8.self)
        }
    }
}
