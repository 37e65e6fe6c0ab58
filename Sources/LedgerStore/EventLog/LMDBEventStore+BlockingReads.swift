public import LedgerCore

/// A store whose reads of one order are plain blocking calls on the caller's thread, as LMDB's are (a read
/// transaction on a memory map, begun and ended inside the call). The control socket runs them on a thread of
/// its own rather than awaiting the async ones on the cooperative pool, which has only as many threads as cores.
public protocol BlockingOrderReads: Sendable {
    /// Every event of one order, in log order; empty when no event names it.
    func blockingEvents(forOrder orderId: String) throws -> [Event]
    /// The projected state of one order, or nil when the ledger holds none.
    func blockingOrder(_ orderId: String) throws -> OrderState?
}

extension LMDBEventStore: BlockingOrderReads {
    public func blockingEvents(forOrder orderId: String) throws -> [Event] {
        try self.read { txn in
            guard let handle = try self.layout.handle(of: orderId, in: txn) else { return [] }
            var sequences: [UInt64] = []
            try txn.withCursor(self.layout.orderEvents) { cursor in
                try cursor.forEachDuplicate(of: LMDBUInt64Key(handle)) { value in
                    if let sequence = LMDBUInt64Key(bytes: value)?.value { sequences.append(sequence) }
                    return .continue
                }
            }
            return try sequences.map { sequence in
                guard let value = try txn.get(self.layout.events, key: LMDBUInt64Key(sequence)) else {
                    throw StoreError(.corrupted, "The order index names event \(sequence), which is not in the log.")
                }
                return try LMDBLayout.decodeStored(value, sequence: sequence)
            }
        }
    }

    public func blockingOrder(_ orderId: String) throws -> OrderState? {
        try self.read { txn in
            guard let handle = try self.layout.handle(of: orderId, in: txn) else { return nil }
            let generation = try self.liveGeneration(txn)
            guard let value = try txn.get(self.layout.orders[generation], key: LMDBUInt64Key(handle)) else {
                return nil
            }
            return try Self.decodeOrder(value, orderId: orderId)
        }
    }
}

extension StoreHandle {
    /// The open store's blocking reads, or nil when it has none (PostgreSQL's reads are network round trips and
    /// stay async). Throws `closed` before the store opens and after it closes, as every call through the handle.
    public func blockingReads() throws -> (any BlockingOrderReads)? {
        try self.opened() as? any BlockingOrderReads
    }
}
