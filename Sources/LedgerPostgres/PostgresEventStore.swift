import Foundation
public import LedgerCore
public import LedgerStore
public import Logging
import NIOCore
public import PostgresNIO
import Synchronization

/// The ledger in PostgreSQL, for merchants who run several daemons against one ledger.
///
/// Same contract as the LMDB store. Each commit is one PostgreSQL transaction that takes a transaction-scoped
/// advisory lock (so appends from every daemon are serialized and the global sequence stays gap-free), reads the
/// head under that lock, and writes the events, the order index, the de-duplication index and the projection with
/// its checkpoint before `COMMIT` returns; `synchronous_commit` is at least `on` for that transaction, so a commit
/// that returned is on disk. Within one daemon, concurrent appends are grouped into one transaction
/// (`CommitQueue`), as the LMDB store's group-commit writer does.
public final class PostgresEventStore: EventStore, Sendable {
    /// The store's schema and bounds: the ones every store shares (`store.*`, `quarantine.*`) and its connections,
    /// whose members read as the options' own (`options.batchCountMax`, `options.connectionsMax`).
    @dynamicMemberLookup
    public struct Options: Sendable {
        /// The PostgreSQL schema holding the ledger's tables (`store.postgresSchema`); created when missing.
        public var schema: String
        /// The bounds every store shares: the batches, the queue, the rebuild chunks, the read page, the quarantine.
        public var shared: StoreOptions
        /// The connections (`store.postgresConnectionsMax`, `store.postgresConnectTimeoutMs`).
        public var postgres: PostgresLimits

        public init(
            schema: String = "ledger",
            limits: StoreLimits = StoreLimits(),
            postgres: PostgresLimits = PostgresLimits(),
            quarantineLimits: QuarantineLimits = QuarantineLimits()
        ) {
            self.schema = schema
            self.shared = StoreOptions(limits: limits, quarantineLimits: quarantineLimits)
            self.postgres = postgres
        }

        public subscript<Value>(dynamicMember path: WritableKeyPath<StoreOptions, Value>) -> Value {
            get { self.shared[keyPath: path] }
            set { self.shared[keyPath: path] = newValue }
        }

        public subscript<Value>(dynamicMember path: WritableKeyPath<PostgresLimits, Value>) -> Value {
            get { self.postgres[keyPath: path] }
            set { self.postgres[keyPath: path] = newValue }
        }
    }

    /// Advisory lock keys (two-int form; the second is the schema name's hash, so ledgers in different schemas of
    /// one database do not wait for each other). The class values spell LEDA, LEDL, LEDM in ASCII.
    static let appendLockClass: Int32 = 0x4C45_4441
    static let longOperationLockClass: Int32 = 0x4C45_444C
    static let migrationLockClass: Int32 = 0x4C45_444D

    public let settings: PostgresConnectionSettings
    let options: Options
    let schema: PostgresSchema
    let client: PostgresClient
    private let runTask: Task<Void, Never>
    let logger: Logger
    /// `hashtext(schema)`, the second key of every advisory lock this store takes.
    let lockKey: Int32

    struct Writer: ~Copyable {
        var queue: CommitQueue<PendingAppend>
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
        var batchSizes: [Int] = []
        var closed = false
    }

    let writer: Mutex<Writer>
    private let longOperationRunning = Mutex(false)
    /// One quarantine transaction at a time from this daemon: a flood of forgeries then holds one pooled
    /// connection, never the pool the genuine appends need (they queue here, in memory, instead).
    let quarantineTurn = QuarantineTurn()

    struct PendingAppend: CommitQueueJob, Sendable {
        var request: AppendRequest
        var continuation: CheckedContinuation<AppendOutcome, any Error>
        var estimatedBytes: Int { self.request.estimatedBytes }
    }

