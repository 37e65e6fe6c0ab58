import ArgumentParser
import Foundation

/// The options every benchmark command takes: the output's form, the run's size and where its report goes.
struct BenchOutputOptions: ParsableArguments {
    @Flag(help: "Print one JSON object with every figure, the machine, the date and the command, instead of the table.")
    var json = false

    @Flag(help: "A small run (seconds) for smoke tests; its figures are not the issue's.")
    var quick = false

    @Option(
        help: ArgumentHelp(
            "Also write the report as JSON and as Markdown (NAME.json, NAME.md) into this directory.",
            valueName: "directory"
        )
    )
    var reportDirectory: String?
}

/// What every benchmark's report records about its run (the command line, the date, the machine), taken when the
/// run starts and said on stderr, so a report can be told apart from another machine's or another day's.
struct BenchRun {
    var command: String
    var date: String
    var machine: Machine

    /// Records and announces the run of the benchmark `name` (`store`, `system`).
    static func start(_ name: String) -> BenchRun {
        // `tools/bench` passes the command it was given, which is the one a reader should run again.
        let command =
            ProcessInfo.processInfo.environment["LEDGER_BENCH_COMMAND"]
            ?? (["ledger-bench"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        let run = BenchRun(command: command, date: ISO8601DateFormatter().string(from: Date()), machine: .current())
        Progress.say(
            "ledger-bench \(name) on \(run.machine.cores) cores (\(run.machine.cpuModel)), "
                + "temp on \(run.machine.tempFileSystem)"
        )
        return run
    }

    /// Writes `NAME.json` and `NAME.md` into `directory` (created if missing), when the run was given one.
    func writeReport(json: String, named name: String, into directory: String?, markdown: () -> String) throws {
        guard let directory else { return }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try (json + "\n").write(toFile: directory + "/\(name).json", atomically: true, encoding: .utf8)
        try markdown().write(toFile: directory + "/\(name).md", atomically: true, encoding: .utf8)
        Progress.say("wrote \(directory)/\(name).json and \(directory)/\(name).md")
    }

    /// Says on stderr which of the figures' targets the run missed, if any.
    static func sayTargets(_ rows: [Figure]) {
        let missed = rows.filter { $0.met == false }.map(\.key)
        Progress.say(missed.isEmpty ? "every target met" : "targets missed: \(missed.joined(separator: ", "))")
    }
}

/// The parts an `--only` list names, comma-separated, in the order given: nil for a name no part has, so the
/// command's `validate()` can say which one it was.
func benchParts<Part: RawRepresentable>(_ only: String) -> [(name: Substring, part: Part?)]
where Part.RawValue == String {
    only.split(separator: ",").map { (name: $0, part: Part(rawValue: String($0))) }
}
