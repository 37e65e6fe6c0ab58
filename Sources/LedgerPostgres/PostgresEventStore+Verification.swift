import LedgerCore
public import LedgerStore
import Logging
import NIOCore
import PostgresNIO

extension PostgresEventStore {
    /// Events read per query while walking or replaying the log.
    static let scanPageEvents = StoreLimits.postgresVerifyPageEvents

    /// Walks the whole log in one read-only snapshot: sequence continuity, each event's hash, the chain of
    /// previous-hashes, each row's order id and type against its event, and the recorded head.
    public func verifyChain(progress: ProgressHandler?) async throws -> ChainReport {
        try self.checkOpen()
        let started = ContinuousClock.now
        return try await self.reading("verifying the chain") {
            try await self.withConnection { connection in
                try await Self.transaction(connection, isolation: "REPEATABLE READ READ ONLY", logger: self.logger) {
                    connection in
                    let recorded = try await Self.readMeta(connection, schema: self.schema, logger: self.logger).head
                    var verifier = ChainVerifier(recorded: recorded, progress: progress)
                    scan: while true {
                        let rows = try await connection.query(
                            """
                            SELECT sequence, order_id, type, event FROM \(unescaped: self.schema.events)
                            WHERE sequence >= \(Int64(verifier.expected)) ORDER BY sequence LIMIT \(Self.scanPageEvents)
                            """,
                            logger: self.logger
                        ).collect()
                        for row in rows {
                            let (stored, orderId, type, bytes) = try row.decode(
                                (Int64, String, String, ByteBuffer).self
                            )
                            // The row's order id and type are indexed copies of the event's: they must agree.
                            let intact = verifier.check(sequence: UInt64(stored)) {
                                let event = try Self.decodeEvent(sequence: stored, bytes: bytes, verifyHash: false)
                                guard event.orderId.hasSameBytes(as: orderId),
                                    event.type.rawValue.hasSameBytes(as: type)
                                else {
                                    throw StoreError(
                                        .corrupted,
                                        "its row says order \(orderId) and type \(type), the event says "
                                            + "\(event.orderId) and \(event.type.rawValue)"
                                    )
                                }
                                return event
                            }
                            guard intact else { break scan }
                        }
                        if rows.count < Self.scanPageEvents { break }
                    }
                    return verifier.finish()
                }
            }
        }
    }

    /// Replays the log into the scratch generation chunk by chunk while appends go on, then, holding the append
    /// lock, applies the tail and makes the scratch generation live in the same transaction: every reader, on
    /// every daemon, sees either the old projection or the new one.
    public func rebuildProjection(progress: ProgressHandler?) async throws -> RebuildReport {
        try self.checkOpen()
        let started = ContinuousClock.now
        return try await self.withLongOperation("the rebuild") {
            let scratch = try await self.replayIntoScratch(phase: "rebuild", progress: progress)
            let (head, orders) = try await self.withConnection { connection in
                try await Self.transaction(connection, isolation: "READ COMMITTED", logger: self.logger) { connection in
                    try await self.lockAppends(connection)
                    let meta = try await Self.readMeta(connection, schema: self.schema, logger: self.logger)
                    guard meta.scratchGeneration == scratch else {
                        throw StoreError(.busy, "The live projection changed during the rebuild; run it again.")
                    }
                    try await self.catchUp(scratch: scratch, to: meta.head, on: connection)
                    try await Self.execute(
                        connection,
                        "UPDATE \(unescaped: self.schema.meta) SET live_generation = \(scratch)",
                        logger: self.logger
                    )
                    let orders =
                        try await connection.query(
                            "SELECT count(*) FROM \(unescaped: self.schema.orders) WHERE generation = \(scratch)",
                            logger: self.logger
                        ).collect().first?.decode(Int64.self) ?? 0
                    return (meta.head, UInt64(orders))
                }
            }
            return RebuildReport(
                eventsReplayed: head.sequence,
                orders: orders,
                head: head,
                seconds: (ContinuousClock.now - started).seconds
            )
        }
    }

