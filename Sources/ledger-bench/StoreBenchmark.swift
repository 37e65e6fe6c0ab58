import Foundation
import LedgerCore
import LedgerPostgres
import LedgerStore

/// How much each measurement does. Counts are fixed (not time-boxed), so two runs do the same work.
struct StoreBenchConfig: Sendable {
    /// Events per append measurement at batches of 100 and 10,000 (store, SQLite, raw LMDB).
    var batchedEvents: Int
    /// Events per measurement that pays one fsync per event: batch 1, and one-fsync-per-append under contention.
    var singleEvents: Int
    /// Events the concurrent appenders append in all, with group commit on.
    var contendedEvents: Int
    /// Concurrent appenders (Swift tasks) in the contention measurements.
    var appenders: Int
    /// Events in the log that the projection rebuild and the scans replay.
    var rebuildEvents: Int
    /// The initial LMDB map size for the store and the raw baseline alike, large enough that no run grows the map
    /// (growing aborts and redoes the transaction, which would add noise to whichever run hit it).
    var mapSize: Int = 8 << 30
    /// The parts to run; all of them by default (the report shows what ran).
    var parts: Set<Part> = Set(Part.allCases)

    enum Part: String, CaseIterable, Sendable {
        case append, sqlite, raw, contention, rebuild
    }

    static let batchSizes = [1, 100, 10_000]

    static let full = StoreBenchConfig(
        batchedEvents: 200_000,
        singleEvents: 3_000,
        contendedEvents: 100_000,
        appenders: 64,
        rebuildEvents: 1_000_000
    )

    static let quick = StoreBenchConfig(
        batchedEvents: 20_000,
        singleEvents: 1_000,
        contendedEvents: 10_000,
        appenders: 64,
        rebuildEvents: 50_000
    )

    /// Events to append at a batch size.
    func appendEvents(batch: Int) -> Int { batch == 1 ? self.singleEvents : self.batchedEvents }
}

/// Everything one run measured.
struct StoreBenchResults: Sendable {
    var store: [Int: Timing] = [:]
    var sqlite: [Int: Timing] = [:]
    var raw: [Int: Timing] = [:]
    var contended: ContendedResult?
    var oneFsync: ContendedResult?
    var rebuild: Timing?
    var rebuildOrders: UInt64 = 0
    var scan: Timing?
    var rawScan: Timing?
    var fold: Timing?
    var storeBytesPerEvent: Double = 0
    var sqliteBytesPerEvent: Double = 0
    var rawBytesPerEvent: Double = 0
    var meanEventBytes: Double = 0
}

struct ContendedResult: Sendable {
    var timing: Timing
    var latency: Percentiles
    var meanCommitBatch: Double
}

/// The measurements of `ledger-bench store`.
struct StoreBenchmark {
    let config: StoreBenchConfig
    let workload: Workload

    init(config: StoreBenchConfig) throws {
        self.config = config
        self.workload = try Workload(prefix: "BENCH")
    }

    /// The events every append measurement draws from, and the raw baseline's encoding of them.
    func buildPool(appends: Bool) throws -> (pool: [PendingEvent], rawValues: [[UInt8]], meanBytes: Double) {
        let poolCount = max(
            appends ? self.config.batchedEvents : 0,
            self.config.singleEvents,
            self.config.parts.contains(.contention) ? self.config.contendedEvents : 0
        )
        Progress.say("building \(poolCount) signed events (order created + paid callback per order)")
        let pool = try self.workload.eventsInParallel(from: 0, count: poolCount)
        let rawValues = Self.storedValues(pool)
        let meanBytes = Double(rawValues.reduce(0) { $0 + $1.count }) / Double(max(1, rawValues.count))
        Progress.say(String(format: "built; stored values average %.0f bytes", meanBytes))
        return (pool, rawValues, meanBytes)
    }

