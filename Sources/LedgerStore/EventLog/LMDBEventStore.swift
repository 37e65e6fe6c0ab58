import Foundation
public import LedgerCore

/// The ledger's embedded store: the event log, its indexes and the order projection in one LMDB environment.
public final class LMDBEventStore: EventStore, @unchecked Sendable {
    /// The store's bounds: the ones every store shares, the map's included.
    public typealias Options = StoreOptions

    public let path: String
    let environment: LMDBEnvironment
    let layout: LMDBLayout
    let writer: GroupCommitWriter
    let options: Options
    private let longOperation = NSLock()
    private var longOperationRunning = false

    /// Opens (creating if needed) the store in the directory `path`, and starts its writer: the store is open from
    /// here until `close()`, which stops the writer and closes the environment. Refuses a directory another process
    /// (or another open store in this one) uses. The daemon opens it when its store service runs, never before.
    public init(path: String, options: Options = Options()) throws {
        try options.check()
        let environment = try LMDBEnvironment(
            path: path,
            options: .init(
                mapSize: options.mapSize,
                mapSizeMax: options.mapSizeMax,
                maxDatabases: StoreLimits.lmdbDatabasesMax,
                maxReaders: StoreLimits.lmdbReadersMax,
                mapGrowthWaitMax: StoreLimits.mapGrowthWaitMax
            )
        )
        // The format is checked before any other database is opened: opening creates what is missing, and a
        // ledger of another format must be left exactly as it was.
        try Self.checkFormat(environment)
        let layout = try LMDBLayout(environment: environment)
        let (head, generation) = try Self.openMeta(environment, layout)
        self.path = environment.path
        self.environment = environment
        self.layout = layout
        self.options = options
        self.writer = GroupCommitWriter(
            context: .init(environment: environment, layout: layout, head: head, liveGeneration: generation),
            limits: .init(
                batchCountMax: options.batchCountMax,
                batchBytesMax: options.batchBytesMax,
                queueDepthMax: options.queueDepthMax,
                quarantine: options.quarantineLimits
            )
        )
        // Last, once everything the writer's thread reads is in place.
        self.writer.start()
    }

    private static func checkFormat(_ environment: LMDBEnvironment) throws {
        let meta = try environment.openDatabase(name: "meta")
        let format = try environment.read { txn in try txn.getBytes(meta, key: LMDBLayout.formatKey) }
        guard let format, format != [LMDBLayout.formatVersion] else { return }
        throw Self.otherFormat(environment, format)
    }

    static func otherFormat(_ environment: LMDBEnvironment, _ format: [UInt8]) -> StoreError {
        let found = format.count == 1 ? "format \(format[0])" : "an unknown format"
        return StoreError(
            .corrupted,
            "The ledger at \(environment.path) is in \(found); this build reads format \(LMDBLayout.formatVersion). "
                + "Open it with the build that wrote it; this build has no migration from that format."
        )
    }

    /// Reads (or, for a new store, writes) the metadata, and checks the recorded head against the last event: the
    /// same property on both sides of the disk.
    private static func openMeta(_ environment: LMDBEnvironment, _ layout: LMDBLayout) throws -> (LogHead, Int) {
        try environment.writeGrowing { txn in
            if let format = try txn.get(layout.meta, key: LMDBLayout.formatKey) {
                guard format.count == 1, format[0] == LMDBLayout.formatVersion else {
                    throw Self.otherFormat(environment, Array(format))
                }
            } else {
                try txn.put(layout.meta, key: LMDBLayout.formatKey, value: [LMDBLayout.formatVersion])
                try txn.put(layout.meta, key: LMDBLayout.generationKey, value: [0])
                try txn.put(layout.meta, key: LMDBLayout.checkpointKey(0), value: LMDBUInt64Key(0))
            }
            let generation = Int(try txn.get(layout.meta, key: LMDBLayout.generationKey)?.first ?? 0)
            guard generation == 0 || generation == 1 else {
                throw StoreError(.corrupted, "The ledger's projection generation marker is damaged.")
            }
            let recorded = try txn.get(layout.meta, key: LMDBLayout.headKey).flatMap(LMDBLayout.decodeHead) ?? .empty
            let last: LogHead = try txn.withCursor(layout.events) { cursor in
                guard let (key, value) = try cursor.last() else { return .empty }
                guard let sequence = LMDBUInt64Key(bytes: key)?.value else {
                    throw StoreError(.corrupted, "The last key of the event log is not a sequence number.")
                }
                let encoded = try LMDBLayout.checkedEvent(value, sequence: sequence)
                let envelope = try EventCodec.decodeEnvelope(encoded)
                return LogHead(sequence: sequence, hash: envelope.hash)
            }
            guard recorded == last else {
                throw StoreError(
                    .corrupted,
                    "The ledger's recorded head (\(recorded.sequence)) is not its last event (\(last.sequence)); run a chain verification."
                )
            }
            let checkpoint = LMDBLayout.u64(try txn.get(layout.meta, key: LMDBLayout.checkpointKey(generation))) ?? 0
            guard checkpoint == last.sequence else {
                throw StoreError(
                    .corrupted,
                    "The live projection's checkpoint (\(checkpoint)) is not the head (\(last.sequence))."
                )
            }
            return (last, generation)
        }
    }

