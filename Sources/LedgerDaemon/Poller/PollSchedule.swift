public import LedgerCore

/// When to query an order next, derived from its projected state only, so the schedule after a restart is the
/// schedule before it: no burst, no forgotten order.
public struct PollSchedule: Sendable {
    public struct Next: Sendable, Hashable {
        public var at: Instant
        /// The last attempt before the deadline: unless it shows the order paid, the order expires.
        public var final: Bool
        public var attempt: UInt32

        public init(at: Instant, final: Bool, attempt: UInt32) {
            self.at = at
            self.final = final
            self.attempt = attempt
        }
    }

    public let settings: PollSettings

    public init(settings: PollSettings) {
        self.settings = settings
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }

    /// The next attempt for an order, or nil when it needs none (paid, expired, or not ours).
    ///
    /// The first attempt comes `firstDelay` after creation; then exponential backoff with full jitter (a uniform
    /// delay between zero and `min(cap, base × 2^(n-1))` after the last attempt), so a crowd of orders created
    /// together does not query in lockstep; the deadline is never passed: the attempt due at or after it is the
    /// final one, made at the deadline.
    public func next(for state: OrderState, random: inout some RandomNumberGenerator) -> Next? {
        guard state.status == .created, let order = state.order else { return nil }
        let deadline = order.createdAt.adding(milliseconds: Self.milliseconds(self.settings.deadline))
        let attempt = state.queryAttempts + 1
        var at: Instant
        if state.queryAttempts == 0 {
            at = order.createdAt.adding(milliseconds: Self.milliseconds(self.settings.firstDelay))
        } else {
            let base = Self.milliseconds(self.settings.backoffBase)
            let cap = Self.milliseconds(self.settings.backoffCap)
            let exponent = min(Int64(state.queryAttempts - 1), 40)
            let ceiling =
                exponent >= 40
                ? cap : min(cap, base.multipliedReportingOverflow(by: 1 << exponent).overflow ? cap : base << exponent)
            let delay = Int64.random(in: 0...max(ceiling, 0), using: &random)
            at = (state.lastQueryAt ?? order.createdAt).adding(milliseconds: delay)
        }
        if at >= deadline { return Next(at: deadline, final: true, attempt: attempt) }
        return Next(at: at, final: false, attempt: attempt)
    }
}
