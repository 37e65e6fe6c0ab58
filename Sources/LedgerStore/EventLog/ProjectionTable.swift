import FoundationEssentials
import LedgerCore

/// Applies events to one generation of the stored projection inside a write transaction: loads each touched
/// order once, folds the events, and writes every changed order and its status-index entry back at the end.
struct ProjectionTable: ~Copyable {
    struct Touched {
        var originalStatus: OrderStatus?
        var state: OrderState
    }

    let orders: LMDBDatabase
    let byStatus: LMDBDatabase
    private(set) var touched: [String: Touched] = [:]

    init(layout: LMDBLayout, generation: Int) {
        self.orders = layout.orders[generation]
        self.byStatus = layout.byStatus[generation]
    }

    /// The current state of an order as this batch sees it.
    mutating func state(of orderId: String, in txn: borrowing LMDBWriteTransaction) throws -> OrderState? {
        if let touched = self.touched[orderId] { return touched.state }
        guard let stored = try txn.get(self.orders, key: Array(orderId.utf8)) else { return nil }
        do {
            return try OrderStateCodec.decode(stored)
        } catch {
            throw StoreError(.corrupted, "The stored projection of order \(orderId) does not decode: \(error)")
        }
    }

    /// Applies one event and returns its effect and the order's state after it.
    mutating func apply(_ event: Event, in txn: borrowing LMDBWriteTransaction) throws -> (EventEffect, OrderState) {
        var touched: Touched
        if let existing = self.touched[event.orderId] {
            touched = existing
        } else {
            let stored = try self.state(of: event.orderId, in: txn)
            touched = Touched(originalStatus: stored?.status, state: stored ?? OrderState(orderId: event.orderId))
        }
        let effect = touched.state.apply(event)
        self.touched[event.orderId] = touched
        return (effect, touched.state)
    }

    /// Writes every touched order and moves its status-index entry when the status changed.
    func flush(in txn: borrowing LMDBWriteTransaction) throws {
        for (orderId, touched) in self.touched {
            let key = Array(orderId.utf8)
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
