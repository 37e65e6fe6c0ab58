import CSQLite
import Foundation
import LedgerCore

/// One row of the report: a measured figure, what it is compared with, and the target it must meet, if any.
struct Figure {
    enum Target {
        /// The ratio to the baseline must be at least this.
        case ratioAtLeast(Double)
        /// The value itself must be at least this.
        case valueAtLeast(Double)
        /// The value itself must be at most this (latencies, durations, memory).
        case valueAtMost(Double)
    }

    var key: String
    var label: String
    var value: Double
    var unit: String
    var baselineLabel: String? = nil
    var baselineValue: Double? = nil
    var target: Target? = nil
    /// Context for the reader (counts, what the figure includes).
    var note: String? = nil

    var ratio: Double? {
        guard let baselineValue, baselineValue > 0 else { return nil }
        return self.value / baselineValue
    }

    /// How far above (≥ 1) or below (< 1) its target the figure is.
    var factorOfTarget: Double? {
        switch self.target {
        case .ratioAtLeast(let minimum): return self.ratio.map { $0 / minimum }
        case .valueAtLeast(let minimum): return self.value / minimum
        case .valueAtMost(let maximum): return self.value > 0 ? maximum / self.value : .infinity
        case nil: return nil
        }
    }

    var met: Bool? { self.factorOfTarget.map { $0 >= 1 } }

    var targetText: String {
        switch self.target {
        case .ratioAtLeast(let minimum): return "≥ \(Format.ratio(minimum)) \(self.baselineLabel ?? "baseline")"
        case .valueAtLeast(let minimum): return "≥ \(Format.grouped(minimum)) \(self.unit)"
        case .valueAtMost(let maximum): return "≤ \(Format.value(maximum)) \(self.unit)"
        case nil: return "—"
        }
    }

    var resultText: String {
        guard let met = self.met, let factor = self.factorOfTarget else { return "—" }
        let achieved: String
        switch self.target {
        case .ratioAtLeast: achieved = Format.ratio(self.ratio ?? 0)
        case .valueAtLeast: achieved = Format.grouped(self.value)
        case .valueAtMost: achieved = Format.value(self.value)
        case nil: achieved = ""
        }
        return met
            ? "met (\(achieved), \(Format.ratio(factor)) the target)"
            : "MISSED (\(achieved), \(Format.ratio(factor)) the target)"
    }
}

