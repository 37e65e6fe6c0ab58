public import LedgerCore
public import ServiceLifecycle
import Synchronization

/// The order states appends produced, on their way from the appending threads to the poller and the forwarder.
///
/// Appenders add without waiting (a lock and an array append); one consumer takes everything that came since it
/// last looked, in the order it was added, so under load one hop to the poller carries many states. It has no bound
/// of its own and refuses nothing: an append that committed must reach the poller. What it holds is what commits
/// produced while the pump handled the previous batch and let the next gather (`OrderStatePump.gatherInterval`):
/// at the writer's pace, a few milliseconds of commits, each state a dictionary update for the poller.
public final class OrderStateInbox: Sendable {
    private struct State {
        var states: [OrderState] = []
        var waiter: CheckedContinuation<[OrderState]?, Never>?
        var finished = false
    }

    private let state = Mutex(State())

    public init() {}

    /// Adds states; ignored once the inbox is finished.
    public func add(_ states: [OrderState]) {
        let waiter: CheckedContinuation<[OrderState]?, Never>? = self.state.withLock { state in
            guard !state.finished else { return nil }
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.states.append(contentsOf: states)
            return nil
        }
        waiter?.resume(returning: states)
    }

    /// Everything added since the last call, waiting until something is; nil once finished and empty.
    public func take() async -> [OrderState]? {
        await withCheckedContinuation { (continuation: CheckedContinuation<[OrderState]?, Never>) in
            let ready: [OrderState]?? = self.state.withLock { state in
                if !state.states.isEmpty {
                    defer { state.states = [] }
                    return .some(state.states)
                }
                if state.finished { return .some(nil) }
                state.waiter = continuation
                return .none
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Ends the inbox: a waiting `take` returns nil, and later adds are dropped.
    public func finish() {
        let waiter = self.state.withLock { state in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }
}

/// Carries the order states appends produced from the inbox to the poller (which schedules or forgets each order)
/// and wakes the forwarder, off the path of the requests that appended them.
public struct OrderStatePump: Service {
    let inbox: OrderStateInbox
    let poller: QueryPoller?
    let forwarder: Forwarder?

    public init(inbox: OrderStateInbox, poller: QueryPoller?, forwarder: Forwarder?) {
        self.inbox = inbox
        self.poller = poller
        self.forwarder = forwarder
    }

    /// How long the pump lets states gather after each batch. Waking it costs a thread switch; under a burst of
    /// callbacks, waking it for each one cost about 2.5% of the daemon's CPU. Neither the poller (which queries
    /// orders seconds later) nor the forwarder notices a few milliseconds.
    static let gatherInterval: Duration = .milliseconds(5)

    public func run() async throws {
        let inbox = self.inbox
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                while let states = await inbox.take() {
                    await self.poller?.track(states)
                    await self.forwarder?.wake()
                    // Cancelled (the daemon stops): the next take returns what is left, then nil.
                    try? await Task.sleep(for: Self.gatherInterval)
                }
            } onCancel: {
                inbox.finish()
            }
        } onGracefulShutdown: {
            inbox.finish()
        }
    }
}
