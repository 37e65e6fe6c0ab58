import FoundationEssentials
import LedgerCore

/// Applies events to one generation of the stored projection inside a write transaction: loads each touched
/// order once, folds the events, and writes every changed order and its status-index entry back at the end.
/// Orders are addressed by handle (see `LMDBLayout`).
///
/// Touched orders live in an array, found through a handle → slot map, so folding an event mutates the state in
/// place: no copy of an `OrderState` (a dozen strings to retain and release) per event.
struct ProjectionTable: ~Copyable {
    struct Touched {
        var handle: UInt64
        var originalStatus: OrderStatus?
        var state: OrderState
    }

    let orders: LMDBDatabase
    let byStatus: LMDBDatabase
    /// Handles from here on cannot be stored yet: their orders' first events are the ones being applied. Their
    /// first touch skips the lookup that would find nothing.
    let unstoredFrom: UInt64
    private var slots: [UInt64: Int] = [:]
    private var touched: [Touched] = []

    /// `unstoredFrom`: the first sequence this table will apply, when every earlier event is already applied to
    /// the stored generation (a handle is the sequence of its order's first event). `.max` looks every order up.
    init(layout: LMDBLayout, generation: Int, unstoredFrom: UInt64 = .max, expectedOrders: Int = 0) {
        self.orders = layout.orders[generation]
        self.byStatus = layout.byStatus[generation]
        self.unstoredFrom = unstoredFrom
        self.slots.reserveCapacity(expectedOrders)
        self.touched.reserveCapacity(expectedOrders)
    }

    /// The current state of the order with this handle as this batch sees it.
    func state(handle: UInt64, in txn: borrowing LMDBWriteTransaction) throws -> OrderState? {
        if let state = self.touchedState(handle: handle) { return state }
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

    /// The slot of the order with `handle`, loading it (or starting it) the first time this batch touches it.
    private mutating func slot(_ handle: UInt64, orderId: String, in txn: borrowing LMDBWriteTransaction) throws -> Int
    {
        if let slot = self.slots[handle] { return slot }
        let stored = handle >= self.unstoredFrom ? nil : try self.stored(handle: handle, in: txn)
        let slot = self.touched.count
        self.touched.append(
            Touched(handle: handle, originalStatus: stored?.status, state: stored ?? OrderState(orderId: orderId))
        )
        self.slots[handle] = slot
        return slot
    }

    /// Applies one event to the order with `handle` and returns its effect. The state stays in the table
    /// (`touchedState`): it is not copied out per event.
    @discardableResult
    mutating func apply(_ event: Event, handle: UInt64, in txn: borrowing LMDBWriteTransaction) throws -> EventEffect {
        let slot = try self.slot(handle, orderId: event.orderId, in: txn)
        return self.touched[slot].state.apply(event)
    }

    /// The state of an order this batch touched, as it is now.
    func touchedState(handle: UInt64) -> OrderState? {
        self.slots[handle].map { self.touched[$0].state }
    }

    /// Writes every touched order and moves its status-index entry when the status changed. Handles are written
    /// in ascending order, so neighbouring orders fill the same pages in turn. One buffer holds each encoding in
    /// turn (LMDB copies it into its page).
    ///
    /// Orders new to the table are appended: a handle is the sequence of the order's first event, so a new
    /// order's handle sorts after every stored one, in `orders` and in each status's list alike. lmdb.h:
    /// MDB_APPEND "allows fast bulk loading when keys are already known to be in the correct order"; it skips the
    /// search, and a full page is left full instead of split in half, so fewer pages are written and synced.
    /// LMDB checks the order and refuses a key that does not sort last, so a broken assumption fails the commit
    /// instead of misplacing a row.
    func flush(in txn: borrowing LMDBWriteTransaction) throws {
        var order = Array(self.touched.indices)
        order.sort { self.touched[$0].handle < self.touched[$1].handle }
        let lastStored = try txn.withCursor(self.orders) { cursor in
            try cursor.last().flatMap { LMDBUInt64Key(bytes: $0.key)?.value } ?? 0
        }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(512)
        for slot in order {
            let handle = self.touched[slot].handle
            let key = LMDBUInt64Key(handle)
            let appending = handle > lastStored
            if handle >= self.unstoredFrom && !appending {
                // Taken for new without a lookup, yet the table holds this handle or a later one: writing would
                // overwrite a stored state. Fail the commit instead.
                throw StoreError(
                    .corrupted,
                    "The projection already holds order handle \(lastStored), at or after \(handle), whose first event is only being applied now."
                )
            }
            OrderStateCodec.encode(self.touched[slot].state, into: &buffer)
            try txn.put(self.orders, key: key, value: buffer, flags: appending ? .append : [])
            let original = self.touched[slot].originalStatus
            let status = self.touched[slot].state.status
            if original != status {
                if let original { try txn.delete(self.byStatus, key: [original.code], value: key) }
                try txn.put(
                    self.byStatus,
                    key: [status.code],
                    value: key,
                    flags: appending ? [.noDupData, .appendDup] : .noDupData
                )
            }
        }
    }
}
