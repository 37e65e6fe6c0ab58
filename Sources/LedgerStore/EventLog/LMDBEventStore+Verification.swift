import Foundation
public import LedgerCore

extension LMDBEventStore {
    /// Walks the whole log on a dedicated thread: sequence continuity, checksums, each event's hash, and the chain
    /// of previous-hashes. Reports the first break with its position.
    public func verifyChain(progress: ProgressHandler?) async throws -> ChainReport {
        let started = ContinuousClock.now
        return try await DedicatedThread.run("ledger-verify") { [self] in
            try self.read { txn in
                let recorded =
                    try txn.get(self.layout.meta, key: LMDBLayout.headKey).flatMap(LMDBLayout.decodeHead) ?? .empty
                var verifier = ChainVerifier(recorded: recorded, progress: progress)
                try txn.forEach(self.layout.events) { key, value in
                    guard let sequence = LMDBUInt64Key(bytes: key)?.value else {
                        let reason = "a key that is not a sequence number"
                        verifier.stop(.corrupted(sequence: verifier.expected, reason: reason))
                        return .stop
                    }
                    let intact = verifier.check(sequence: sequence) {
                        try EventCodec.decode(try LMDBLayout.checkedEvent(value, sequence: sequence), verifyHash: false)
                    }
                    return intact ? .continue : .stop
                }
                return verifier.finish()
            }
        }
    }

    /// Replays the log into the scratch generation while appends go on, catches up inside the writer, and swaps
    /// the generations in the same write transaction, so a reader sees either the old projection or the new one.
    public func rebuildProjection(progress: ProgressHandler?) async throws -> RebuildReport {
        try self.beginLongOperation("the rebuild")
        defer { self.endLongOperation() }
        let started = ContinuousClock.now
        let scratch = try await self.replayIntoScratch(phase: "rebuild", progress: progress)
        let head = try await self.writer.exclusive { context in
            try context.environment.writeGrowing { txn in
                try Self.catchUp(context: context, scratch: scratch, in: txn)
                try txn.put(context.layout.meta, key: LMDBLayout.generationKey, value: [UInt8(scratch)])
            }
            // Only after the commit does the writer switch: a failed swap leaves the old projection live.
            context.liveGeneration = scratch
            return context.head
        }
        let count = try self.read { txn in UInt64(try txn.stat(self.layout.orders[scratch]).entries) }
        return RebuildReport(
            eventsReplayed: head.sequence,
            orders: count,
            head: head,
            seconds: (ContinuousClock.now - started).seconds
        )
    }

    /// Rebuilds into the scratch generation and compares it with the live projection order by order, in one
    /// read snapshot where both reflect the same head.
    public func verifyProjection(differencesMax: Int, progress: ProgressHandler?) async throws -> ProjectionVerifyReport
    {
        try self.beginLongOperation("the verification")
        defer { self.endLongOperation() }
        let started = ContinuousClock.now
        let scratch = try await self.replayIntoScratch(phase: "verify", progress: progress)
        // From this job on, every append updates the scratch generation too, so a read snapshot sees both at the
        // same checkpoint.
        try await self.writer.exclusive { context in
            try context.environment.writeGrowing { txn in try Self.catchUp(context: context, scratch: scratch, in: txn)
            }
            context.dualGeneration = scratch
        }
        do {
            let report = try await DedicatedThread.run("ledger-compare") { [self] in
                try self.compareGenerations(scratch: scratch, differencesMax: differencesMax)
            }
            try await self.writer.exclusive { context in context.dualGeneration = nil }
            return ProjectionVerifyReport(
                eventsReplayed: report.head.sequence,
                ordersCompared: report.compared,
                differences: report.differences,
                differenceCount: report.count,
                head: report.head,
                seconds: (ContinuousClock.now - started).seconds
            )
        } catch {
            try? await self.writer.exclusive { context in context.dualGeneration = nil }
            throw error
        }
    }

