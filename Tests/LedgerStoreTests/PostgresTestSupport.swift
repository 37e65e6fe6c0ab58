import Foundation
import LedgerStore
import LedgerTesting
import Logging
import PostgresNIO
import Testing

@testable import LedgerPostgres

/// The PostgreSQL the tests use: `LEDGER_TEST_POSTGRES_URL` (for example postgres://USER@127.0.0.1:5432/DB, or
/// postgres://USER@/DB?host=/socket/dir). `.ci/run` starts a throwaway cluster and sets it, with `CI=true`.
///
/// Unset outside CI, each PostgreSQL case is cancelled, which Swift Testing reports as skipped, with the reason;
/// unset in CI, each fails. Every store gets a schema of its own, so tests run in parallel and never share data.
enum PostgresTestDatabase {
    static let urlVariable = PostgresTestURL.variable

    /// Printed once per run, so the skip is visible even in a summary that hides cancelled cases.
    private static let skipNote: Void = {
        print(
            "note: PostgreSQL event-store tests are skipped: \(PostgresTestDatabase.urlVariable) is not set (CI is not true). Set it to run them."
        )
    }()

    /// The URL; or fails the test in CI; or cancels (skips) the current test case.
    static func requireURL() throws -> String {
        if let url = try PostgresTestURL.value() { return url }
        _ = Self.skipNote
        try Test.cancel("PostgreSQL tests need \(Self.urlVariable); it is not set.")
    }

    static var logger: Logger {
        var logger = Logger(label: "ledger.test.postgres")
        logger.logLevel = .warning
        return logger
    }

    /// A store in a schema of its own. Four connections: enough for appends, reads and a rebuild.
    static func freshStore(options: PostgresEventStore.Options = .init(), schema: String? = nil) async throws
        -> PostgresEventStore
    {
        let url = try Self.requireURL()
        await Self.sweep(url: url)
        var options = options
        options.schema = schema ?? PostgresTestURL.freshSchemaName()
        options.connectionsMax = 4
        // A full parallel test run on two cores can keep a new connection waiting past the default 10 s.
        if options.connectTimeout == PostgresEventStore.Options().connectTimeout {
            options.connectTimeout = .seconds(30)
        }
        return try await PostgresEventStore.open(url: url, options: options, logger: Self.logger)
    }

    /// Runs `body` with a client of its own on the test database, for SQL the store does not offer.
    static func withClient<T: Sendable>(_ body: (PostgresClient) async throws -> T) async throws -> T {
        let settings = try PostgresConnectionSettings(url: try Self.requireURL())
        var options = PostgresEventStore.Options()
        options.connectionsMax = 2
        let client = PostgresClient(configuration: PostgresEventStore.clientConfiguration(settings, options: options))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    /// Drops test schemas left by runs more than an hour old (a test cannot drop its own in a deinit), once per run.
    private static func sweep(url: String) async {
        await Self.sweepTask.value
    }

    private static let sweepTask = Task {
        _ = try? await Self.withClient { client in
            let rows = try await client.query(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ledger\\_test\\_%'",
                logger: Self.logger
            )
            var names: [String] = []
            for try await name in rows.decode(String.self) { names.append(name) }
            var stale: [String] = []
            for name in names {
                let age = try? await client.query(
                    PostgresQuery(
                        unsafeSQL:
                            "SELECT min(applied_at) < now() - interval '1 hour' FROM \"\(name)\".ledger_schema_version"
                    ),
                    logger: Self.logger
                ).collect().first?.decode(Bool?.self)
                if age == true { stale.append(name) }
            }
            for name in stale {
                try await client.query(PostgresQuery(unsafeSQL: "DROP SCHEMA \"\(name)\" CASCADE"), logger: Self.logger)
            }
        }
    }
}
