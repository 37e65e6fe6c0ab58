import ArgumentParser
import Foundation
import LedgerTesting

/// The crash and fault suite: the real `ledgerd` and `gateway-sim` processes, real HTTP over loopback and the real
/// control socket, under kill -9, duplicate storms, hostile input, storage faults and gateway faults.
@main
struct LedgerFaults: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger-faults",
        abstract: "Drive the real daemon through crashes and faults, and check every acknowledged callback survived.",
        subcommands: [Run.self, Check.self],
        defaultSubcommand: Run.self
    )
}

/// The scenarios, in the order they run.
enum Scenario: String, CaseIterable, ExpressibleByArgument {
    case kill, storm, corpus, storage, gateway, shared, forward
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the suite (the short version unless --long) and print a summary table; exit 1 on any violation."
    )

    @Flag(help: "The long version: 200 kill cycles unless --cycles says otherwise.")
    var long = false

    @Option(help: "kill -9 cycles (default 20, or 200 with --long).")
    var cycles: Int?

    @Option(help: "Seed of the kill schedule, so a failing run can be repeated.")
    var seed: UInt64 = UInt64(Date().timeIntervalSince1970)

    @Option(help: "Concurrent senders in the kill -9 scenario.")
    var workers = 16

    @Option(help: "Longest time in milliseconds the daemon runs under load before it is killed.")
    var maxRunMilliseconds = 600

    @Option(help: "Copies of one notification in the duplicate storm.")
    var stormCopies = 1000

    @Option(
        parsing: .upToNextOption,
        help: "Run only these scenarios: kill, storm, corpus, storage, gateway, shared, forward."
    )
    var only: [Scenario] = []

    @Option(
        help: ArgumentHelp(
            "A PostgreSQL database for the shared scenario (two daemons on one ledger), which runs only when one is given; default LEDGER_TEST_POSTGRES_URL. Each run makes a fresh schema in it.",
            valueName: "url"
        )
    )
    var postgresUrl: String?

    @Option(help: "Where ledgerd and gateway-sim are (default: next to this executable).")
    var binDir: String?

    @Flag(help: "Keep the data directories afterwards (they are removed when everything passed).")
    var keep = false

    mutating func run() async throws {
        let cycles = self.cycles ?? (self.long ? 200 : 20)
        guard cycles >= 1, self.workers >= 1, self.maxRunMilliseconds >= 20, (2...10_000).contains(self.stormCopies)
        else {
            throw ValidationError(
                "--cycles and --workers must be at least 1, --max-run-milliseconds at least 20, --storm-copies 2 to 10000."
            )
        }
        let environmentURL = ProcessInfo.processInfo.environment["LEDGER_TEST_POSTGRES_URL"].flatMap {
            $0.isEmpty ? nil : $0
        }
        let postgresURL = self.postgresUrl ?? environmentURL
        if self.only.contains(.shared) && postgresURL == nil {
            throw ValidationError(
                "The shared scenario needs a PostgreSQL database: give --postgres-url or LEDGER_TEST_POSTGRES_URL."
            )
        }
        let binaries = try Binaries(override: self.binDir)
        // Short: Unix socket paths must fit in 108 bytes.
        let base = "/tmp/lf-" + String(UUID().uuidString.prefix(8))
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        let scenarios = (self.only.isEmpty ? Scenario.allCases : Scenario.allCases.filter(self.only.contains))
            .filter { $0 != .shared || postgresURL != nil }
        if self.only.isEmpty && postgresURL == nil {
            say(
                "fault-suite: the shared scenario (two daemons on PostgreSQL) is not run: give --postgres-url or LEDGER_TEST_POSTGRES_URL"
            )
        }
        say(
            "fault-suite: \(self.long ? "long" : "short") run, scenarios \(scenarios.map(\.rawValue).joined(separator: ", ")), \(cycles) kill cycles, seed \(self.seed), data \(base)"
        )
        let started = ContinuousClock.now
        var reports: [ScenarioReport] = []
        for scenario in scenarios {
            say("== \(scenario.rawValue)")
            let directory = base + "/" + scenario.rawValue
            var report: ScenarioReport
            do {
                switch scenario {
                case .kill:
                    report = try await KillNineScenario(
                        binaries: binaries,
                        directory: directory,
                        cycles: cycles,
                        workers: self.workers,
                        maxRunMilliseconds: self.maxRunMilliseconds,
                        seed: self.seed
                    ).run()
                case .storm:
                    report = try await DuplicateStormScenario(
                        binaries: binaries,
                        directory: directory,
                        copies: self.stormCopies
                    ).run()
                case .corpus:
                    report = try await BadInputScenario(binaries: binaries, directory: directory).run()
                case .storage:
                    report = try await StorageFaultsScenario(binaries: binaries, directory: directory).run()
                case .gateway:
                    report = try await GatewayFaultsScenario(binaries: binaries, directory: directory).run()
                case .forward:
                    report = try await ForwardKillScenario(
                        binaries: binaries,
                        directory: directory,
                        cycles: max(3, cycles / 4),
                        seed: self.seed
                    ).run()
                case .shared:
                    report = try await SharedLedgerScenario(
                        binaries: binaries,
                        directory: directory,
                        postgresURL: postgresURL ?? ""
                    ).run()
                }
            } catch {
                report = ScenarioReport(scenario.rawValue)
                report.cases += 1
                report.fail("the scenario stopped: \(error)")
            }
            reports.append(report)
        }
        let seconds = Double((ContinuousClock.now - started).components.seconds)
        say("")
        say(
            table(
                ["scenario", "cases", "passed", "result", "figures"],
                reports.map { report in
                    [
                        report.name, String(report.cases), String(report.passed),
                        report.skipped != nil ? "partly skipped" : (report.ok ? "pass" : "FAIL"),
                        (report.figures + (report.skipped.map { ["skipped: " + $0] } ?? [])).joined(separator: ", "),
                    ]
                }
            )
        )
        let failed = reports.filter { !$0.ok }
        if failed.isEmpty {
            say(
                "fault-suite: all \(reports.map(\.cases).reduce(0, +)) cases passed in \(Int(seconds)) s (seed \(self.seed))"
            )
            if !self.keep { try? FileManager.default.removeItem(atPath: base) }
        } else {
            say(
                "fault-suite: FAILED: \(failed.map(\.name).joined(separator: ", ")) (seed \(self.seed), data kept in \(base))"
            )
            throw ExitCode.failure
        }
    }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start ledgerd on a data directory and check it against a file of acknowledged callbacks."
    )

    @Option(help: "The daemon's data directory.")
    var dataDir: String

    @Option(help: "The acknowledgements: lines of `orderId transactionId`.")
    var ackFile: String

    @Option(help: "Where ledgerd is (default: next to this executable).")
    var binDir: String?

    mutating func run() async throws {
        let binaries = try Binaries(override: self.binDir)
        let directory = "/tmp/lf-" + String(UUID().uuidString.prefix(8))
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try DaemonProcess(binaries: binaries, directory: directory)
        daemon.dataDir = self.dataDir
        try await daemon.start()
        let acks = try AckFile.read(self.ackFile)
        let failures: [String]
        do {
            failures = try await blocking { [daemon] in
                try AckChecker().check(try daemon.control(), acks: acks, touched: [:])
            }
        } catch {
            await daemon.stop()
            throw error
        }
        await daemon.stop()
        for failure in failures.prefix(20) { say("fault-suite: FAILED: \(failure)") }
        if !failures.isEmpty { throw ExitCode.failure }
        say(
            "fault-suite: \(acks.count) acknowledged callbacks all in the log, none applied twice, chain intact, projection equals rebuild"
        )
    }
}
