import Foundation
import LedgerCore

/// A timed run: how many events, how long.
struct Timing: Sendable {
    var events: Int
    var seconds: Double

    var eventsPerSecond: Double { self.seconds > 0 ? Double(self.events) / self.seconds : 0 }
}

/// Times `body` with the monotonic clock; only `body` is inside the timed region.
func timed(events: Int, _ body: () async throws -> Void) async rethrows -> Timing {
    let clock = ContinuousClock()
    let started = clock.now
    try await body()
    return Timing(events: events, seconds: (clock.now - started).seconds)
}

/// Latency percentiles from recorded samples: sorted, nearest rank.
struct Percentiles: Sendable {
    var p50: Double
    var p99: Double
    var max: Double

    /// `samples` in seconds.
    init(_ samples: [Double]) {
        let sorted = samples.sorted()
        func rank(_ fraction: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            let index = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
            return sorted[Swift.max(0, Swift.min(sorted.count - 1, index))]
        }
        self.p50 = rank(0.50)
        self.p99 = rank(0.99)
        self.max = sorted.last ?? 0
    }
}

/// A fresh directory under the system's temporary directory, removed by `remove()`.
struct ScratchDirectory {
    let path: String

    init(_ label: String) throws {
        let base = ProcessInfo.processInfo.environment["LEDGER_BENCH_TMPDIR"] ?? NSTemporaryDirectory()
        self.path = (base as NSString).appendingPathComponent("ledger-bench-\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: self.path, withIntermediateDirectories: true)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: self.path)
    }

    /// Bytes of the files directly inside the directory.
    var bytes: UInt64 {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: self.path)) ?? []
        return names.reduce(0) { total, name in
            let attributes = try? FileManager.default.attributesOfItem(
                atPath: (self.path as NSString).appendingPathComponent(name)
            )
            return total + ((attributes?[.size] as? NSNumber)?.uint64Value ?? 0)
        }
    }
}

/// Progress lines on stderr, so a long run shows it is alive and stdout holds only the report.
enum Progress {
    static let started = ContinuousClock.now

    static func say(_ line: String) {
        let elapsed = (ContinuousClock.now - Self.started).seconds
        let text = String(format: "[%7.1fs] ", elapsed) + line + "\n"
        FileHandle.standardError.write(Data(text.utf8))
    }
}
