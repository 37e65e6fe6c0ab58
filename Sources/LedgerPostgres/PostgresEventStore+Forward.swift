public import LedgerCore
public import LedgerStore
import Logging
import NIOCore
import PostgresNIO

/// The forwarder's state in PostgreSQL (`ledger_forward_outbox`, `ledger_forward_position`, schema version 3): the
/// same contract as the LMDB store. Only the poll leader forwards, but a write still checks the position against the
/// head inside its transaction, so no daemon can record a position ahead of the log.
extension PostgresEventStore {
    public func forwardPosition() async throws -> UInt64 {
        try self.checkOpen()
        let schema = self.schema
        let logger = self.logger
        do {
            return try await self.withConnection { connection in
                let rows = try await connection.query(
                    "SELECT position FROM \(unescaped: schema.forwardPosition)",
                    logger: logger
                ).collect()
                guard let position = try rows.first?.decode(Int64.self) else {
                    throw StoreError(.corrupted, "The forward position row in \(schema.forwardPosition) is missing.")
                }
                return UInt64(position)
            }
        } catch {
            throw Self.storeError(error, during: "reading the forward position", settings: self.settings)
        }
    }

    public func forwardOutbox(after: ForwardKey?, limit: Int) async throws -> [ForwardDelivery] {
        try self.checkOpen()
        let limit = min(max(limit, 0), self.options.readPageMax)
        if limit == 0 { return [] }
        let schema = self.schema
        let logger = self.logger
        // The empty receiver sorts before every configured one, so "no cursor" is the cursor before the first row.
        let receiver = after?.receiver ?? ""
        let sequence = Int64(after?.sequence ?? 0)
        let tag = Int16(after?.type.tag ?? 0)
        do {
            return try await self.withConnection { connection in
                let rows = try await connection.query(
                    """
                    SELECT delivery FROM \(unescaped: schema.forwardOutbox)
                    WHERE (receiver, sequence, type_tag) > (\(receiver), \(sequence), \(tag))
                    ORDER BY receiver, sequence, type_tag LIMIT \(Int64(limit))
                    """,
                    logger: logger
                ).collect()
                return try rows.map { row in
                    let buffer = try row.decode(ByteBuffer.self)
                    do {
                        return try ForwardCodec.decode(buffer.readableBytesView)
                    } catch {
                        throw StoreError(.corrupted, "A forward delivery does not decode: \(error)")
                    }
                }
            }
        } catch {
            throw Self.storeError(error, during: "reading the forward outbox", settings: self.settings)
        }
    }

    public func forwardWrite(_ write: ForwardWrite) async throws {
        try self.checkOpen()
        guard !write.isEmpty else { return }
        let schema = self.schema
        let logger = self.logger
        do {
            try await self.withConnection { connection in
                try await Self.transaction(connection, isolation: "READ COMMITTED", logger: logger) { connection in
                    if let position = write.position {
                        let rows = try await connection.query(
                            "SELECT head_sequence FROM \(unescaped: schema.meta)",
                            logger: logger
                        ).collect()
                        let head = UInt64(try rows.first?.decode(Int64.self) ?? 0)
                        guard position <= head else {
                            throw StoreError(
                                .invalidArgument,
                                "The forward position \(position) is beyond the log's head \(head)."
                            )
                        }
                        try await Self.execute(
                            connection,
                            "UPDATE \(unescaped: schema.forwardPosition) SET position = \(Int64(position))",
                            logger: logger
                        )
                    }
                    for delivery in write.put {
                        let key = delivery.key
                        try await Self.execute(
                            connection,
                            """
                            INSERT INTO \(unescaped: schema.forwardOutbox) (receiver, sequence, type_tag, delivery)
                            VALUES (\(key.receiver), \(Int64(key.sequence)), \(Int16(key.type.tag)),
                                    \(ByteBuffer(bytes: ForwardCodec.encode(delivery))))
                            ON CONFLICT (receiver, sequence, type_tag) DO UPDATE SET delivery = excluded.delivery
                            """,
                            logger: logger
                        )
                    }
                    for key in write.remove {
                        try await Self.execute(
                            connection,
                            """
                            DELETE FROM \(unescaped: schema.forwardOutbox)
                            WHERE receiver = \(key.receiver) AND sequence = \(Int64(key.sequence))
                                AND type_tag = \(Int16(key.type.tag))
                            """,
                            logger: logger
                        )
                    }
                }
            }
        } catch {
            throw Self.storeError(error, during: "writing the forward outbox", settings: self.settings)
        }
    }
}
