import LedgerCore
import LedgerStore

/// The ledger's tables in one PostgreSQL schema, and the migrations that create them.
///
/// - `ledger_schema_version`: one row per applied migration; the highest is the schema's version.
/// - `ledger_events`: sequence → order id, stored type, encoded event (its hash included). Append-only: a trigger
///   refuses UPDATE, DELETE and TRUNCATE, so the log cannot be rewritten through SQL by mistake.
/// - `ledger_events_by_order` (index): order id, sequence — the order index.
/// - `ledger_callback_dedup`: (order id, signed content key) → sequence of the first validly signed callback with
///   that content; the primary key is the unique constraint, and `ON CONFLICT DO NOTHING` keeps the first.
/// - `ledger_orders`: (generation, order id) → status code, encoded `OrderState`; two generations, one live and
///   one scratch for rebuilds, as in the LMDB store. Indexed by (generation, status, order id).
/// - `ledger_checkpoints`: generation → the last sequence applied to it.
/// - `ledger_meta`: one row: the head (sequence and hash) and the live generation.
/// - `ledger_event_counts`: stored type → events of that type, kept in each commit's transaction.
///
/// - `ledger_quarantine` (version 2): notifications kept out of the log, outside the chain: id → source, order id,
///   accounted bytes, `QuarantineCodec` entry. Indexed by (source, id) to find a source's oldest entry.
/// - `ledger_quarantine_sources`: source → how many entries it holds, indexed by (entries, source) to find the
///   heaviest.
/// - `ledger_quarantine_counts`: order id → 32-byte `QuarantineCounts`, for orders the ledger held when the
///   notification arrived.
/// - `ledger_quarantine_status`: one row: entries, bytes, drops, the next id, and the counts of all and of unknown
///   orders. Its row lock serializes quarantine writers across daemons.
///
/// - `ledger_forward_outbox` (version 3): the forwarder's deliveries, pending and dead: (receiver, sequence, type
///   tag) → `ForwardCodec` delivery, the key ordered as `ForwardKey` orders it.
/// - `ledger_forward_position`: one row: the sequence outcomes have been derived up to.
///
/// Order ids and content keys use the "C" collation, so they sort by their UTF-8 bytes exactly as LMDB's keys do.
struct PostgresSchema: Sendable {
    /// The version this build writes; a schema at a higher version was written by a newer build and is refused.
    static let currentVersion = 3

    let name: String

    /// Accepts an unquoted lower-case identifier, so it can be spliced into SQL without escaping.
    init(name: String) throws(StoreError) {
        let bytes = Array(name.utf8)
        let valid =
            !bytes.isEmpty && bytes.count <= 63
            && bytes.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
            && !(bytes[0] >= 0x30 && bytes[0] <= 0x39) && !name.hasPrefix("pg_")
        guard valid else {
            throw StoreError(
                .invalidArgument,
                "The PostgreSQL schema name \"\(name)\" (store.postgresSchema) must be 1 to 63 of a-z, 0-9 and _, not start with a digit or pg_."
            )
        }
        self.name = name
    }

    var events: String { "\"\(self.name)\".ledger_events" }
    var dedup: String { "\"\(self.name)\".ledger_callback_dedup" }
    var orders: String { "\"\(self.name)\".ledger_orders" }
    var checkpoints: String { "\"\(self.name)\".ledger_checkpoints" }
    var meta: String { "\"\(self.name)\".ledger_meta" }
    var counts: String { "\"\(self.name)\".ledger_event_counts" }
    var version: String { "\"\(self.name)\".ledger_schema_version" }
    var quarantine: String { "\"\(self.name)\".ledger_quarantine" }
    var quarantineSources: String { "\"\(self.name)\".ledger_quarantine_sources" }
    var quarantineCounts: String { "\"\(self.name)\".ledger_quarantine_counts" }
    var quarantineStatus: String { "\"\(self.name)\".ledger_quarantine_status" }
    var forwardOutbox: String { "\"\(self.name)\".ledger_forward_outbox" }
    var forwardPosition: String { "\"\(self.name)\".ledger_forward_position" }