    func run() async throws -> StoreBenchResults {
        var results = StoreBenchResults()
        let appends = !self.config.parts.isDisjoint(with: [.append, .sqlite, .raw])
        let (pool, rawValues, meanBytes) = try self.buildPool(appends: appends)
        results.meanEventBytes = meanBytes

        let parts = self.config.parts
        for batch in StoreBenchConfig.batchSizes where appends {
            let count = self.config.appendEvents(batch: batch)
            let events = Array(pool[0..<count])
            let last = batch == StoreBenchConfig.batchSizes.last
            if parts.contains(.append) {
                let (store, bytes) = try await self.storeAppend(.lmdb, events, batch: batch)
                results.store[batch] = store
                if last { results.storeBytesPerEvent = Double(bytes) / Double(count) }
            }
            if parts.contains(.sqlite) {
                let (sqlite, bytes) = try self.sqliteAppend(events, batch: batch)
                results.sqlite[batch] = sqlite
                if last { results.sqliteBytesPerEvent = Double(bytes) / Double(count) }
            }
            if parts.contains(.raw) {
                let (raw, bytes) = try self.rawAppend(Array(rawValues[0..<count]), batch: batch)
                results.raw[batch] = raw
                if last { results.rawBytesPerEvent = Double(bytes) / Double(count) }
            }
        }

        if parts.contains(.contention) {
            let contendedEvents = Array(pool[0..<self.config.contendedEvents])
            results.contended = try await self.contendedAppend(.lmdb, contendedEvents, batchCountMax: 1024)
            let singleEvents = Array(pool[0..<self.config.singleEvents])
            results.oneFsync = try await self.contendedAppend(.lmdb, singleEvents, batchCountMax: 1)
        }

        if parts.contains(.rebuild) {
            try await self.rebuildAndScan(.lmdb, into: &results)
        }
        return results
    }

    /// `--backend postgres`: the EventStore-level measurements (appends, group commit, rebuild and scan) on
    /// LMDBEventStore and on PostgresEventStore, one after the other with the same events, in one run.
    func runComparison(_ target: PostgresTarget) async throws -> (lmdb: StoreBenchResults, postgres: StoreBenchResults)
    {
        var lmdb = StoreBenchResults()
        var postgres = StoreBenchResults()
        let parts = self.config.parts
        let appends = parts.contains(.append)
        let (pool, _, meanBytes) = try self.buildPool(appends: appends)
        lmdb.meanEventBytes = meanBytes
        postgres.meanEventBytes = meanBytes
        let postgresEngine = StoreEngine.postgres(target)

        for batch in StoreBenchConfig.batchSizes where appends {
            let count = self.config.appendEvents(batch: batch)
            let events = Array(pool[0..<count])
            let last = batch == StoreBenchConfig.batchSizes.last
            let (lmdbTiming, lmdbBytes) = try await self.storeAppend(.lmdb, events, batch: batch)
            lmdb.store[batch] = lmdbTiming
            let (postgresTiming, postgresBytes) = try await self.storeAppend(postgresEngine, events, batch: batch)
            postgres.store[batch] = postgresTiming
            if last {
                lmdb.storeBytesPerEvent = Double(lmdbBytes) / Double(count)
                postgres.storeBytesPerEvent = Double(postgresBytes) / Double(count)
            }
        }

        if parts.contains(.contention) {
            let contendedEvents = Array(pool[0..<self.config.contendedEvents])
            let singleEvents = Array(pool[0..<self.config.singleEvents])
            lmdb.contended = try await self.contendedAppend(.lmdb, contendedEvents, batchCountMax: 1024)
            lmdb.oneFsync = try await self.contendedAppend(.lmdb, singleEvents, batchCountMax: 1)
            postgres.contended = try await self.contendedAppend(postgresEngine, contendedEvents, batchCountMax: 1024)
            postgres.oneFsync = try await self.contendedAppend(postgresEngine, singleEvents, batchCountMax: 1)
        }

        if parts.contains(.rebuild) {
            try await self.rebuildAndScan(.lmdb, into: &lmdb, baselines: false)
            try await self.rebuildAndScan(postgresEngine, into: &postgres, baselines: false)
        }
        return (lmdb, postgres)
    }