    private init(
        settings: PostgresConnectionSettings,
        options: Options,
        schema: PostgresSchema,
        client: PostgresClient,
        runTask: Task<Void, Never>,
        lockKey: Int32,
        logger: Logger
    ) {
        self.settings = settings
        self.options = options
        self.schema = schema
        self.client = client
        self.runTask = runTask
        self.lockKey = lockKey
        self.logger = logger
        self.writer = Mutex(
            Writer(
                queue: CommitQueue(
                    limits: .init(
                        batchCountMax: options.batchCountMax,
                        batchBytesMax: options.batchBytesMax,
                        queueDepthMax: options.queueDepthMax
                    )
                )
            )
        )
    }

    /// Connects, creates or migrates the schema, and checks the recorded head against the last event (the same
    /// property on both sides of the disk). Throws a `StoreError` that names the server and what to do.
    public static func open(
        url: String,
        options: Options = Options(),
        logger: Logger
    ) async throws -> PostgresEventStore {
        let settings: PostgresConnectionSettings
        do {
            settings = try PostgresConnectionSettings(url: url)
        } catch {
            throw StoreError(.invalidArgument, error.message)
        }
        return try await Self.open(settings: settings, options: options, logger: logger)
    }

    public static func open(
        settings: PostgresConnectionSettings,
        options: Options = Options(),
        logger: Logger
    ) async throws -> PostgresEventStore {
        try options.shared.check()
        // A long operation holds one connection for its lock and uses another; appends and reads need one more.
        guard options.connectionsMax >= 3 else {
            throw StoreError(
                .invalidArgument,
                "store.postgresConnectionsMax must be at least 3 (one for appends, two for a rebuild)."
            )
        }
        let schema = try PostgresSchema(name: options.schema)
        let client = PostgresClient(
            configuration: Self.clientConfiguration(settings, options: options),
            backgroundLogger: logger
        )
        let runTask = Self.startRunning(client)
        do {
            let lockKey = try await Self.withDeadline(options.connectTimeout, settings: settings) {
                try await Self.prepare(client: client, schema: schema, settings: settings, logger: logger)
            }
            return PostgresEventStore(
                settings: settings,
                options: options,
                schema: schema,
                client: client,
                runTask: runTask,
                lockKey: lockKey,
                logger: logger
            )
        } catch {
            runTask.cancel()
            await runTask.value
            throw Self.storeError(error, during: "opening the ledger at \(settings)", settings: settings)
        }
    }

