/// SplitMix64 (Steele, Lea and Flood): a tiny, fast generator whose whole state is one seed, so the same seed gives
/// the same sequence on every run and platform.
///
/// The core takes randomness only as a parameter (style.md, "a pure core"); this is the one seeded generator the
/// project passes in: the poller's jitter, the simulator's faults, the fault suite's and the crash test's schedules,
/// the tests' and fuzz targets' choices. A failing run is repeated from the seed it prints.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) {
        self.state = seed
    }

    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = self.state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }

    /// A number in `0..<bound`.
    public mutating func next(upTo bound: Int) -> Int {
        precondition(bound > 0)
        return Int(self.next() % UInt64(bound))
    }
}