    /// What the raw baseline stores for each event: the same bytes as the log's value (a 4-byte checksum slot
    /// and the event's encoding, sealed at its position), encoded before the clock starts.
    static func storedValues(_ events: [PendingEvent]) -> [[UInt8]] {
        var head = (sequence: UInt64(0), hash: Digest32.zero)
        return events.map { pending in
            let (event, encoded) = pending.sealedAndEncoded(sequence: head.sequence + 1, previousHash: head.hash)
            head = (event.sequence, event.hash)
            return [0, 0, 0, 0] + encoded
        }
    }

    func storeOptions(batchCountMax: Int = 1024) -> LMDBEventStore.Options {
        LMDBEventStore.Options(
            limits: StoreLimits(
                mapSize: self.config.mapSize,
                mapSizeMax: max(64 << 30, self.config.mapSize),
                batchCountMax: batchCountMax
            )
        )
    }

    /// An empty store for one measurement: LMDB in a fresh directory, or PostgreSQL in a fresh schema; removed
    /// (the directory deleted, the schema dropped) when `body` returns or throws.
    func withScratchStore<T>(
        _ engine: StoreEngine,
        _ label: String,
        batchCountMax: Int = 1024,
        _ body: (ScratchStore) async throws -> T
    ) async throws -> T {
        let scratch: ScratchStore
        switch engine {
        case .lmdb:
            let directory = try ScratchDirectory(label)
            let path = directory.path + "/ledger"
            let store: LMDBEventStore
            do {
                store = try LMDBEventStore(path: path, options: self.storeOptions(batchCountMax: batchCountMax))
            } catch {
                directory.remove()
                throw error
            }
            scratch = ScratchStore(
                store: store,
                lmdbPath: path,
                commitBatchSizes: { store.takeCommitBatchSizes() },
                closeAndMeasure: {
                    await store.close()
                    return directory.bytesIn("ledger")
                },
                remove: {
                    await store.close()
                    directory.remove()
                }
            )
        case .postgres(let target):
            let schema = PostgresTarget.freshSchemaName()
            let store: PostgresEventStore
            do {
                store = try await target.openStore(schema: schema, batchCountMax: batchCountMax)
            } catch {
                try? await target.dropSchema(schema)
                throw error
            }
            scratch = ScratchStore(
                store: store,
                lmdbPath: nil,
                commitBatchSizes: { store.takeCommitBatchSizes() },
                closeAndMeasure: {
                    await store.close()
                    return try await target.schemaBytes(schema)
                },
                remove: {
                    await store.close()
                    try await target.dropSchema(schema)
                }
            )
        }
        let result: T
        do {
            result = try await body(scratch)
        } catch {
            try? await scratch.remove()
            throw error
        }
        try await scratch.remove()
        return result
    }

    // MARK: Appends

    /// One appender, one `AppendRequest` of `batch` events at a time, each awaited (committed and synced).
    func storeAppend(_ engine: StoreEngine, _ events: [PendingEvent], batch: Int) async throws -> (Timing, UInt64) {
        try await self.withScratchStore(engine, "store-\(batch)") { scratch in
            let store = scratch.store
            let requests = batches(events, size: batch).map { AppendRequest($0) }
            Progress.say(
                "\(engine.progressName) append, batch \(batch): \(events.count) events in \(requests.count) transactions"
            )
            let timing = try await timed(events: events.count) {
                for request in requests {
                    guard case .appended = try await store.append(request) else {
                        throw BenchError("The store refused an append with no precondition.")
                    }
                }
            }
            let head = try await store.head()
            let last = try await store.order(self.workload.orderId(events.count / 2 - 1))
            let bytes = try await scratch.closeAndMeasure()
            guard head.sequence == UInt64(events.count), last?.status == .paid else {
                throw BenchError(
                    "After \(events.count) appends the store's head is \(head.sequence) and the last order is \(String(describing: last?.status))."
                )
            }
            Progress.say(String(format: "  %.0f events/s", timing.eventsPerSecond))
            return (timing, bytes)
        }
    }