    /// The statements of each migration, by the version it brings the schema to. Each runs in one transaction
    /// with its version row, so a schema is never half-migrated.
    func migration(to version: Int) -> [String] {
        switch version {
        case 1:
            let countRows = EventType.allCases.map { "('\($0.rawValue)', 0)" }.joined(separator: ", ")
            return [
                """
                CREATE TABLE \(self.events) (
                    sequence bigint PRIMARY KEY CHECK (sequence > 0),
                    order_id text COLLATE "C" NOT NULL,
                    type text NOT NULL,
                    event bytea NOT NULL
                )
                """,
                "CREATE INDEX ledger_events_by_order ON \(self.events) (order_id, sequence)",
                """
                CREATE FUNCTION "\(self.name)".ledger_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    RAISE EXCEPTION 'The ledger''s event log is append-only: % on %.% is refused.',
                        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
                        USING ERRCODE = 'integrity_constraint_violation';
                END
                $$
                """,
                """
                CREATE TRIGGER ledger_events_append_only BEFORE UPDATE OR DELETE ON \(self.events)
                    FOR EACH ROW EXECUTE FUNCTION "\(self.name)".ledger_events_append_only()
                """,
                """
                CREATE TRIGGER ledger_events_no_truncate BEFORE TRUNCATE ON \(self.events)
                    FOR EACH STATEMENT EXECUTE FUNCTION "\(self.name)".ledger_events_append_only()
                """,
                """
                CREATE TABLE \(self.dedup) (
                    order_id text COLLATE "C" NOT NULL,
                    signed_content_key text COLLATE "C" NOT NULL,
                    sequence bigint NOT NULL,
                    PRIMARY KEY (order_id, signed_content_key)
                )
                """,
                """
                CREATE TABLE \(self.orders) (
                    generation smallint NOT NULL CHECK (generation IN (0, 1)),
                    order_id text COLLATE "C" NOT NULL,
                    status smallint NOT NULL,
                    state bytea NOT NULL,
                    -- The sequence of the first event naming the order: each state lists oldest first.
                    first_sequence bigint NOT NULL,
                    PRIMARY KEY (generation, order_id)
                )
                """,
                "CREATE INDEX ledger_orders_by_status ON \(self.orders) (generation, status, first_sequence)",
                """
                CREATE TABLE \(self.checkpoints) (
                    generation smallint PRIMARY KEY CHECK (generation IN (0, 1)),
                    sequence bigint NOT NULL
                )
                """,
                "INSERT INTO \(self.checkpoints) (generation, sequence) VALUES (0, 0), (1, 0)",
                """
                CREATE TABLE \(self.meta) (
                    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                    head_sequence bigint NOT NULL,
                    head_hash bytea NOT NULL CHECK (length(head_hash) = 32),
                    live_generation smallint NOT NULL CHECK (live_generation IN (0, 1))
                )
                """,
                "INSERT INTO \(self.meta) (head_sequence, head_hash, live_generation) VALUES (0, '\\x\(Digest32.zero.hex)', 0)",
                "CREATE TABLE \(self.counts) (type text PRIMARY KEY, count bigint NOT NULL CHECK (count >= 0))",
                "INSERT INTO \(self.counts) (type, count) VALUES \(countRows)",
            ]
        case 2:
            let noCounts = QuarantineCodec.encode(QuarantineCounts()).map {
                ($0 < 16 ? "0" : "") + String($0, radix: 16)
            }
            .joined()
            return [
                """
                CREATE TABLE \(self.quarantine) (
                    id bigint PRIMARY KEY CHECK (id > 0),
                    source text COLLATE "C" NOT NULL,
                    order_id text COLLATE "C",
                    bytes integer NOT NULL CHECK (bytes > 0),
                    entry bytea NOT NULL
                )
                """,
                "CREATE INDEX ledger_quarantine_by_source ON \(self.quarantine) (source, id)",
                """
                CREATE TABLE \(self.quarantineSources) (
                    source text COLLATE "C" PRIMARY KEY,
                    entries bigint NOT NULL CHECK (entries > 0)
                )
                """,
                "CREATE INDEX ledger_quarantine_sources_by_entries ON \(self.quarantineSources) (entries, source)",
                """
                CREATE TABLE \(self.quarantineCounts) (
                    order_id text COLLATE "C" PRIMARY KEY,
                    counts bytea NOT NULL CHECK (length(counts) = 32)
                )
                """,
                """
                CREATE TABLE \(self.quarantineStatus) (
                    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                    entries bigint NOT NULL,
                    bytes bigint NOT NULL,
                    dropped bigint NOT NULL,
                    next_id bigint NOT NULL,
                    total bytea NOT NULL CHECK (length(total) = 32),
                    unknown_orders bytea NOT NULL CHECK (length(unknown_orders) = 32)
                )
                """,
                """
                INSERT INTO \(self.quarantineStatus) (entries, bytes, dropped, next_id, total, unknown_orders)
                VALUES (0, 0, 0, 1, '\\x\(noCounts)', '\\x\(noCounts)')
                """,
            ]
        case 3:
            return [
                """
                CREATE TABLE \(self.forwardOutbox) (
                    receiver text COLLATE "C" NOT NULL,
                    sequence bigint NOT NULL CHECK (sequence > 0),
                    type_tag smallint NOT NULL,
                    delivery bytea NOT NULL,
                    PRIMARY KEY (receiver, sequence, type_tag)
                )
                """,
                """
                CREATE TABLE \(self.forwardPosition) (
                    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                    position bigint NOT NULL CHECK (position >= 0)
                )
                """,
                "INSERT INTO \(self.forwardPosition) (position) VALUES (0)",
            ]
        default:
            preconditionFailure("No migration to schema version \(version).")
        }
    }
}
