import Foundation
import LedgerCore

/// One row of `ledger-bench store --backend postgres`: a figure measured on both stores, and PostgreSQL's value
/// as a multiple of LMDB's.
struct Comparison {
    var key: String
    var label: String
    var unit: String
    var lmdb: Double?
    var postgres: Double?
    var note: String? = nil

    /// PostgreSQL / LMDB: above 1 PostgreSQL's value is higher (faster for rates, slower for latencies).
    var ratio: Double? {
        guard let lmdb, let postgres, lmdb > 0 else { return nil }
        return postgres / lmdb
    }
}

/// The rows of the comparison, in the order of the LMDB-only report.
func comparisons(lmdb: StoreBenchResults, postgres: StoreBenchResults, config: StoreBenchConfig) -> [Comparison] {
    var rows: [Comparison] = []
    for batch in StoreBenchConfig.batchSizes {
        guard lmdb.store[batch] != nil || postgres.store[batch] != nil else { continue }
        let events = postgres.store[batch]?.events ?? lmdb.store[batch]?.events ?? 0
        rows.append(
            Comparison(
                key: "append.batch\(batch)",
                label: "append, batch \(Format.grouped(Double(batch)))",
                unit: "events/s",
                lmdb: lmdb.store[batch]?.eventsPerSecond,
                postgres: postgres.store[batch]?.eventsPerSecond,
                note: "\(events) events, one appender, \(events / batch) durable commits"
            )
        )
    }
    if lmdb.storeBytesPerEvent > 0 || postgres.storeBytesPerEvent > 0 {
        rows.append(
            Comparison(
                key: "bytesPerEvent",
                label: "bytes on disk per event (after the batch 10,000 run)",
                unit: "bytes",
                lmdb: lmdb.storeBytesPerEvent,
                postgres: postgres.storeBytesPerEvent,
                note: "LMDB: the store's files; PostgreSQL: pg_total_relation_size of the schema's tables "
                    + "(indexes and TOAST included, WAL not)"
            )
        )
    }
    if let lmdbContended = lmdb.contended, let postgresContended = postgres.contended {
        let appenders = config.appenders
        rows.append(
            Comparison(
                key: "groupCommit",
                label: "group commit, \(appenders) appenders",
                unit: "events/s",
                lmdb: lmdbContended.timing.eventsPerSecond,
                postgres: postgresContended.timing.eventsPerSecond,
                note: String(
                    format: "%d events; mean commit batch LMDB %.1f, PostgreSQL %.1f",
                    postgresContended.timing.events,
                    lmdbContended.meanCommitBatch,
                    postgresContended.meanCommitBatch
                )
            )
        )
        rows.append(
            Comparison(
                key: "groupCommit.p50",
                label: "group commit, \(appenders) appenders, p50 latency",
                unit: "ms",
                lmdb: lmdbContended.latency.p50 * 1e3,
                postgres: postgresContended.latency.p50 * 1e3
            )
        )
        rows.append(
            Comparison(
                key: "groupCommit.p99",
                label: "group commit, \(appenders) appenders, p99 latency",
                unit: "ms",
                lmdb: lmdbContended.latency.p99 * 1e3,
                postgres: postgresContended.latency.p99 * 1e3
            )
        )
    }
    if let lmdbSingle = lmdb.oneFsync, let postgresSingle = postgres.oneFsync {
        rows.append(
            Comparison(
                key: "oneFsync",
                label: "one commit per append (batchCountMax 1), \(config.appenders) appenders",
                unit: "events/s",
                lmdb: lmdbSingle.timing.eventsPerSecond,
                postgres: postgresSingle.timing.eventsPerSecond,
                note: "\(postgresSingle.timing.events) events"
            )
        )
        if let lmdbContended = lmdb.contended, let postgresContended = postgres.contended {
            rows.append(
                Comparison(
                    key: "groupCommit.gain",
                    label: "group commit gain (group commit / one commit per append)",
                    unit: "×",
                    lmdb: lmdbContended.timing.eventsPerSecond / lmdbSingle.timing.eventsPerSecond,
                    postgres: postgresContended.timing.eventsPerSecond / postgresSingle.timing.eventsPerSecond
                )
            )
        }
    }
    if lmdb.rebuild != nil || postgres.rebuild != nil {
        let events = postgres.rebuild?.events ?? lmdb.rebuild?.events ?? 0
        rows.append(
            Comparison(
                key: "rebuild",
                label: "projection rebuild (rebuildProjection)",
                unit: "events/s",
                lmdb: lmdb.rebuild?.eventsPerSecond,
                postgres: postgres.rebuild?.eventsPerSecond,
                note: "\(events) events, \(postgres.rebuildOrders) orders; LMDB "
                    + (lmdb.rebuild.map { Format.seconds($0.seconds) } ?? "—") + ", PostgreSQL "
                    + (postgres.rebuild.map { Format.seconds($0.seconds) } ?? "—")
            )
        )
    }
    if lmdb.scan != nil || postgres.scan != nil {
        rows.append(
            Comparison(
                key: "scan.readEvents",
                label: "full scan, readEvents pages of 10,000",
                unit: "events/s",
                lmdb: lmdb.scan?.eventsPerSecond,
                postgres: postgres.scan?.eventsPerSecond,
                note: "checksum + decode of every event"
            )
        )
    }
    return rows
}