    func sqliteAppend(_ events: [PendingEvent], batch: Int) throws -> (Timing, UInt64) {
        let directory = try ScratchDirectory("sqlite-\(batch)")
        defer { directory.remove() }
        let ledger = try SQLiteLedger(path: directory.path + "/ledger.sqlite")
        let transactions = batches(events, size: batch)
        Progress.say("SQLite append, batch \(batch): \(events.count) events in \(transactions.count) transactions")
        let started = ContinuousClock.now
        for transaction in transactions { try ledger.append(transaction) }
        let timing = Timing(events: events.count, seconds: (ContinuousClock.now - started).seconds)
        let stored = (try ledger.count("events"), try ledger.count("orders"), try ledger.count("callback_dedup"))
        ledger.close()
        guard stored == (events.count, events.count / 2, events.count / 2) else {
            throw BenchError("SQLite holds \(stored) events, orders and dedup rows after \(events.count) appends.")
        }
        let bytes = directory.bytes
        Progress.say(String(format: "  %.0f events/s", timing.eventsPerSecond))
        return (timing, bytes)
    }

    /// The engine's own limit: pre-encoded values of the same sizes, `MDB_APPEND` under big-endian sequence keys
    /// into one database, one durable commit per batch, no indexes, no projection, no hashing.
    func rawAppend(_ values: [[UInt8]], batch: Int) throws -> (Timing, UInt64) {
        let directory = try ScratchDirectory("raw-\(batch)")
        defer { directory.remove() }
        let environment = try LMDBEnvironment(
            path: directory.path + "/raw",
            options: .init(mapSize: self.config.mapSize, mapSizeMax: max(64 << 30, self.config.mapSize))
        )
        let database = try environment.openDatabase(name: "events")
        let ranges = stride(from: 0, to: values.count, by: batch).map { $0..<min($0 + batch, values.count) }
        Progress.say("raw LMDB puts, batch \(batch): \(values.count) values in \(ranges.count) transactions")
        let started = ContinuousClock.now
        for range in ranges {
            try environment.write { txn in
                for index in range {
                    try txn.put(database, key: LMDBUInt64Key(UInt64(index + 1)), value: values[index], flags: .append)
                }
            }
        }
        let timing = Timing(events: values.count, seconds: (ContinuousClock.now - started).seconds)
        let entries = try environment.read { txn in try txn.stat(database).entries }
        environment.close()
        guard entries == values.count else {
            throw BenchError("The raw LMDB database holds \(entries) entries after \(values.count) puts.")
        }
        Progress.say(String(format: "  %.0f events/s", timing.eventsPerSecond))
        return (timing, directory.bytesIn("raw"))
    }

    /// `appenders` tasks, each awaiting `append` of one event in a loop; the events are split so each task owns
    /// whole orders (its order's creation is acknowledged before its callback is sent).
    func contendedAppend(_ engine: StoreEngine, _ events: [PendingEvent], batchCountMax: Int) async throws
        -> ContendedResult
    {
        try await self.withScratchStore(engine, "contended-\(batchCountMax)", batchCountMax: batchCountMax) { scratch in
            try await self.contendedAppend(scratch, events, batchCountMax: batchCountMax)
        }
    }

