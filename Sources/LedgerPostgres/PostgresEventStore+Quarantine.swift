public import LedgerCore
public import LedgerStore
import Logging
import NIOCore
import PostgresNIO

/// The quarantine in PostgreSQL: the same entries, counts and eviction rule as the LMDB store (`QuarantineBook`),
/// in the tables `PostgresSchema` describes. Each notification is one transaction, serialized across daemons by the
/// status row's lock; nothing here touches the event log.
extension PostgresEventStore {
    public func quarantine(_ entry: QuarantineEntry) async throws -> QuarantineReceipt {
        try self.checkOpen()
        let limits = self.options.quarantineLimits
        let schema = self.schema
        let logger = self.logger
        await self.quarantineTurn.take()
        defer { Task { await self.quarantineTurn.give() } }
        do {
            return try await self.withConnection { connection in
                try await Self.transaction(connection, isolation: "READ COMMITTED", logger: logger) { connection in
                    try await Self.addToQuarantine(
                        entry,
                        limits: limits,
                        schema: schema,
                        on: connection,
                        logger: logger
                    )
                }
            }
        } catch {
            throw Self.storeError(error, during: "quarantining a notification", settings: self.settings)
        }
    }

    private static func addToQuarantine(
        _ entry: QuarantineEntry,
        limits: QuarantineLimits,
        schema: PostgresSchema,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> QuarantineReceipt {
        // An order is known when the live projection has it with an order-created event (any status but unknown).
        var known = false
        if let orderId = entry.orderId, !orderId.isEmpty, !orderId.utf8.contains(0) {
            let found = try await connection.query(
                """
                SELECT count(*) FROM \(unescaped: schema.orders) AS o
                JOIN \(unescaped: schema.meta) AS m ON o.generation = m.live_generation
                WHERE o.order_id = \(orderId) AND o.status <> \(Int16(OrderStatus.unknown.code))
                """,
                logger: logger
            ).collect()
            known = (try found.first?.decode(Int64.self) ?? 0) > 0
        }
        let statusRows = try await connection.query(
            """
            SELECT entries, bytes, dropped, next_id, total, unknown_orders FROM \(unescaped: schema.quarantineStatus)
            FOR UPDATE
            """,
            logger: logger
        ).collect()
        guard let row = statusRows.first else {
            throw StoreError(.corrupted, "The quarantine's status row in \(schema.quarantineStatus) is missing.")
        }
        let (entries, bytes, dropped, nextId, totalBytes, unknownBytes) = try row.decode(
            (Int64, Int64, Int64, Int64, ByteBuffer, ByteBuffer).self
        )
        var status = QuarantineStatus(
            entries: UInt64(entries),
            bytes: UInt64(bytes),
            dropped: UInt64(dropped),
            total: try Self.decodeCounts(totalBytes),
            unknownOrders: try Self.decodeCounts(unknownBytes)
        )
        var entry = entry
        entry.id = UInt64(nextId)
        let accounted = entry.accountedBytes
        try await Self.execute(
            connection,
            """
            INSERT INTO \(unescaped: schema.quarantine) (id, source, order_id, bytes, entry)
            VALUES (\(nextId), \(entry.source), \(entry.orderId), \(Int32(accounted)),
                    \(ByteBuffer(bytes: QuarantineCodec.encode(entry))))
            """,
            logger: logger
        )
        try await Self.execute(
            connection,
            """
            INSERT INTO \(unescaped: schema.quarantineSources) (source, entries) VALUES (\(entry.source), 1)
            ON CONFLICT (source) DO UPDATE SET entries = \(unescaped: schema.quarantineSources).entries + 1
            """,
            logger: logger
        )
        status.entries += 1
        status.bytes += UInt64(accounted)
        status.total.count(entry.reason, at: entry.receivedAt)
        if known, let orderId = entry.orderId {
            let existing = try await connection.query(
                "SELECT counts FROM \(unescaped: schema.quarantineCounts) WHERE order_id = \(orderId) FOR UPDATE",
                logger: logger
            ).collect()
            var counts =
                try existing.first.map { try Self.decodeCounts(try $0.decode(ByteBuffer.self)) } ?? QuarantineCounts()
            counts.count(entry.reason, at: entry.receivedAt)
            try await Self.execute(
                connection,
                """
                INSERT INTO \(unescaped: schema.quarantineCounts) (order_id, counts)
                VALUES (\(orderId), \(ByteBuffer(bytes: QuarantineCodec.encode(counts))))
                ON CONFLICT (order_id) DO UPDATE SET counts = excluded.counts
                """,
                logger: logger
            )
        } else {
            status.unknownOrders.count(entry.reason, at: entry.receivedAt)
        }
        var droppedNow = 0
        while status.entries > UInt64(limits.entriesMax) || status.bytes > UInt64(limits.bytesMax) {
            // The oldest entry of the heaviest source (of two as heavy, the one whose name sorts last).
            let removed = try await connection.query(
                """
                WITH heaviest AS (
                    SELECT source FROM \(unescaped: schema.quarantineSources) ORDER BY entries DESC, source DESC LIMIT 1
                ), oldest AS (
                    SELECT q.id FROM \(unescaped: schema.quarantine) AS q, heaviest
                    WHERE q.source = heaviest.source ORDER BY q.id LIMIT 1
                )
                DELETE FROM \(unescaped: schema.quarantine) WHERE id = (SELECT id FROM oldest)
                RETURNING source, bytes
                """,
                logger: logger
            ).collect()
            guard let (source, removedBytes) = try removed.first?.decode((String, Int32).self) else {
                throw StoreError(
                    .corrupted,
                    "The quarantine holds \(status.entries) entries but names no source to drop from."
                )
            }
            try await Self.execute(
                connection,
                """
                UPDATE \(unescaped: schema.quarantineSources) SET entries = entries - 1
                WHERE source = \(source) AND entries > 1
                """,
                logger: logger
            )
            try await Self.execute(
                connection,
                "DELETE FROM \(unescaped: schema.quarantineSources) WHERE source = \(source) AND entries = 1",
                logger: logger
            )
            status.entries -= 1
            status.bytes -= UInt64(removedBytes)
            status.dropped += 1
            droppedNow += 1
        }
        try await Self.execute(
            connection,
            """
            UPDATE \(unescaped: schema.quarantineStatus)
            SET entries = \(Int64(status.entries)), bytes = \(Int64(status.bytes)), dropped = \(Int64(status.dropped)),
                next_id = \(nextId + 1), total = \(ByteBuffer(bytes: QuarantineCodec.encode(status.total))),
                unknown_orders = \(ByteBuffer(bytes: QuarantineCodec.encode(status.unknownOrders)))
            """,
            logger: logger
        )
        return QuarantineReceipt(id: entry.id, dropped: droppedNow, orderKnown: known)
    }

    public func quarantined(_ query: QuarantineQuery) async throws -> QuarantinePage {
        try self.checkOpen()
        let limit = min(max(query.limit, 0), self.options.readPageMax)
        let before = Int64(clamping: query.before ?? UInt64(Int64.max))
        return try await self.reading("reading the quarantine") {
            // The filters on source and order id narrow the scan in SQL; `matches` applies every filter exactly.
            var found: [QuarantineEntry] = []
            var cursor = before
            // An address filter may name a source (an IPv4 address, an IPv6 /64) or one full peer address, which
            // lies in the source it folds to.
            let source = query.remoteAddress.map(RemoteSource.of)
            while true {
                let rows = try await self.rows(
                    """
                    SELECT id, entry FROM \(unescaped: self.schema.quarantine)
                    WHERE id < \(cursor)
                      AND (\(query.orderId)::text IS NULL OR order_id = \(query.orderId))
                      AND (\(source)::text IS NULL OR source = \(source) OR source = \(query.remoteAddress))
                    ORDER BY id DESC LIMIT \(max(limit, 1) * 4)
                    """,
                    logger: self.logger
                )
                for row in rows {
                    let (id, bytes) = try row.decode((Int64, ByteBuffer).self)
                    cursor = id
                    let entry = try Self.decodeQuarantined(bytes, id: id)
                    guard query.matches(entry) else { continue }
                    if found.count == limit { return QuarantinePage(entries: found, nextCursor: found.last?.id) }
                    found.append(entry)
                }
                if rows.count < max(limit, 1) * 4 { return QuarantinePage(entries: found, nextCursor: nil) }
            }
        }
    }

    public func quarantineCounts(orderId: String?) async throws -> [String: QuarantineCounts] {
        try self.checkOpen()
        if let orderId, orderId.isEmpty || orderId.utf8.contains(0) { return [:] }
        return try await self.reading("reading the quarantine's counts") {
            let rows: [PostgresRow]
            if let orderId {
                rows = try await self.rows(
                    """
                    SELECT order_id, counts FROM \(unescaped: self.schema.quarantineCounts) WHERE order_id = \(orderId)
                    """,
                    logger: self.logger
                )
            } else {
                rows = try await self.rows(
                    "SELECT order_id, counts FROM \(unescaped: self.schema.quarantineCounts)",
                    logger: self.logger
                )
            }
            var counts: [String: QuarantineCounts] = [:]
            for row in rows {
                let (orderId, bytes) = try row.decode((String, ByteBuffer).self)
                counts[orderId] = try Self.decodeCounts(bytes)
            }
            return counts
        }
    }

    public func quarantineStatus() async throws -> QuarantineStatus {
        try self.checkOpen()
        return try await self.reading("reading the quarantine's status") {
            let rows = try await self.rows(
                "SELECT entries, bytes, dropped, total, unknown_orders FROM \(unescaped: self.schema.quarantineStatus)",
                logger: self.logger
            )
            guard let row = rows.first else {
                throw StoreError(
                    .corrupted,
                    "The quarantine's status row in \(self.schema.quarantineStatus) is missing."
                )
            }
            let (entries, bytes, dropped, total, unknown) = try row.decode(
                (Int64, Int64, Int64, ByteBuffer, ByteBuffer).self
            )
            return QuarantineStatus(
                entries: UInt64(entries),
                bytes: UInt64(bytes),
                dropped: UInt64(dropped),
                total: try Self.decodeCounts(total),
                unknownOrders: try Self.decodeCounts(unknown)
            )
        }
    }

    static func decodeCounts(_ buffer: ByteBuffer) throws -> QuarantineCounts {
        do {
            return try buffer.readableBytesView.withUnsafeBytes { bytes throws(EventDecodingError) in
                try QuarantineCodec.decodeCounts(bytes)
            }
        } catch {
            throw StoreError(.corrupted, "A quarantine count record does not decode: \(error.description)")
        }
    }

    static func decodeQuarantined(_ buffer: ByteBuffer, id: Int64) throws -> QuarantineEntry {
        do {
            return try buffer.readableBytesView.withUnsafeBytes { bytes throws(EventDecodingError) in
                try QuarantineCodec.decode(bytes)
            }
        } catch {
            throw StoreError(.corrupted, "Quarantine entry \(id) does not decode: \(error.description)")
        }
    }
}

/// A turn that one task holds at a time, the others waiting in arrival order.
actor QuarantineTurn {
    private var held = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func take() async {
        if !self.held {
            self.held = true
            return
        }
        await withCheckedContinuation { self.waiting.append($0) }
    }

    func give() {
        if self.waiting.isEmpty {
            self.held = false
        } else {
            self.waiting.removeFirst().resume()
        }
    }
}

extension PostgresEventStore: StoreSizeReporting {
    /// The total size (tables, indexes and TOAST) of every table in the ledger's schema: the disk the ledger
    /// takes on the server. PostgreSQL has no map to fill, so the map figures are absent.
    public func storeSize() async throws -> StoreSize {
        try self.checkOpen()
        return try await self.reading("reading the size of the ledger's tables") {
            let rows = try await self.rows(
                """
                SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint
                  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = \(self.schema.name) AND c.relkind IN ('r', 'p')
                """,
                logger: self.logger
            )
            let bytes = try rows.first?.decode(Int64.self) ?? 0
            return StoreSize(usedBytes: Int(bytes))
        }
    }
}
