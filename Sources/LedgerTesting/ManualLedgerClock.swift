public import LedgerCore
import Synchronization

/// A clock that moves only when told to, for tests.
public final class ManualLedgerClock: LedgerClock {
    private struct State {
        var now: Instant
        var sleepers: [(UInt64, Instant, CheckedContinuation<Void, any Error>)] = []
        var nextId: UInt64 = 0
    }

    private let state: Mutex<State>

    public init(start: Instant) {
        self.state = Mutex(State(now: start))
    }

    public func now() -> Instant { self.state.withLock { $0.now } }

    public func sleep(until deadline: Instant) async throws {
        let id = self.state.withLock { state -> UInt64 in
            state.nextId += 1
            return state.nextId
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = self.state.withLock { state -> Result<Void, any Error>? in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if state.now >= deadline { return .success(()) }
                    state.sleepers.append((id, deadline, continuation))
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let cancelled = self.state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let index = state.sleepers.firstIndex(where: { $0.0 == id }) else { return nil }
                return state.sleepers.remove(at: index).2
            }
            cancelled?.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock forward and wakes every sleeper whose deadline has come.
    public func advance(by milliseconds: Int64) {
        let woken = self.state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.now = state.now.adding(milliseconds: milliseconds)
            let now = state.now
            let due = state.sleepers.filter { $0.1 <= now }.map(\.2)
            state.sleepers.removeAll { $0.1 <= now }
            return due
        }
        for continuation in woken { continuation.resume() }
    }
}
