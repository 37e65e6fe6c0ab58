import Foundation
import LedgerCore

/// The ledger's one writer: a dedicated thread that drains every queued append into a single LMDB write
/// transaction, commits it (LMDB syncs data and meta pages on commit), and only then resumes the callers.
///
/// Throughput therefore grows with concurrency instead of being capped at one fsync per append, and no caller
/// hears "stored" before its events are durable. Other writes (rebuild chunks, the projection swap) run as
/// exclusive jobs on the same thread, so LMDB's single-writer rule holds without any lock around transactions.
///
/// The thread exists only between `start()` and `stop()`, which joins it: making a writer starts nothing, so the
/// store that owns it decides when writing begins and ends (it starts it once its environment is open, and stops it
/// before closing that). Before `start()` and after `stop()` every write is refused with a `closed` error.
final class GroupCommitWriter: @unchecked Sendable {
    // @unchecked: `queue`, `phase` and `batchSizes` are guarded by `condition`; `context` is touched only by the
    // writer thread (and by `init` before that thread starts).

    struct Limits: Sendable {
        /// Appends per transaction. 1 turns group commit off (one fsync per append, the benchmark's baseline).
        var batchCountMax: Int
        /// Estimated bytes per transaction, so one batch cannot build a huge dirty-page set.
        var batchBytesMax: Int
        /// Appends waiting at once; beyond it `append` fails fast with a "busy" error instead of queueing forever.
        var queueDepthMax: Int
        /// The quarantine's bounds, kept inside each transaction that adds to it.
        var quarantine: QuarantineLimits = .default
    }

    /// State only the writer thread touches.
    final class Context {
        let environment: LMDBEnvironment
        let layout: LMDBLayout
        var head: LogHead
        var liveGeneration: Int
        /// A scratch generation kept up to date with every append, while a projection verification compares it.
        var dualGeneration: Int?

        init(environment: LMDBEnvironment, layout: LMDBLayout, head: LogHead, liveGeneration: Int) {
            self.environment = environment
            self.layout = layout
            self.head = head
            self.liveGeneration = liveGeneration
        }
    }

    private enum Job {
        case append(AppendRequest, AppendCompletion)
        /// A notification for the quarantine: batched like appends, so a flood of forgeries shares commits (and
        /// syncs) instead of taking one each; written in a transaction of its own after the appends', so a failing
        /// quarantine write can never fail a genuine append.
        case quarantine(QuarantineEntry, CheckedContinuation<QuarantineReceipt, any Error>)
        case exclusive(@Sendable (Context) throws -> Void, CheckedContinuation<Void, any Error>)
    }

    /// Where the writer is in its life: jobs are taken only while it runs.
    private enum Phase {
        /// Made, its thread not started: writes are refused.
        case idle
        case running
        /// Stopped (or stopping): queued jobs finish, new ones are refused.
        case stopping
    }

    private let condition = NSCondition()
    private var queue: [Job] = []
    private var phase = Phase.idle
    private let context: Context
    private let limits: Limits
    private let finished = NSCondition()
    private var threadFinished = false
    /// Sizes of committed batches, for metrics: read with `takeBatchSizes`.
    private var batchSizes: [Int] = []

    /// A writer for the environment in `context`; its thread starts with `start()`.
    init(context: Context, limits: Limits) {
        self.context = context
        self.limits = limits
    }

    /// Starts the writer's thread; from now on it takes jobs, until `stop()`. A writer starts once: a stopped one
    /// stays stopped, and its store must be opened again.
    func start() {
        self.condition.lock()
        defer { self.condition.unlock() }
        switch self.phase {
        case .idle: self.phase = .running
        case .running, .stopping: return
        }
        let thread = Thread { [self] in self.loop() }
        thread.name = "ledger-writer"
        thread.start()
    }

    func append(_ request: AppendRequest) async throws -> AppendOutcome {
        try await withCheckedThrowingContinuation { continuation in
            self.append(request) { continuation.resume(with: $0) }
        }
    }

    /// Appends and calls `completion` on the writer thread once the events are durable, or with why they are not.
    /// `completion` must only hand the result on: the next batch waits for it.
    func append(_ request: AppendRequest, completion: @escaping AppendCompletion) {
        self.enqueue(.append(request, completion)) { completion(.failure($0)) }
    }

