import CSQLite
import Foundation
import LedgerCore

/// The store a user would otherwise pick: SQLite in WAL mode with `synchronous=FULL` (every commit fsyncs the
/// WAL), holding the same records and indexes as the LMDB log and doing the same work per event in Swift: seal
/// (hash chain, `EventCodec` encoding), index by order, de-duplicate signed callbacks, fold the projection and
/// upsert each touched order's `OrderStateCodec` encoding with its status index.
///
/// sqlite.org/pragma.html#pragma_synchronous: "FULL (2) ... In WAL mode when synchronous is FULL, the WAL file is
/// synchronized before each transaction commit", which is the durability the ledger promises.
final class SQLiteLedger {
    private let db: OpaquePointer
    private let insertEvent: Statement
    private let insertOrderEvent: Statement
    private let insertDedup: Statement
    private let selectOrder: Statement
    private let upsertOrder: Statement
    private let upsertMeta: Statement
    private var head = (sequence: UInt64(0), hash: Digest32.zero)

    static let schema = """
        PRAGMA journal_mode=WAL;
        PRAGMA synchronous=FULL;
        CREATE TABLE events(sequence INTEGER PRIMARY KEY, body BLOB NOT NULL);
        CREATE TABLE order_events(order_id TEXT NOT NULL, sequence INTEGER NOT NULL,
            PRIMARY KEY(order_id, sequence)) WITHOUT ROWID;
        CREATE TABLE callback_dedup(order_id TEXT NOT NULL, content_key TEXT NOT NULL, sequence INTEGER NOT NULL,
            PRIMARY KEY(order_id, content_key)) WITHOUT ROWID;
        CREATE TABLE orders(order_id TEXT PRIMARY KEY, status INTEGER NOT NULL, state BLOB NOT NULL) WITHOUT ROWID;
        CREATE INDEX orders_by_status ON orders(status, order_id);
        CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
        """

    init(path: String) throws {
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let handle else {
            sqlite3_close(handle)
            throw BenchError("SQLite could not open \(path): result \(rc).")
        }
        self.db = handle
        try Self.exec(handle, Self.schema)
        // Confirm the modes took: a benchmark against a silently non-durable baseline would flatter us.
        guard try Self.pragma(handle, "journal_mode") == "wal", try Self.pragma(handle, "synchronous") == "2" else {
            throw BenchError("SQLite did not accept journal_mode=WAL and synchronous=FULL.")
        }
        self.insertEvent = try Statement(handle, "INSERT INTO events(sequence, body) VALUES (?1, ?2)")
        self.insertOrderEvent = try Statement(handle, "INSERT INTO order_events(order_id, sequence) VALUES (?1, ?2)")
        self.insertDedup = try Statement(
            handle,
            "INSERT OR IGNORE INTO callback_dedup(order_id, content_key, sequence) VALUES (?1, ?2, ?3)"
        )
        self.selectOrder = try Statement(handle, "SELECT state FROM orders WHERE order_id = ?1")
        self.upsertOrder = try Statement(
            handle,
            """
            INSERT INTO orders(order_id, status, state) VALUES (?1, ?2, ?3)
            ON CONFLICT(order_id) DO UPDATE SET status = excluded.status, state = excluded.state
            """
        )
        self.upsertMeta = try Statement(
            handle,
            "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
        )
    }

    func close() {
        for statement in [
            self.insertEvent, self.insertOrderEvent, self.insertDedup, self.selectOrder, self.upsertOrder,
            self.upsertMeta,
        ] {
            statement.finalize()
        }
        sqlite3_close(self.db)
    }

    /// Appends one batch in one durable transaction, as `LMDBEventStore.append` does with one request.
    func append(_ events: [PendingEvent]) throws {
        try Self.exec(self.db, "BEGIN IMMEDIATE")
        do {
            var touched: [String: OrderState] = [:]
            var head = self.head
            for pending in events {
                let (event, encoded) = pending.sealedAndEncoded(sequence: head.sequence + 1, previousHash: head.hash)
                try self.insertEvent.run { statement in
                    statement.bind(1, Int64(event.sequence))
                    statement.bind(2, encoded)
                }
                try self.insertOrderEvent.run { statement in
                    statement.bind(1, event.orderId)
                    statement.bind(2, Int64(event.sequence))
                }
                if case .callbackReceived(let callback) = event.payload, let contentKey = callback.signedContentKey {
                    try self.insertDedup.run { statement in
                        statement.bind(1, event.orderId)
                        statement.bind(2, contentKey)
                        statement.bind(3, Int64(event.sequence))
                    }
                }
                var state: OrderState
                if let existing = touched[event.orderId] {
                    state = existing
                } else {
                    state = try self.storedOrder(event.orderId) ?? OrderState(orderId: event.orderId)
                }
                _ = state.apply(event)
                touched[event.orderId] = state
                head = (event.sequence, event.hash)
            }
            for (orderId, state) in touched {
                try self.upsertOrder.run { statement in
                    statement.bind(1, orderId)
                    statement.bind(2, Int64(state.status.code))
                    statement.bind(3, OrderStateCodec.encode(state))
                }
            }
            var headBytes = withUnsafeBytes(of: head.sequence.bigEndian) { Array($0) }
            headBytes.append(contentsOf: head.hash.bytes)
            try self.upsertMeta.run { statement in
                statement.bind(1, "head")
                statement.bind(2, headBytes)
            }
            try Self.exec(self.db, "COMMIT")
            self.head = head
        } catch {
            try? Self.exec(self.db, "ROLLBACK")
            throw error
        }
    }

