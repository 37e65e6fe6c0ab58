/// How many deliveries the forwarder may have in flight now (`forward.concurrencyUnderLoad`, `forward.yieldMaxMs`).
///
/// On the daemon's own cores one delivery costs about what receiving one callback costs (an HTTP request each way),
/// so a forwarder at full concurrency during a burst of callbacks takes a large share of the CPU the intake needs:
/// the durable callback rate fell to 0.6–0.74 of the rate without forwarding. While callbacks arrive, the forwarder
/// therefore keeps to `concurrencyUnderLoad` and lets the rest wait (in the outbox or the log, where nothing is
/// lost); when the burst ends, it delivers them at `concurrency`. A burst that lasts longer than `yieldMax` does not
/// hold outcomes back for ever: the forwarder then delivers everything waiting at `concurrency`, and yields again only
/// once nothing waits.
///
/// A value type on real time (the CPU is shared in real time, whatever the ledger's clock says), so its decisions are
/// a function of the instants it is given.
struct ForwardPacing {
    enum Phase: Equatable {
        /// No callback lately: full concurrency.
        case idle
        /// Callbacks arrive, since that instant: the forwarder yields.
        case yielding(since: ContinuousClock.Instant)
        /// Callbacks kept arriving for `yieldMax`: full concurrency until nothing waits.
        case catchingUp
    }

    let concurrency: Int
    let concurrencyUnderLoad: Int
    let yieldMax: Duration
    /// No append for this long ends the load (`forward.writeIntervalMs`, at least a millisecond).
    let quiet: Duration
    private(set) var phase = Phase.idle
    private var lastAppendAt: ContinuousClock.Instant?

    init(settings: ForwardSettings) {
        self.concurrency = settings.concurrency
        self.concurrencyUnderLoad = min(settings.concurrencyUnderLoad, settings.concurrency)
        self.yieldMax = settings.yieldMax
        self.quiet = max(settings.writeInterval, .milliseconds(1))
    }

    /// Something was appended at `now`.
    mutating func appended(at now: ContinuousClock.Instant) {
        self.lastAppendAt = now
        if self.phase == .idle, self.yieldMax > .zero { self.phase = .yielding(since: now) }
    }

    /// The deliveries that may be in flight at `now`; `waiting` tells whether any delivery waits for its first
    /// attempt.
    mutating func limit(at now: ContinuousClock.Instant, waiting: Bool) -> Int {
        guard let last = self.lastAppendAt, now - last < self.quiet else {
            self.phase = .idle
            return self.concurrency
        }
        switch self.phase {
        case .idle:
            return self.concurrency
        case .yielding(let since):
            guard now - since >= self.yieldMax else { return self.concurrencyUnderLoad }
            if waiting {
                self.phase = .catchingUp
            } else {
                self.phase = .yielding(since: now)
                return self.concurrencyUnderLoad
            }
            return self.concurrency
        case .catchingUp:
            if !waiting { self.phase = .yielding(since: now) }
            return self.concurrency
        }
    }
}