    /// Keeps a notification in the quarantine, in the next commit.
    func quarantine(_ entry: QuarantineEntry) async throws -> QuarantineReceipt {
        try await withCheckedThrowingContinuation { continuation in
            self.enqueue(.quarantine(entry, continuation)) { continuation.resume(throwing: $0) }
        }
    }

    /// Why the writer takes no job now (it has not started, or has stopped), or nil while it runs. Called with
    /// `condition` held.
    private func refusal() -> StoreError? {
        switch self.phase {
        case .idle: return StoreError(.closed, "The ledger store is not open yet.")
        case .running: return nil
        case .stopping: return StoreError(.closed, "The ledger store is closed.")
        }
    }

    /// Queues `job`, or calls `refuse` with why not: the store is not open, or the queue is full.
    private func enqueue(_ job: Job, refuse: (StoreError) -> Void) {
        self.condition.lock()
        if let refusal = self.refusal() {
            self.condition.unlock()
            refuse(refusal)
            return
        }
        if self.queue.count >= self.limits.queueDepthMax {
            self.condition.unlock()
            refuse(
                StoreError(
                    .busy,
                    "The ledger's write queue holds \(self.limits.queueDepthMax) writes (store.queueDepthMax); try again."
                )
            )
            return
        }
        self.queue.append(job)
        self.condition.signal()
        self.condition.unlock()
    }

