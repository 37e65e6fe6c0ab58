extension OrderHistory {
    /// The event sequence a cursor names: decimal digits only (so "+1" or " 1" is none), the form the daemon
    /// writes and the only one its params accept.
    static func sequence(cursor: String) -> UInt64? {
        guard !cursor.isEmpty, cursor.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return nil
        }
        return UInt64(cursor)
    }

    /// Every entry of one order's history, following the pages: `page` asks the daemon for one, and the cursors it
    /// returns lead to the next, at the largest page size, until a page has none.
    ///
    /// A cursor that is not a sequence number is the daemon's fault and ends the paging with an `internalError`:
    /// it must never be read as "no cursor", which would ask for the first page again, forever.
    public static func allEntries(
        of orderId: String,
        page: (Params) throws -> Result
    ) throws -> [Entry] {
        var pages = HistoryPages(orderId: orderId)
        while let params = pages.next { try pages.take(page(params)) }
        return pages.entries
    }

    /// `allEntries(of:page:)` for a client that awaits its answers.
    public static func allEntries(
        of orderId: String,
        page: (Params) async throws -> Result
    ) async throws -> [Entry] {
        var pages = HistoryPages(orderId: orderId)
        while let params = pages.next { try pages.take(await page(params)) }
        return pages.entries
    }
}

/// The state of following one order's history pages: what has been read and what to ask for next.
struct HistoryPages {
    private(set) var entries: [OrderHistory.Entry] = []
    /// The params of the next page to ask for, or nil when the last page has been read.
    private(set) var next: OrderHistory.Params?

    init(orderId: String) {
        self.next = OrderHistory.Params(orderId: orderId, limit: ControlPages.historyMax)
    }

    mutating func take(_ page: OrderHistory.Result) throws(ControlError) {
        guard var params = self.next else { return }
        self.entries += page.entries
        guard let cursor = page.nextCursor else {
            self.next = nil
            return
        }
        guard let sequence = OrderHistory.sequence(cursor: cursor) else {
            self.next = nil
            throw .internalError("order.history answered a cursor that is not a sequence number: \(cursor).")
        }
        params.cursor = sequence
        self.next = params
    }
}