    /// Rebuilds into the scratch generation, then, in one repeatable-read snapshot, applies the tail to it and
    /// compares it with the live projection order by order. Both reflect the snapshot's head, because every append
    /// writes its events and the live projection in one transaction; appends go on meanwhile. The snapshot's
    /// writes are rolled back: verification changes nothing.
    public func verifyProjection(differencesMax: Int, progress: ProgressHandler?) async throws -> ProjectionVerifyReport
    {
        try self.checkOpen()
        let started = ContinuousClock.now
        let differencesMax = max(differencesMax, 0)
        return try await self.withLongOperation("the verification") {
            let scratch = try await self.replayIntoScratch(phase: "verify", progress: progress)
            return try await self.withConnection { connection in
                try await Self.execute(connection, "BEGIN ISOLATION LEVEL REPEATABLE READ", logger: self.logger)
                do {
                    let report = try await self.compare(
                        scratch: scratch,
                        differencesMax: differencesMax,
                        started: started,
                        on: connection
                    )
                    try await Self.execute(connection, "ROLLBACK", logger: self.logger)
                    return report
                } catch {
                    do {
                        try await Self.execute(connection, "ROLLBACK", logger: self.logger)
                    } catch {
                        try? await connection.close()
                    }
                    throw error
                }
            }
        }
    }

    private func compare(
        scratch: Int16,
        differencesMax: Int,
        started: ContinuousClock.Instant,
        on connection: PostgresConnection
    ) async throws -> ProjectionVerifyReport {
        let meta = try await Self.readMeta(connection, schema: self.schema, logger: self.logger)
        guard meta.scratchGeneration == scratch else {
            throw StoreError(.busy, "The live projection changed during the verification; run it again.")
        }
        try await self.catchUp(scratch: scratch, to: meta.head, on: connection)
        let differing: PostgresQuery = """
            FROM (SELECT order_id, state FROM \(unescaped: self.schema.orders) WHERE generation = \(meta.liveGeneration)) AS l
            FULL JOIN (SELECT order_id, state FROM \(unescaped: self.schema.orders) WHERE generation = \(scratch)) AS s
            ON l.order_id = s.order_id
            WHERE l.state IS DISTINCT FROM s.state
            """
        let count =
            try await connection.query(
                PostgresQuery(unsafeSQL: "SELECT count(*) " + differing.sql, binds: differing.binds),
                logger: self.logger
            ).collect().first?.decode(Int64.self) ?? 0
        var differences: [ProjectionDifference] = []
        if count > 0 && differencesMax > 0 {
            var binds = differing.binds
            binds.append(Int64(differencesMax))
            let rows = try await connection.query(
                PostgresQuery(
                    unsafeSQL: "SELECT coalesce(l.order_id, s.order_id), l.state, s.state " + differing.sql
                        + " ORDER BY 1 LIMIT $\(binds.count)",
                    binds: binds
                ),
                logger: self.logger
            )
            for try await (orderId, live, rebuilt) in rows.decode((String, ByteBuffer?, ByteBuffer?).self) {
                differences.append(
                    ProjectionDifference(
                        orderId: orderId,
                        live: live.flatMap { try? Self.decodeOrder($0, orderId: orderId) },
                        rebuilt: rebuilt.flatMap { try? Self.decodeOrder($0, orderId: orderId) }
                    )
                )
            }
        }
        let compared =
            try await connection.query(
                "SELECT count(*) FROM \(unescaped: self.schema.orders) WHERE generation = \(scratch)",
                logger: self.logger
            ).collect().first?.decode(Int64.self) ?? 0
        return ProjectionVerifyReport(
            eventsReplayed: meta.head.sequence,
            ordersCompared: UInt64(compared),
            differences: differences,
            differenceCount: UInt64(count),
            head: meta.head,
            seconds: (ContinuousClock.now - started).seconds
        )
    }