    /// Empties the scratch generation and replays the log into it chunk by chunk until the tail is short enough
    /// to apply inside one writer job. Returns the scratch generation.
    private func replayIntoScratch(phase: String, progress: ProgressHandler?) async throws -> Int {
        let scratch = try await self.writer.exclusive { context in
            let scratch = 1 - context.liveGeneration
            try context.environment.writeGrowing { txn in
                try txn.drop(context.layout.orders[scratch])
                try txn.drop(context.layout.byStatus[scratch])
                try txn.put(context.layout.meta, key: LMDBLayout.checkpointKey(scratch), value: LMDBUInt64Key(0))
            }
            return scratch
        }
        let total = try await self.head().sequence
        var reporter = ProgressReporter(phase: phase, total: total, handler: progress)
        let chunkSize = self.options.rebuildChunkEvents
        var replayed: UInt64 = 0
        // Decoding (on a dedicated thread) of chunk k+1 overlaps applying chunk k (in the writer): two cores, two
        // stages. Bodies are skipped: the projection never reads them.
        var pending = try await self.decodeChunk(from: 1, count: chunkSize)
        while pending.count == chunkSize {
            let events = pending
            let next = events.last!.0.sequence + 1
            async let decoded = self.decodeChunk(from: next, count: chunkSize)
            try await self.writer.exclusive { context in
                try context.environment.writeGrowing { txn in
                    // The scratch generation holds every event before this chunk (its checkpoint).
                    var table = ProjectionTable(
                        layout: context.layout,
                        generation: scratch,
                        unstoredFrom: events.first!.0.sequence,
                        expectedOrders: events.count
                    )
                    for (event, handle) in events { try table.apply(event, handle: handle, in: txn) }
                    try table.flush(in: txn)
                    try txn.put(
                        context.layout.meta,
                        key: LMDBLayout.checkpointKey(scratch),
                        value: LMDBUInt64Key(events.last!.0.sequence)
                    )
                }
            }
            replayed += UInt64(events.count)
            reporter.advance(to: replayed)
            pending = try await decoded
        }
        // The short tail is applied by the caller's catch-up inside the writer.
        reporter.finish()
        return scratch
    }

    /// Decodes up to `count` events from `sequence` on a dedicated thread, without their bodies, each with its
    /// order's handle (looked up here, in parallel with the writer applying the previous chunk).
    private func decodeChunk(from sequence: UInt64, count: Int) async throws -> [(Event, UInt64)] {
        try await DedicatedThread.run("ledger-replay") { [self] in
            try self.read { txn in
                var events: [(Event, UInt64)] = []
                events.reserveCapacity(count)
                var handles: [String: UInt64] = [:]
                handles.reserveCapacity(count)
                try txn.forEach(self.layout.events, from: LMDBUInt64Key(sequence)) { key, value in
                    let sequence = LMDBUInt64Key(bytes: key)?.value ?? 0
                    let event = try LMDBLayout.decodeStored(value, sequence: sequence, scope: .projection)
                    let handle: UInt64
                    if let known = handles[event.orderId] {
                        handle = known
                    } else {
                        // A handle is the sequence of the first event naming the order: never after this one.
                        guard let stored = try self.layout.handle(of: event.orderId, in: txn), stored <= event.sequence
                        else {
                            throw Self.missingHandle(event)
                        }
                        handle = stored
                        handles[event.orderId] = stored
                    }
                    events.append((event, handle))
                    return events.count < count ? .continue : .stop
                }
                return events
            }
        }
    }

    static func missingHandle(_ event: Event) -> StoreError {
        StoreError(
            .corrupted,
            "Event \(event.sequence) names order \(event.orderId), which the order index does not hold, or holds under a later sequence."
        )
    }

    /// Applies the events after the scratch checkpoint up to the writer's head; runs inside the writer.
    static func catchUp(
        context: GroupCommitWriter.Context,
        scratch: Int,
        in txn: borrowing LMDBWriteTransaction
    ) throws {
        let layout = context.layout
        let checkpoint = LMDBLayout.u64(try txn.get(layout.meta, key: LMDBLayout.checkpointKey(scratch))) ?? 0
        var table = ProjectionTable(layout: layout, generation: scratch)
        var handles = GroupCommitWriter.OrderHandles(layout: layout)
        var events: [Event] = []
        try txn.forEach(layout.events, from: LMDBUInt64Key(checkpoint + 1)) { key, value in
            let sequence = LMDBUInt64Key(bytes: key)?.value ?? 0
            events.append(try LMDBLayout.decodeStored(value, sequence: sequence, scope: .projection))
            return .continue
        }
        for event in events {
            guard let handle = try handles.existing(event.orderId, in: txn), handle <= event.sequence else {
                throw Self.missingHandle(event)
            }
            try table.apply(event, handle: handle, in: txn)
        }
        try table.flush(in: txn)
        try txn.put(layout.meta, key: LMDBLayout.checkpointKey(scratch), value: LMDBUInt64Key(context.head.sequence))
    }

    private struct Comparison: Sendable {
        var compared: UInt64
        var differences: [ProjectionDifference]
        var count: UInt64
        var head: LogHead
    }