/// What the report says about the server, so its figures can be judged: version and durability settings.
func serverLines(_ server: PostgresTarget.ServerInfo, target: PostgresTarget) -> [String] {
    var lines = [
        "PostgreSQL \(server.version) (\(target.place)); fsync=\(server.fsync), "
            + "synchronous_commit=\(server.synchronousCommit), wal_sync_method=\(server.walSyncMethod) (read with SHOW); "
            + "the store raises synchronous_commit to on for each append transaction"
    ]
    if !server.durable {
        lines.append(
            "WARNING: fsync is off on this server: its commits are not durable, and its figures are not comparable"
        )
    }
    return lines
}

/// The plain-text comparison table for stdout.
func comparisonTable(_ rows: [Comparison]) -> String {
    let header = ["figure", "LMDB", "PostgreSQL", "unit", "PG/LMDB"]
    let cells = rows.map { row in
        [
            row.label, row.lmdb.map(Format.grouped) ?? "—", row.postgres.map(Format.grouped) ?? "—", row.unit,
            row.ratio.map(Format.ratio) ?? "—",
        ]
    }
    return alignedTable(header, cells, rightAligned: [1, 2, 4])
}

/// The comparison in Markdown, with the machine, the server and the command above it.
func comparisonMarkdown(
    _ rows: [Comparison],
    server: PostgresTarget.ServerInfo,
    target: PostgresTarget,
    run: BenchRun,
    config: StoreBenchConfig
) -> String {
    var lines = markdownPreamble(
        title: "ledger-bench store --backend postgres",
        run: run
    )
    lines += serverLines(server, target: target).map { "- " + $0 }
    lines += [
        "- every commit durable on both (LMDB syncs on commit; PostgreSQL commits with synchronous_commit on); "
            + "each measurement in a fresh LMDB directory or a fresh PostgreSQL schema, dropped afterwards",
        "- counts: " + countsText(config),
        "",
        "| figure | LMDB | PostgreSQL | unit | PG/LMDB |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    for row in rows {
        lines.append(
            "| \(row.label) | \(row.lmdb.map(Format.grouped) ?? "—") | \(row.postgres.map(Format.grouped) ?? "—") | "
                + "\(row.unit) | \(row.ratio.map(Format.ratio) ?? "—") |"
        )
    }
    let notes = rows.compactMap { row in row.note.map { "- \(row.label): \($0)" } }
    if !notes.isEmpty {
        lines += ["", "Notes:", ""] + notes
    }
    return lines.joined(separator: "\n") + "\n"
}

/// The counts of a comparison run, the same on both stores.
func countsText(_ config: StoreBenchConfig) -> String {
    "\(config.batchedEvents) events at batches of 100 and 10,000; \(config.singleEvents) at batch 1 "
        + "and for one commit per append; \(config.contendedEvents) for group commit with \(config.appenders) "
        + "appenders; \(config.rebuildEvents) for the rebuild and scan"
}

/// The JSON object holding every figure of a comparison run.
func comparisonJSON(
    _ rows: [Comparison],
    lmdb: StoreBenchResults,
    postgres: StoreBenchResults,
    server: PostgresTarget.ServerInfo,
    target: PostgresTarget,
    run: BenchRun,
    config: StoreBenchConfig
) -> String {
    func runs(_ results: StoreBenchResults) -> JSONValue {
        var members: [(String, JSONValue)] = []
        for batch in StoreBenchConfig.batchSizes {
            members.append(("store.batch\(batch)", timingJSON(results.store[batch])))
        }
        members.append(("groupCommit", contendedJSON(results.contended)))
        members.append(("oneFsyncPerAppend", contendedJSON(results.oneFsync)))
        members.append(("rebuild", timingJSON(results.rebuild)))
        members.append(("scan.readEvents", timingJSON(results.scan)))
        members.append(("bytesPerEventOnDisk", Format.json(results.storeBytesPerEvent)))
        return .object(JSONObject(members))
    }
    var figures: [(String, JSONValue)] = []
    for row in rows {
        var members: [(String, JSONValue)] = [
            ("label", .string(row.label)), ("unit", .string(row.unit)),
            ("lmdb", Format.json(row.lmdb)), ("postgres", Format.json(row.postgres)),
            ("ratioPostgresToLMDB", Format.json(row.ratio)),
        ]
        if let note = row.note { members.append(("note", .string(note))) }
        figures.append((row.key, .object(JSONObject(members))))
    }
    let root: JSONValue = .object(
        JSONObject(
            jsonPreamble(benchmark: "store", run: run) + [
                ("backend", .string("postgres")),
                (
                    "postgres",
                    .object(
                        JSONObject([
                            ("server", .string(target.place)),
                            ("serverVersion", .string(server.version)),
                            ("fsync", .string(server.fsync)),
                            ("synchronousCommit", .string(server.synchronousCommit)),
                            ("walSyncMethod", .string(server.walSyncMethod)),
                            ("durable", .bool(server.durable)),
                        ])
                    )
                ),
                (
                    "config",
                    .object(
                        JSONObject(config.countsJSON + [("meanStoredEventBytes", Format.json(lmdb.meanEventBytes))])
                    )
                ),
                ("figures", .object(JSONObject(figures))),
                ("runs", .object(JSONObject([("lmdb", runs(lmdb)), ("postgres", runs(postgres))]))),
            ]
        )
    )
    return JSONWriter.write(root, options: [.sortedKeys, .prettyPrinted])
}
