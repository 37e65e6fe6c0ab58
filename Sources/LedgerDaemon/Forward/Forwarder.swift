import HeapModule
public import LedgerCore
public import LedgerStore
public import Logging
public import ServiceLifecycle

/// Forwards every order outcome to the shop (issue 16): derives outcomes from committed events only (a cursor over
/// the log, stored with the outbox in the ledger's store), POSTs each to every receiver, signed, at least once, in
/// order per order, retried on `forward.schedule`, then dead.
///
/// One loop does the stored work in turn (load, record results, apply a replay, derive); deliveries run as child
/// tasks, at most `forward.concurrency` at once, and report back to the actor. A delivery's result is stored before
/// the next delivery of the same order starts, so a crash never lets a later outcome overtake an earlier one that was
/// not yet recorded as delivered.
public actor Forwarder: Service {
    /// The deliveries of one order to one receiver: they go one at a time, in log order.
    struct Slot: Hashable {
        var receiver: String
        var orderId: String
    }

    /// A slot whose first delivery may be due at `at`: an entry of `ready`, checked when it is taken (see `isReady`).
    struct Ready: Comparable {
        var at: Instant
        var key: ForwardKey
        var slot: Slot

        /// Earliest first, then in log order. Entries of one instant and sequence (two receivers, or two types of
        /// one event) may come in either order: each slot keeps its own order.
        static func < (lhs: Ready, rhs: Ready) -> Bool {
            lhs.at != rhs.at ? lhs.at < rhs.at : lhs.key.sequence < rhs.key.sequence
        }

        static func == (lhs: Ready, rhs: Ready) -> Bool {
            lhs.at == rhs.at && lhs.key.sequence == rhs.key.sequence
        }
    }

    private let store: any EventStore
    private let settings: ForwardSettings
    private let transport: any ForwardPosting
    private let clock: any LedgerClock
    private var random: SplitMix64
    private let metrics: ForwardMetrics
    private let logger: Logger
    /// Whether this daemon forwards now: always on an embedded store; on a shared one only while it is the poll
    /// leader, so one daemon forwards at a time.
    private let isLeading: @Sendable () async -> Bool
    private let receivers: [String: ForwardReceiver]

    /// Whether the stored state is in memory (this daemon forwards); false before the first load and while standing by.
    private var loaded = false
    private var position: UInt64 = 0
    /// Every delivery held, pending and dead, as stored (plus what `unsaved` holds).
    private var outbox: [ForwardKey: ForwardDelivery] = [:]
    private var deadCount = 0
    /// Pending deliveries to configured receivers not tried yet: how far derivation is ahead of delivery (bounded by
    /// `ForwardLimits.deriveAheadMax` while the forwarder yields).
    private var freshCount = 0
    /// Each slot's pending deliveries, in key (log) order; the first is the one that may go.
    private var queues: [Slot: [ForwardKey]] = [:]
    private var inFlight: Set<Slot> = []
    /// The slots whose first delivery may go, by when it is due. A slot is pushed whenever its first delivery or that
    /// delivery's time changes, or it stops waiting for a store write; an entry no longer true (another first
    /// delivery, another time, the slot in flight or waiting for a write) is dropped when it comes up. Taking the
    /// due deliveries is then a look at the top, not a pass over every slot, which cost a pass over the whole
    /// backlog (tens of thousands of slots behind a burst of callbacks) after every single delivery.
    private var ready = Heap<Ready>()
    /// Changes not yet stored: a delivery to keep, or nil to drop it. Later changes of a key replace earlier ones.
    private var unsaved: [ForwardKey: ForwardDelivery?] = [:]
    private var replays: [(from: UInt64, done: CheckedContinuation<Result<UInt64, StoreError>, Never>)] = []
    private var sleeper: CheckedContinuation<Void, Never>?
    private var woken = false
    private var stopping = false
    /// Slots whose last result is not stored yet: their next delivery waits for it, so a crash cannot leave an
    /// earlier outcome undelivered in the store while a later one of the same order was sent.
    private var unsavedSlots: Set<Slot> = []
    /// When the forwarder last wrote to the store, and whether an append woke it since it last derived.
    private var lastWriteAt: ContinuousClock.Instant?
    private var appendedSinceDerive = false
    private var oldestCheckedAt: ContinuousClock.Instant?
    private var oldestCached: Instant?
    /// How many deliveries may be in flight now: fewer while callbacks arrive (`forward.concurrencyUnderLoad`).
    private var pacing: ForwardPacing

    public init(
        store: any EventStore,
        settings: ForwardSettings,
        transport: any ForwardPosting,
        clock: any LedgerClock,
        seed: UInt64,
        metrics: LedgerMetrics,
        isLeading: @escaping @Sendable () async -> Bool = { true },
        logger: Logger
    ) {
        self.store = store
        self.settings = settings
        self.transport = transport
        self.clock = clock
        self.random = SplitMix64(seed: seed)
        self.pacing = ForwardPacing(settings: settings)
        self.metrics = ForwardMetrics(metrics: metrics)
        self.isLeading = isLeading
        self.logger = logger
        var receivers: [String: ForwardReceiver] = [:]
        for receiver in settings.receivers { receivers[receiver.url] = receiver }
        self.receivers = receivers
    }

    public nonisolated var enabled: Bool { self.settings.enabled }

    /// Something was appended: derive now (or at the next write turn) instead of at the next poll.
    public func wake() {
        self.appendedSinceDerive = true
        self.pacing.appended(at: ContinuousClock.now)
        self.wakeUp()
    }

    public func run() async throws {
        guard self.settings.enabled else {
            // Nothing configured: nothing runs; the service only waits for the daemon to stop.
            try await gracefulShutdown()
            return
        }
        await withGracefulShutdownHandler {
            await self.loop()
        } onGracefulShutdown: {
            Task { await self.stop() }
        }
        // What finished during the drain is stored before the store closes (the store service stops after this one).
        do {
            try await self.flush()
        } catch {
            self.logger.error("forward results not stored at shutdown", metadata: ["error": "\(error)"])
        }
        for replay in self.replays {
            replay.done.resume(returning: .failure(StoreError(.closed, "The daemon is stopping.")))
        }
        self.replays = []
    }

    private func stop() {
        self.stopping = true
        self.wakeUp()
    }

    private func loop() async {
        // A discarding group: finished deliveries leave nothing behind; at the end it waits for those in flight,
        // each bounded by `forward.timeoutMs`.
        await withDiscardingTaskGroup { group in
            while !self.stopping && !Task.isCancelled {
                guard await self.isLeading() else {
                    if self.loaded { self.standDown() }
                    await self.sleep(
                        until: self.clock.now().adding(
                            milliseconds: PollSchedule.milliseconds(self.settings.pollInterval)
                        )
                    )
                    continue
                }
                // The store is written at most once per `forward.writeIntervalMs`: each write is a commit (a sync)
                // on the store's one writer, which the ledger's own appends share. Between writes, deliveries still
                // start; only those behind an unstored result wait.
                // What waits is the fresh deliveries: those to receivers no longer configured never go, and failed
                // ones wait for their retry, so neither may hold the forwarder at full concurrency.
                let limit = self.pacing.limit(at: ContinuousClock.now, waiting: self.freshCount > 0)
                let writeDue = self.lastWriteAt.map { ContinuousClock.now - $0 >= self.settings.writeInterval } ?? true
                if writeDue || !self.loaded {
                    do {
                        if !self.loaded { try await self.load() }
                        try await self.flush()
                        try await self.applyReplays()
                        // While the forwarder yields to a burst of callbacks, so does deriving (and encoding and
                        // storing) the burst's outcomes far ahead of their delivery.
                        try await self.derive(
                            aheadMax: limit < self.settings.concurrency ? ForwardLimits.deriveAheadMax : .max
                        )
                        self.lastWriteAt = ContinuousClock.now
                    } catch {
                        self.logger.error(
                            "forwarding paused by a store error; trying again",
                            metadata: ["error": "\(error)"]
                        )
                        await self.sleep(
                            until: self.clock.now().adding(
                                milliseconds: PollSchedule.milliseconds(self.settings.pollInterval)
                            )
                        )
                        continue
                    }
                }
                for (delivery, receiver) in self.takeDue(limit: limit) {
                    group.addTask { await self.attempt(delivery, to: receiver) }
                }
                self.recordMetrics()
                // Work waiting for the store wakes the loop when the next write is due, whatever the ledger's clock.
                var writeIn: Duration?
                if !self.unsaved.isEmpty || !self.replays.isEmpty || self.appendedSinceDerive,
                    let last = self.lastWriteAt
                {
                    writeIn = max(.zero, self.settings.writeInterval - (ContinuousClock.now - last))
                }
                await self.sleep(until: self.nextWake(limit: limit), orAfter: writeIn)
            }
        }
    }

    // MARK: Stored state

    /// Reads the position and the outbox (bounded by `forward.outboxMax`) from the store.
    private func load() async throws {
        let position = try await self.store.forwardPosition()
        var outbox: [ForwardKey: ForwardDelivery] = [:]
        var after: ForwardKey?
        while true {
            let page = try await self.store.forwardOutbox(after: after, limit: StoreLimits.scanPageMax)
            for delivery in page { outbox[delivery.key] = delivery }
            guard let last = page.last, page.count == StoreLimits.scanPageMax else { break }
            after = last.key
        }
        self.position = position
        self.outbox = [:]
        self.queues = [:]
        self.ready = Heap()
        self.deadCount = 0
        self.freshCount = 0
        for delivery in outbox.values.sorted(by: { $0.key < $1.key }) { self.hold(delivery) }
        self.loaded = true
        self.logger.info(
            "forwarder resumed",
            metadata: ["forward.position": "\(position)", "forward.pending": "\(outbox.count - self.deadCount)"]
        )
    }

    /// Forgets the in-memory state when another daemon may forward; it reloads from the store when leading again.
    private func standDown() {
        self.loaded = false
        self.outbox = [:]
        self.queues = [:]
        self.ready = Heap()
        self.unsaved = [:]
        self.unsavedSlots = []
        self.deadCount = 0
        self.freshCount = 0
        self.logger.info("forwarder standing by")
    }

    /// Keeps a delivery in memory (pending ones also in their slot's queue, in key order).
    private func hold(_ delivery: ForwardDelivery) {
        let key = delivery.key
        if let old = self.outbox[key] {
            self.count(old, by: -1)
            self.release(key, orderId: old.event.orderId)
        }
        self.outbox[key] = delivery
        self.count(delivery, by: 1)
        if delivery.dead { return }
        let slot = Slot(receiver: delivery.receiver, orderId: delivery.event.orderId)
        var queue = self.queues[slot] ?? []
        let index = queue.firstIndex(where: { key < $0 }) ?? queue.count
        queue.insert(key, at: index)
        self.queues[slot] = queue
        if index == 0 { self.ready.insert(Ready(at: delivery.nextAttemptAt, key: key, slot: slot)) }
    }

    private func release(_ key: ForwardKey, orderId: String) {
        let slot = Slot(receiver: key.receiver, orderId: orderId)
        guard var queue = self.queues[slot], let index = queue.firstIndex(of: key) else { return }
        queue.remove(at: index)
        self.queues[slot] = queue.isEmpty ? nil : queue
        if index == 0 { self.pushFirst(of: slot) }
    }

    /// Puts the slot's first delivery, if it has one, among the ready ones.
    private func pushFirst(of slot: Slot) {
        guard let key = self.queues[slot]?.first, let delivery = self.outbox[key] else { return }
        self.ready.insert(Ready(at: delivery.nextAttemptAt, key: key, slot: slot))
    }

    /// Whether a ready entry still stands: it is its slot's first delivery, at that time, and the slot may start
    /// (not in flight, no result waiting for a write, its receiver configured).
    private func isReady(_ entry: Ready) -> Bool {
        guard self.queues[entry.slot]?.first == entry.key, let delivery = self.outbox[entry.key] else { return false }
        return delivery.nextAttemptAt == entry.at && !self.inFlight.contains(entry.slot)
            && !self.unsavedSlots.contains(entry.slot) && self.receivers[entry.slot.receiver] != nil
    }

    private func drop(_ key: ForwardKey) {
        guard let old = self.outbox.removeValue(forKey: key) else { return }
        self.count(old, by: -1)
        self.release(key, orderId: old.event.orderId)
    }

    /// Keeps the dead and fresh counts as a held delivery comes (`change` 1) or goes (-1). Deliveries to a receiver no
    /// longer configured wait for ever; counted as fresh, enough of them would stop derivation for the others.
    private func count(_ delivery: ForwardDelivery, by change: Int) {
        if delivery.dead {
            self.deadCount += change
        } else if delivery.attempts == 0, self.receivers[delivery.receiver] != nil {
            self.freshCount += change
        }
    }

    /// Stores the results recorded since the last write, in one write.
    private func flush(position: UInt64? = nil, adding: [ForwardDelivery] = []) async throws {
        let taken = self.unsaved
        guard !taken.isEmpty || position != nil || !adding.isEmpty else { return }
        self.unsaved = [:]
        var write = ForwardWrite(position: position, put: adding)
        for (key, delivery) in taken {
            if let delivery { write.put.append(delivery) } else { write.remove.append(key) }
        }
        let slots = self.unsavedSlots
        self.unsavedSlots = []
        do {
            try await self.store.forwardWrite(write)
        } catch {
            self.unsavedSlots.formUnion(slots)
            // Nothing of it was stored: the results wait for the next write (newer ones, recorded meanwhile, win).
            self.unsaved.merge(taken) { newer, _ in newer }
            throw error
        }
        // Their results are stored: each slot's next delivery may go.
        for slot in slots { self.pushFirst(of: slot) }
    }

    /// Reads committed events after the position and derives their outcomes into the outbox, with the new position
    /// in the same write. Stops while the outbox is full, or while `aheadMax` deliveries wait for their first attempt:
    /// the rest waits in the log.
    ///
    /// A turn reads up to `ForwardLimits.deriveChunksPerTurn` chunks and stores what they gave in one write: each
    /// write is a commit with a sync, so a write per chunk made a long history (a ledger on which forwarding is
    /// newly enabled, where most orders never paid) take a sync per 256 events.
    private func derive(aheadMax: Int) async throws {
        self.appendedSinceDerive = false
        var position = self.position
        var adding: [ForwardDelivery] = []
        var more = false
        for _ in 0..<ForwardLimits.deriveChunksPerTurn {
            guard self.outbox.count + adding.count < self.settings.outboxMax,
                self.freshCount + adding.count < aheadMax
            else {
                // Full, or far enough ahead: the rest waits in the log until deliveries finish, which wakes the loop.
                more = false
                break
            }
            let from = position + 1
            let events = try await self.store.readEvents(from: from, limit: ForwardLimits.deriveChunkEvents)
            guard let last = events.last else { break }
            var orderIds: [String] = []
            var seen: Set<String> = []
            for event in events where seen.insert(event.orderId).inserted { orderIds.append(event.orderId) }
            var outcomes: [ForwardEvent] = []
            for orderId in orderIds {
                // Most orders in a busy log are still only created: their events need not be read.
                guard let state = try await self.store.order(orderId), ForwardDerivation.mayHaveOutcomes(state) else {
                    continue
                }
                let orderEvents = try await self.store.events(forOrder: orderId)
                outcomes += ForwardDerivation.outcomes(orderId: orderId, events: orderEvents, in: from...last.sequence)
            }
            outcomes.sort { ($0.sequence, $0.type.tag) < ($1.sequence, $1.type.tag) }
            let firstAttempt = self.clock.now().adding(milliseconds: self.settings.schedule.delaysMilliseconds[0])
            for receiver in self.settings.receivers {
                for outcome in outcomes {
                    let delivery = ForwardDelivery(receiver: receiver.url, event: outcome, nextAttemptAt: firstAttempt)
                    // A replay over an outcome still held keeps the held delivery and its attempts.
                    if self.outbox[delivery.key] == nil { adding.append(delivery) }
                }
            }
            position = last.sequence
            more = events.count == ForwardLimits.deriveChunkEvents
            if !more { break }
        }
        guard position != self.position else { return }
        try await self.flush(position: position, adding: adding)
        self.position = position
        for delivery in adding { self.hold(delivery) }
        // More is waiting: the loop derives again as soon as the next write is due, as after an append. (Only waking
        // it let it sleep until the poll interval, a second for every 2,048 events of a long history.)
        if more {
            self.appendedSinceDerive = true
            self.woken = true
        }
    }

    private func applyReplays() async throws {
        guard !self.replays.isEmpty else { return }
        let requests = self.replays
        self.replays = []
        let head = try await self.store.head()
        for request in requests {
            guard request.from >= 1, request.from <= head.sequence + 1 else {
                request.done.resume(
                    returning: .failure(
                        StoreError(
                            .invalidArgument,
                            "from must be 1 to \(head.sequence + 1) (the log's head is \(head.sequence))."
                        )
                    )
                )
                continue
            }
            do {
                try await self.flush(position: request.from - 1)
                self.position = request.from - 1
                request.done.resume(returning: .success(self.position))
            } catch {
                request.done.resume(returning: .failure(StoreError(.io, "The replay was not stored: \(error)")))
            }
        }
    }

    // MARK: Delivering

    /// The deliveries that may start now: the first of each slot not in flight whose time has come, within `limit`
    /// in flight. Slots of receivers no longer configured wait (and show in `forward.status`).
    private func takeDue(limit: Int) -> [(ForwardDelivery, ForwardReceiver)] {
        let now = self.clock.now()
        var due: [(ForwardDelivery, ForwardReceiver)] = []
        while self.inFlight.count < limit, let first = self.ready.min, first.at <= now {
            self.ready.removeMin()
            guard self.isReady(first), let delivery = self.outbox[first.key],
                let receiver = self.receivers[first.slot.receiver]
            else { continue }
            self.inFlight.insert(first.slot)
            due.append((delivery, receiver))
        }
        return due
    }

    private func attempt(_ delivery: ForwardDelivery, to receiver: ForwardReceiver) async {
        let result = await self.transport.post(delivery.event, to: receiver, at: self.clock.now())
        self.finish(delivery, result)
    }

    private func finish(_ sent: ForwardDelivery, _ result: ForwardAttemptResult) {
        let slot = Slot(receiver: sent.receiver, orderId: sent.event.orderId)
        self.inFlight.remove(slot)
        defer { self.wakeUp() }
        // Gone while in flight: leadership was lost, and the new leader sends it again from the store. If this
        // daemon leads again and has loaded the outbox meanwhile, the slot's next delivery lost its heap entry while
        // this one was in flight: it is pushed again, or it would wait until the next reload (a second entry for a
        // slot does no harm; the one not ready is dropped).
        guard self.loaded, var delivery = self.outbox[sent.key] else {
            if self.loaded { self.pushFirst(of: slot) }
            return
        }
        self.unsavedSlots.insert(slot)
        let now = self.clock.now()
        switch result {
        case .delivered:
            self.drop(sent.key)
            self.unsaved[sent.key] = .some(nil)
            self.metrics.attempt(.delivered)
        case .failed(let reason):
            delivery.attempts += 1
            delivery.lastAttemptAt = now
            delivery.lastError = reason
            if let next = self.settings.schedule.nextAttempt(
                afterFailed: delivery.attempts,
                failedAt: now,
                random: &self.random
            ) {
                delivery.nextAttemptAt = next
                self.metrics.attempt(.failed)
            } else {
                delivery.dead = true
                self.metrics.attempt(.dead)
                self.logger.warning(
                    "forward delivery dead after its last attempt",
                    metadata: [
                        "order.id": "\(delivery.event.orderId)", "forward.event": "\(delivery.event.id)",
                        "forward.receiver": "\(delivery.receiver)", "error": "\(reason)",
                    ]
                )
            }
            self.hold(delivery)
            self.unsaved[sent.key] = delivery
        }
    }

    private func nextWake(limit: Int) -> Instant {
        let poll = self.clock.now().adding(milliseconds: PollSchedule.milliseconds(self.settings.pollInterval))
        // At the limit, a delivery that finishes wakes the loop.
        guard self.inFlight.count < limit else { return poll }
        // Entries no longer true are dropped here, so the loop does not wake for them.
        while let first = self.ready.min, !self.isReady(first) { self.ready.removeMin() }
        return self.ready.min.map { min($0.at, poll) } ?? poll
    }

    /// Sleeps until `deadline` on the ledger's clock, or `orAfter` of real time, or a wake-up, whichever is first.
    private func sleep(until deadline: Instant, orAfter realDelay: Duration? = nil) async {
        if self.woken || self.stopping || deadline <= self.clock.now() || realDelay == .zero {
            self.woken = false
            return
        }
        let timer = Task { [clock = self.clock] in
            try await clock.sleep(until: deadline)
            self.wakeUp()
        }
        let realTimer = realDelay.map { delay in
            Task {
                try await Task.sleep(for: delay)
                self.wakeUp()
            }
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                if Task.isCancelled {
                    continuation.resume()
                } else {
                    self.sleeper = continuation
                }
            }
        } onCancel: {
            Task { await self.wakeUp() }
        }
        self.woken = false
        timer.cancel()
        realTimer?.cancel()
    }

    private func wakeUp() {
        if let sleeper = self.sleeper {
            self.sleeper = nil
            sleeper.resume()
        } else {
            self.woken = true
        }
    }

    private func recordMetrics() {
        let now = self.clock.now()
        // The counts are kept as deliveries change; the oldest pending one takes a pass over the slots, so it is
        // looked for at most once a second of real time however often the loop turns.
        let tick = ContinuousClock.now
        if self.oldestCheckedAt.map({ tick - $0 >= .seconds(1) }) ?? true {
            self.oldestCheckedAt = tick
            self.oldestCached = self.oldestPending()
        }
        let age =
            self.oldestCached.map { Double(max(0, now.millisecondsSinceEpoch - $0.millisecondsSinceEpoch)) / 1000 } ?? 0
        let pending = self.outbox.count - self.deadCount
        self.metrics.outbox(
            pending: pending,
            dead: self.deadCount,
            oldestAgeSeconds: pending == 0 ? 0 : age,
            position: self.position
        )
    }

    private func oldestPending() -> Instant? {
        var oldest: Instant?
        for keys in self.queues.values {
            if let key = keys.first, let created = self.outbox[key]?.event.createdAt,
                oldest.map({ created < $0 }) ?? true
            {
                oldest = created
            }
        }
        return oldest
    }

    // MARK: Operating

    /// What `forward.status` shows.
    public struct Status: Sendable {
        public var enabled: Bool
        /// Whether this daemon forwards now (false on a standby daemon of a shared store).
        public var active: Bool
        public var position: UInt64
        public var pending: Int
        public var dead: Int
        public var oldestPendingAt: Instant?
        public var receivers: [String]
        /// Pending deliveries that failed at least once, and dead ones, oldest first, at most `limit` each.
        public var failing: [ForwardDelivery]
        public var deadDeliveries: [ForwardDelivery]
    }

    public func status(limit: Int) -> Status {
        // Only the failing and dead deliveries are sorted, not the whole outbox: behind a burst it holds tens of
        // thousands of fresh ones, and a client polling the status every fraction of a second sorted them each time.
        func oldestFirst(_ deliveries: [ForwardDelivery]) -> [ForwardDelivery] {
            let sorted = deliveries.sorted {
                $0.key.sequence != $1.key.sequence ? $0.key.sequence < $1.key.sequence : $0.key < $1.key
            }
            return Array(sorted.prefix(limit))
        }
        return Status(
            enabled: self.settings.enabled,
            active: self.loaded,
            position: self.position,
            pending: self.outbox.count - self.deadCount,
            dead: self.deadCount,
            oldestPendingAt: self.oldestPending(),
            receivers: self.settings.receivers.map(\.url),
            failing: oldestFirst(self.outbox.values.filter { !$0.dead && $0.attempts > 0 }),
            deadDeliveries: oldestFirst(self.outbox.values.filter(\.dead))
        )
    }

    /// Why an operator's request cannot be done now.
    public struct Unavailable: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    private func checkActive() throws(Unavailable) {
        guard self.settings.enabled else {
            throw Unavailable(description: "Forwarding is not configured (forward.url); nothing is forwarded.")
        }
        guard self.loaded else {
            throw Unavailable(description: "This daemon does not forward now: the poll leader does. Ask the leader.")
        }
    }

    /// Makes dead deliveries pending again, from a first attempt now: those of `orderId`, or every dead one. Returns
    /// how many.
    public func retry(orderId: String?) throws(Unavailable) -> Int {
        try self.checkActive()
        let now = self.clock.now()
        let chosen = self.outbox.values.filter { $0.dead && (orderId == nil || $0.event.orderId == orderId) }
        for var delivery in chosen {
            delivery.dead = false
            delivery.attempts = 0
            delivery.nextAttemptAt = now
            self.hold(delivery)
            self.unsaved[delivery.key] = delivery
        }
        if !chosen.isEmpty { self.wakeUp() }
        return chosen.count
    }

    /// Derives again from sequence `from`: every outcome of the events from there is delivered again (with its
    /// same id), except those still held, which keep their place. Returns the new position (`from - 1`).
    public func replay(from: UInt64) async throws -> UInt64 {
        try self.checkActive()
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<UInt64, StoreError>, Never>) in
            self.replays.append((from, continuation))
            self.wakeUp()
        }
        return try result.get()
    }
}