    /// Empties the scratch generation and replays the log into it, one transaction per chunk, until the rest is
    /// shorter than a chunk; the caller applies that tail. Returns the scratch generation.
    private func replayIntoScratch(phase: String, progress: ProgressHandler?) async throws -> Int16 {
        let (scratch, total) = try await self.withConnection { connection in
            try await Self.transaction(connection, isolation: "READ COMMITTED", logger: self.logger) { connection in
                let meta = try await Self.readMeta(connection, schema: self.schema, logger: self.logger)
                let scratch = meta.scratchGeneration
                try await Self.execute(
                    connection,
                    "DELETE FROM \(unescaped: self.schema.orders) WHERE generation = \(scratch)",
                    logger: self.logger
                )
                try await Self.execute(
                    connection,
                    "UPDATE \(unescaped: self.schema.checkpoints) SET sequence = 0 WHERE generation = \(scratch)",
                    logger: self.logger
                )
                return (scratch, meta.head.sequence)
            }
        }
        var reporter = ProgressReporter(phase: phase, total: total, handler: progress)
        let chunkSize = self.options.rebuildChunkEvents
        var next: UInt64 = 1
        while true {
            let from = next
            let events = try await self.withConnection { connection in
                try await self.readEventsForReplay(from: from, limit: chunkSize, on: connection)
            }
            // The short tail is applied by the caller, inside its transaction.
            guard events.count == chunkSize else { break }
            let last = events.last!.sequence
            try await self.withConnection { connection in
                try await Self.transaction(connection, isolation: "READ COMMITTED", logger: self.logger) { connection in
                    try await self.applyToScratch(events, scratch: scratch, checkpoint: last, on: connection)
                }
            }
            next = last + 1
            reporter.advance(to: last)
        }
        reporter.finish()
        return scratch
    }

    /// Applies every event after the scratch checkpoint up to `head` to the scratch generation, inside the
    /// caller's transaction.
    private func catchUp(scratch: Int16, to head: LogHead, on connection: PostgresConnection) async throws {
        var checkpoint = try await Self.checkpoint(
            connection,
            schema: self.schema,
            generation: scratch,
            logger: self.logger
        )
        while checkpoint < head.sequence {
            let limit = min(self.options.rebuildChunkEvents, Int(head.sequence - checkpoint))
            let events = try await self.readEventsForReplay(from: checkpoint + 1, limit: limit, on: connection)
            guard let last = events.last, events.first?.sequence == checkpoint + 1 else {
                throw StoreError(
                    .corrupted,
                    "The log has no event \(checkpoint + 1) though its head is \(head.sequence)."
                )
            }
            try await self.applyToScratch(events, scratch: scratch, checkpoint: last.sequence, on: connection)
            checkpoint = last.sequence
        }
    }

    /// Events without their bodies (the projection never reads them), checked against their rows.
    private func readEventsForReplay(from sequence: UInt64, limit: Int, on connection: PostgresConnection) async throws
        -> [Event]
    {
        let rows = try await connection.query(
            """
            SELECT sequence, event FROM \(unescaped: self.schema.events)
            WHERE sequence >= \(Int64(sequence)) ORDER BY sequence LIMIT \(limit)
            """,
            logger: self.logger
        )
        var events: [Event] = []
        var expected = sequence
        for try await (stored, bytes) in rows.decode((Int64, ByteBuffer).self) {
            guard UInt64(stored) == expected else {
                throw StoreError(
                    .corrupted,
                    "The log skips from sequence \(expected - 1) to \(stored); run a chain verification."
                )
            }
            events.append(try Self.decodeEvent(sequence: stored, bytes: bytes, verifyHash: true, scope: .projection))
            expected += 1
        }
        return events
    }

    private func applyToScratch(
        _ events: [Event],
        scratch: Int16,
        checkpoint: UInt64,
        on connection: PostgresConnection
    ) async throws {
        var projection = try await ProjectionBatch.load(
            Set(events.map(\.orderId)),
            generation: scratch,
            schema: self.schema,
            on: connection,
            logger: self.logger
        )
        for event in events { _ = projection.apply(event) }
        try await projection.write(generation: scratch, schema: self.schema, on: connection, logger: self.logger)
        try await Self.execute(
            connection,
            "UPDATE \(unescaped: self.schema.checkpoints) SET sequence = \(Int64(checkpoint)) WHERE generation = \(scratch)",
            logger: self.logger
        )
    }
}
