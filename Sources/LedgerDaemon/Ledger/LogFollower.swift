public import LedgerCore
public import LedgerStore
public import Logging
public import ServiceLifecycle

/// On a store several daemons share, what this daemon sees of the others: it publishes every event of the log to
/// the feed (`events.subscribe`) in sequence order, this daemon's and the others', and tells the poll leader of
/// orders the others changed.
///
/// This daemon's appends are published as soon as they commit when they follow the last event published; when
/// another daemon's events came between, the log is read from the last published event on, so the feed never skips
/// or reorders. The others' appends are read from the log every `interval`. The global sequence is gap-free and a
/// commit is visible before the next one takes its sequence numbers (the stores serialize appends), so reading
/// "after the last published" misses nothing.
public actor LogFollower: Service {
    private let store: any EventStore
    private let feed: EventFeed
    private let interval: Duration
    private let pageMax: Int
    private let logger: Logger
    /// The last sequence published to the feed; nil until `start` has read the head.
    private var published: UInt64?
    private var orderObserver: (@Sendable (OrderState) async -> Void)?
    private var wantsOrders: @Sendable () async -> Bool = { true }
    private var catchingUp = false
    private var catchUpAgain = false
    private var wake: CheckedContinuation<Void, Never>?
    /// A kick that came while the loop was not asleep: the next sleep returns at once.
    private var kicked = false
    /// Failed reads in a row, and when the last warning about them was logged.
    private var failures = 0
    private var lastWarning: ContinuousClock.Instant?

    public init(
        store: any EventStore,
        feed: EventFeed,
        interval: Duration,
        pageMax: Int = StoreLimits.scanPageMax,
        logger: Logger
    ) {
        self.store = store
        self.feed = feed
        self.interval = interval
        self.pageMax = pageMax
        self.logger = logger
    }

    /// Starts following at the current head: events before it are the backlog a subscriber reads from the store.
    public func start() async throws {
        if self.published == nil { self.published = try await self.store.head().sequence }
    }

    /// Sets who is told of orders other daemons changed, and whether it wants to be told now (a standby poller
    /// does not, which saves reading each order's state).
    public func observeOrders(
        _ observer: @escaping @Sendable (OrderState) async -> Void,
        when wanted: @escaping @Sendable () async -> Bool
    ) {
        self.orderObserver = observer
        self.wantsOrders = wanted
    }

    /// This daemon's append, just committed.
    public func publishLocal(_ events: [Event]) {
        guard let first = events.first, let last = events.last, let published = self.published else { return }
        if last.sequence <= published { return }  // already read from the log
        if first.sequence == published + 1 {
            self.feed.publish(events)
            self.published = last.sequence
        } else {
            // Another daemon's events came between: read them (and these) from the log, in order.
            if self.catchingUp { self.catchUpAgain = true } else { self.kick() }
        }
    }

    public func run() async throws {
        try await self.start()
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.catchUp()
                await self.sleep()
            }
        }
    }

    private func kick() {
        if let wake = self.wake {
            wake.resume()
            self.wake = nil
        } else {
            self.kicked = true
        }
    }

    private func sleep() async {
        if self.kicked {
            self.kicked = false
            return
        }
        let timer = Task { [interval = self.interval] in
            try await Task.sleep(for: interval)
            self.kick()
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                if Task.isCancelled || self.kicked { continuation.resume() } else { self.wake = continuation }
            }
        } onCancel: {
            Task { await self.kick() }
        }
        timer.cancel()
        self.kicked = false
    }

    /// Reads and publishes everything after the last published event, until the head.
    private func catchUp() async {
        guard !self.catchingUp else {
            self.catchUpAgain = true
            return
        }
        self.catchingUp = true
        defer { self.catchingUp = false }
        repeat {
            self.catchUpAgain = false
            do {
                while let published = self.published {
                    let page = try await self.store.readEvents(from: published + 1, limit: self.pageMax)
                    // The poll leader hears of the orders before the events count as followed: a read that fails
                    // here leaves them to be read again.
                    try await self.tellOrders(page)
                    // Local appends may have been published while the reads ran.
                    let fresh = page.drop { $0.sequence <= self.published ?? 0 }
                    guard let first = fresh.first, let last = fresh.last else {
                        if page.count < self.pageMax { break } else { continue }
                    }
                    guard first.sequence == (self.published ?? 0) + 1 else {
                        self.logger.error(
                            "the log skipped a sequence number; the feed waits for it",
                            metadata: ["event.seq": "\(first.sequence)", "feed.published": "\(self.published ?? 0)"]
                        )
                        break
                    }
                    self.feed.publish(Array(fresh))
                    self.published = last.sequence
                    if page.count < self.pageMax { break }
                }
                if self.failures > 0 {
                    self.logger.notice("following the log again", metadata: ["follow.failures": "\(self.failures)"])
                    self.failures = 0
                }
            } catch {
                // Once, then once a minute while it goes on: the follower retries every interval.
                self.failures += 1
                let now = ContinuousClock.now
                if self.failures == 1 || self.lastWarning.map({ now - $0 >= .seconds(60) }) ?? true {
                    self.lastWarning = now
                    self.logger.warning(
                        "following the log failed; trying again",
                        metadata: ["error": "\(String(reflecting: error))", "follow.failures": "\(self.failures)"]
                    )
                }
                return
            }
        } while self.catchUpAgain
    }

    /// Tells the observer of each order the events name, with its state now.
    private func tellOrders(_ events: [Event]) async throws {
        guard !events.isEmpty, let observer = self.orderObserver, await self.wantsOrders() else { return }
        var seen: Set<String> = []
        for event in events where seen.insert(event.orderId).inserted {
            guard let state = try await self.store.order(event.orderId) else { continue }
            await observer(state)
        }
    }
}
