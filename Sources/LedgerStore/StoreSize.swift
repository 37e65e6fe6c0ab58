/// How much room a store uses, for `ledger_store_*` in `/metrics`.
public struct StoreSize: Sendable, Hashable {
    /// Bytes in use: LMDB's pages in use × the page size; PostgreSQL's total size of the ledger's tables.
    public var usedBytes: Int
    /// LMDB's current map size; nil where there is no map.
    public var mapBytes: Int?
    /// `store.mapSizeMax`, the most the map may grow to; nil where there is no map.
    public var mapBytesMax: Int?

    public init(usedBytes: Int, mapBytes: Int? = nil, mapBytesMax: Int? = nil) {
        self.usedBytes = usedBytes
        self.mapBytes = mapBytes
        self.mapBytesMax = mapBytesMax
    }
}

/// A store that can say how much room it uses.
public protocol StoreSizeReporting: EventStore {
    func storeSize() async throws -> StoreSize
}

extension LMDBEventStore: StoreSizeReporting {
    /// lmdb.h: mdb_env_info's `me_last_pgno` is the last page in use and mdb_env_stat's `ms_psize` the page size;
    /// `me_mapsize` is the map's current size, which grows up to `store.mapSizeMax`.
    public func storeSize() async throws -> StoreSize {
        StoreSize(
            usedBytes: try self.environment.usedBytes,
            mapBytes: try self.environment.info().mapSize,
            mapBytesMax: self.options.mapSizeMax
        )
    }
}
