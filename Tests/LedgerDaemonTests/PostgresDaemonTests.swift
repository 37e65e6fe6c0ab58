import AsyncHTTPClient
import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerDaemon
import LedgerPostgres
import LedgerStore
import LedgerTesting
import Testing

/// Selecting the PostgreSQL store: its configuration keys, and the daemon running on it over real sockets.
struct PostgresDaemonTests {
    static let base = GatewaySettings.testingEnvironment()

    /// `store.backend` defaults to LMDB; postgres takes its URL and settings from flags, environment or file.
    @Test func selectsPostgres() async throws {
        let lmdb = try await DaemonConfiguration.load(flags: [:], environment: Self.base, file: nil)
        #expect(lmdb.storeBackend == .lmdb)
        var environment = Self.base
        environment["LEDGERD_STORE_POSTGRES_URL"] = "postgres://ledger:pw@db.example:6543/books"
        environment["LEDGERD_STORE_POSTGRES_SCHEMA"] = "shop"
        environment["LEDGERD_STORE_POSTGRES_CONNECTIONS_MAX"] = "12"
        let configuration = try await DaemonConfiguration.load(
            flags: ["store.backend": "postgres"],
            environment: environment,
            file: nil
        )
        guard case .postgres(let postgres) = configuration.storeBackend else {
            Issue.record("--store postgres selects PostgreSQL")
            return
        }
        #expect(postgres.connection.endpoint == .tcp(host: "db.example", port: 6543))
        #expect(postgres.connection.database == "books")
        #expect(postgres.schema == "shop")
        #expect(postgres.connectionsMax == 12)
        #expect(!"\(postgres.connection)".contains("pw"))
        let directory = TemporaryDirectory()
        let file = directory.path + "/ledgerd.json"
        try #"{"store": {"backend": "postgres", "postgresUrl": "postgres://u@/d?host=/run/postgresql"}}"#
            .write(toFile: file, atomically: true, encoding: .utf8)
        let fromFile = try await DaemonConfiguration.load(flags: [:], environment: Self.base, file: file)
        guard case .postgres(let socket) = fromFile.storeBackend else {
            Issue.record("the file selects PostgreSQL")
            return
        }
        #expect(socket.connection.endpoint == .unixSocket(path: "/run/postgresql/.s.PGSQL.5432"))
    }

