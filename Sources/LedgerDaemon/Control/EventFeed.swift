public import LedgerCore
import Synchronization

/// Every event the ledger commits, fanned out to subscribers (`events.subscribe`). Each subscriber has a bounded
/// queue; one that falls behind is dropped with a reason instead of growing the daemon's memory.
public final class EventFeed: Sendable {
    /// What a subscriber receives: the events of one append.
    public typealias Item = [Event]

    private struct Subscribers {
        var next: UInt64 = 0
        var streams: [UInt64: AsyncStream<Item>.Continuation] = [:]
    }

    private let subscribers = Mutex(Subscribers())

    public init() {}

    /// A subscription whose queue holds at most `queueMax` appends. The stream ends when the subscriber falls
    /// that far behind: a reader that sees the end without having cancelled was dropped as too slow.
    public func subscribe(queueMax: Int) -> (id: UInt64, stream: AsyncStream<Item>) {
        let (stream, continuation) = AsyncStream<Item>.makeStream(bufferingPolicy: .bufferingOldest(queueMax))
        let id = self.subscribers.withLock { state in
            state.next += 1
            state.streams[state.next] = continuation
            return state.next
        }
        continuation.onTermination = { [weak self] _ in self?.unsubscribe(id) }
        return (id, stream)
    }

    public func unsubscribe(_ id: UInt64) {
        _ = self.subscribers.withLock { $0.streams.removeValue(forKey: id) }
    }

    public var subscriberCount: Int { self.subscribers.withLock { $0.streams.count } }

    /// Publishes committed events, in commit order; called by the ledger after every successful append.
    public func publish(_ events: [Event]) {
        guard !events.isEmpty else { return }
        let behind: [AsyncStream<Item>.Continuation] = self.subscribers.withLock { state in
            var behind: [AsyncStream<Item>.Continuation] = []
            for (id, continuation) in state.streams {
                switch continuation.yield(events) {
                case .enqueued, .terminated: continue
                case .dropped:
                    // The queue was full, so this append is lost to the subscriber: end its stream rather than let
                    // it go on with a gap. Its reader gets what was queued, then the end.
                    behind.append(continuation)
                    state.streams[id] = nil
                @unknown default:
                    behind.append(continuation)
                    state.streams[id] = nil
                }
            }
            return behind
        }
        // Outside the lock: finishing runs onTermination, which unsubscribes and so takes the lock again.
        for continuation in behind { continuation.finish() }
    }
}
