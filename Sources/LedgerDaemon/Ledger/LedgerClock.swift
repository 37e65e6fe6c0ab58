import Foundation
public import LedgerCore

/// The system's wall clock.
public struct SystemLedgerClock: LedgerClock {
    public init() {}

    public func now() -> Instant {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Instant(millisecondsSinceEpoch: Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000)
    }

    public func sleep(until deadline: Instant) async throws {
        let delay = deadline.millisecondsSinceEpoch - self.now().millisecondsSinceEpoch
        if delay > 0 { try await Task.sleep(for: .milliseconds(delay)) }
    }
}
