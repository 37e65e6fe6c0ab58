import LedgerCore
import LedgerStore
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// The row of `ledger_meta`.
struct StoreMeta: Sendable, Hashable {
    var head: LogHead
    var liveGeneration: Int16

    var scratchGeneration: Int16 { 1 - self.liveGeneration }
}

extension PostgresEventStore {
    private enum LeaseRace<T: Sendable>: Sendable {
        case done(T)
        case deadline
    }

    /// Leases a connection for `body`, waiting at most `store.postgresConnectTimeoutMs` for one: the pool waits
    /// without end while the server is unreachable or every connection is busy, and an append or a read should
    /// fail with a reason instead. Once `body` has its connection it runs to its end; if the deadline and the
    /// lease cross, a committed transaction is still reported as committed.
    func withConnection<T: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let leased = LeaseFlag()
        let deadline = self.options.connectTimeout
        return try await withThrowingTaskGroup(of: LeaseRace<T>.self) { group in
            group.addTask {
                .done(
                    try await self.client.withConnection { connection in
                        leased.set()
                        return try await body(connection)
                    }
                )
            }
            group.addTask {
                try? await Task.sleep(for: deadline)
                return .deadline
            }
            while true {
                let next: LeaseRace<T>?
                do {
                    next = try await group.next()
                } catch {
                    group.cancelAll()
                    throw error
                }
                switch next {
                case .done(let value):
                    group.cancelAll()
                    return value
                case .deadline:
                    guard !leased.isSet else { continue }
                    group.cancelAll()
                    do {
                        if case .done(let value) = try await group.next() { return value }
                    } catch {
                        if leased.isSet { throw error }
                    }
                    throw StoreError(
                        .io,
                        "No connection to PostgreSQL at \(self.settings) within \(deadline) (store.postgresConnectTimeoutMs): the server is unreachable or all \(self.options.connectionsMax) connections (store.postgresConnectionsMax) are busy. Nothing was done."
                    )
                case nil:
                    preconditionFailure("the lease race ended without a result")
                }
            }
        }
    }

    /// Runs a query on a leased connection and reads all of its rows (every caller reads a bounded page).
    func rows(_ query: PostgresQuery, logger: Logger) async throws -> [PostgresRow] {
        try await self.withConnection { connection in
            try await connection.query(query, logger: logger).collect()
        }
    }

    /// Runs one statement and reads its result to the end, so an error the server sends after the first message
    /// still surfaces here.
    static func execute(_ connection: PostgresConnection, _ query: PostgresQuery, logger: Logger) async throws {
        let rows = try await connection.query(query, logger: logger)
        for try await _ in rows {}
    }

    /// Runs `body` between `BEGIN` and `COMMIT` on one connection; rolls back when it throws.
    ///
    /// A failed `COMMIT` is reported as such: when the server answered with an error the transaction is rolled
    /// back, but when the connection broke its outcome is unknown, and the error says so rather than guess.
    static func transaction<T>(
        _ connection: PostgresConnection,
        isolation: String,
        logger: Logger,
        _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await Self.execute(connection, "BEGIN ISOLATION LEVEL \(unescaped: isolation)", logger: logger)
        let value: T
        do {
            value = try await body(connection)
        } catch {
            do {
                try await Self.execute(connection, "ROLLBACK", logger: logger)
            } catch {
                // The connection is unusable; the server rolls back when the session ends.
                try? await connection.close()
            }
            throw error
        }
        do {
            try await Self.execute(connection, "COMMIT", logger: logger)
        } catch let error as PSQLError where error.code == .server {
            throw error
        } catch {
            try? await connection.close()
            throw CommitOutcomeUnknown(underlying: error)
        }
        return value
    }

    static func readMeta(_ connection: PostgresConnection, schema: PostgresSchema, logger: Logger) async throws
        -> StoreMeta
    {
        let rows = try await connection.query(
            "SELECT head_sequence, head_hash, live_generation FROM \(unescaped: schema.meta)",
            logger: logger
        ).collect()
        guard rows.count == 1,
            let (sequence, hashBytes, generation) = try rows.first?.decode((Int64, ByteBuffer, Int16).self)
        else {
            throw StoreError(.corrupted, "The ledger's metadata row in \(schema.meta) is missing or duplicated.")
        }
        guard sequence >= 0, let hash = Digest32(bytes: hashBytes.readableBytesView), generation == 0 || generation == 1
        else {
            throw StoreError(.corrupted, "The ledger's metadata row in \(schema.meta) is damaged.")
        }
        return StoreMeta(head: LogHead(sequence: UInt64(sequence), hash: hash), liveGeneration: generation)
    }

    static func checkpoint(
        _ connection: PostgresConnection,
        schema: PostgresSchema,
        generation: Int16,
        logger: Logger
    ) async throws -> UInt64 {
        let rows = try await connection.query(
            "SELECT sequence FROM \(unescaped: schema.checkpoints) WHERE generation = \(generation)",
            logger: logger
        ).collect()
        guard let sequence = try rows.first?.decode(Int64.self), sequence >= 0 else {
            throw StoreError(.corrupted, "The checkpoint of projection generation \(generation) is missing.")
        }
        return UInt64(sequence)
    }

    /// Decodes a stored event and checks it against its row: the same checks on the way out as on the way in.
    static func decodeEvent(
        sequence: Int64,
        bytes: ByteBuffer,
        verifyHash: Bool,
        scope: EventCodec.Scope = .full
    ) throws -> Event {
        let event: Event
        do {
            event = try bytes.withUnsafeReadableBytes { buffer in
                try EventCodec.decode(buffer, verifyHash: verifyHash, scope: scope)
            }
        } catch let error as EventDecodingError {
            throw StoreError(.corrupted, "Event \(sequence) does not decode: \(error.description)")
        }
        guard event.sequence == UInt64(sequence) else {
            throw StoreError(.corrupted, "The event stored under \(sequence) says it is event \(event.sequence).")
        }
        return event
    }

    static func decodeOrder(_ bytes: ByteBuffer, orderId: String) throws -> OrderState {
        do {
            return try bytes.withUnsafeReadableBytes { buffer in try OrderStateCodec.decode(buffer) }
        } catch let error as EventDecodingError {
            throw StoreError(
                .corrupted,
                "The stored projection of order \(orderId) does not decode: \(error.description)"
            )
        }
    }

    /// Maps PostgreSQL's errors to the store's, with a message an operator can act on. PostgresNIO's own
    /// descriptions are deliberately generic, so the server's message and SQLSTATE are taken from its fields.
    static func storeError(_ error: any Error, during what: String, settings: PostgresConnectionSettings) -> StoreError
    {
        switch error {
        case let error as StoreError:
            return error
        case let error as CommitOutcomeUnknown:
            return StoreError(
                .io,
                "The connection to PostgreSQL at \(settings) failed while committing (\(Self.describe(error.underlying))); the append may or may not be stored. Read the order back before retrying.",
                cause: error.underlying
            )
        case let error as PSQLError:
            if error.code == .server {
                let state = error.serverInfo?[.sqlState] ?? "?????"
                let message = error.serverInfo?[.message] ?? "no message"
                let code: StoreErrorCode
                switch state.prefix(2) {
                case "53": code = .full  // insufficient resources: disk full, out of memory, too many connections
                case "40", "55": code = .busy  // serialization failure, deadlock, lock not available
                case "XX": code = .corrupted  // internal error, data corrupted, index corrupted
                case "23": code = .corrupted  // an integrity constraint the store's own writes should never break
                default: code = .io
                }
                return StoreError(code, "PostgreSQL refused \(what) (SQLSTATE \(state)): \(message)", cause: error)
            }
            return StoreError(
                .io,
                "PostgreSQL at \(settings) could not be used for \(what): \(Self.describe(error)).",
                cause: error
            )
        default:
            return StoreError(
                .io,
                "PostgreSQL at \(settings) could not be used for \(what): \(Self.describe(error)).",
                cause: error
            )
        }
    }

    /// A description without credentials: the PostgresNIO error code and the underlying error, if any.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let message = error.serverInfo?[.message] { return message }
        if let underlying = error.underlying { return "\(error.code): \(underlying)" }
        return "\(error.code)"
    }
}