    /// Runs `body` on the writer thread between batches, alone.
    func exclusive<T: Sendable>(_ body: @escaping @Sendable (Context) throws -> T) async throws -> T {
        let box = ResultBox<T>()
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            self.condition.lock()
            if let refusal = self.refusal() {
                self.condition.unlock()
                continuation.resume(throwing: refusal)
                return
            }
            self.queue.append(.exclusive({ context in box.value = try body(context) }, continuation))
            self.condition.signal()
            self.condition.unlock()
        }
        return box.value!
    }

    /// Stops taking jobs, finishes the queued ones, and waits for the thread to end (a writer never started has
    /// neither).
    func stop() {
        self.condition.lock()
        let started = self.phase != .idle
        self.phase = .stopping
        self.condition.signal()
        self.condition.unlock()
        guard started else { return }
        self.finished.lock()
        while !self.threadFinished { self.finished.wait() }
        self.finished.unlock()
    }

    /// The sizes of the batches committed since the last call.
    func takeBatchSizes() -> [Int] {
        self.condition.lock()
        defer { self.condition.unlock() }
        let sizes = self.batchSizes
        self.batchSizes.removeAll(keepingCapacity: true)
        return sizes
    }

    private func loop() {
        while true {
            self.condition.lock()
            while self.queue.isEmpty && self.phase == .running { self.condition.wait() }
            if self.queue.isEmpty && self.phase == .stopping {
                self.condition.unlock()
                break
            }
            var appends: [(AppendRequest, AppendCompletion)] = []
            var quarantined: [(QuarantineEntry, CheckedContinuation<QuarantineReceipt, any Error>)] = []
            var exclusive: (@Sendable (Context) throws -> Void, CheckedContinuation<Void, any Error>)?
            var bytes = 0
            var taken = 0
            jobs: for job in self.queue {
                let jobBytes: Int
                switch job {
                case .exclusive(let body, let continuation):
                    if taken == 0 {
                        exclusive = (body, continuation)
                        taken += 1
                    }
                    break jobs
                case .append(let request, _): jobBytes = request.estimatedBytes
                case .quarantine(let entry, _): jobBytes = entry.accountedBytes
                }
                if taken > 0 && (taken >= self.limits.batchCountMax || bytes + jobBytes > self.limits.batchBytesMax) {
                    break
                }
                switch job {
                case .append(let request, let completion): appends.append((request, completion))
                case .quarantine(let entry, let continuation): quarantined.append((entry, continuation))
                case .exclusive: break
                }
                bytes += jobBytes
                taken += 1
            }
            self.queue.removeFirst(taken)
            self.condition.unlock()

            if let (body, continuation) = exclusive {
                do {
                    try body(self.context)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: Self.storeError(error, path: self.context.environment.path))
                }
            } else {
                if !appends.isEmpty { self.commit(appends) }
                if !quarantined.isEmpty { self.commitQuarantine(quarantined) }
            }
        }
        self.finished.lock()
        self.threadFinished = true
        self.finished.broadcast()
        self.finished.unlock()
    }

    /// Keeps quarantined notifications in one transaction of their own, after the appends batched with them (so a
    /// notification for an order created in that batch counts under it).
    private func commitQuarantine(_ batch: [(QuarantineEntry, CheckedContinuation<QuarantineReceipt, any Error>)]) {
        let context = self.context
        let layout = context.layout
        var receipts: [QuarantineReceipt] = []
        do {
            try context.environment.writeGrowing { txn in
                // This closure may run again after the map grows: it derives everything from the context.
                receipts = []
                var handles = OrderHandles(layout: layout, expectedOrders: batch.count)
                let live = ProjectionTable(
                    layout: layout,
                    generation: context.liveGeneration,
                    unstoredFrom: context.head.sequence + 1,
                    expectedOrders: 0
                )
                for (entry, _) in batch {
                    var known = false
                    if let orderId = entry.orderId, !orderId.isEmpty,
                        let handle = try handles.existing(orderId, in: txn)
                    {
                        known = try live.state(handle: handle, in: txn)?.order != nil
                    }
                    receipts.append(
                        try LMDBQuarantine.add(
                            entry,
                            orderKnown: known,
                            limits: self.limits.quarantine,
                            layout: layout,
                            in: txn
                        )
                    )
                }
            }
        } catch {
            let failure = Self.storeError(error, path: context.environment.path)
            for (_, continuation) in batch { continuation.resume(throwing: failure) }
            return
        }
        for ((_, continuation), receipt) in zip(batch, receipts) { continuation.resume(returning: receipt) }
    }

    private func commit(_ batch: [(AppendRequest, AppendCompletion)]) {
        let context = self.context
        let layout = context.layout
        var outcomes: [AppendOutcome] = []
        var newHead = context.head
        do {
            try context.environment.writeGrowing { txn in
                // This closure may run again after the map grows: it derives everything from the context.
                outcomes = []
                var head = context.head
                let eventCount = batch.reduce(0) { $0 + $1.0.events.count }
                var handles = OrderHandles(layout: layout, expectedOrders: eventCount)
                // Both generations hold every event up to the head (the scratch one is kept in step while dual).
                let unstoredFrom = context.head.sequence + 1
                var live = ProjectionTable(
                    layout: layout,
                    generation: context.liveGeneration,
                    unstoredFrom: unstoredFrom,
                    expectedOrders: eventCount
                )
                var dual = ProjectionTable(
                    layout: layout,
                    generation: context.dualGeneration ?? 0,
                    unstoredFrom: unstoredFrom,
                    expectedOrders: context.dualGeneration == nil ? 0 : eventCount
                )
                let maintainsDual = context.dualGeneration != nil
                for (request, _) in batch {
                    if case .orderAbsent(let orderId) = request.precondition,
                        let handle = try handles.existing(orderId, in: txn),
                        let existing = try live.state(handle: handle, in: txn), existing.order != nil
                    {
                        outcomes.append(.preconditionFailed(existing))
                        continue
                    }
                    let count = request.events.count
                    var appended = Appended(events: [], effects: [], orders: [:])
                    appended.events.reserveCapacity(count)
                    appended.effects.reserveCapacity(count)
                    // Each touched order's state after the request is taken once, at its end.
                    var touchedOrders: [(orderId: String, handle: UInt64)] = []
                    touchedOrders.reserveCapacity(count)
                    for pending in request.events {
                        let event = try Self.store(pending, after: head, layout: layout, in: txn)
                        let handle = try handles.assign(event.orderId, sequence: event.sequence, in: txn)
                        try Self.index(event, handle: handle, layout: layout, in: txn)
                        let effect = try live.apply(event, handle: handle, in: txn)
                        if maintainsDual { try dual.apply(event, handle: handle, in: txn) }
                        head = LogHead(sequence: event.sequence, hash: event.hash)
                        // Runs of one order's events add it once; a later run again (weeded out below).
                        if touchedOrders.last?.handle != handle { touchedOrders.append((event.orderId, handle)) }
                        appended.events.append(event)
                        appended.effects.append(effect)
                    }
                    appended.orders.reserveCapacity(touchedOrders.count)
                    for (orderId, handle) in touchedOrders where appended.orders[orderId] == nil {
                        appended.orders[orderId] = live.touchedState(handle: handle)
                    }
                    outcomes.append(.appended(appended))
                }
                try Self.countEvents(outcomes, layout: layout, in: txn)
                try live.flush(in: txn)
                try txn.put(
                    layout.meta,
                    key: LMDBLayout.checkpointKey(context.liveGeneration),
                    value: LMDBUInt64Key(head.sequence)
                )
                if let generation = context.dualGeneration {
                    try dual.flush(in: txn)
                    try txn.put(
                        layout.meta,
                        key: LMDBLayout.checkpointKey(generation),
                        value: LMDBUInt64Key(head.sequence)
                    )
                }
                try txn.put(layout.meta, key: LMDBLayout.headKey, value: LMDBLayout.encodeHead(head))
                newHead = head
            }
        } catch {
            let failure = Self.storeError(error, path: context.environment.path)
            for (_, completion) in batch { completion(.failure(failure)) }
            return
        }
        context.head = newHead
        self.condition.lock()
        if self.batchSizes.count < StoreLimits.batchSamplesMax { self.batchSizes.append(batch.count) }
        self.condition.unlock()
        for ((_, completion), outcome) in zip(batch, outcomes) { completion(.success(outcome)) }
    }

    /// Adds the batch's events to the per-type counts in `meta`, in the same transaction, so `ledger.stats` reads
    /// three keys instead of scanning the log.
    static func countEvents(_ outcomes: [AppendOutcome], layout: LMDBLayout, in txn: borrowing LMDBWriteTransaction)
        throws
    {
        var added: [EventType: UInt64] = [:]
        for case .appended(let appended) in outcomes {
            for event in appended.events { added[event.type, default: 0] += 1 }
        }
        for (type, count) in added {
            let key = LMDBLayout.countKey(type)
            let current = LMDBLayout.u64(try txn.get(layout.meta, key: key)) ?? 0
            try txn.put(layout.meta, key: key, value: LMDBUInt64Key(current + count))
        }
    }

    /// Seals `pending` as the event after `head` and stores it in the log.
    ///
    /// The encoding is written straight into LMDB's page (MDB_RESERVE): the header, the payload the appender
    /// encoded, the SHA-256 of both, and in front the CRC of it all. No array is made for it.
    static func store(
        _ pending: PendingEvent,
        after head: LogHead,
        layout: LMDBLayout,
        in txn: borrowing LMDBWriteTransaction
    ) throws -> Event {
        let sequence = head.sequence + 1
        var hash = Digest32.zero
        // lmdb.h, MDB_APPEND: keys must arrive in sorted order; a key at or below the last one fails with
        // MDB_KEYEXIST, so the log cannot be rewritten by this path even by a bug.
        try txn.putReserved(
            layout.events,
            key: LMDBUInt64Key(sequence),
            count: 4 + pending.encodedBytes,
            flags: .append
        ) { page in
            let encoded = UnsafeMutableRawBufferPointer(rebasing: page[4...])
            hash = EventCodec.seal(pending, sequence: sequence, previousHash: head.hash, into: encoded)
            let checksum = CRC32C.checksum(UnsafeRawBufferPointer(encoded)).bigEndian
            withUnsafeBytes(of: checksum) { page.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: 4) }
        }
        return pending.sealed(sequence: sequence, previousHash: head.hash, hash: hash)
    }

    /// Stores an event's log indexes (not the projection).
    static func index(
        _ event: Event,
        handle: UInt64,
        layout: LMDBLayout,
        in txn: borrowing LMDBWriteTransaction
    ) throws {
        // An order's first event gives it its handle, which sorts after every stored one: appended (MDB_APPEND),
        // with no search, and LMDB refuses it if that were ever not so.
        try txn.put(
            layout.orderEvents,
            key: LMDBUInt64Key(handle),
            value: LMDBUInt64Key(event.sequence),
            flags: handle == event.sequence ? .append : []
        )
        if case .callbackReceived(let callback) = event.payload, let contentKey = callback.signedContentKey {
            try txn.put(
                layout.callbackDedup,
                key: LMDBLayout.dedupKey(handle: handle, signedContentKey: contentKey),
                value: LMDBUInt64Key(event.sequence),
                flags: .noOverwrite
            )
        }
    }

    /// Resolves order ids to handles inside one write transaction, and gives an order its handle (the sequence of
    /// the first event naming it) the first time an event names it.
    struct OrderHandles {
        let layout: LMDBLayout
        private var known: [String: UInt64] = [:]

        init(layout: LMDBLayout, expectedOrders: Int = 0) {
            self.layout = layout
            self.known.reserveCapacity(expectedOrders)
        }

        /// The order's handle, or nil when no stored event names it yet.
        mutating func existing(_ orderId: String, in txn: borrowing LMDBWriteTransaction) throws -> UInt64? {
            if let handle = self.known[orderId] { return handle }
            guard let handle = try self.layout.handle(of: orderId, in: txn) else { return nil }
            self.known[orderId] = handle
            return handle
        }

        /// The order's handle, assigned now if event `sequence` is the first to name it: one B-tree search either
        /// way (`insertOrGet`).
        mutating func assign(_ orderId: String, sequence: UInt64, in txn: borrowing LMDBWriteTransaction) throws
            -> UInt64
        {
            if let handle = self.known[orderId] { return handle }
            var id = orderId
            let handle = try id.withUTF8 { utf8 in
                guard
                    let stored = try txn.insertOrGet(
                        self.layout.orderIds,
                        key: UnsafeRawBufferPointer(utf8),
                        value: LMDBUInt64Key(sequence)
                    )
                else {
                    return sequence
                }
                guard let handle = LMDBLayout.u64(stored) else {
                    throw StoreError(.corrupted, "The order index holds a damaged handle for order \(orderId).")
                }
                return handle
            }
            self.known[orderId] = handle
            return handle
        }
    }

    /// Maps LMDB's errors to the store's, with a message an operator can act on. `path` is the environment's
    /// directory, whose file system is asked whether an I/O error was a full disk.
    /// `writing` is false for a read, whose I/O error is never a full disk.
    static func storeError(_ error: any Error, path: String, writing: Bool = true) -> any Error {
        guard let lmdb = error as? LMDBError else { return error }
        if lmdb.isEnvironmentClosed {
            return StoreError(.closed, "The ledger store is closed; the daemon is stopping.", cause: lmdb)
        }
        switch lmdb.code {
        case .mapFull:
            return StoreError(
                .full,
                "The ledger store is full: \(lmdb.description) Raise store.mapSizeMax.",
                cause: lmdb
            )
        case .diskFull:
            return StoreError(
                .full,
                "The disk holding the ledger is full; nothing of this write was stored. \(lmdb.description)",
                cause: lmdb
            )
        case .ioError where writing && Self.diskIsFull(path):
            // mdb_page_flush reports a short write as EIO (mdb.c: "TODO: Use which error code?"), and a write on a
            // disk that fills up midway is short, so on a full disk a commit fails with ENOSPC or with EIO
            // depending on where the space ran out. Either way the meta page was not written: nothing was stored.
            return StoreError(
                .full,
                "The disk holding the ledger is full (a commit's write came up short); nothing of this write was stored. \(lmdb.description)",
                cause: lmdb
            )
        case .corrupted, .pageNotFound, .panic, .invalid:
            return StoreError(.corrupted, lmdb.description, cause: lmdb)
        default:
            return StoreError(.io, lmdb.description, cause: lmdb)
        }
    }
}

extension GroupCommitWriter {
    /// Whether the file system holding `path` has less than a mebibyte left for this process (root may use the
    /// blocks reserved for it). A short write uses up what was left, so right after one this holds.
    static func diskIsFull(_ path: String) -> Bool {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return false }
        let blocks = geteuid() == 0 ? UInt64(stats.f_bfree) : UInt64(stats.f_bavail)
        return blocks * UInt64(stats.f_frsize) < 1 << 20
    }
}

final class ResultBox<T>: @unchecked Sendable {
    // @unchecked: written on the writer thread before the continuation resumes, read after; the continuation's
    // resume/await pair orders the two.
    var value: T?
}
