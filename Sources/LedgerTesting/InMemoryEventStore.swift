public import LedgerCore
public import LedgerStore

/// An event store in memory, with the same contract as the LMDB store: for fast tests of everything above the
/// store, and as the reference the contract suite holds the LMDB store to. Nothing survives the process.
public actor InMemoryEventStore: EventStore {
    private var log: [Event] = []
    private var projection: [String: OrderState] = [:]
    private var orderIndex: [String: [UInt64]] = [:]
    private var dedup: [String: UInt64] = [:]
    private var closed = false
    private let readPageMax: Int
    private var quarantineBook: QuarantineBook
    private var forwardPositionValue: UInt64 = 0
    private var outbox: [ForwardKey: ForwardDelivery] = [:]

    public init(readPageMax: Int = StoreLimits().readPageMax, quarantineLimits: QuarantineLimits = .default) {
        self.readPageMax = readPageMax
        self.quarantineBook = QuarantineBook(limits: quarantineLimits)
    }

    private var currentHead: LogHead {
        self.log.last.map { LogHead(sequence: $0.sequence, hash: $0.hash) } ?? .empty
    }

    public func append(_ request: AppendRequest) async throws -> AppendOutcome {
        guard !self.closed else { throw StoreError(.closed, "The ledger store is closed.") }
        if case .orderAbsent(let orderId) = request.precondition, let existing = self.projection[orderId],
            existing.order != nil
        {
            return .preconditionFailed(existing)
        }
        var appended = Appended(events: [], effects: [], orders: [:])
        for pending in request.events {
            let head = self.currentHead
            let event = pending.sealed(sequence: head.sequence + 1, previousHash: head.hash)
            self.log.append(event)
            self.orderIndex[event.orderId, default: []].append(event.sequence)
            if case .callbackReceived(let callback) = event.payload, let key = callback.signedContentKey {
                let dedupKey = event.orderId + "\u{0}" + key
                if self.dedup[dedupKey] == nil { self.dedup[dedupKey] = event.sequence }
            }
            var state = self.projection[event.orderId] ?? OrderState(orderId: event.orderId)
            let effect = state.apply(event)
            self.projection[event.orderId] = state
            appended.events.append(event)
            appended.effects.append(effect)
            appended.orders[event.orderId] = state
        }
        return .appended(appended)
    }

    public func head() async throws -> LogHead { self.currentHead }

    public func readEvents(from sequence: UInt64, limit: Int) async throws -> [Event] {
        let limit = min(max(limit, 0), self.readPageMax)
        let start = Int(max(sequence, 1)) - 1
        guard start < self.log.count, limit > 0 else { return [] }
        return Array(self.log[start..<min(self.log.count, start + limit)])
    }

    public func events(forOrder orderId: String) async throws -> [Event] {
        (self.orderIndex[orderId] ?? []).map { self.log[Int($0) - 1] }
    }

    public func createdEvent(forOrder orderId: String) async throws -> Event? {
        // The projection keeps the sequence of the first order-created event, as in the LMDB store.
        guard let sequence = self.projection[orderId]?.order?.createdSequence else { return nil }
        return self.log[Int(sequence) - 1]
    }

    public func order(_ orderId: String) async throws -> OrderState? { self.projection[orderId] }

    public func orders(status: OrderStatus, after afterOrderId: String?, limit: Int) async throws -> [OrderState] {
        let limit = min(max(limit, 0), self.readPageMax)
        if limit == 0 { return [] }
        // An order's place is the sequence of the first event naming it, as in the LMDB store.
        var after: UInt64 = 0
        if let afterOrderId {
            guard let first = self.orderIndex[afterOrderId]?.first else {
                throw StoreError(
                    .invalidArgument,
                    "The ledger holds no order \(afterOrderId); page with an order id from a previous page."
                )
            }
            after = first
        }
        return self.projection.values
            .compactMap { state -> (UInt64, OrderState)? in
                guard state.status == status, let first = self.orderIndex[state.orderId]?.first, first > after else {
                    return nil
                }
                return (first, state)
            }
            .sorted { $0.0 < $1.0 }
            .prefix(limit)
            .map(\.1)
    }

    public func firstCallback(orderId: String, signedContentKey: String) async throws -> UInt64? {
        self.dedup[orderId + "\u{0}" + signedContentKey]
    }

    public func statistics() async throws -> StoreStatistics {
        var byType: [EventType: UInt64] = [:]
        for event in self.log { byType[event.type, default: 0] += 1 }
        var byStatus: [OrderStatus: UInt64] = [:]
        for status in OrderStatus.allCases { byStatus[status] = 0 }
        for state in self.projection.values { byStatus[state.status, default: 0] += 1 }
        let bytes = self.log.reduce(0) { $0 + UInt64(EventCodec.encode($1).count) }
        return StoreStatistics(
            head: self.currentHead,
            eventsByType: byType,
            ordersByStatus: byStatus,
            storeBytes: bytes,
            mapBytes: nil
        )
    }

    public func verifyChain(progress: ProgressHandler?) async throws -> ChainReport {
        // The same checks as every other store's, on the events as they are held.
        var verifier = ChainVerifier(recorded: self.currentHead, progress: progress)
        for event in self.log {
            guard verifier.check(sequence: event.sequence, decode: { event }) else { break }
        }
        return verifier.finish()
    }

    private func refold() -> [String: OrderState] {
        var states: [String: OrderState] = [:]
        for event in self.log {
            var state = states[event.orderId] ?? OrderState(orderId: event.orderId)
            state.apply(event)
            states[event.orderId] = state
        }
        return states
    }

    public func rebuildProjection(progress: ProgressHandler?) async throws -> RebuildReport {
        self.projection = self.refold()
        progress?(
            StoreProgress(
                phase: "rebuild",
                done: UInt64(self.log.count),
                total: UInt64(self.log.count),
                rate: 0,
                secondsRemaining: 0
            )
        )
        return RebuildReport(
            eventsReplayed: UInt64(self.log.count),
            orders: UInt64(self.projection.count),
            head: self.currentHead,
            seconds: 0
        )
    }

    public func verifyProjection(differencesMax: Int, progress: ProgressHandler?) async throws -> ProjectionVerifyReport
    {
        let rebuilt = self.refold()
        var differences: [ProjectionDifference] = []
        var count: UInt64 = 0
        for id in Set(rebuilt.keys).union(self.projection.keys).sorted() where rebuilt[id] != self.projection[id] {
            count += 1
            if differences.count < differencesMax {
                differences.append(ProjectionDifference(orderId: id, live: self.projection[id], rebuilt: rebuilt[id]))
            }
        }
        return ProjectionVerifyReport(
            eventsReplayed: UInt64(self.log.count),
            ordersCompared: UInt64(rebuilt.count),
            differences: differences,
            differenceCount: count,
            head: self.currentHead,
            seconds: 0
        )
    }

    public func backup(to path: String) async throws -> BackupReport {
        throw StoreError(.invalidArgument, "The in-memory store keeps nothing on disk, so there is nothing to back up.")
    }

    public func quarantine(_ entry: QuarantineEntry) async throws -> QuarantineReceipt {
        guard !self.closed else { throw StoreError(.closed, "The ledger store is closed.") }
        let known = entry.orderId.map { self.projection[$0]?.order != nil } ?? false
        return self.quarantineBook.add(entry, orderKnown: known)
    }

    public func quarantined(_ query: QuarantineQuery) async throws -> QuarantinePage {
        var query = query
        query.limit = min(max(query.limit, 0), self.readPageMax)
        return self.quarantineBook.page(query)
    }

    public func quarantineCounts(orderId: String?) async throws -> [String: QuarantineCounts] {
        guard let orderId else { return self.quarantineBook.perOrder }
        return self.quarantineBook.perOrder[orderId].map { [orderId: $0] } ?? [:]
    }

    public func quarantineStatus() async throws -> QuarantineStatus { self.quarantineBook.status }

    public func forwardPosition() async throws -> UInt64 { self.forwardPositionValue }

    public func forwardOutbox(after: ForwardKey?, limit: Int) async throws -> [ForwardDelivery] {
        let limit = min(max(limit, 0), self.readPageMax)
        return Array(
            self.outbox.values.filter { after == nil || after! < $0.key }.sorted { $0.key < $1.key }.prefix(limit)
        )
    }

    public func forwardWrite(_ write: ForwardWrite) async throws {
        guard !self.closed else { throw StoreError(.closed, "The ledger store is closed.") }
        if let position = write.position {
            guard position <= self.currentHead.sequence else {
                throw StoreError(
                    .invalidArgument,
                    "The forward position \(position) is beyond the log's head \(self.currentHead.sequence)."
                )
            }
            self.forwardPositionValue = position
        }
        for delivery in write.put { self.outbox[delivery.key] = delivery }
        for key in write.remove { self.outbox[key] = nil }
    }

    public func close() async { self.closed = true }
}
