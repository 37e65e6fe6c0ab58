public import LedgerCore

/// At most `perSecond` query starts in any window of one second (`poll.queriesPerSecondMax`): it remembers when the
/// last `perSecond` queries started, and the next may start once the oldest of them is a second old. A sliding
/// window rather than a token bucket, so no burst ever exceeds the bound, not even at the edge of a second.
public struct QueryRateLimit: Sendable {
    public let perSecond: Int
    /// The start times of the last `perSecond` queries, as a ring; `oldest` indexes the oldest once it is full.
    private var starts: [Instant] = []
    private var oldest = 0

    public init(perSecond: Int) {
        precondition(perSecond >= 1, "poll.queriesPerSecondMax is at least 1")
        self.perSecond = perSecond
        self.starts.reserveCapacity(min(perSecond, 1024))
    }

    /// The earliest instant at or after `now` at which one more query may start.
    public func nextStart(now: Instant) -> Instant {
        guard self.starts.count == self.perSecond else { return now }
        // At most a second ahead: the window is kept in wall-clock instants, and a clock stepped back must not
        // hold polling for as long as it stepped.
        return min(max(now, self.starts[self.oldest].adding(milliseconds: 1000)), now.adding(milliseconds: 1000))
    }

    /// Records a query started at `now`; the caller has checked `nextStart(now:) <= now`.
    public mutating func record(_ now: Instant) {
        if self.starts.count < self.perSecond {
            self.starts.append(now)
        } else {
            self.starts[self.oldest] = now
            self.oldest = (self.oldest + 1) % self.perSecond
        }
    }
}