    // MARK: Appending

    public func append(_ request: AppendRequest) async throws -> AppendOutcome {
        try await self.writer.append(request)
    }

    /// Answered on the writer thread, as soon as the batch holding `request` is durable.
    public func append(_ request: AppendRequest, completion: @escaping AppendCompletion) {
        self.writer.append(request, completion: completion)
    }

    /// Batch sizes committed since the last call, for metrics.
    public func takeCommitBatchSizes() -> [Int] { self.writer.takeBatchSizes() }

    // MARK: Reading

    func liveGeneration(_ txn: borrowing LMDBReadTransaction) throws -> Int {
        Int(try txn.get(self.layout.meta, key: LMDBLayout.generationKey)?.first ?? 0)
    }

    /// A read-only transaction, with LMDB's errors mapped to the store's as the writer maps them (a closed
    /// environment is `closed`, damage is `corrupted`), the LMDB error kept as the cause.
    func read<T>(_ body: (borrowing LMDBReadTransaction) throws -> T) throws -> T {
        try Self.read(self.environment, body)
    }

    /// The same, for reads that run on a thread of their own with the environment captured.
    static func read<T>(
        _ environment: LMDBEnvironment,
        _ body: (borrowing LMDBReadTransaction) throws -> T
    ) throws -> T {
        do {
            return try environment.read(body)
        } catch {
            throw GroupCommitWriter.storeError(error, path: environment.path, writing: false)
        }
    }

    public func head() async throws -> LogHead {
        try self.read { txn in
            try txn.get(self.layout.meta, key: LMDBLayout.headKey).flatMap(LMDBLayout.decodeHead) ?? .empty
        }
    }

    public func readEvents(from sequence: UInt64, limit: Int) async throws -> [Event] {
        let limit = min(max(limit, 0), self.options.readPageMax)
        if limit == 0 { return [] }
        return try self.read { txn in
            var events: [Event] = []
            events.reserveCapacity(min(limit, 1024))
            try txn.forEach(self.layout.events, from: LMDBUInt64Key(max(sequence, 1))) { key, value in
                let sequence = LMDBUInt64Key(bytes: key)?.value ?? 0
                events.append(try LMDBLayout.decodeStored(value, sequence: sequence))
                return events.count < limit ? .continue : .stop
            }
            return events
        }
    }

    public func events(forOrder orderId: String) async throws -> [Event] {
        try self.blockingEvents(forOrder: orderId)
    }

    public func createdEvent(forOrder orderId: String) async throws -> Event? {
        try self.read { txn in
            // The projection keeps the sequence of the order's first order-created event: one lookup in the
            // projection and one in the log, in the same transaction, so the two agree.
            guard let handle = try self.layout.handle(of: orderId, in: txn) else { return nil }
            let generation = try self.liveGeneration(txn)
            guard let value = try txn.get(self.layout.orders[generation], key: LMDBUInt64Key(handle)) else {
                return nil
            }
            guard let sequence = try Self.decodeOrder(value, orderId: orderId).order?.createdSequence else {
                return nil
            }
            guard let stored = try txn.get(self.layout.events, key: LMDBUInt64Key(sequence)) else {
                throw StoreError(
                    .corrupted,
                    "The projection of order \(orderId) names event \(sequence), which is not in the log."
                )
            }
            let event = try LMDBLayout.decodeStored(stored, sequence: sequence)
            guard case .orderCreated = event.payload, event.orderId.hasSameBytes(as: orderId) else {
                throw StoreError(
                    .corrupted,
                    "The projection of order \(orderId) names event \(sequence) as its creation, but it is not."
                )
            }
            return event
        }
    }

    public func order(_ orderId: String) async throws -> OrderState? {
        try self.blockingOrder(orderId)
    }

    static func decodeOrder(_ value: UnsafeRawBufferPointer, orderId: String) throws -> OrderState {
        do {
            return try OrderStateCodec.decode(value)
        } catch {
            throw StoreError(
                .corrupted,
                "The stored projection of order \(orderId) does not decode: \(error.description)"
            )
        }
    }