/// Builds the figures from a run's results, in the order the issue lists them.
func figures(_ results: StoreBenchResults, config: StoreBenchConfig) -> [Figure] {
    var rows: [Figure] = []
    func batchName(_ batch: Int) -> String { Format.grouped(Double(batch)) }
    for batch in StoreBenchConfig.batchSizes {
        guard let store = results.store[batch] else { continue }
        rows.append(
            Figure(
                key: "append.batch\(batch)",
                label: "append, batch \(batchName(batch)) (LMDBEventStore)",
                value: store.eventsPerSecond,
                unit: "events/s",
                baselineLabel: "SQLite",
                baselineValue: results.sqlite[batch]?.eventsPerSecond,
                target: batch >= 100 ? .ratioAtLeast(3) : nil,
                note: "\(store.events) events, one appender, \(store.events / batch) durable commits"
            )
        )
    }
    for batch in StoreBenchConfig.batchSizes {
        guard let sqlite = results.sqlite[batch] else { continue }
        rows.append(
            Figure(
                key: "sqlite.batch\(batch)",
                label: "SQLite WAL synchronous=FULL, batch \(batchName(batch))",
                value: sqlite.eventsPerSecond,
                unit: "events/s",
                note: "same records, indexes and fold; \(sqlite.events) events"
            )
        )
    }
    for batch in StoreBenchConfig.batchSizes {
        guard let raw = results.raw[batch] else { continue }
        rows.append(
            Figure(
                key: "raw.batch\(batch)",
                label: "raw LMDB puts (MDB_APPEND), batch \(batchName(batch))",
                value: raw.eventsPerSecond,
                unit: "events/s",
                note: "pre-encoded values, one database, \(raw.events) events"
            )
        )
    }
    for batch in StoreBenchConfig.batchSizes {
        guard let store = results.store[batch], let raw = results.raw[batch] else { continue }
        rows.append(
            Figure(
                key: "appendVsRaw.batch\(batch)",
                label: "append vs raw LMDB, batch \(batchName(batch))",
                value: store.eventsPerSecond,
                unit: "events/s",
                baselineLabel: "raw LMDB",
                baselineValue: raw.eventsPerSecond,
                target: batch == 10_000 ? .ratioAtLeast(0.5) : nil
            )
        )
    }
    if let rebuild = results.rebuild {
        rows.append(
            Figure(
                key: "rebuild",
                label: "projection rebuild (rebuildProjection)",
                value: rebuild.eventsPerSecond,
                unit: "events/s",
                target: .valueAtLeast(1_000_000),
                note: "\(rebuild.events) events, \(results.rebuildOrders) orders, \(Format.seconds(rebuild.seconds))"
            )
        )
    }
    if let scan = results.scan {
        rows.append(
            Figure(
                key: "scan.readEvents",
                label: "full scan, readEvents pages of 10,000",
                value: scan.eventsPerSecond,
                unit: "events/s",
                baselineLabel: "raw cursor scan",
                baselineValue: results.rawScan?.eventsPerSecond,
                note: "checksum + decode of every event"
            )
        )
    }
    if let rawScan = results.rawScan {
        rows.append(
            Figure(
                key: "scan.raw",
                label: "raw LMDB cursor scan (no decoding)",
                value: rawScan.eventsPerSecond,
                unit: "events/s"
            )
        )
    }
    if let fold = results.fold {
        rows.append(
            Figure(
                key: "fold.memory",
                label: "projection fold in memory (no storage)",
                value: fold.eventsPerSecond,
                unit: "events/s",
                note: "OrderState.apply + OrderStateCodec.encode of \(fold.events) decoded events"
            )
        )
    }
    if let contended = results.contended, let single = results.oneFsync {
        let appenders = config.appenders
        rows.append(
            Figure(
                key: "groupCommit",
                label: "group commit, \(appenders) appenders",
                value: contended.timing.eventsPerSecond,
                unit: "events/s",
                baselineLabel: "one fsync per append",
                baselineValue: single.timing.eventsPerSecond,
                target: .ratioAtLeast(10),
                note: String(
                    format: "%d events, mean commit batch %.1f",
                    contended.timing.events,
                    contended.meanCommitBatch
                )
            )
        )
        rows.append(
            Figure(
                key: "groupCommit.p50",
                label: "group commit, \(appenders) appenders, p50 latency",
                value: contended.latency.p50 * 1e3,
                unit: "ms",
                baselineLabel: "one fsync per append",
                baselineValue: single.latency.p50 * 1e3
            )
        )
        rows.append(
            Figure(
                key: "groupCommit.p99",
                label: "group commit, \(appenders) appenders, p99 latency",
                value: contended.latency.p99 * 1e3,
                unit: "ms",
                baselineLabel: "one fsync per append",
                baselineValue: single.latency.p99 * 1e3
            )
        )
        rows.append(
            Figure(
                key: "oneFsync",
                label: "one fsync per append (batchCountMax 1), \(appenders) appenders",
                value: single.timing.eventsPerSecond,
                unit: "events/s",
                note: String(
                    format: "%d events, p50 %.2f ms, p99 %.2f ms",
                    single.timing.events,
                    single.latency.p50 * 1e3,
                    single.latency.p99 * 1e3
                )
            )
        )
    }
    return rows
}

/// Number formatting for the tables.
enum Format {
    static func grouped(_ value: Double) -> String {
        guard value.isFinite else { return "—" }
        if abs(value) < 100 && value != value.rounded() { return String(format: "%.2f", value) }
        let digits = String(Int(value.rounded()).magnitude)
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return (value < 0 ? "-" : "") + out
    }

    static func ratio(_ value: Double) -> String {
        guard value.isFinite else { return "—" }
        return value >= 10 ? String(format: "%.1f×", value) : String(format: "%.2f×", value)
    }

