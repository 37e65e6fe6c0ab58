import ArgumentParser
import Foundation

/// `ledger-bench`: the ledger's benchmarks. Thin: it parses arguments and calls the measurements.
@main
struct LedgerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger-bench",
        abstract: "Measures OrderLedger's event store against the engines a user would otherwise pick.",
        discussion: "Build it in release mode (tools/bench does); a debug build measures the compiler, not the store.",
        subcommands: [StoreCommand.self, SystemCommand.self, BareOKCommand.self]
    )
}

struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Append, rebuild, scan and group-commit throughput of LMDBEventStore, with SQLite and raw LMDB.",
        discussion: """
            Every measurement runs a fixed number of realistic events (signed order-created and paid-callback \
            events for distinct orders, built through LedgerCore before the clock starts) in a fresh temporary \
            directory that is removed afterwards. Every commit is durable. Set LEDGER_BENCH_TMPDIR to measure \
            another disk than the system's temporary directory.

            Measured, in one run: appends through LMDBEventStore.append at batches of 1, 100 and 10,000 \
            events per request (one appender, with the log's indexes, callback de-duplication and the \
            projection); the same events on SQLite (WAL, synchronous=FULL, same records and indexes, same \
            fold); the same appends as raw LMDB puts (pre-encoded values, MDB_APPEND, one database); \
            rebuildProjection over the whole log and a full scan with readEvents; and 64 concurrent appenders \
            of one event each, with group commit and with one fsync per append.

            With --backend postgres (and --postgres-url or LEDGER_BENCH_POSTGRES_URL), the EventStore-level \
            measurements (append, contention, rebuild) run on PostgresEventStore and on LMDBEventStore in the \
            same run, each PostgreSQL one in a fresh schema that is dropped afterwards, and the report puts \
            PostgreSQL's figure beside LMDB's with the ratio, with the server's version and its fsync and \
            synchronous_commit settings; it goes to store-postgres.json and store-postgres.md.

            Progress goes to stderr; the table (or, with --json, one JSON object) to stdout.
            Targets: append ≥ 3× SQLite at batches of 100 and 10,000; group commit ≥ 10× one fsync per append; \
            rebuild ≥ 1,000,000 events/s; append at batch 10,000 ≥ 0.5× raw LMDB.
            """
    )

    enum Backend: String, ExpressibleByArgument, CaseIterable {
        case lmdb, postgres
    }

    @Option(
        help: "lmdb: LMDBEventStore against SQLite and raw LMDB. postgres: PostgresEventStore beside LMDBEventStore."
    )
    var backend: Backend = .lmdb

    @Option(
        help: ArgumentHelp(
            "The PostgreSQL server for --backend postgres (or LEDGER_BENCH_POSTGRES_URL): postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE, or postgres://USER@/DATABASE?host=/socket/dir. The role must be able to create schemas.",
            valueName: "url"
        )
    )
    var postgresUrl: String?

    @Option(
        help:
            "Events per append run at batches of 100 and 10,000, on each engine. (default: 200000, or 20000 with --quick)"
    )
    var events: Int?

    @Option(
        help:
            "Events per run that pays one fsync per event: batch 1, and one fsync per append under contention. (default: 3000, or 1000 with --quick)"
    )
    var singleEvents: Int?

    @Option(
        help:
            "Events the concurrent appenders append in all, with group commit. (default: 100000, or 10000 with --quick)"
    )
    var contendedEvents: Int?

    @Option(help: "Concurrent appenders, each a Swift task awaiting one append at a time.")
    var appenders: Int = 64

    @Option(
        help:
            "Events in the log that the projection rebuild and the scans replay. (default: 1000000, or 50000 with --quick)"
    )
    var rebuildEvents: Int?

    @Option(
        help: ArgumentHelp(
            "Run only these parts, comma-separated: append, sqlite, raw, contention, rebuild (for profiling one).",
            valueName: "parts"
        )
    )
    var only: String?

    @OptionGroup var output: BenchOutputOptions

    func validate() throws {
        for (name, value) in [
            ("--events", self.events), ("--single-events", self.singleEvents),
            ("--contended-events", self.contendedEvents), ("--rebuild-events", self.rebuildEvents),
        ] {
            if let value, value < 2 || value % 2 != 0 {
                throw ValidationError("\(name) must be an even number of at least 2 (each order has two events).")
            }
        }
        if let events = self.events, events % 10_000 != 0 {
            throw ValidationError("--events must be a multiple of 10,000, so every batch of 10,000 is whole.")
        }
        if let only = self.only {
            let parts: [(name: Substring, part: StoreBenchConfig.Part?)] = benchParts(only)
            for (name, part) in parts where part == nil {
                throw ValidationError("--only knows append, sqlite, raw, contention and rebuild, not \(name).")
            }
            if self.backend == .postgres, parts.contains(where: { $0.part == .sqlite || $0.part == .raw }) {
                throw ValidationError(
                    "With --backend postgres, --only knows append, contention and rebuild (sqlite and raw are LMDB-only baselines)."
                )
            }
        }
        if self.backend == .lmdb, self.postgresUrl != nil {
            throw ValidationError("--postgres-url needs --backend postgres.")
        }
        guard self.appenders >= 1 else { throw ValidationError("--appenders must be at least 1.") }
        if let contended = self.contendedEvents, contended / 2 < self.appenders {
            throw ValidationError("--contended-events must give every appender at least one order (two events).")
        }
    }

    func run() async throws {
        var config = self.output.quick ? StoreBenchConfig.quick : StoreBenchConfig.full
        config.batchedEvents = self.events ?? config.batchedEvents
        config.singleEvents = self.singleEvents ?? config.singleEvents
        config.contendedEvents = self.contendedEvents ?? config.contendedEvents
        config.rebuildEvents = self.rebuildEvents ?? config.rebuildEvents
        config.appenders = self.appenders
        if self.backend == .postgres {
            config.parts = [.append, .contention, .rebuild]
        }
        if let only = self.only {
            config.parts = Set(benchParts(only).compactMap(\.part))
        }

        let run = BenchRun.start("store")
        if self.backend == .postgres {
            try await self.runComparison(config: config, run: run)
            return
        }

        let results = try await StoreBenchmark(config: config).run()
        let rows = figures(results, config: config)
        let json = jsonReport(rows, results: results, run: run, config: config)
        print(self.output.json ? json : textTable(rows))
        try run.writeReport(json: json, named: "store", into: self.output.reportDirectory) {
            markdownReport(rows, run: run, config: config)
        }
        BenchRun.sayTargets(rows)
    }

    /// `--backend postgres`: the server is checked first (an unusable URL or an unreachable server ends the run
    /// in one line before any measurement), then both stores are measured and compared.
    func runComparison(config: StoreBenchConfig, run: BenchRun) async throws {
        let environmentURL = ProcessInfo.processInfo.environment[PostgresTarget.urlVariable].flatMap {
            $0.isEmpty ? nil : $0
        }
        guard let url = self.postgresUrl ?? environmentURL else {
            throw BenchError("--backend postgres needs --postgres-url URL or \(PostgresTarget.urlVariable).")
        }
        let target = try PostgresTarget(url: url)
        Progress.say("checking PostgreSQL at \(target.settings)")
        let server = try await target.check()
        for line in serverLines(server, target: target) { Progress.say(line) }

        let (lmdb, postgres) = try await StoreBenchmark(config: config).runComparison(target)
        let rows = comparisons(lmdb: lmdb, postgres: postgres, config: config)
        let json = comparisonJSON(
            rows,
            lmdb: lmdb,
            postgres: postgres,
            server: server,
            target: target,
            run: run,
            config: config
        )
        if self.output.json {
            print(json)
        } else {
            print(serverLines(server, target: target).joined(separator: "\n"))
            print("counts: " + countsText(config))
            print("")
            print(comparisonTable(rows))
        }
        try run.writeReport(json: json, named: "store-postgres", into: self.output.reportDirectory) {
            comparisonMarkdown(
                rows,
                server: server,
                target: target,
                run: run,
                config: config
            )
        }
    }
}
