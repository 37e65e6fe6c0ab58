import Testing

@testable import LedgerDaemon

/// How many deliveries may be in flight: `forward.concurrency` when no callback arrives, `forward.concurrencyUnderLoad`
/// while they do, for at most `forward.yieldMaxMs`, then `forward.concurrency` until nothing waits.
struct ForwardPacingTests {
    static func pacing(yieldMax: Duration = .seconds(10)) -> ForwardPacing {
        var settings = ForwardSettings()
        settings.concurrency = 8
        settings.concurrencyUnderLoad = 1
        settings.yieldMax = yieldMax
        settings.writeInterval = .milliseconds(100)
        return ForwardPacing(settings: settings)
    }

    /// With no append the forwarder uses its whole concurrency; an append makes it yield until appends stop for a
    /// write interval.
    @Test func yieldsWhileAppendsArrive() {
        var pacing = Self.pacing()
        let start = ContinuousClock.now
        #expect(pacing.limit(at: start, waiting: true) == 8)
        pacing.appended(at: start)
        #expect(pacing.limit(at: start + .milliseconds(50), waiting: true) == 1)
        pacing.appended(at: start + .milliseconds(90))
        #expect(pacing.limit(at: start + .milliseconds(150), waiting: true) == 1)
        #expect(pacing.limit(at: start + .milliseconds(190), waiting: true) == 8)
        #expect(pacing.phase == .idle)
    }

    /// Appends that never stop hold deliveries back for at most the yield bound: then everything waiting goes at
    /// full concurrency, appends or not, and the forwarder yields again once nothing waits.
    @Test func yieldsAtMostTheBound() {
        var pacing = Self.pacing()
        let start = ContinuousClock.now
        var now = start
        pacing.appended(at: now)
        while now - start < .seconds(10) {
            #expect(pacing.limit(at: now, waiting: true) == 1)
            now += .milliseconds(50)
            pacing.appended(at: now)
        }
        #expect(pacing.limit(at: now, waiting: true) == 8)
        now += .milliseconds(50)
        pacing.appended(at: now)
        #expect(pacing.limit(at: now, waiting: true) == 8)
        #expect(pacing.limit(at: now, waiting: false) == 8)
        now += .milliseconds(50)
        pacing.appended(at: now)
        #expect(pacing.limit(at: now, waiting: true) == 1)
    }

    /// With `forward.yieldMaxMs` 0 the forwarder never yields.
    @Test func zeroBoundNeverYields() {
        var pacing = Self.pacing(yieldMax: .zero)
        let now = ContinuousClock.now
        pacing.appended(at: now)
        #expect(pacing.limit(at: now, waiting: true) == 8)
    }
}
