import Foundation
import LedgerCore
import LedgerPostgres
import LedgerTesting
import Logging
import PostgresNIO
import Testing

/// `tools/bench store` in its smallest form, against the debug `ledger-bench`: the benchmark's own checks (each
/// store's head and last order after the appends, the rebuild's and the scan's counts) hold, and its JSON report
/// carries every figure. Its figures measure a debug build and are not asserted.
struct StoreBenchTests {
    /// Counts small enough for a debug build: every measurement still runs, on a few thousand events.
    static let smallCounts = [
        "--quick", "--events", "10000", "--single-events", "200", "--contended-events", "2000", "--appenders", "8",
        "--rebuild-events", "4000", "--json",
    ]

    struct Run {
        var status: Int32
        var stdout: Data
        var stderr: String
    }

    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> Run {
        let run = try ChildProcess.run(
            try BuiltProducts.path("ledger-bench"),
            arguments,
            environment: ProcessInfo.processInfo.environment.merging(environment) { $1 }
        )
        return Run(status: run.status, stdout: Data(run.stdout.utf8), stderr: run.stderr)
    }

    static func parse(_ data: Data) throws -> JSONValue {
        try JSONParser.parse(
            Array(data),
            limits: JSONLimits(bytesMax: 1 << 24, depthMax: 16, stringBytesMax: 1 << 20, membersMax: 1 << 16)
        )
    }

    /// The default (LMDB) run keeps its report's shape: every figure against SQLite and raw LMDB, and the targets.
    @Test func quickLMDBRunReportsEveryFigure() throws {
        let run = try Self.run(["store"] + Self.smallCounts)
        #expect(run.status == 0, "\(run.stderr)")
        let report = try Self.parse(run.stdout)
        #expect(report["benchmark"]?.stringValue == "store")
        #expect(report["backend"] == nil)
        guard case .object(let figures)? = report["figures"] else {
            Issue.record("the report has no figures: \(run.stderr)")
            return
        }
        for key in [
            "append.batch1", "append.batch100", "append.batch10000", "sqlite.batch100", "raw.batch10000",
            "appendVsRaw.batch10000", "rebuild", "scan.readEvents", "scan.raw", "fold.memory", "groupCommit",
            "groupCommit.p99", "oneFsync",
        ] {
            #expect(figures[key]?["value"]?.numberText != nil, "figure \(key) is missing or not a number")
        }
        #expect(report["targets"]?.arrayValue?.isEmpty == false, "the report lists no targets")
    }

    /// `--backend postgres --quick`: every EventStore-level figure on both stores with the ratio, the server's
    /// version and durability settings, and no schema left behind.
    @Test func quickPostgresRunComparesBothStores() async throws {
        guard let url = try PostgresTestURL.value() else {
            try Test.cancel("The PostgreSQL store benchmark smoke test needs LEDGER_TEST_POSTGRES_URL; it is not set.")
        }
        // The URL through the benchmark's own variable, as tools/bench users would set it.
        let run = try Self.run(
            ["store", "--backend", "postgres"] + Self.smallCounts,
            environment: ["LEDGER_BENCH_POSTGRES_URL": url]
        )
        #expect(run.status == 0, "\(run.stderr)")
        let report = try Self.parse(run.stdout)
        #expect(report["benchmark"]?.stringValue == "store")
        #expect(report["backend"]?.stringValue == "postgres")
        #expect(report["postgres"]?["serverVersion"]?.stringValue?.isEmpty == false)
        // .ci/run's cluster and the README's both keep PostgreSQL's durable defaults.
        #expect(report["postgres"]?["fsync"]?.stringValue == "on")
        #expect(
            ["on", "remote_apply", "remote_write"].contains(report["postgres"]?["synchronousCommit"]?.stringValue ?? "")
        )
        #expect(report["config"]?["rebuildEvents"]?.int64Value == 4000)
        guard case .object(let figures)? = report["figures"] else {
            Issue.record("the report has no figures: \(run.stderr)")
            return
        }
        for key in [
            "append.batch1", "append.batch100", "append.batch10000", "bytesPerEvent", "groupCommit", "groupCommit.p50",
            "groupCommit.p99", "oneFsync", "groupCommit.gain", "rebuild", "scan.readEvents",
        ] {
            #expect(figures[key]?["lmdb"]?.numberText != nil, "figure \(key) has no LMDB value")
            #expect(figures[key]?["postgres"]?.numberText != nil, "figure \(key) has no PostgreSQL value")
            #expect(figures[key]?["ratioPostgresToLMDB"]?.numberText != nil, "figure \(key) has no ratio")
        }
        #expect(report["runs"]?["postgres"]?["rebuild"]?["events"]?.int64Value == 4000)
        #expect(try await Self.benchSchemas(url: url).isEmpty, "every scratch schema is dropped")
    }

    /// A URL that is not one, and a server that is not there: one line on stderr, a non-zero exit, nothing on stdout.
    @Test(arguments: [
        ("mysql://ledger@localhost/ledger", "The PostgreSQL URL is not usable"),
        ("postgres://ledger@/ledger?host=/nonexistent-ledger-bench-socket-dir", "did not answer"),
    ])
    func unusablePostgresFailsInOneLine(url: String, expected: String) throws {
        let run = try Self.run(["store", "--backend", "postgres", "--postgres-url", url] + Self.smallCounts)
        #expect(run.status != 0)
        #expect(run.stdout.isEmpty)
        let errorLines = run.stderr.split(separator: "\n").filter { $0.hasPrefix("Error:") }
        #expect(errorLines.count == 1, "\(run.stderr)")
        #expect(errorLines.first?.contains(expected) == true, "\(run.stderr)")
        #expect(!run.stderr.contains("Fatal error") && !run.stderr.contains("Stack dump"), "\(run.stderr)")
        // Nothing was measured before the server was found unusable.
        #expect(!run.stderr.contains("append, batch"), "\(run.stderr)")
    }

    /// Schemas named like the benchmark's scratch schemas.
    static func benchSchemas(url: String) async throws -> [String] {
        var logger = Logger(label: "ledger.test.bench")
        logger.logLevel = .warning
        var options = PostgresEventStore.Options()
        options.connectionsMax = 1
        let client = PostgresClient(
            configuration: PostgresEventStore.clientConfiguration(
                try PostgresConnectionSettings(url: url),
                options: options
            )
        )
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            let rows = try await client.query(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ledger\\_bench\\_%'",
                logger: logger
            )
            var names: [String] = []
            for try await name in rows.decode(String.self) { names.append(name) }
            return names
        }
    }
}