/// `COMMIT` was sent but no answer came back: the transaction may or may not have committed.
struct CommitOutcomeUnknown: Error {
    var underlying: any Error
}

/// The events of one transaction, written with one statement (arrays bound as parameters and unnested by the
/// server), so a batch of a thousand appends costs the same round trips as one.
struct EventWrites {
    var sequences: [Int64] = []
    var orderIds: [String] = []
    var types: [String] = []
    var encoded: [ByteBuffer] = []
    var dedupOrderIds: [String] = []
    var dedupKeys: [String] = []
    var dedupSequences: [Int64] = []
    private var dedupSeen = Set<String>()
    var typeCounts: [EventType: Int64] = [:]

    mutating func add(_ event: Event, encoded: [UInt8]) {
        self.sequences.append(Int64(event.sequence))
        self.orderIds.append(event.orderId)
        self.types.append(event.type.rawValue)
        self.encoded.append(ByteBuffer(bytes: encoded))
        self.typeCounts[event.type, default: 0] += 1
        if case .callbackReceived(let callback) = event.payload, let key = callback.signedContentKey {
            // The first one in the batch stays, as `ON CONFLICT DO NOTHING` keeps the first one across batches.
            if self.dedupSeen.insert(event.orderId + "\u{0}" + key).inserted {
                self.dedupOrderIds.append(event.orderId)
                self.dedupKeys.append(key)
                self.dedupSequences.append(Int64(event.sequence))
            }
        }
    }