    public func orders(status: OrderStatus, after afterOrderId: String?, limit: Int) async throws -> [OrderState] {
        let limit = min(max(limit, 0), self.options.readPageMax)
        if limit == 0 { return [] }
        return try self.read { txn in
            let generation = try self.liveGeneration(txn)
            var handles: [UInt64] = []
            handles.reserveCapacity(min(limit, 1024))
            var after: UInt64?
            if let afterOrderId {
                guard let handle = try self.layout.handle(of: afterOrderId, in: txn) else {
                    throw StoreError(.invalidArgument, Self.unknownCursorMessage(afterOrderId))
                }
                after = handle
            }
            try txn.withCursor(self.layout.byStatus[generation]) { cursor in
                var entry: LMDBCursor.Entry?
                if let after {
                    entry = try cursor.seek([status.code], valueAtOrAfter: LMDBUInt64Key(after))
                    if let (_, value) = entry, LMDBUInt64Key(bytes: value)?.value == after {
                        entry = try cursor.nextDuplicate()
                    }
                } else {
                    entry = try cursor.seekExactly([status.code])
                }
                while let (_, value) = entry, handles.count < limit {
                    guard let handle = LMDBUInt64Key(bytes: value)?.value else {
                        throw StoreError(.corrupted, "The status index holds an entry that is not an order handle.")
                    }
                    handles.append(handle)
                    entry = try cursor.nextDuplicate()
                }
            }
            return try handles.map { handle in
                guard let value = try txn.get(self.layout.orders[generation], key: LMDBUInt64Key(handle)) else {
                    throw StoreError(
                        .corrupted,
                        "The status index names order handle \(handle), which has no projection."
                    )
                }
                return try Self.decodeOrder(value, orderId: "with handle \(handle)")
            }
        }
    }

    /// The error for a page cursor naming an order the ledger does not hold.
    static func unknownCursorMessage(_ orderId: String) -> String {
        "The ledger holds no order \(orderId); page with an order id from a previous page."
    }

    public func firstCallback(orderId: String, signedContentKey: String) async throws -> UInt64? {
        try self.read { txn in
            guard let handle = try self.layout.handle(of: orderId, in: txn) else { return nil }
            return LMDBLayout.u64(
                try txn.get(
                    self.layout.callbackDedup,
                    key: LMDBLayout.dedupKey(handle: handle, signedContentKey: signedContentKey)
                )
            )
        }
    }

    public func statistics() async throws -> StoreStatistics {
        let (head, byType, byStatus) = try self.read { txn in
            let head = try txn.get(self.layout.meta, key: LMDBLayout.headKey).flatMap(LMDBLayout.decodeHead) ?? .empty
            var byType: [EventType: UInt64] = [:]
            for type in EventType.allCases {
                byType[type] = LMDBLayout.u64(try txn.get(self.layout.meta, key: LMDBLayout.countKey(type))) ?? 0
            }
            let generation = try self.liveGeneration(txn)
            var byStatus: [OrderStatus: UInt64] = [:]
            try txn.withCursor(self.layout.byStatus[generation]) { cursor in
                for status in OrderStatus.allCases {
                    byStatus[status] =
                        try cursor.seekExactly([status.code]) != nil ? UInt64(try cursor.duplicateCount()) : 0
                }
            }
            return (head, byType, byStatus)
        }
        let info = try self.environment.info()
        return StoreStatistics(
            head: head,
            eventsByType: byType,
            ordersByStatus: byStatus,
            storeBytes: UInt64(try self.environment.usedBytes),
            mapBytes: UInt64(info.mapSize)
        )
    }

    // MARK: Maintenance

    /// Clears reader slots left by dead processes (lmdb.h, mdb_reader_check); call periodically.
    public func clearStaleReaders() throws -> Int {
        try self.environment.clearStaleReaders()
    }

    public func backup(to path: String) async throws -> BackupReport {
        let started = ContinuousClock.now
        let head = try await self.head()
        try await DedicatedThread.run("ledger-backup") { [environment = self.environment] in
            // lmdb.h, mdb_env_copy2 with MDB_CP_COMPACT: a consistent copy taken inside one read transaction,
            // omitting free pages; writers are not blocked.
            do {
                try environment.copy(to: path, compact: true)
            } catch {
                throw StoreError(.io, "The backup to \(path) failed: \(error)")
            }
        }
        let attributes = try? FileManager.default.attributesOfItem(atPath: path + "/data.mdb")
        let bytes = (attributes?[.size] as? NSNumber)?.uint64Value ?? 0
        return BackupReport(path: path, bytes: bytes, head: head, seconds: (ContinuousClock.now - started).seconds)
    }

    public func close() async {
        // Waiting for the writer to drain blocks; do it on a thread of its own, not the cooperative pool.
        _ = try? await DedicatedThread.run("ledger-close") { [writer = self.writer, environment = self.environment] in
            writer.stop()
            environment.close()
        }
    }

    /// Claims the right to run a rebuild or a verification; only one runs at a time.
    func beginLongOperation(_ name: String) throws {
        self.longOperation.lock()
        defer { self.longOperation.unlock() }
        guard !self.longOperationRunning else {
            throw StoreError(
                .busy,
                "A projection rebuild or verification is already running; \(name) must wait for it."
            )
        }
        self.longOperationRunning = true
    }

    func endLongOperation() {
        self.longOperation.lock()
        self.longOperationRunning = false
        self.longOperation.unlock()
    }
}

extension LMDBEventStore: CommitBatchReporting {}
