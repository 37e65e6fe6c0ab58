import HeapModule
public import LedgerCore
public import LedgerStore
public import Logging
public import ServiceLifecycle

/// Queries the gateway for every order still waiting for its payment: on a schedule derived from the log, with a
/// concurrency limit, recording every attempt as a query-result event.
public actor QueryPoller: Service {
    private struct Due: Comparable {
        var at: Instant
        var orderId: String
        var generation: UInt64

        static func < (lhs: Due, rhs: Due) -> Bool {
            lhs.at != rhs.at ? lhs.at < rhs.at : lhs.generation < rhs.generation
        }
    }

    private let ledger: Ledger
    private let gateway: any GatewayQuerying
    private let schedule: PollSchedule
    private let clock: any LedgerClock
    private let metrics: LedgerMetrics
    private let health: HealthState
    private let logger: Logger
    private var random: SplitMix64
    private var heap = Heap<Due>()
    /// The live entry of each scheduled order; heap entries of older generations are stale and skipped.
    private var scheduled: [String: (next: PollSchedule.Next, generation: UInt64)] = [:]
    private var inFlight: Set<String> = []
    /// The global bound on queries started per second (`poll.queriesPerSecondMax`), over scheduled and operator
    /// queries alike.
    private var rate: QueryRateLimit
    private var generation: UInt64 = 0
    private var wake: CheckedContinuation<Void, Never>?
    /// On a store several daemons share, the election that makes this daemon the one that polls, and how often it
    /// is tried; nil on an embedded store, where this daemon always polls.
    private let election: (store: any SharedEventStore, retry: Duration)?
    /// Whether this daemon polls now: always on an embedded store; on a shared one, while it leads.
    public private(set) var isLeading: Bool
    /// The leader's lease while leading on a shared store.
    private var lease: LeaderLease?

    public init(
        ledger: Ledger,
        gateway: any GatewayQuerying,
        settings: PollSettings,
        clock: any LedgerClock,
        seed: UInt64,
        metrics: LedgerMetrics,
        health: HealthState,
        election: (store: any SharedEventStore, retry: Duration)? = nil,
        logger: Logger
    ) {
        self.election = election
        self.isLeading = election == nil
        self.ledger = ledger
        self.gateway = gateway
        self.schedule = PollSchedule(settings: settings)
        self.rate = QueryRateLimit(perSecond: settings.queriesPerSecondMax)
        self.clock = clock
        self.random = SplitMix64(seed: seed)
        self.metrics = metrics
        self.health = health
        self.logger = logger
    }

    /// Orders scheduled, for `ledger.stats` and the pending-orders gauge.
    public var pendingCount: Int { self.scheduled.count }

    /// Schedules (or reschedules) an order from its state; called for new orders and after every attempt.
    public func track(_ state: OrderState) {
        guard self.schedule.settings.enabled else { return }
        // A standby daemon schedules nothing: the leader does, and a new leader loads every pending order.
        guard self.isLeading else { return }
        guard state.status == .created else {
            self.scheduled[state.orderId] = nil
            return
        }
        // A callback that changed nothing (a bad signature, say) must not move an attempt already planned.
        if let existing = self.scheduled[state.orderId], existing.next.attempt == state.queryAttempts + 1 { return }
        guard let next = self.schedule.next(for: state, random: &self.random) else {
            self.scheduled[state.orderId] = nil
            return
        }
        self.generation += 1
        self.scheduled[state.orderId] = (next, self.generation)
        self.heap.insert(Due(at: next.at, orderId: state.orderId, generation: self.generation))
        self.wake?.resume()
        self.wake = nil
    }

    /// Schedules or forgets each order, in the order given: the states appends produced, as the pump brings them.
    public func track(_ states: [OrderState]) {
        for state in states { self.track(state) }
    }

    /// Queries one order now, outside the schedule (`order.queryNow`), and records the attempt.
    public func queryNow(_ orderId: String) async throws -> (QueryResult, QueryClassification, OrderState) {
        guard self.schedule.settings.enabled else {
            throw LedgerError(
                .pollingOff,
                "Polling is off (poll.enabled false, ledgerd run --no-poll): the gateway is not queried."
            )
        }
        guard let state = try await self.ledger.order(orderId), state.order != nil else {
            throw LedgerError(.orderNotFound, "No order \(orderId).")
        }
        // An operator's query waits its turn under the global bound too, but is never refused.
        while true {
            let now = self.clock.now()
            let start = self.rate.nextStart(now: now)
            if start <= now { break }
            try await self.clock.sleep(until: start)
        }
        self.rate.record(self.clock.now())
        let result = await self.gateway.query(orderId: orderId, attempt: state.queryAttempts + 1, final: false)
        let (classification, after) = try await self.ledger.recordQueryResult(orderId: orderId, result)
        self.metrics.pollAttempt(classification)
        self.track(after)
        return (result, classification, after)
    }

    public func run() async throws {
        guard self.schedule.settings.enabled else {
            // Off: nothing is queried; the service only waits for the daemon to stop.
            self.metrics.pollLeader(false)
            self.health.pollerOff()
            try await gracefulShutdown()
            return
        }
        guard let election = self.election else {
            self.metrics.pollLeader(true)
            try await self.loadPending()
            try await withGracefulShutdownHandler {
                try await self.loop()
            } onGracefulShutdown: {
                Task { await self.stopWaiting() }
            }
            return
        }
        // Several daemons: poll only while leading. Shutdown cancels the wait for leadership, or the loop; losing
        // leadership cancels the loop (and the queries in flight), clears the schedule, and goes back to waiting.
        let health = self.health
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                // A standby is alive while it waits; the leader's loop beats by itself.
                group.addTask {
                    while !Task.isCancelled {
                        if await !self.isLeading { health.pollerAlive() }
                        try? await Task.sleep(for: .seconds(1))
                    }
                }
                await self.elect(election)
                group.cancelAll()
            }
        }
        self.standDown()
    }

    /// Waits for leadership and polls while leading, again and again, until cancelled.
    private func elect(_ election: (store: any SharedEventStore, retry: Duration)) async {
        while !Task.isCancelled {
            do {
                try await election.store.whileLeading(retryInterval: election.retry, standby: {}) { lease in
                    try await self.lead(lease)
                }
                return
            } catch is CancellationError {
                return
            } catch let lost as LeadershipLost {
                self.logger.warning("poll leadership lost; standing by", metadata: ["reason": "\(lost.reason)"])
                self.standDown()
            } catch {
                // Loading the pending orders failed, say, or the store is closing: stand by, then try again.
                self.logger.error(
                    "polling as the leader failed; standing by",
                    metadata: ["error": "\(String(reflecting: error))"]
                )
                self.standDown()
                try? await Task.sleep(for: election.retry)
            }
        }
    }

    /// Polls as the leader: loads every pending order, then runs the loop until cancelled; no new query starts while
    /// the lease is not current.
    private func lead(_ lease: LeaderLease) async throws {
        self.isLeading = true
        self.lease = lease
        self.metrics.pollLeader(true)
        try await self.loadPending()
        try await self.loop()
    }

    /// Forgets the schedule when another daemon may lead; queries in flight have finished (the loop waits for them).
    private func standDown() {
        self.lease = nil
        if self.isLeading {
            self.logger.info("poller standing by", metadata: ["poll.pending": "\(self.scheduled.count)"])
        }
        self.isLeading = false
        self.metrics.pollLeader(false)
        self.heap = Heap()
        self.scheduled = [:]
    }

    private var stopping = false

    private func stopWaiting() {
        self.stopping = true
        self.wake?.resume()
        self.wake = nil
    }

    /// Schedules every order still `created`, paging through the status index.
    private func loadPending() async throws {
        var after: String?
        var count = 0
        while true {
            let page = try await self.ledger.store.orders(
                status: .created,
                after: after,
                limit: StoreLimits.scanPageMax
            )
            for state in page { self.track(state) }
            count += page.count
            guard let last = page.last, page.count == StoreLimits.scanPageMax else { break }
            after = last.orderId
        }
        self.logger.info("poller resumed", metadata: ["poll.pending": "\(count)"])
    }

    private func loop() async throws {
        // A discarding group: finished queries leave nothing behind, however long the daemon runs.
        try await withThrowingDiscardingTaskGroup { group in
            while !Task.isCancelled && !self.stopping {
                self.health.pollerAlive()
                self.metrics.pendingOrders(self.scheduled.count + self.inFlight.count)
                let now = self.clock.now()
                // Start every due query the concurrency limit and the rate limit allow.
                while self.inFlight.count < self.schedule.settings.concurrency, self.lease?.isCurrent ?? true,
                    self.rate.nextStart(now: now) <= now, let due = self.popDue(now: now)
                {
                    self.rate.record(now)
                    group.addTask { await self.attempt(due) }
                }
                // Sleep until the next due time or the next heartbeat; a new order or a finished query wakes
                // the loop early.
                await self.sleep(until: self.nextWake(now: now))
            }
            group.cancelAll()
        }
    }

    /// The earliest of the next due time (or, when the rate limit holds it back, the next allowed start) and one
    /// second from now (the heartbeat).
    private func nextWake(now: Instant) -> Instant {
        let heartbeat = now.adding(milliseconds: 1000)
        guard self.inFlight.count < self.schedule.settings.concurrency, let first = self.peekDue() else {
            return heartbeat
        }
        return min(max(first.at, self.rate.nextStart(now: now)), heartbeat)
    }

    private func sleep(until deadline: Instant) async {
        if deadline <= self.clock.now() || self.stopping { return }
        let timer = Task { [clock = self.clock] in
            try await clock.sleep(until: deadline)
            self.wakeUp()
        }
        // The continuation is stored before this actor can run `wakeUp`, so no wake-up is lost; cancellation (losing
        // leadership, shutdown) wakes it, whether it comes before the continuation is stored or after.
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                if Task.isCancelled {
                    continuation.resume()
                } else {
                    self.wake = continuation
                }
            }
        } onCancel: {
            Task { await self.wakeUp() }
        }
        timer.cancel()
    }

    private func wakeUp() {
        self.wake?.resume()
        self.wake = nil
    }

    private func peekDue() -> Due? {
        while let top = self.heap.min {
            if let live = self.scheduled[top.orderId], live.generation == top.generation { return top }
            _ = self.heap.removeMin()
        }
        return nil
    }

    private func popDue(now: Instant) -> (orderId: String, next: PollSchedule.Next)? {
        guard let top = self.peekDue(), top.at <= now, let live = self.scheduled[top.orderId] else { return nil }
        _ = self.heap.removeMin()
        self.scheduled[top.orderId] = nil
        self.inFlight.insert(top.orderId)
        return (top.orderId, live.next)
    }

    private func attempt(_ due: (orderId: String, next: PollSchedule.Next)) async {
        let result = await self.gateway.query(orderId: due.orderId, attempt: due.next.attempt, final: due.next.final)
        do {
            let (classification, state) = try await self.ledger.recordQueryResult(orderId: due.orderId, result)
            self.metrics.pollAttempt(classification)
            self.finish(due.orderId, state: state)
        } catch {
            // Not recorded (store full, shutting down): try again later from the stored state.
            self.logger.error(
                "query result not recorded",
                metadata: ["order.id": "\(due.orderId)", "error": "\(String(reflecting: error))"]
            )
            if let state = try? await self.ledger.order(due.orderId) {
                self.finish(due.orderId, state: state)
            } else {
                self.inFlight.remove(due.orderId)
                self.wakeUp()
            }
        }
    }

    private func finish(_ orderId: String, state: OrderState) {
        self.inFlight.remove(orderId)
        self.track(state)
        self.wakeUp()
    }
}
