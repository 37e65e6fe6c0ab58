public import LedgerCore
public import LedgerStore
public import Logging
import Synchronization

/// Hands this daemon's commits to the feed (`events.subscribe`) and to the order observer (the poller, the
/// forwarder) in log order, without making the appender wait for either.
///
/// Appends finish on whatever thread the store resumes them on, so two appends of one group commit can reach
/// `committed` in either order. The publisher holds an early one until the commits before it have come, then delivers
/// them in sequence order, under its lock, so no two deliveries interleave. Every append the ledger makes passes
/// through `committed` once it commits (creations, callbacks and query results; nothing else appends events), and
/// the store's sequence is gap-free, so nothing waits for long.
///
/// On a store several daemons share, this daemon's sequences have the others' between them: the `LogFollower` orders
/// the feed there, and states go to the observer as they come.
public final class CommitPublisher: Sendable {
    /// What an observer of order states is given: the states of the orders one or more appends changed, in log order.
    public typealias Observer = @Sendable ([OrderState]) -> Void

    private struct Held {
        var appended: Appended
        var observed: Bool
    }

    private struct State {
        /// The last sequence delivered; nil until `start(after:)`, and for a shared store, where order is not kept here.
        var delivered: UInt64?
        /// Commits that came before an earlier one, by their first sequence.
        var held: [UInt64: Held] = [:]
        var observer: Observer?
    }

    /// Commits held waiting for an earlier one, by default. More than that means an append was never passed to
    /// `committed`: a bug, logged, after which the held commits are delivered in order anyway rather than stall the
    /// feed. No correct run comes near it: an early commit waits only for the others of its group commit
    /// (`store.batchCountMax`) and, for an order creation or a query result, the hop back onto the ledger actor.
    public static let heldMaxDefault = 65_536

    /// The bound for a store that admits `queueDepthMax` waiting appends and commits up to `batchCountMax` at once:
    /// every one of them may commit while one append still waits for its hop back, so the bound covers them all,
    /// and a correct run with a deep queue is never taken for the bug the bound is there to catch.
    public static func heldMax(queueDepthMax: Int, batchCountMax: Int) -> Int {
        max(Self.heldMaxDefault, queueDepthMax + batchCountMax)
    }

    private let state = Mutex(State())
    private let feed: EventFeed
    private let heldMax: Int
    private let logger: Logger

    public init(feed: EventFeed, heldMax: Int = CommitPublisher.heldMaxDefault, logger: Logger) {
        self.feed = feed
        self.heldMax = heldMax
        self.logger = logger
    }

    /// Orders deliveries from the event after `head` on. Called before anything can append.
    public func start(after head: UInt64) {
        self.state.withLock { $0.delivered = head }
    }

    /// Sets who is told of the order states each append produced.
    public func observe(_ observer: @escaping Observer) {
        self.state.withLock { $0.observer = observer }
    }

    /// Tells the observer of states outside any commit this publisher orders (a shared store's appends).
    public func tell(_ states: [OrderState]) {
        guard !states.isEmpty, let observer = self.state.withLock({ $0.observer }) else { return }
        observer(states)
    }

    /// One append of this daemon's, just committed. `observed` says whether the observer hears of its orders (a query
    /// result's order is rescheduled by the poller that recorded it).
    public func committed(_ appended: Appended, observed: Bool) {
        guard let first = appended.events.first?.sequence else { return }
        self.state.withLock { state in
            guard let delivered = state.delivered else {
                // Not started: there is nothing to order against (a ledger used without its daemon, in tests).
                self.deliver(appended, observed: observed, to: state.observer)
                return
            }
            if first <= delivered {
                // Committed before `start(after:)` read the head, or passed by a flush across a gap: late, and
                // nothing after it waits for it. Subscribers skip what they have already been sent.
                self.deliver(appended, observed: observed, to: state.observer)
                return
            }
            if first != delivered + 1 {
                state.held[first] = Held(appended: appended, observed: observed)
                if state.held.count > self.heldMax { self.flush(&state) }
                return
            }
            self.deliver(appended, observed: observed, to: state.observer)
            var next = (appended.events.last?.sequence ?? first) + 1
            while let held = state.held.removeValue(forKey: next) {
                self.deliver(held.appended, observed: held.observed, to: state.observer)
                next = (held.appended.events.last?.sequence ?? next) + 1
            }
            state.delivered = next - 1
        }
    }

    private func deliver(_ appended: Appended, observed: Bool, to observer: Observer?) {
        self.feed.publish(appended.events)
        if observed, let observer, !appended.orders.isEmpty { observer(Array(appended.orders.values)) }
    }

    /// Delivers every held commit in sequence order, across the gap that should not exist.
    private func flush(_ state: inout State) {
        let gapAfter = state.delivered ?? 0
        self.logger.error(
            "commits waited for one that never came; delivering them in order across the gap",
            metadata: ["commits.held": "\(state.held.count)", "gap.after": "\(gapAfter)"]
        )
        for first in state.held.keys.sorted() {
            guard let held = state.held.removeValue(forKey: first) else { continue }
            self.deliver(held.appended, observed: held.observed, to: state.observer)
            state.delivered = held.appended.events.last?.sequence ?? first
        }
    }
}