    /// Grouped digits for large values, two decimals for small ones (latencies in ms, durations in s).
    static func value(_ value: Double) -> String {
        abs(value) >= 100 ? Self.grouped(value) : String(format: "%.2f", value)
    }

    static func seconds(_ value: Double) -> String { String(format: "%.2f s", value) }

    /// JSON number text: finite values only, three decimals at most, trailing zeros trimmed.
    static func json(_ value: Double?) -> JSONValue {
        guard let value, value.isFinite else { return .null }
        var text = String(format: "%.3f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        if text == "-0" { text = "0" }
        return JSONValue(numberText: text) ?? .null
    }
}

/// The plain-text table for stdout, with aligned columns.
func textTable(_ rows: [Figure]) -> String {
    let header = ["figure", "value", "unit", "baseline", "ratio", "target", "result"]
    let cells = rows.map { row in
        [
            row.label, Format.grouped(row.value), row.unit,
            row.baselineValue.map { "\(row.baselineLabel ?? "") \(Format.grouped($0))" } ?? "—",
            row.ratio.map(Format.ratio) ?? "—", row.targetText, row.resultText,
        ]
    }
    return alignedTable(header, cells, rightAligned: [1, 4])
}

/// Columns padded to their widest cell and separated by two spaces, under a header and a rule: numbers (the
/// columns in `rightAligned`) right-aligned so their digits line up, words left-aligned.
func alignedTable(_ header: [String], _ cells: [[String]], rightAligned: Set<Int>) -> String {
    let widths = header.indices.map { column in
        ([header] + cells).map { $0[column].count }.max() ?? 0
    }
    func line(_ values: [String]) -> String {
        values.enumerated().map { column, value in
            let pad = String(repeating: " ", count: widths[column] - value.count)
            return rightAligned.contains(column) ? pad + value : value + pad
        }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
    }
    var lines = [line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")]
    lines += cells.map(line)
    return lines.joined(separator: "\n")
}

/// The lines every Markdown report opens with: its title, then when, how and on what machine it ran, with the
/// load average at its start and end, because other work on the machine skews every figure.
func markdownPreamble(title: String, run: BenchRun) -> [String] {
    let machine = run.machine
    return [
        "# `\(title)`",
        "",
        "- date: \(run.date)",
        "- command: `\(run.command)`",
        "- machine: \(machine.cores) cores, \(machine.cpuModel), Linux \(machine.kernel), "
            + "\(machine.memoryBytes >> 30) GiB, temp file system \(machine.tempFileSystem) (\(machine.tempDirectory))",
        "- load average at start (/proc/loadavg): \(machine.loadAverage); at end: \(Machine.loadAverageNow())",
    ]
}

/// The members every JSON report opens with: which benchmark, when, how and on what machine it ran.
func jsonPreamble(benchmark: String, run: BenchRun) -> [(String, JSONValue)] {
    [
        ("benchmark", .string(benchmark)),
        ("date", .string(run.date)),
        ("command", .string(run.command)),
        ("machine", run.machine.json),
    ]
}

/// The same table in Markdown, with the machine and the command above it.
func markdownReport(_ rows: [Figure], run: BenchRun, config: StoreBenchConfig) -> String {
    var lines = markdownPreamble(title: "ledger-bench store", run: run)
    lines += [
        "- SQLite \(run.machine.sqliteVersion); every commit durable (LMDB syncs on commit; "
            + "SQLite WAL synchronous=FULL)",
        "- counts: \(config.batchedEvents) events at batches of 100 and 10,000; \(config.singleEvents) at batch 1 "
            + "and for one-fsync-per-append; \(config.contendedEvents) for group commit with \(config.appenders) "
            + "appenders; \(config.rebuildEvents) for the rebuild and scans",
        "",
    ]
    lines += markdownTable(rows)
    return lines.joined(separator: "\n") + "\n"
}

/// The JSON object holding every figure of the run.
func jsonReport(
    _ rows: [Figure],
    results: StoreBenchResults,
    run: BenchRun,
    config: StoreBenchConfig
) -> String {
    var runs: [(String, JSONValue)] = []
    for batch in StoreBenchConfig.batchSizes {
        runs.append(("store.batch\(batch)", timingJSON(results.store[batch])))
        runs.append(("sqlite.batch\(batch)", timingJSON(results.sqlite[batch])))
        runs.append(("raw.batch\(batch)", timingJSON(results.raw[batch])))
    }
    runs.append(("groupCommit", contendedJSON(results.contended)))
    runs.append(("oneFsyncPerAppend", contendedJSON(results.oneFsync)))
    runs.append(("rebuild", timingJSON(results.rebuild)))
    runs.append(("scan.readEvents", timingJSON(results.scan)))
    runs.append(("scan.raw", timingJSON(results.rawScan)))
    runs.append(("fold.memory", timingJSON(results.fold)))
    let root: JSONValue = .object(
        JSONObject(
            jsonPreamble(benchmark: "store", run: run) + [
                (
                    "config",
                    .object(
                        JSONObject(
                            config.countsJSON + [
                                ("mapSizeBytes", Format.json(Double(config.mapSize))),
                                ("meanStoredEventBytes", Format.json(results.meanEventBytes)),
                            ]
                        )
                    )
                ),
                (
                    "bytesPerEventOnDisk",
                    .object(
                        JSONObject([
                            ("store", Format.json(results.storeBytesPerEvent)),
                            ("sqlite", Format.json(results.sqliteBytesPerEvent)),
                            ("rawLMDB", Format.json(results.rawBytesPerEvent)),
                        ])
                    )
                ),
                ("figures", figuresJSON(rows)),
                ("runs", .object(JSONObject(runs))),
                ("targets", targetsJSON(rows)),
                ("targetsMet", .bool(rows.allSatisfy { $0.met ?? true })),
            ]
        )
    )
    return JSONWriter.write(root, options: [.sortedKeys, .prettyPrinted])
}

extension StoreBenchConfig {
    /// How many events each measurement of a store run appended, and with how many appenders, as every store
    /// report's JSON gives them.
    var countsJSON: [(String, JSONValue)] {
        [
            ("batchedEvents", Format.json(Double(self.batchedEvents))),
            ("singleEvents", Format.json(Double(self.singleEvents))),
            ("contendedEvents", Format.json(Double(self.contendedEvents))),
            ("appenders", Format.json(Double(self.appenders))),
            ("rebuildEvents", Format.json(Double(self.rebuildEvents))),
        ]
    }
}

/// The figures as a Markdown table, then their notes.
func markdownTable(_ rows: [Figure]) -> [String] {
    var lines = [
        "| figure | value | unit | baseline | ratio | target | result |",
        "| --- | ---: | --- | --- | ---: | --- | --- |",
    ]
    for row in rows {
        let baseline = row.baselineValue.map { "\(row.baselineLabel ?? "") \(Format.grouped($0))" } ?? "—"
        lines.append(
            "| \(row.label) | \(Format.grouped(row.value)) | \(row.unit) | \(baseline) | "
                + "\(row.ratio.map(Format.ratio) ?? "—") | \(row.targetText) | \(row.resultText) |"
        )
    }
    let notes = rows.compactMap { row in row.note.map { "- \(row.label): \($0)" } }
    if !notes.isEmpty {
        lines += ["", "Notes:", ""] + notes
    }
    return lines
}

/// Each figure as a JSON member keyed by its key.
func figuresJSON(_ rows: [Figure]) -> JSONValue {
    var figures: [(String, JSONValue)] = []
    for row in rows {
        var members: [(String, JSONValue)] = [
            ("label", .string(row.label)), ("value", Format.json(row.value)), ("unit", .string(row.unit)),
        ]
        if let baselineValue = row.baselineValue {
            members.append(("baseline", .string(row.baselineLabel ?? "")))
            members.append(("baselineValue", Format.json(baselineValue)))
            members.append(("ratio", Format.json(row.ratio)))
        }
        if row.target != nil {
            members.append(("target", .string(row.targetText)))
            members.append(("met", row.met.map(JSONValue.bool) ?? .null))
            members.append(("factorOfTarget", Format.json(row.factorOfTarget)))
        }
        if let note = row.note { members.append(("note", .string(note))) }
        figures.append((row.key, .object(JSONObject(members))))
    }
    return .object(JSONObject(figures))
}

/// The figures with a target, and whether each was met.
func targetsJSON(_ rows: [Figure]) -> JSONValue {
    .array(
        rows.filter { $0.target != nil }.map { row in
            .object(
                JSONObject([
                    ("figure", .string(row.key)), ("target", .string(row.targetText)),
                    ("met", row.met.map(JSONValue.bool) ?? .null), ("factorOfTarget", Format.json(row.factorOfTarget)),
                ])
            )
        }
    )
}

/// The machine the run measured.
struct Machine {
    var cores: Int
    var cpuModel: String
    var kernel: String
    var memoryBytes: UInt64
    var tempDirectory: String
    var tempFileSystem: String
    var sqliteVersion: String
    /// /proc/loadavg when the run began: other work on the machine skews every figure, so the report says so.
    var loadAverage: String

    static func current() -> Machine {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model =
            cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        let kernel = ((try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)) ?? "unknown")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let temp = ProcessInfo.processInfo.environment["LEDGER_BENCH_TMPDIR"] ?? NSTemporaryDirectory()
        return Machine(
            cores: ProcessInfo.processInfo.activeProcessorCount,
            cpuModel: model,
            kernel: kernel,
            memoryBytes: ProcessInfo.processInfo.physicalMemory,
            tempDirectory: temp,
            tempFileSystem: Self.fileSystem(of: temp),
            sqliteVersion: String(cString: sqlite3_libversion()),
            loadAverage: ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "unknown")
                .trimmingCharacters(in: .whitespacesAndNewlines)
        )
    }

