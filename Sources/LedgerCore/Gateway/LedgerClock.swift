/// Where the daemon's time comes from. Injected so the poller's schedule and the recorded times are testable
/// with a manual clock.
public protocol LedgerClock: Sendable {
    /// The current time.
    func now() -> Instant
    /// Sleeps until `deadline` or until cancelled.
    func sleep(until deadline: Instant) async throws
}
