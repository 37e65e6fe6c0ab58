import CLMDB

extension LMDBEnvironment {
    /// Doubles the memory map, capped at `options.mapSizeMax`, and returns the new map size in bytes.
    ///
    /// lmdb.h, mdb_env_set_mapsize: "It may be called at later times if no transactions are active in this
    /// process. Note that the library does not check for this condition, the caller must ensure it explicitly."
    /// So this closes the transaction gate: new transactions wait, and the call waits (up to
    /// `options.mapGrowthWaitMax`) for the open ones of this process, then throws `.busy` if some are still open.
    /// Never call it from inside a `read` or `write` closure: it would wait for its own transaction. The single
    /// writer calls it between write transactions, which is what `writeGrowing` does.
    ///
    /// Throws `.mapFull` with a sentence naming both sizes when the map is already at `mapSizeMax`. The new size
    /// takes effect in this process at once and is persisted by the next commit ("only mapsize increases are
    /// persisted into the environment").
    @discardableResult
    public func growMap() throws(LMDBError) -> Int {
        guard !self.options.readOnly else {
            throw LMDBError(
                code: .accessDenied,
                operation: "mdb_env_set_mapsize",
                detail: "A read-only environment cannot grow its map."
            )
        }
        let ceiling = self.options.mapSizeMax
        return try self.gate.exclusively(timeout: self.options.mapGrowthWaitMax, operation: "mdb_env_set_mapsize") {
            () throws(LMDBError) -> Int in
            let current = self.rawInfo().mapSize
            guard current < ceiling else {
                throw LMDBError(
                    code: .mapFull,
                    operation: "mdb_env_set_mapsize",
                    detail: """
                        The ledger's map is full at \(current) bytes and may not grow past mapSizeMax \
                        (\(ceiling) bytes); raise mapSizeMax (and make sure the disk has room) to store more.
                        """
                )
            }
            let (doubled, overflow) = current.multipliedReportingOverflow(by: 2)
            let target = overflow ? ceiling : min(doubled, ceiling)
            try check(mdb_env_set_mapsize(self.env, target), "mdb_env_set_mapsize(\(target))")
            return self.rawInfo().mapSize
        }
    }

    /// Runs `body` in a write transaction like `write`, and when the map is full (`MDB_MAP_FULL` from a write or
    /// from the commit) aborts the transaction, grows the map with `growMap` and runs `body` again from the start.
    ///
    /// `body` may therefore run more than once: it must derive everything it writes from its inputs and the
    /// transaction, not from state it changed in an earlier attempt. When the map reaches `mapSizeMax` the
    /// `.mapFull` error of `growMap` is thrown ("the ledger's map is full at N bytes and may not grow past
    /// mapSizeMax …"); nothing of the failed transaction is stored and the environment stays usable.
    @discardableResult
    public func writeGrowing<T>(_ body: (borrowing LMDBWriteTransaction) throws -> T) throws -> T {
        while true {
            do {
                return try self.write(body)
            } catch LMDBResultCode.mapFull {
                // lmdb.h, mdb_put, MDB_MAP_FULL: "the database is full, see mdb_env_set_mapsize()". The failed
                // transaction is already aborted by `write`, so no transaction of ours is open here.
                try self.growMap()
            }
        }
    }
}