    var json: JSONValue {
        .object(
            JSONObject([
                ("nproc", Format.json(Double(self.cores))), ("cpuModel", .string(self.cpuModel)),
                ("kernel", .string(self.kernel)), ("memoryBytes", Format.json(Double(self.memoryBytes))),
                ("tempDirectory", .string(self.tempDirectory)), ("tempFileSystem", .string(self.tempFileSystem)),
                ("sqliteVersion", .string(self.sqliteVersion)), ("loadAverageAtStart", .string(self.loadAverage)),
                ("loadAverageAtEnd", .string(Self.loadAverageNow())),
            ])
        )
    }

    static func loadAverageNow() -> String {
        ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "unknown").trimmingCharacters(
            in: .whitespacesAndNewlines
        )
    }

    /// The type of the file system holding `path`: the mount in /proc/self/mounts with the longest matching prefix.
    static func fileSystem(of path: String) -> String {
        let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        let resolved = (path as NSString).resolvingSymlinksInPath
        var best = (length: -1, type: "unknown")
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 3 else { continue }
            let point = String(fields[1])
            let matches = resolved == point || resolved.hasPrefix(point == "/" ? "/" : point + "/")
            if matches && point.count > best.length { best = (point.count, "\(fields[2]) on \(point) (\(fields[0]))") }
        }
        return best.type
    }
}

/// A timing as the JSON reports write it.
func timingJSON(_ timing: Timing?) -> JSONValue {
    guard let timing else { return .null }
    return .object(
        JSONObject([
            ("events", Format.json(Double(timing.events))), ("seconds", Format.json(timing.seconds)),
            ("eventsPerSecond", Format.json(timing.eventsPerSecond)),
        ])
    )
}

/// A contended run as the JSON reports write it.
func contendedJSON(_ result: ContendedResult?) -> JSONValue {
    guard let result else { return .null }
    return .object(
        JSONObject([
            ("events", Format.json(Double(result.timing.events))), ("seconds", Format.json(result.timing.seconds)),
            ("eventsPerSecond", Format.json(result.timing.eventsPerSecond)),
            ("p50Milliseconds", Format.json(result.latency.p50 * 1e3)),
            ("p99Milliseconds", Format.json(result.latency.p99 * 1e3)),
            ("maxMilliseconds", Format.json(result.latency.max * 1e3)),
            ("meanCommitBatch", Format.json(result.meanCommitBatch)),
        ])
    )
}