    private func storedOrder(_ orderId: String) throws -> OrderState? {
        var state: OrderState?
        try self.selectOrder.run(
            { statement in statement.bind(1, orderId) },
            row: { statement in
                let bytes = statement.blob(0)
                do {
                    state = try OrderStateCodec.decode(bytes)
                } catch {
                    throw BenchError("SQLite's projection of \(orderId) does not decode: \(error)")
                }
            }
        )
        return state
    }

    /// Rows of a table, to check after a run that everything was stored.
    func count(_ table: String) throws -> Int {
        let statement = try Statement(self.db, "SELECT count(*) FROM \(table)")
        defer { statement.finalize() }
        var count = 0
        try statement.run({ _ in }, row: { statement in count = Int(sqlite3_column_int64(statement.handle, 0)) })
        return count
    }

    static func exec(_ db: OpaquePointer, _ sql: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &message)
        if rc != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? "result \(rc)"
            sqlite3_free(message)
            throw BenchError("SQLite failed on \(sql.prefix(40)): \(text)")
        }
    }

    static func pragma(_ db: OpaquePointer, _ name: String) throws -> String {
        let statement = try Statement(db, "PRAGMA \(name)")
        defer { statement.finalize() }
        var value = ""
        try statement.run(
            { _ in },
            row: { statement in
                value = String(cString: sqlite3_column_text(statement.handle, 0))
            }
        )
        return value
    }
}

/// One prepared statement, reset and reused for every row.
final class Statement {
    let handle: OpaquePointer
    private let db: OpaquePointer

    init(_ db: OpaquePointer, _ sql: String) throws {
        var handle: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &handle, nil) == SQLITE_OK, let handle else {
            throw BenchError("SQLite could not prepare \(sql): \(String(cString: sqlite3_errmsg(db)))")
        }
        self.handle = handle
        self.db = db
    }

    func finalize() { sqlite3_finalize(self.handle) }

    /// Binds with `bind`, steps to the end (calling `row` for each row), and resets. Bound text and blobs are
    /// copied by SQLite (SQLITE_TRANSIENT), so the Swift buffers need not outlive the call.
    func run(_ bind: (Statement) throws -> Void, row: ((Statement) throws -> Void)? = nil) throws {
        defer {
            sqlite3_reset(self.handle)
            sqlite3_clear_bindings(self.handle)
        }
        try bind(self)
        while true {
            let rc = sqlite3_step(self.handle)
            if rc == SQLITE_DONE { return }
            if rc == SQLITE_ROW {
                try row?(self)
                continue
            }
            throw BenchError("SQLite step failed: \(String(cString: sqlite3_errmsg(self.db))) (result \(rc)).")
        }
    }

    func bind(_ index: Int32, _ value: Int64) {
        sqlite3_bind_int64(self.handle, index, value)
    }

    func bind(_ index: Int32, _ value: String) {
        var value = value
        value.withUTF8 { text in
            _ = sqlite3_bind_text(
                self.handle,
                index,
                text.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) },
                Int32(text.count),
                sqliteTransient
            )
        }
    }

    func bind(_ index: Int32, _ value: [UInt8]) {
        value.withUnsafeBytes { bytes in
            _ = sqlite3_bind_blob(self.handle, index, bytes.baseAddress, Int32(bytes.count), sqliteTransient)
        }
    }

    /// Column `index` as a buffer valid until the next step or reset.
    func blob(_ index: Int32) -> UnsafeRawBufferPointer {
        let count = Int(sqlite3_column_bytes(self.handle, index))
        return UnsafeRawBufferPointer(start: sqlite3_column_blob(self.handle, index), count: count)
    }
}

/// sqlite3.h: `#define SQLITE_TRANSIENT ((sqlite3_destructor_type)-1)`, a macro Swift does not import.
nonisolated(unsafe) let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