    /// Merges the two generations' order tables in handle order; equal encodings mean equal states, because the
    /// encoding is deterministic.
    private func compareGenerations(scratch: Int, differencesMax: Int) throws -> Comparison {
        try self.read { txn in
            let generation = Int(try txn.get(self.layout.meta, key: LMDBLayout.generationKey)?.first ?? 0)
            let head = try txn.get(self.layout.meta, key: LMDBLayout.headKey).flatMap(LMDBLayout.decodeHead) ?? .empty
            let liveCheckpoint =
                LMDBLayout.u64(try txn.get(self.layout.meta, key: LMDBLayout.checkpointKey(generation))) ?? 0
            let scratchCheckpoint =
                LMDBLayout.u64(try txn.get(self.layout.meta, key: LMDBLayout.checkpointKey(scratch))) ?? 0
            guard liveCheckpoint == scratchCheckpoint else {
                throw StoreError(.busy, "The live and rebuilt projections are not at the same position; try again.")
            }
            var comparison = Comparison(compared: 0, differences: [], count: 0, head: head)
            // Both generations are keyed by handle, so two cursors walk them in step: no table is held in memory.
            func note(live: [UInt8]?, rebuilt: [UInt8]?) {
                comparison.count += 1
                guard comparison.differences.count < differencesMax else { return }
                let liveState = live.flatMap { try? OrderStateCodec.decode($0) }
                let rebuiltState = rebuilt.flatMap { try? OrderStateCodec.decode($0) }
                let orderId = liveState?.orderId ?? rebuiltState?.orderId ?? "(undecodable)"
                comparison.differences.append(
                    ProjectionDifference(orderId: orderId, live: liveState, rebuilt: rebuiltState)
                )
            }
            try txn.withCursor(self.layout.orders[generation]) { liveCursor in
                try txn.withCursor(self.layout.orders[scratch]) { scratchCursor in
                    var liveEntry = try liveCursor.first()
                    var scratchEntry = try scratchCursor.first()
                    while liveEntry != nil || scratchEntry != nil {
                        let liveKey = liveEntry.flatMap { LMDBUInt64Key(bytes: $0.key)?.value } ?? .max
                        let scratchKey = scratchEntry.flatMap { LMDBUInt64Key(bytes: $0.key)?.value } ?? .max
                        if liveEntry != nil && scratchEntry != nil && liveKey == scratchKey {
                            comparison.compared += 1
                            if !liveEntry!.value.elementsEqual(scratchEntry!.value) {
                                note(live: Array(liveEntry!.value), rebuilt: Array(scratchEntry!.value))
                            }
                            liveEntry = try liveCursor.next()
                            scratchEntry = try scratchCursor.next()
                        } else if scratchEntry == nil || (liveEntry != nil && liveKey < scratchKey) {
                            note(live: Array(liveEntry!.value), rebuilt: nil)
                            liveEntry = try liveCursor.next()
                        } else {
                            comparison.compared += 1
                            note(live: nil, rebuilt: Array(scratchEntry!.value))
                            scratchEntry = try scratchCursor.next()
                        }
                    }
                }
            }
            return comparison
        }
    }
}

/// Reports progress at most a few times a second, with rate and time remaining. Public so every store reports its
/// long operations the same way.
public struct ProgressReporter {
    let phase: String
    let total: UInt64
    let handler: ProgressHandler?
    let started = ContinuousClock.now
    var lastReport = ContinuousClock.now
    var done: UInt64 = 0

    public init(phase: String, total: UInt64, handler: ProgressHandler?) {
        self.phase = phase
        self.total = total
        self.handler = handler
    }

    public mutating func advance(to done: UInt64) {
        self.done = done
        guard let handler = self.handler, done % 1024 == 0 || done == self.total else { return }
        let now = ContinuousClock.now
        guard now - self.lastReport >= .milliseconds(250) else { return }
        self.lastReport = now
        handler(self.snapshot(now: now))
    }

    public func finish() {
        self.handler?(self.snapshot(now: .now))
    }

    private func snapshot(now: ContinuousClock.Instant) -> StoreProgress {
        let elapsed = (ContinuousClock.now - self.started).seconds
        let rate = elapsed > 0 ? Double(self.done) / elapsed : 0
        let remaining = rate > 0 && self.total >= self.done ? Double(self.total - self.done) / rate : nil
        return StoreProgress(
            phase: self.phase,
            done: self.done,
            total: self.total,
            rate: rate,
            secondsRemaining: remaining
        )
    }
}