    /// A missing or unusable URL, an unknown backend, or a bad bound stops the start with the key named.
    @Test(arguments: [
        (["LEDGERD_STORE_BACKEND": "postgres"], "store.postgresUrl"),
        (["LEDGERD_STORE_BACKEND": "postgres", "LEDGERD_STORE_POSTGRES_URL": "mysql://u@h/d"], "store.postgresUrl"),
        (["LEDGERD_STORE_BACKEND": "sqlite"], "store.backend"),
        (
            [
                "LEDGERD_STORE_BACKEND": "postgres", "LEDGERD_STORE_POSTGRES_URL": "postgres://u@h/d",
                "LEDGERD_STORE_POSTGRES_CONNECTIONS_MAX": "1",
            ], "store.postgresConnectionsMax"
        ),
    ])
    func invalidNamed(_ environment: [String: String], _ key: String) async throws {
        await #expect {
            _ = try await DaemonConfiguration.load(
                flags: [:],
                environment: environment.merging(Self.base) { a, _ in a },
                file: nil
            )
        } throws: { error in
            (error as? ConfigurationError)?.key == key
        }
    }

    /// The daemon on PostgreSQL: an order created, a callback sent twice over HTTP, one state change, one
    /// duplicate, the history and a refused backup that names pg_dump.
    @Test func daemonOnPostgres() async throws {
        let url = try requirePostgresURL()
        let directory = TemporaryDirectory()
        var configuration = try testConfiguration(directory: directory)
        configuration.storeBackend = .postgres(try testPostgresSettings(url: url))
        let store = try await LedgerDaemon.openStore(configuration: configuration, logger: testLogger)
        #expect(store is PostgresEventStore)
        await store.close()
        // The daemon opens the configured PostgreSQL store itself when it runs.
        let socketPath = configuration.socketPath
        try await withRunningDaemon(configuration) { running in
            _ = try await running.daemon.ledger.createOrder(.testing(orderId: "PG1"))
            let client = HTTPClient()
            defer { shutdownLater(client) }
            let body = Notifications.body(Notifications.fields(orderId: "PG1"))
            for _ in 0..<2 {
                let (status, text, _) = try await post(client, running.baseURL + "/notify", body: body)
                #expect(status == 200 && text == "OK")
            }
            let state = try #require(try await running.daemon.ledger.order("PG1"))
            #expect(state.status == .paid)
            #expect(state.callbacks.duplicate == 1)
            #expect(try await running.daemon.ledger.history("PG1").count == 3)
            // Over the control socket, `order.history` and `order.get` take the general path on PostgreSQL (the
            // thread-pool reads are LMDB's): the same answers.
            let (history, order) = try await blocking { () throws -> (JSONValue, JSONValue) in
                let socket = try ControlConnection(socketPath)
                return (
                    try socket.call("order.history", ["orderId": "PG1"]),
                    try socket.call("order.get", ["orderId": "PG1"])
                )
            }
            #expect(history["result"]?["entries"]?.arrayValue?.count == 3, "\(history)")
            #expect(history["result"]?["orderId"] == "PG1", "\(history)")
            #expect(order["result"]?["state"] == "paid", "\(order)")
            // The store's size is its tables' size on the server; there is no map to report.
            let metrics = try Exposition(try await get(client, running.baseURL + "/metrics").1)
            #expect(try #require(metrics.value("ledger_store_used_bytes")) > 0)
            #expect(metrics.value("ledger_store_map_bytes") == nil)
            #expect(metrics.value("ledger_store_map_max_bytes") == nil)
            await #expect {
                try await running.daemon.store.backup(to: directory.path + "/backup")
            } throws: { error in
                (error as? StoreError)?.message.contains("pg_dump") == true
            }
        }
    }

    /// On a shared ledger the event feed of one daemon carries every daemon's events, in sequence order, each once:
    /// orders created on two daemons in turn (each daemon's own appends published at once, the other's read from
    /// the log) reach a subscriber of the first as one gap-free run of sequence numbers.
    @Test(.timeLimit(.minutes(1))) func feedFollowsEveryDaemon() async throws {
        let url = try requirePostgresURL()
        let directory = TemporaryDirectory()
        var configuration = try testConfiguration(directory: directory)
        configuration.storeBackend = .postgres(try testPostgresSettings(url: url))
        func ledger() async throws -> Ledger {
            Ledger(
                store: try await LedgerDaemon.openStore(configuration: configuration, logger: testLogger),
                settings: configuration.gateway,
                key: configuration.key,
                publicURL: configuration.publicURL,
                followInterval: .milliseconds(20),
                logger: testLogger
            )
        }
        let first = try await ledger()
        let second = try await ledger()
        let follower = try #require(first.follower)
        #expect(second.follower != nil)
        try await follower.start()
        let (_, stream) = first.feed.subscribe(queueMax: 1000)
        let following = Task { try await follower.run() }
        for index in 0..<20 {
            let daemon = index % 3 == 0 ? first : second  // runs of the second's appends between the first's
            _ = try await daemon.createOrder(.testing(orderId: "F\(index)", amount: "1.00"))
        }
        var sequences: [UInt64] = []
        var orders: Set<String> = []
        for await events in stream {
            sequences += events.map(\.sequence)
            orders.formUnion(events.map(\.orderId))
            if sequences.count >= 20 { break }
        }
        #expect(sequences == Array(1...20))
        #expect(orders.count == 20)
        following.cancel()
        _ = try? await following.value
        await first.store.close()
        await second.store.close()
    }
}