    /// Starts the client's background work. `run()` marks the client running before its first suspension, so
    /// starting it immediately keeps the first lease from finding it not yet running.
    private static func startRunning(_ client: PostgresClient) -> Task<Void, Never> {
        if #available(macOS 26, *) {
            return Task.immediate { await client.run() }
        }
        return Task { await client.run() }
    }

    private enum Race<T: Sendable>: Sendable {
        case finished(Result<T, any Error>)
        case deadline
    }

    /// Runs `body`, or gives up after `deadline`: the connection pool keeps retrying an unreachable server, so
    /// without a deadline opening the store would wait forever. The error names the server and the last cause.
    private static func withDeadline<T: Sendable>(
        _ deadline: Duration,
        settings: PostgresConnectionSettings,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: Race<T>.self) { group in
            group.addTask {
                do {
                    return .finished(.success(try await body()))
                } catch {
                    return .finished(.failure(error))
                }
            }
            group.addTask {
                try? await Task.sleep(for: deadline)
                return .deadline
            }
            let first = try await group.next()!
            group.cancelAll()
            switch first {
            case .finished(let result):
                return try result.get()
            case .deadline:
                // The cancelled body usually fails with the pool's last connection error, the useful part.
                var cause = "no connection was made (the log shows each attempt's error)"
                var underlying: (any Error)?
                if case .finished(.failure(let error)) = try await group.next(), let failure = error as? PSQLError,
                    failure.code != .poolClosed
                {
                    cause = Self.describe(failure)
                    underlying = failure
                }
                throw StoreError(
                    .io,
                    "PostgreSQL at \(settings) did not answer within \(deadline) (store.postgresConnectTimeoutMs): \(cause).",
                    cause: underlying
                )
            }
        }
    }

    /// The configuration the store's connections use; public for tools that need a connection of their own to the
    /// same server (the benchmark reads the server's settings and drops its scratch schemas with one).
    public static func clientConfiguration(
        _ settings: PostgresConnectionSettings,
        options: Options
    ) -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        switch settings.endpoint {
        case .unixSocket(let path):
            configuration = .init(
                unixSocketPath: path,
                username: settings.user,
                password: settings.password,
                database: settings.database
            )
        case .tcp(let host, let port):
            let tls: PostgresClient.Configuration.TLS =
                settings.tls.clientTLS.map { $0.required ? .require($0.configuration) : .prefer($0.configuration) }
                ?? .disable
            configuration = .init(
                host: host,
                port: port,
                username: settings.user,
                password: settings.password,
                database: settings.database,
                tls: tls
            )
        }
        configuration.options.maximumConnections = options.connectionsMax
        configuration.options.connectTimeout = options.connectTimeout
        configuration.options.additionalStartupParameters = [("application_name", "ledgerd")]
        return configuration
    }

    // MARK: Opening

    /// Checks the server, creates or migrates the schema under a migration lock (two daemons starting at once
    /// migrate once), and checks the head. Returns the advisory lock key.
    private static func prepare(
        client: PostgresClient,
        schema: PostgresSchema,
        settings: PostgresConnectionSettings,
        logger: Logger
    ) async throws -> Int32 {
        try await client.withConnection { connection in
            let serverRow = try await connection.query(
                "SELECT current_setting('server_version_num')::int, current_setting('server_encoding'), hashtext(\(schema.name))",
                logger: logger
            ).collect()
            guard let (versionNumber, encoding, lockKey) = try serverRow.first?.decode((Int, String, Int32).self) else {
                throw StoreError(.io, "PostgreSQL at \(settings) did not report its version.")
            }
            // EXECUTE FUNCTION in triggers needs PostgreSQL 11.
            guard versionNumber >= 110_000 else {
                throw StoreError(
                    .invalidArgument,
                    "PostgreSQL at \(settings) is version \(versionNumber); the ledger needs 11 or later."
                )
            }
            // Order ids and content keys are compared as UTF-8 bytes, which needs a UTF-8 database.
            guard encoding == "UTF8" else {
                throw StoreError(
                    .invalidArgument,
                    "The database \(settings.database) is encoded as \(encoding); the ledger needs a UTF8 database (createdb -E UTF8)."
                )
            }
            try await Self.transaction(connection, isolation: "READ COMMITTED", logger: logger) { connection in
                try await Self.execute(
                    connection,
                    "SELECT pg_advisory_xact_lock(\(Self.migrationLockClass), \(lockKey))",
                    logger: logger
                )
                try await Self.migrate(connection, schema: schema, settings: settings, logger: logger)
            }
            try await Self.transaction(connection, isolation: "REPEATABLE READ READ ONLY", logger: logger) {
                connection in
                try await Self.checkHead(connection, schema: schema, logger: logger)
            }
            return lockKey
        }
    }

    private static func migrate(
        _ connection: PostgresConnection,
        schema: PostgresSchema,
        settings: PostgresConnectionSettings,
        logger: Logger
    ) async throws {
        let exists =
            try await connection.query(
                "SELECT count(*) FROM pg_namespace WHERE nspname = \(schema.name)",
                logger: logger
            ).collect().first?.decode(Int64.self) ?? 0
        if exists == 0 {
            try await Self.execute(connection, "CREATE SCHEMA \(unescaped: "\"\(schema.name)\"")", logger: logger)
        }
        let hasVersionTable =
            try await connection.query(
                "SELECT to_regclass(\(schema.version)) IS NOT NULL",
                logger: logger
            ).collect().first?.decode(Bool.self) ?? false
        var version = 0
        if hasVersionTable {
            version =
                try await connection.query(
                    "SELECT coalesce(max(version), 0) FROM \(unescaped: schema.version)",
                    logger: logger
                ).collect().first?.decode(Int.self) ?? 0
        } else {
            try await Self.execute(
                connection,
                """
                CREATE TABLE \(unescaped: schema.version) (
                    version integer PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    applied_by text NOT NULL DEFAULT current_user
                )
                """,
                logger: logger
            )
        }
        guard version <= PostgresSchema.currentVersion else {
            throw StoreError(
                .invalidArgument,
                "The ledger schema \(schema.name) in \(settings.database) is at version \(version), written by a newer ledgerd; this build knows up to version \(PostgresSchema.currentVersion). Upgrade ledgerd."
            )
        }
        guard version < PostgresSchema.currentVersion else { return }
        for next in (version + 1)...PostgresSchema.currentVersion {
            for statement in schema.migration(to: next) {
                try await Self.execute(connection, PostgresQuery(unsafeSQL: statement), logger: logger)
            }
            try await Self.execute(
                connection,
                "INSERT INTO \(unescaped: schema.version) (version) VALUES (\(next))",
                logger: logger
            )
            logger.info(
                "Migrated the ledger schema",
                metadata: ["store.schema": "\(schema.name)", "store.schema.version": "\(next)"]
            )
        }
    }

    /// The recorded head must be the last event, and the live projection's checkpoint the head.
    private static func checkHead(
        _ connection: PostgresConnection,
        schema: PostgresSchema,
        logger: Logger
    ) async throws {
        let meta = try await Self.readMeta(connection, schema: schema, logger: logger)
        let lastRows = try await connection.query(
            "SELECT sequence, event FROM \(unescaped: schema.events) ORDER BY sequence DESC LIMIT 1",
            logger: logger
        ).collect()
        var last = LogHead.empty
        if let row = lastRows.first {
            let (sequence, bytes) = try row.decode((Int64, ByteBuffer).self)
            let event = try Self.decodeEvent(sequence: sequence, bytes: bytes, verifyHash: true)
            last = LogHead(sequence: event.sequence, hash: event.hash)
        }
        guard meta.head == last else {
            throw StoreError(
                .corrupted,
                "The ledger's recorded head (\(meta.head.sequence)) is not its last event (\(last.sequence)); run a chain verification."
            )
        }
        let checkpoint = try await Self.checkpoint(
            connection,
            schema: schema,
            generation: meta.liveGeneration,
            logger: logger
        )
        guard checkpoint == last.sequence else {
            throw StoreError(
                .corrupted,
                "The live projection's checkpoint (\(checkpoint)) is not the head (\(last.sequence))."
            )
        }
    }

    // MARK: Appending

    public func append(_ request: AppendRequest) async throws -> AppendOutcome {
        try await withCheckedThrowingContinuation { continuation in
            let action = self.writer.withLock { writer in
                writer.queue.enqueue(PendingAppend(request: request, continuation: continuation))
            }
            switch action {
            case .commit(let batch):
                Task { await self.commitBatches(first: batch) }
            case .queued:
                break
            case .reject(let job, let error):
                job.continuation.resume(throwing: error)
            }
        }
    }

    /// Commits batches one after another until the queue is empty; one runs per store at a time.
    private func commitBatches(first: [PendingAppend]) async {
        var batch = first
        while true {
            await self.commit(batch)
            let (action, waiters) = self.writer.withLock {
                writer -> (CommitQueue<PendingAppend>.FinishAction, [CheckedContinuation<Void, Never>]) in
                let action = writer.queue.finished()
                guard case .closed = action else { return (action, []) }
                let waiters = writer.closeWaiters
                writer.closeWaiters = []
                return (action, waiters)
            }
            switch action {
            case .commit(let next):
                batch = next
            case .idle:
                return
            case .closed:
                for waiter in waiters { waiter.resume() }
                return
            }
        }
    }

    /// One transaction for the whole batch; every caller hears the same result.
    private func commit(_ batch: [PendingAppend]) async {
        let requests = batch.map(\.request)
        let outcomes: [AppendOutcome]
        do {
            outcomes = try await self.withConnection { connection in
                try await Self.transaction(connection, isolation: "READ COMMITTED", logger: self.logger) { connection in
                    try await self.appendBatch(requests, on: connection)
                }
            }
        } catch {
            let failure = Self.storeError(error, during: "appending", settings: self.settings)
            self.logger.error(
                "A ledger commit failed",
                metadata: ["store.batch.appends": "\(batch.count)", "error.message": "\(failure.message)"]
            )
            for job in batch { job.continuation.resume(throwing: failure) }
            return
        }
        self.writer.withLock { writer in
            if writer.batchSizes.count < StoreLimits.batchSamplesMax { writer.batchSizes.append(batch.count) }
        }
        for (job, outcome) in zip(batch, outcomes) { job.continuation.resume(returning: outcome) }
    }

    /// Batch sizes committed since the last call, for metrics.
    public func takeCommitBatchSizes() -> [Int] {
        self.writer.withLock { writer in
            let sizes = writer.batchSizes
            writer.batchSizes.removeAll(keepingCapacity: true)
            return sizes
        }
    }

    /// Takes the append lock and makes this transaction's commit durable: `synchronous_commit` `off` or `local` is
    /// raised to `on` for this transaction only (stronger settings stay), so an acknowledged append is on disk
    /// (and on a synchronous standby, where one is configured) whatever the server's default.
    func lockAppends(_ connection: PostgresConnection) async throws {
        try await Self.execute(
            connection,
            """
            SELECT set_config('synchronous_commit', CASE WHEN current_setting('synchronous_commit') IN ('off', 'local')
                   THEN 'on' ELSE current_setting('synchronous_commit') END, true),
                   pg_advisory_xact_lock(\(Self.appendLockClass), \(self.lockKey))
            """,
            logger: self.logger
        )
    }

    /// The body of an append transaction.
    private func appendBatch(_ requests: [AppendRequest], on connection: PostgresConnection) async throws
        -> [AppendOutcome]
    {
        try await self.lockAppends(connection)
        // Read after the lock: in READ COMMITTED each statement sees every transaction committed before it began,
        // so this is the head the previous holder of the lock left, whichever daemon it was.
        let meta = try await Self.readMeta(connection, schema: self.schema, logger: self.logger)
        var orderIds = Set<String>()
        for request in requests {
            for event in request.events { orderIds.insert(event.orderId) }
            if case .orderAbsent(let orderId) = request.precondition { orderIds.insert(orderId) }
        }
        var projection = try await ProjectionBatch.load(
            orderIds,
            generation: meta.liveGeneration,
            schema: self.schema,
            on: connection,
            logger: self.logger
        )
        var writes = EventWrites()
        var outcomes: [AppendOutcome] = []
        var head = meta.head
        for request in requests {
            if case .orderAbsent(let orderId) = request.precondition, let existing = projection.state(of: orderId),
                existing.order != nil
            {
                outcomes.append(.preconditionFailed(existing))
                continue
            }
            var appended = Appended(events: [], effects: [], orders: [:])
            for pending in request.events {
                let (event, encoded) = pending.sealedAndEncoded(sequence: head.sequence + 1, previousHash: head.hash)
                writes.add(event, encoded: encoded)
                let (effect, state) = projection.apply(event)
                head = LogHead(sequence: event.sequence, hash: event.hash)
                appended.events.append(event)
                appended.effects.append(effect)
                appended.orders[event.orderId] = state
            }
            outcomes.append(.appended(appended))
        }
        guard head != meta.head else { return outcomes }
        // The primary key on sequence is the last line of defence: were two writers ever to compute the same
        // sequence, the second transaction would fail instead of forking the chain.
        try await Self.execute(
            connection,
            writes.appendStatement(
                schema: self.schema,
                projection: projection,
                generation: meta.liveGeneration,
                head: head
            ),
            logger: self.logger
        )
        return outcomes
    }

    // MARK: Reading

    public func head() async throws -> LogHead {
        try self.checkOpen()
        return try await self.reading("reading the head") {
            try await self.withConnection { connection in
                try await Self.readMeta(connection, schema: self.schema, logger: self.logger).head
            }
        }
    }

    public func readEvents(from sequence: UInt64, limit: Int) async throws -> [Event] {
        try self.checkOpen()
        let limit = min(max(limit, 0), self.options.readPageMax)
        guard limit > 0, sequence <= UInt64(Int64.max) else { return [] }
        return try await self.reading("reading the log") {
            let rows = try await self.rows(
                """
                SELECT sequence, event FROM \(unescaped: self.schema.events)
                WHERE sequence >= \(Int64(max(sequence, 1))) ORDER BY sequence LIMIT \(limit)
                """,
                logger: self.logger
            )
            var events: [Event] = []
            for row in rows {
                let (sequence, bytes) = try row.decode((Int64, ByteBuffer).self)
                events.append(try Self.decodeEvent(sequence: sequence, bytes: bytes, verifyHash: true))
            }
            return events
        }
    }

    public func events(forOrder orderId: String) async throws -> [Event] {
        try self.checkOpen()
        // PostgreSQL text cannot hold NUL, so no stored order id has one.
        guard !orderId.utf8.contains(0) else { return [] }
        return try await self.reading("reading an order's events") {
            let rows = try await self.rows(
                "SELECT sequence, event FROM \(unescaped: self.schema.events) WHERE order_id = \(orderId) ORDER BY sequence",
                logger: self.logger
            )
            var events: [Event] = []
            for row in rows {
                let (sequence, bytes) = try row.decode((Int64, ByteBuffer).self)
                let event = try Self.decodeEvent(sequence: sequence, bytes: bytes, verifyHash: true)
                guard event.orderId.hasSameBytes(as: orderId) else {
                    throw StoreError(
                        .corrupted,
                        "The order index lists event \(sequence) under \(orderId), but it is for \(event.orderId)."
                    )
                }
                events.append(event)
            }
            return events
        }
    }

    public func createdEvent(forOrder orderId: String) async throws -> Event? {
        try self.checkOpen()
        guard !orderId.utf8.contains(0) else { return nil }
        let type = EventType.orderCreated.rawValue
        return try await self.reading("reading an order's creation") {
            // The (order_id, sequence) index finds the order's first event of the type without reading the rest.
            let rows = try await self.rows(
                """
                SELECT sequence, event FROM \(unescaped: self.schema.events)
                WHERE order_id = \(orderId) AND type = \(type) ORDER BY sequence LIMIT 1
                """,
                logger: self.logger
            )
            guard let row = rows.first else { return nil }
            let (sequence, bytes) = try row.decode((Int64, ByteBuffer).self)
            let event = try Self.decodeEvent(sequence: sequence, bytes: bytes, verifyHash: true)
            guard event.orderId.hasSameBytes(as: orderId), case .orderCreated = event.payload else {
                throw StoreError(
                    .corrupted,
                    "Event \(sequence) is listed as the creation of \(orderId), but it is not."
                )
            }
            return event
        }
    }

    public func order(_ orderId: String) async throws -> OrderState? {
        try self.checkOpen()
        guard !orderId.utf8.contains(0) else { return nil }
        return try await self.reading("reading an order") {
            let rows = try await self.rows(
                """
                SELECT o.state FROM \(unescaped: self.schema.orders) AS o
                JOIN \(unescaped: self.schema.meta) AS m ON o.generation = m.live_generation
                WHERE o.order_id = \(orderId)
                """,
                logger: self.logger
            )
            guard let row = rows.first else { return nil }
            return try Self.decodeOrder(try row.decode(ByteBuffer.self), orderId: orderId)
        }
    }

    public func orders(status: OrderStatus, after afterOrderId: String?, limit: Int) async throws -> [OrderState] {
        try self.checkOpen()
        let limit = min(max(limit, 0), self.options.readPageMax)
        guard limit > 0 else { return [] }
        let code = Int16(status.code)
        return try await self.reading("listing orders") {
            // Oldest first, by the first event naming each order, as the LMDB store lists them.
            var after: Int64 = 0
            if let afterOrderId {
                let unknown = StoreError(
                    .invalidArgument,
                    "The ledger holds no order \(afterOrderId); page with an order id from a previous page."
                )
                // A NUL cannot be stored, so an id holding one names no order.
                guard !afterOrderId.utf8.contains(0) else { throw unknown }
                let found = try await self.rows(
                    """
                    SELECT o.first_sequence FROM \(unescaped: self.schema.orders) AS o
                    JOIN \(unescaped: self.schema.meta) AS m ON o.generation = m.live_generation
                    WHERE o.order_id = \(afterOrderId)
                    """,
                    logger: self.logger
                )
                guard let row = found.first else { throw unknown }
                after = try row.decode(Int64.self)
            }
            let rows = try await self.rows(
                """
                SELECT o.order_id, o.state FROM \(unescaped: self.schema.orders) AS o
                JOIN \(unescaped: self.schema.meta) AS m ON o.generation = m.live_generation
                WHERE o.status = \(code) AND o.first_sequence > \(after)
                ORDER BY o.first_sequence LIMIT \(limit)
                """,
                logger: self.logger
            )
            var states: [OrderState] = []
            for row in rows {
                let (orderId, state) = try row.decode((String, ByteBuffer).self)
                states.append(try Self.decodeOrder(state, orderId: orderId))
            }
            return states
        }
    }

    public func firstCallback(orderId: String, signedContentKey: String) async throws -> UInt64? {
        try self.checkOpen()
        guard !orderId.utf8.contains(0), !signedContentKey.utf8.contains(0) else { return nil }
        return try await self.reading("reading the de-duplication index") {
            let rows = try await self.rows(
                """
                SELECT sequence FROM \(unescaped: self.schema.dedup)
                WHERE order_id = \(orderId) AND signed_content_key = \(signedContentKey)
                """,
                logger: self.logger
            )
            guard let row = rows.first else { return nil }
            return UInt64(try row.decode(Int64.self))
        }
    }

    public func statistics() async throws -> StoreStatistics {
        try self.checkOpen()
        return try await self.reading("reading statistics") {
            try await self.withConnection { connection in
                try await Self.transaction(connection, isolation: "REPEATABLE READ READ ONLY", logger: self.logger) {
                    connection in
                    let meta = try await Self.readMeta(connection, schema: self.schema, logger: self.logger)
                    var byType: [EventType: UInt64] = [:]
                    for type in EventType.allCases { byType[type] = 0 }
                    let counts = try await connection.query(
                        "SELECT type, count FROM \(unescaped: self.schema.counts)",
                        logger: self.logger
                    )
                    for try await (type, count) in counts.decode((String, Int64).self) {
                        if let type = EventType(rawValue: type) { byType[type] = UInt64(count) }
                    }
                    var byStatus: [OrderStatus: UInt64] = [:]
                    for status in OrderStatus.allCases { byStatus[status] = 0 }
                    let statuses = try await connection.query(
                        """
                        SELECT status, count(*) FROM \(unescaped: self.schema.orders)
                        WHERE generation = \(meta.liveGeneration) GROUP BY status
                        """,
                        logger: self.logger
                    )
                    for try await (code, count) in statuses.decode((Int16, Int64).self) {
                        guard let status = UInt8(exactly: code).flatMap(OrderStatus.init(code:)) else {
                            throw StoreError(
                                .corrupted,
                                "The projection holds orders with an unknown status code \(code)."
                            )
                        }
                        byStatus[status] = UInt64(count)
                    }
                    let bytes =
                        try await connection.query(
                            """
                            SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class AS c
                            JOIN pg_namespace AS n ON n.oid = c.relnamespace
                            WHERE n.nspname = \(self.schema.name) AND c.relkind = 'r'
                            """,
                            logger: self.logger
                        ).collect().first?.decode(Int64.self) ?? 0
                    return StoreStatistics(
                        head: meta.head,
                        eventsByType: byType,
                        ordersByStatus: byStatus,
                        storeBytes: UInt64(max(bytes, 0)),
                        mapBytes: nil
                    )
                }
            }
        }
    }

    // MARK: Backup and closing

    /// PostgreSQL's own tools make consistent backups of a live database; a copy made by the daemon would not be
    /// one, so the store says so instead of writing anything.
    public func backup(to path: String) async throws -> BackupReport {
        throw StoreError(
            .invalidArgument,
            """
            The ledger is stored in PostgreSQL (schema \(self.schema.name) of database \(self.settings.database)), which \
            the daemon does not copy; nothing was written to \(path). Back it up with PostgreSQL's tools, for example \
            pg_dump --format=custom --schema=\(self.schema.name) --file=\(path) \(self.settings.database), or with base \
            backups and WAL archiving for point-in-time recovery.
            """
        )
    }

    /// Refuses new appends, lets the queued ones commit, then closes the connections. Idempotent.
    public func close() async {
        let mustWait = self.writer.withLock { writer in
            writer.closed = true
            switch writer.queue.close() {
            case .closed: return false
            case .waitForDrain: return true
            case .alreadyClosing: return writer.queue.state != .closed
            }
        }
        if mustWait {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let drained = self.writer.withLock { writer in
                    if writer.queue.state == .closed { return true }
                    writer.closeWaiters.append(continuation)
                    return false
                }
                if drained { continuation.resume() }
            }
        }
        self.runTask.cancel()
        await self.runTask.value
    }

    func checkOpen() throws(StoreError) {
        let closed = self.writer.withLock { $0.closed }
        if closed { throw StoreError(.closed, "The ledger store is closed.") }
    }

    /// Runs a read and turns PostgreSQL's errors into `StoreError`s.
    func reading<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw Self.storeError(error, during: what, settings: self.settings)
        }
    }

    /// Claims the right to run a rebuild or a verification: one at a time in this process, and across daemons
    /// through a session-level advisory lock held on a connection of its own for the whole operation.
    func withLongOperation<T: Sendable>(_ name: String, _ body: @escaping @Sendable () async throws -> T) async throws
        -> T
    {
        let claimed = self.longOperationRunning.withLock { running in
            if running { return false }
            running = true
            return true
        }
        guard claimed else {
            throw StoreError(
                .busy,
                "A projection rebuild or verification is already running; \(name) must wait for it."
            )
        }
        defer { self.longOperationRunning.withLock { $0 = false } }
        do {
            return try await self.withConnection { lockConnection in
                let locked =
                    try await lockConnection.query(
                        "SELECT pg_try_advisory_lock(\(Self.longOperationLockClass), \(self.lockKey))",
                        logger: self.logger
                    ).collect().first?.decode(Bool.self) ?? false
                guard locked else {
                    throw StoreError(
                        .busy,
                        "Another daemon is rebuilding or verifying this ledger's projection; \(name) must wait for it."
                    )
                }
                let result: Result<T, any Error>
                do {
                    result = .success(try await body())
                } catch {
                    result = .failure(error)
                }
                do {
                    try await Self.execute(
                        lockConnection,
                        "SELECT pg_advisory_unlock(\(Self.longOperationLockClass), \(self.lockKey))",
                        logger: self.logger
                    )
                } catch {
                    // A session lock outlives the lease: end the session rather than pool a connection holding it.
                    try? await lockConnection.close()
                }
                return try result.get()
            }
        } catch {
            throw Self.storeError(error, during: name, settings: self.settings)
        }
    }
}

extension PostgresEventStore: CommitBatchReporting {}