    private func contendedAppend(_ scratch: ScratchStore, _ events: [PendingEvent], batchCountMax: Int) async throws
        -> ContendedResult
    {
        let store = scratch.store
        let appenders = self.config.appenders
        let orders = events.count / 2
        let slices: [[AppendRequest]] = (0..<appenders).map { appender in
            let low = orders * appender / appenders * 2
            let high = orders * (appender + 1) / appenders * 2
            return events[low..<high].map { AppendRequest([$0]) }
        }
        let total = slices.reduce(0) { $0 + $1.count }
        let label = batchCountMax == 1 ? "one fsync per append" : "group commit"
        Progress.say("\(scratch.progressName) \(label), \(appenders) appenders: \(total) single-event appends")
        let clock = ContinuousClock()
        let started = clock.now
        let samples = try await withThrowingTaskGroup(of: [Double].self) { group in
            for slice in slices {
                group.addTask {
                    var samples: [Double] = []
                    samples.reserveCapacity(slice.count)
                    for request in slice {
                        let sent = clock.now
                        guard case .appended = try await store.append(request) else {
                            throw BenchError("The store refused an append with no precondition.")
                        }
                        samples.append((clock.now - sent).seconds)
                    }
                    return samples
                }
            }
            var all: [Double] = []
            all.reserveCapacity(total)
            for try await samples in group { all.append(contentsOf: samples) }
            return all
        }
        let timing = Timing(events: total, seconds: (clock.now - started).seconds)
        // The writer keeps the sizes of at most 4,096 commits: the mean of those.
        let sizes = scratch.commitBatchSizes()
        let head = try await store.head()
        _ = try await scratch.closeAndMeasure()
        guard head.sequence == UInt64(total), samples.count == total else {
            throw BenchError("After \(total) concurrent appends the head is \(head.sequence).")
        }
        let result = ContendedResult(
            timing: timing,
            latency: Percentiles(samples),
            meanCommitBatch: sizes.isEmpty ? 0 : Double(sizes.reduce(0, +)) / Double(sizes.count)
        )
        Progress.say(
            String(
                format: "  %.0f events/s, p50 %.2f ms, p99 %.2f ms, mean commit batch %.1f",
                timing.eventsPerSecond,
                result.latency.p50 * 1e3,
                result.latency.p99 * 1e3,
                result.meanCommitBatch
            )
        )
        return result
    }

    // MARK: Rebuild and scans

    /// Fills a log, then times `rebuildProjection` and a full scan with `readEvents`; with `baselines`, on LMDB,
    /// also the raw cursor scan of the same log and the in-memory fold.
    func rebuildAndScan(_ engine: StoreEngine, into results: inout StoreBenchResults, baselines: Bool = true)
        async throws
    {
        try await self.withScratchStore(engine, "rebuild") { scratch in
            try await self.rebuildAndScan(scratch, into: &results, baselines: baselines)
        }
    }

