import Foundation
import Prometheus
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The `process_` families every Prometheus client exports under the same names, read from `/proc/self` when
/// `/metrics` is scraped (not on a timer, so a figure is never older than the scrape).
///
/// proc(5): `/proc/self/stat` fields 14 and 15 are user and system time and 22 the start time, in clock ticks
/// (`sysconf(_SC_CLK_TCK)`), the start counted from boot (`btime` in `/proc/stat`); 23 is the virtual memory size
/// in bytes and 24 the resident set in pages. `/proc/self/fd` lists the open descriptors.
final class ProcessMetrics: Sendable {
    private let cpu: Counter
    private let resident: Gauge
    private let virtual: Gauge
    private let openFiles: Gauge
    private let maxFiles: Gauge
    private let start: Gauge
    /// Held from the reading to the emitting: the CPU counter is reset and set again at each scrape, and two
    /// scrapes at once must not see each other's half.
    private let scrape = Mutex(())

    init(registry: PrometheusCollectorRegistry) {
        self.cpu = registry.makeCounter(
            descriptor: .init("process_cpu_seconds_total", help: "User and system CPU time spent, in seconds.")
        )
        self.resident = registry.makeGauge(
            descriptor: .init("process_resident_memory_bytes", help: "Resident memory size in bytes.")
        )
        self.virtual = registry.makeGauge(
            descriptor: .init("process_virtual_memory_bytes", help: "Virtual memory size in bytes.")
        )
        self.openFiles = registry.makeGauge(
            descriptor: .init("process_open_fds", help: "Open file descriptors.")
        )
        self.maxFiles = registry.makeGauge(
            descriptor: .init(
                "process_max_fds",
                help: "The most file descriptors the process may open (RLIMIT_NOFILE)."
            )
        )
        self.start = registry.makeGauge(
            descriptor: .init(
                "process_start_time_seconds",
                help: "Start time of the process since the Unix epoch, in seconds."
            )
        )
    }

    /// Reads the figures now and runs `body` (the emitting) before another scrape may read them again.
    func withFreshFigures<T>(_ body: () -> T) -> T {
        self.scrape.withLock { _ in
            self.refresh()
            return body()
        }
    }

    private func refresh() {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        if let fields = Self.statFields(), fields.count > 21, ticks > 0 {
            // Field n of proc(5) is at n - 3 once the pid and the command name are cut off.
            let user = Double(fields[14 - 3]) ?? 0
            let system = Double(fields[15 - 3]) ?? 0
            self.cpu.reset()
            self.cpu.increment(by: (user + system) / ticks)
            if let startTicks = Double(fields[22 - 3]), let boot = Self.bootTime() {
                self.start.set(boot + startTicks / ticks)
            }
            if let bytes = Double(fields[23 - 3]) { self.virtual.set(bytes) }
            if let pages = Double(fields[24 - 3]) { self.resident.set(pages * pageSize) }
        }
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            // Less the descriptor that lists the directory, which is closed again at once.
            self.openFiles.set(Double(max(0, entries.count - 1)))
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { self.maxFiles.set(Double(limit.rlim_cur)) }
    }

    /// The fields of `/proc/self/stat` after the command name, which is in parentheses and may itself contain
    /// spaces and parentheses: everything after the last `)`.
    private static func statFields() -> [Substring]? {
        guard let text = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }

    /// The boot time in seconds since the epoch, the `btime` line of `/proc/stat`.
    private static func bootTime() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}
