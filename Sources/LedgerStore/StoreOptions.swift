public import LedgerCore

/// The bounds every store shares: the daemon's `Limits.store` and `Limits.quarantine` (`store.*`, `quarantine.*`),
/// whose members read as the options' own (`options.batchCountMax`). The LMDB store's options are these; the
/// PostgreSQL store's add its schema and connections.
@dynamicMemberLookup
public struct StoreOptions: Sendable {
    /// The map, the batches, the queue, the rebuild chunks and the read page (the map's bounds are LMDB's alone).
    public var limits: StoreLimits
    /// The quarantine's bounds (`quarantine.*`).
    public var quarantineLimits: QuarantineLimits

    public init(limits: StoreLimits = StoreLimits(), quarantineLimits: QuarantineLimits = QuarantineLimits()) {
        self.limits = limits
        self.quarantineLimits = quarantineLimits
    }

    public subscript<Value>(dynamicMember path: WritableKeyPath<StoreLimits, Value>) -> Value {
        get { self.limits[keyPath: path] }
        set { self.limits[keyPath: path] = newValue }
    }

    /// Refuses bounds no store can work with, before the store opens anything: a batch, queue, rebuild chunk or read
    /// page of nothing would never make progress.
    package func check() throws(StoreError) {
        guard self.batchCountMax >= 1, self.batchBytesMax >= 1, self.queueDepthMax >= 1,
            self.rebuildChunkEvents >= 1, self.readPageMax >= 1
        else {
            throw StoreError(
                .invalidArgument,
                "store.batchCountMax, batchBytesMax, queueDepthMax, rebuildChunkEvents and readPageMax must be positive."
            )
        }
        if let problem = self.quarantineLimits.problem { throw StoreError(.invalidArgument, problem) }
    }
}
