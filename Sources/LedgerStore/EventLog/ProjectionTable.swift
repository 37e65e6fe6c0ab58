import FoundationEssentials
import LedgerCore

/// Applies events to one generation of the stored projection inside a write transaction: loads each touched
/// order once, folds the events, and writes every changed order and its status-index entry back at the end.
/// Orders are addressed by handle (see `LMDBLayout`).
struct ProjectionTable: ~Copyable {
    struct Touched {
        var originalStatus: OrderStatus?
        var state: OrderState
    }

    let orders: LMDBDatabase
    let byStatus: LMDBDatabase
    private(set) var touched: [UInt64: Touched] = [:]

    init(layout: LMDBLayout, generation: Int) {
        self.orders = layout.orders[generation]
        self.byStatus = layout.byStatus[generation]
    }

    /// The current state of the order with this handle as this batch sees it.
    func state(handle: UInt64, in txn: borrowing LMDBWriteTransaction) throws -> OrderState? {
        if let touched = self.touched[handle] { return touched.state }
        return try self.stored(handle: handle, in: txn)
    }

    private func stored(handle: UInt64, in txn: borrowing LMDBWriteTransaction) throws -> OrderState? {
        guard let stored = try txn.get(self.orders, key: LMDBUInt64Key(handle)) else { return nil }
        do {
            return try OrderStateCodec.decode(stored)
        } catch {
            throw StoreError(.corrupted, "The stored projection of order handle \(handle) does not decode: \(error)")
        }
    }

    /// Applies one event to the order with `handle` and returns its effect and the order's state after it.
    mutating func apply(
        _ event: Event,
        handle: UInt64,
        in txn: borrowing LMDBWriteTransaction
    ) throws -> (EventEffect, OrderState) {
        if let index = self.touched.index(forKey: handle) {
            let effect = self.touched.values[index].state.apply(event)
            return (effect, self.touched.values[index].state)
        }
        let stored = try self.stored(handle: handle, in: txn)
        var touched = Touched(originalStatus: stored?.status, state: stored ?? OrderState(orderId: event.orderId))
        let effect = touched.state.apply(event)
        self.touched[handle] = touched
        return (effect, touched.state)
    }

    /// Writes every touched order and moves its status-index entry when the status changed. Handles are written
    /// in ascending order, so neighbouring orders fill the same pages in turn.
    func flush(in txn: borrowing LMDBWriteTransaction) throws {
        for handle in self.touched.keys.sorted() {
            let touched = self.touched[handle]!
            let key = LMDBUInt64Key(handle)
            try txn.put(self.orders, key: key, value: OrderStateCodec.encode(touched.state))
            if touched.originalStatus != touched.state.status {
                if let original = touched.originalStatus {
                    try txn.delete(self.byStatus, key: [original.code], value: key)
                }
                try txn.put(self.byStatus, key: [touched.state.status.code], value: key, flags: .noDupData)
            }
        }
    }
}
