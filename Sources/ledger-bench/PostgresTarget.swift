import Foundation
import LedgerPostgres
import LedgerStore
import Logging
import PostgresNIO
import Synchronization

/// The PostgreSQL server that `ledger-bench store --backend postgres` measures: each measurement opens a
/// `PostgresEventStore` in a schema of its own and drops the schema afterwards.
struct PostgresTarget: Sendable {
    static let urlVariable = "LEDGER_BENCH_POSTGRES_URL"

    let settings: PostgresConnectionSettings
    let logger: Logger
    let connectionErrors: ConnectionErrorRecorder

    /// How long the store's open may wait for the server.
    static let connectTimeout: Duration = .seconds(10)
    /// How long each of the benchmark's own statements (SHOW, the size query, DROP SCHEMA) may take.
    static let statementTimeout: Duration = .seconds(60)

    /// Parses the URL; an unusable one is a one-line error naming what is wrong (never the password).
    init(url: String) throws {
        do {
            self.settings = try PostgresConnectionSettings(url: url)
        } catch {
            throw BenchError(error.message)
        }
        // The store's and the pool's own log lines would repeat the errors the benchmark reports, on stdout; the
        // pool's last connection error is kept instead, for the one-line error of a server that does not answer.
        let recorder = ConnectionErrorRecorder()
        self.connectionErrors = recorder
        self.logger = Logger(label: "ledger-bench.postgres") { _ in RecordingLogHandler(recorder: recorder) }
    }

    /// Where the server is, for the report: the database and the host, or that it is a local socket (whose
    /// directory says nothing about the figures).
    var place: String {
        switch self.settings.endpoint {
        case .tcp(let host, let port): return "database \(self.settings.database) on \(host):\(port)"
        case .unixSocket: return "database \(self.settings.database) over a Unix socket on this machine"
        }
    }

    /// The server's version and the settings that make its commits durable, read with SHOW.
    struct ServerInfo: Sendable {
        var version: String
        var fsync: String
        var synchronousCommit: String
        var walSyncMethod: String

        /// fsync off means a commit that returned may not be on disk: the figures would not be durable ones.
        var durable: Bool { self.fsync == "on" }
    }

    /// A fresh schema name: the store creates it at open, the benchmark drops it after the measurement.
    static func freshSchemaName() -> String {
        "ledger_bench_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
    }

    /// Opens a store in a fresh schema, so the server is known to be reachable and usable before minutes of
    /// LMDB measurements, then reads the server's settings and drops the schema.
    func check() async throws -> ServerInfo {
        let schema = Self.freshSchemaName()
        let store: PostgresEventStore
        do {
            store = try await self.openStore(schema: schema, batchCountMax: 1)
        } catch let error as StoreError where error.message.contains("did not answer") {
            // The store's message points at a log the benchmark does not print: name the last attempt's error.
            guard let last = self.connectionErrors.last else { throw error }
            throw BenchError("PostgreSQL at \(self.settings) did not answer within \(Self.connectTimeout): \(last)")
        }
        await store.close()
        let info = try await self.withClient("reading the server's settings") { client, logger in
            func show(_ name: String) async throws -> String {
                let rows = try await client.query(PostgresQuery(unsafeSQL: "SHOW \(name)"), logger: logger).collect()
                return try rows.first?.decode(String.self) ?? "unknown"
            }
            return ServerInfo(
                version: try await show("server_version"),
                fsync: try await show("fsync"),
                synchronousCommit: try await show("synchronous_commit"),
                walSyncMethod: try await show("wal_sync_method")
            )
        }
        try await self.dropSchema(schema)
        return info
    }

    /// A store in `schema`, created by the open.
    func openStore(schema: String, batchCountMax: Int) async throws -> PostgresEventStore {
        var options = PostgresEventStore.Options()
        options.schema = schema
        options.batchCountMax = batchCountMax
        options.connectTimeout = Self.connectTimeout
        return try await PostgresEventStore.open(settings: self.settings, options: options, logger: self.logger)
    }

    /// Bytes of every table in `schema`, with its indexes and TOAST: what the store occupies on the server.
    func schemaBytes(_ schema: String) async throws -> UInt64 {
        try await self.withClient("measuring the schema \(schema)") { client, logger in
            let rows = try await client.query(
                """
                SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = \(schema) AND c.relkind = 'r'
                """,
                logger: logger
            ).collect()
            return UInt64(max(0, try rows.first?.decode(Int64.self) ?? 0))
        }
    }

    func dropSchema(_ schema: String) async throws {
        // The name is the benchmark's own (freshSchemaName): lower-case letters, digits and underscores.
        try await self.withClient("dropping the schema \(schema)") { client, logger in
            _ = try await client.query(
                PostgresQuery(unsafeSQL: "DROP SCHEMA IF EXISTS \"\(schema)\" CASCADE"),
                logger: logger
            )
        }
    }

    private enum Race<T: Sendable>: Sendable {
        case finished(T)
        case deadline
        case stopped
    }

    /// Runs `body` with a one-connection client of the benchmark's own; a server that does not answer within
    /// `statementTimeout`, or an error, ends the run with one line naming the server (never its password).
    func withClient<T: Sendable>(
        _ what: String,
        _ body: @escaping @Sendable (PostgresClient, Logger) async throws -> T
    ) async throws -> T {
        var options = PostgresEventStore.Options()
        options.connectionsMax = 1
        options.connectTimeout = Self.connectTimeout
        let client = PostgresClient(
            configuration: PostgresEventStore.clientConfiguration(self.settings, options: options),
            backgroundLogger: self.logger
        )
        let logger = self.logger
        let settings = self.settings
        do {
            return try await withThrowingTaskGroup(of: Race<T>.self) { group in
                group.addTask {
                    await client.run()
                    return .stopped
                }
                group.addTask { .finished(try await body(client, logger)) }
                group.addTask {
                    try? await Task.sleep(for: Self.statementTimeout)
                    return .deadline
                }
                defer { group.cancelAll() }
                while let next = try await group.next() {
                    switch next {
                    case .finished(let value): return value
                    case .deadline:
                        throw BenchError(
                            "PostgreSQL at \(settings) did not answer within \(Self.statementTimeout) while \(what)."
                        )
                    case .stopped: continue
                    }
                }
                throw BenchError("PostgreSQL at \(settings): the client stopped while \(what).")
            }
        } catch let error as BenchError {
            throw error
        } catch {
            throw BenchError("PostgreSQL at \(settings) failed while \(what): \(Self.describe(error)).")
        }
    }

    /// The server's message, or PostgresNIO's error code and cause; never the connection's password.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let message = error.serverInfo?[.message] { return message }
        if let underlying = error.underlying { return "\(error.code): \(underlying)" }
        return "\(error.code)"
    }
}

/// The last connection error the pool logged (it logs one per failed attempt, and keeps retrying).
final class ConnectionErrorRecorder: Sendable {
    private let lastError = Mutex<String?>(nil)

    var last: String? { self.lastError.withLock { $0 } }

    func record(_ error: String) { self.lastError.withLock { $0 = error } }
}

/// A log handler that prints nothing and hands every error in a message's metadata to the recorder.
struct RecordingLogHandler: LogHandler {
    let recorder: ConnectionErrorRecorder
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        guard let metadata = event.metadata else { return }
        for (key, value) in metadata where key.contains("error") {
            self.recorder.record("\(value)")
        }
    }
}