    /// Everything an append transaction writes, as one statement of data-modifying CTEs (one round trip instead
    /// of five): the events, the de-duplication entries (`ON CONFLICT DO NOTHING` keeps the first), the live
    /// projection, the counts, the head and the live checkpoint. The CTEs touch different tables, so none needs
    /// to see another's rows; a failure in any of them fails the statement and the transaction.
    func appendStatement(
        schema: PostgresSchema,
        projection: ProjectionBatch,
        generation: Int16,
        head: LogHead
    ) -> PostgresQuery {
        let (orderIds, statuses, states, firsts) = projection.rows()
        let types = self.typeCounts.keys.map(\.rawValue)
        let added = self.typeCounts.values.map { $0 }
        let headSequence = Int64(head.sequence)
        return """
            WITH events AS (
                INSERT INTO \(unescaped: schema.events) (sequence, order_id, type, event)
                SELECT * FROM unnest(\(self.sequences)::bigint[], \(self.orderIds)::text[], \(self.types)::text[], \(self.encoded)::bytea[])
            ), dedup AS (
                INSERT INTO \(unescaped: schema.dedup) (order_id, signed_content_key, sequence)
                SELECT * FROM unnest(\(self.dedupOrderIds)::text[], \(self.dedupKeys)::text[], \(self.dedupSequences)::bigint[])
                ON CONFLICT DO NOTHING
            ), orders AS (
                INSERT INTO \(unescaped: schema.orders) (generation, order_id, status, state, first_sequence)
                SELECT \(generation), * FROM unnest(\(orderIds)::text[], \(statuses)::smallint[], \(states)::bytea[], \(firsts)::bigint[])
                ON CONFLICT (generation, order_id) DO UPDATE SET status = excluded.status, state = excluded.state
            ), counts AS (
                UPDATE \(unescaped: schema.counts) AS c SET count = c.count + a.added
                FROM unnest(\(types)::text[], \(added)::bigint[]) AS a(type, added) WHERE c.type = a.type
            ), head AS (
                UPDATE \(unescaped: schema.meta) SET head_sequence = \(headSequence), head_hash = \(ByteBuffer(bytes: head.hash.bytes))
            )
            UPDATE \(unescaped: schema.checkpoints) SET sequence = \(headSequence) WHERE generation = \(generation)
            """
    }
}

/// The orders one transaction touches, loaded in one query, folded in memory, and written back in one statement:
/// the PostgreSQL counterpart of the LMDB store's `ProjectionTable`.
struct ProjectionBatch {
    private var states: [String: OrderState] = [:]
    private var touched = Set<String>()
    /// The first sequence applied to each touched order in this batch: an order's `first_sequence` when this batch
    /// creates its row (a stored row keeps its own, as the upsert does not update it).
    private var firstSequence: [String: Int64] = [:]

    static func load(
        _ orderIds: Set<String>,
        generation: Int16,
        schema: PostgresSchema,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> ProjectionBatch {
        var batch = ProjectionBatch()
        guard !orderIds.isEmpty else { return batch }
        let rows = try await connection.query(
            """
            SELECT order_id, state FROM \(unescaped: schema.orders)
            WHERE generation = \(generation) AND order_id = ANY(\(Array(orderIds))::text[])
            """,
            logger: logger
        )
        for try await (orderId, state) in rows.decode((String, ByteBuffer).self) {
            batch.states[orderId] = try PostgresEventStore.decodeOrder(state, orderId: orderId)
        }
        return batch
    }

    func state(of orderId: String) -> OrderState? { self.states[orderId] }

    mutating func apply(_ event: Event) -> (EventEffect, OrderState) {
        var state = self.states[event.orderId] ?? OrderState(orderId: event.orderId)
        let effect = state.apply(event)
        self.states[event.orderId] = state
        if self.touched.insert(event.orderId).inserted { self.firstSequence[event.orderId] = Int64(event.sequence) }
        return (effect, state)
    }

    /// The touched orders as columns: ids, status codes, encoded states, first sequences.
    func rows() -> (orderIds: [String], statuses: [Int16], states: [ByteBuffer], firsts: [Int64]) {
        var orderIds: [String] = []
        var statuses: [Int16] = []
        var encoded: [ByteBuffer] = []
        var firsts: [Int64] = []
        for orderId in self.touched {
            let state = self.states[orderId]!
            orderIds.append(orderId)
            statuses.append(Int16(state.status.code))
            encoded.append(ByteBuffer(bytes: OrderStateCodec.encode(state)))
            firsts.append(self.firstSequence[orderId]!)
        }
        return (orderIds, statuses, encoded, firsts)
    }

    func write(
        generation: Int16,
        schema: PostgresSchema,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws {
        guard !self.touched.isEmpty else { return }
        let (orderIds, statuses, encoded, firsts) = self.rows()
        try await PostgresEventStore.execute(
            connection,
            """
            INSERT INTO \(unescaped: schema.orders) (generation, order_id, status, state, first_sequence)
            SELECT \(generation), * FROM unnest(\(orderIds)::text[], \(statuses)::smallint[], \(encoded)::bytea[], \(firsts)::bigint[])
            ON CONFLICT (generation, order_id) DO UPDATE SET status = excluded.status, state = excluded.state
            """,
            logger: logger
        )
    }
}

/// Whether a lease was granted, shared between the leasing task and its deadline.
final class LeaseFlag: Sendable {
    private let value = Mutex(false)

    func set() { self.value.withLock { $0 = true } }
    var isSet: Bool { self.value.withLock { $0 } }
}
