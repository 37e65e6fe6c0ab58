public import LedgerCore
import Synchronization

/// The store as the parts of a running daemon hold it: the service that owns the store opens it when it runs and
/// closes it when it stops, and in between this hands every call to it.
///
/// A service's resources exist only while it runs (swift-service-lifecycle), so the ledger, the poller, the
/// forwarder and the servers are made with this handle before the store exists. Before it is open and after it
/// is closed every call fails with a `closed` error, so no part can use a store that is not open.
public class StoreHandle: EventStore, CommitBatchReporting, StoreSizeReporting, @unchecked Sendable {
    // @unchecked: not final, because the handle of a shared store adds leadership to it; its one stored property
    // is a Mutex.

    private enum State {
        case unopened
        case open(any EventStore)
        case closed
    }

    private let state = Mutex<State>(.unopened)

    /// A handle whose store is not open yet.
    public init() {}

    /// A handle for a store several daemons share (it hands on `whileLeading` too), or for an embedded one.
    public static func make(shared: Bool) -> StoreHandle {
        shared ? SharedStoreHandle() : StoreHandle()
    }

    /// Hands calls to `store` from now until `close()`. A handle opens once: when it was closed first (the daemon
    /// stopped while the store was opening), `store` is closed again and this throws `closed`.
    public func open(_ store: any EventStore) async throws {
        let opened = self.state.withLock { state -> Bool in
            switch state {
            case .unopened:
                state = .open(store)
                return true
            case .open, .closed:
                return false
            }
        }
        if opened { return }
        await store.close()
        throw StoreError(.closed, "The ledger store is closed; it is not opened again.")
    }

    /// The open store, or the error that says why there is none.
    func opened() throws -> any EventStore {
        try self.state.withLock { state in
            switch state {
            case .unopened: throw StoreError(.closed, "The ledger store is not open yet.")
            case .open(let store): return store
            case .closed: throw StoreError(.closed, "The ledger store is closed.")
            }
        }
    }

    /// Refuses every call from now on, then closes the store: appends already handed on finish first, as the
    /// store's own `close()` promises.
    public func close() async {
        let store = self.state.withLock { state -> (any EventStore)? in
            defer { state = .closed }
            guard case .open(let store) = state else { return nil }
            return store
        }
        await store?.close()
    }

    public func append(_ request: AppendRequest) async throws -> AppendOutcome {
        try await self.opened().append(request)
    }

    public func append(_ request: AppendRequest, completion: @escaping AppendCompletion) {
        do {
            try self.opened().append(request, completion: completion)
        } catch {
            completion(.failure(error))
        }
    }

    public func head() async throws -> LogHead {
        try await self.opened().head()
    }

    public func readEvents(from sequence: UInt64, limit: Int) async throws -> [Event] {
        try await self.opened().readEvents(from: sequence, limit: limit)
    }

    public func events(forOrder orderId: String) async throws -> [Event] {
        try await self.opened().events(forOrder: orderId)
    }

    public func createdEvent(forOrder orderId: String) async throws -> Event? {
        try await self.opened().createdEvent(forOrder: orderId)
    }

    public func order(_ orderId: String) async throws -> OrderState? {
        try await self.opened().order(orderId)
    }

    public func orders(status: OrderStatus, after afterOrderId: String?, limit: Int) async throws -> [OrderState] {
        try await self.opened().orders(status: status, after: afterOrderId, limit: limit)
    }

    public func firstCallback(orderId: String, signedContentKey: String) async throws -> UInt64? {
        try await self.opened().firstCallback(orderId: orderId, signedContentKey: signedContentKey)
    }

    public func statistics() async throws -> StoreStatistics {
        try await self.opened().statistics()
    }

    public func verifyChain(progress: ProgressHandler?) async throws -> ChainReport {
        try await self.opened().verifyChain(progress: progress)
    }

    public func rebuildProjection(progress: ProgressHandler?) async throws -> RebuildReport {
        try await self.opened().rebuildProjection(progress: progress)
    }

    public func verifyProjection(differencesMax: Int, progress: ProgressHandler?) async throws
        -> ProjectionVerifyReport
    {
        try await self.opened().verifyProjection(differencesMax: differencesMax, progress: progress)
    }

    public func backup(to path: String) async throws -> BackupReport {
        try await self.opened().backup(to: path)
    }

    public func quarantine(_ entry: QuarantineEntry) async throws -> QuarantineReceipt {
        try await self.opened().quarantine(entry)
    }

    public func quarantined(_ query: QuarantineQuery) async throws -> QuarantinePage {
        try await self.opened().quarantined(query)
    }

    public func quarantineCounts(orderId: String?) async throws -> [String: QuarantineCounts] {
        try await self.opened().quarantineCounts(orderId: orderId)
    }

    public func quarantineStatus() async throws -> QuarantineStatus {
        try await self.opened().quarantineStatus()
    }

    public func forwardPosition() async throws -> UInt64 {
        try await self.opened().forwardPosition()
    }

    public func forwardOutbox(after: ForwardKey?, limit: Int) async throws -> [ForwardDelivery] {
        try await self.opened().forwardOutbox(after: after, limit: limit)
    }

    public func forwardWrite(_ write: ForwardWrite) async throws {
        try await self.opened().forwardWrite(write)
    }

    /// The open store's batch sizes; none while it is not open, or when it does not group commits.
    public func takeCommitBatchSizes() -> [Int] {
        ((try? self.opened()) as? any CommitBatchReporting)?.takeCommitBatchSizes() ?? []
    }

    public func storeSize() async throws -> StoreSize {
        guard let store = try self.opened() as? any StoreSizeReporting else {
            throw StoreError(.invalidArgument, "The ledger store does not report its size.")
        }
        return try await store.storeSize()
    }
}

/// The handle of a store several daemons share: it hands on poll leadership too.
public final class SharedStoreHandle: StoreHandle, SharedEventStore, @unchecked Sendable {
    // @unchecked: it adds no stored property to its superclass's Mutex.

    public func whileLeading<T: Sendable>(
        retryInterval: Duration,
        standby: @escaping @Sendable () async -> Void,
        _ leading: @escaping @Sendable (LeaderLease) async throws -> T
    ) async throws -> T {
        guard let store = try self.opened() as? any SharedEventStore else {
            throw StoreError(.invalidArgument, "The ledger store is not shared; there is no poll leadership to hold.")
        }
        return try await store.whileLeading(retryInterval: retryInterval, standby: standby, leading)
    }
}