    private func rebuildAndScan(_ scratch: ScratchStore, into results: inout StoreBenchResults, baselines: Bool)
        async throws
    {
        let total = self.config.rebuildEvents
        let store = scratch.store
        // Setup, untimed: fill the log in chunks, so a million signed events need not all sit in memory.
        let workload = try Workload(prefix: "RBLD")
        let chunk = 100_000
        var filled = 0
        Progress.say("\(scratch.progressName): filling a log of \(total) events for the rebuild (setup, not timed)")
        while filled < total {
            let count = min(chunk, total - filled)
            let events = try workload.eventsInParallel(from: filled, count: count)
            for request in batches(events, size: 10_000) {
                _ = try await store.append(AppendRequest(request))
            }
            filled += count
            Progress.say("  \(filled) / \(total)")
        }

        Progress.say("rebuilding the projection over \(total) events")
        let progress: ProgressHandler = { update in
            Progress.say("  \(update.phase) \(update.done) / \(update.total) (\(Int(update.rate)) events/s)")
        }
        let clock = ContinuousClock()
        let rebuildStarted = clock.now
        let report = try await store.rebuildProjection(progress: progress)
        let rebuild = Timing(events: Int(report.eventsReplayed), seconds: (clock.now - rebuildStarted).seconds)
        guard report.eventsReplayed == UInt64(total) else {
            throw BenchError("The rebuild replayed \(report.eventsReplayed) of \(total) events.")
        }
        results.rebuild = rebuild
        results.rebuildOrders = report.orders
        Progress.say(String(format: "  %.0f events/s (%llu orders)", rebuild.eventsPerSecond, report.orders))

        Progress.say("scanning the log with readEvents pages of 10,000")
        let foldSampleMax = 250_000
        var sample: [Event] = []
        sample.reserveCapacity(min(total, foldSampleMax))
        var scanned = 0
        let scanStarted = clock.now
        var next: UInt64 = 1
        while true {
            let page = try await store.readEvents(from: next, limit: 10_000)
            guard let last = page.last else { break }
            scanned += page.count
            if sample.count < foldSampleMax { sample.append(contentsOf: page.prefix(foldSampleMax - sample.count)) }
            next = last.sequence + 1
        }
        let scan = Timing(events: scanned, seconds: (clock.now - scanStarted).seconds)
        guard scanned == total else { throw BenchError("The scan read \(scanned) of \(total) events.") }
        results.scan = scan
        Progress.say(String(format: "  %.0f events/s", scan.eventsPerSecond))
        _ = try await scratch.closeAndMeasure()
        guard baselines, let path = scratch.lmdbPath else { return }

        // The engine's own scan limit: a cursor over the same events database, touching every value's bytes
        // (its length and first byte) but decoding nothing.
        Progress.say("raw LMDB cursor scan of the same log")
        let environment = try LMDBEnvironment(
            path: path,
            options: .init(mapSize: self.config.mapSize, mapSizeMax: max(64 << 30, self.config.mapSize))
        )
        let events = try environment.openDatabase(name: "events", flags: [])
        var entries = 0
        var checksum = 0
        let rawScanStarted = clock.now
        try environment.read { txn in
            try txn.forEach(events) { _, value in
                entries += 1
                checksum &+= value.count &+ Int(value[value.count - 1])
                return .continue
            }
        }
        let rawScan = Timing(events: entries, seconds: (clock.now - rawScanStarted).seconds)
        environment.close()
        guard entries == total, checksum != 0 else {
            throw BenchError("The raw scan saw \(entries) of \(total) events.")
        }
        results.rawScan = rawScan
        Progress.say(String(format: "  %.0f events/s", rawScan.eventsPerSecond))

        // The projection's pure part alone, for the rebuild's breakdown: fold already-decoded events into states
        // in memory and encode each order's final state, with no storage at all.
        Progress.say("folding \(sample.count) decoded events in memory (no storage)")
        let foldStarted = clock.now
        var states: [String: OrderState] = [:]
        states.reserveCapacity(sample.count / 2)
        for event in sample {
            _ = states[event.orderId, default: OrderState(orderId: event.orderId)].apply(event)
        }
        var encodedBytes = 0
        for state in states.values { encodedBytes += OrderStateCodec.encode(state).count }
        let fold = Timing(events: sample.count, seconds: (clock.now - foldStarted).seconds)
        guard encodedBytes > 0 else { throw BenchError("The in-memory fold produced nothing.") }
        results.fold = fold
        Progress.say(String(format: "  %.0f events/s", fold.eventsPerSecond))
    }
}

extension ScratchDirectory {
    /// Bytes of the files directly inside the subdirectory `name`.
    func bytesIn(_ name: String) -> UInt64 {
        ScratchDirectory(existing: (self.path as NSString).appendingPathComponent(name)).bytes
    }

    init(existing path: String) {
        self.path = path
    }
}

/// Where an EventStore-level measurement runs.
enum StoreEngine: Sendable {
    case lmdb
    case postgres(PostgresTarget)

    var progressName: String {
        switch self {
        case .lmdb: return "store"
        case .postgres: return "PostgreSQL store"
        }
    }
}

/// An empty store for one measurement, with what its engine needs to measure it and to remove it.
struct ScratchStore: Sendable {
    let store: any EventStore
    /// The LMDB store's directory, for the raw cursor scan; nil on PostgreSQL.
    let lmdbPath: String?
    /// The sizes of the commits the writer made (it keeps at most 4,096).
    let commitBatchSizes: @Sendable () -> [Int]
    /// Closes the store and returns what it occupies: LMDB's files, or PostgreSQL's tables with their indexes.
    let closeAndMeasure: @Sendable () async throws -> UInt64
    /// Closes the store if still open, then deletes the directory or drops the schema.
    let remove: @Sendable () async throws -> Void

    var progressName: String { self.lmdbPath == nil ? "PostgreSQL store" : "store" }
}
