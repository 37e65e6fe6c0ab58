import LedgerControlProtocol
import LedgerCore
import LedgerStore
import Logging
import NIOCore

/// The reads the control socket answers most, `order.history` and `order.get`, with their params read.
enum ControlRead: Sendable {
    case history(OrderHistory.Params)
    case order(OrderIdParams)

    /// The read a request asks for, nil for any other method; params that do not read throw the -32602 error the
    /// general path gives them.
    init?(method: String, params: JSONValue?) throws(ControlError) {
        // Two methods checked byte for byte, as every name from outside, before anything else is done.
        if method.hasSameBytes(as: ControlMethodName.orderHistory.rawValue) {
            self = .history(try OrderHistory.Params(json: params, context: OrderHistory.name.rawValue))
        } else if method.hasSameBytes(as: ControlMethodName.orderGet.rawValue) {
            self = .order(try OrderIdParams(json: params, context: OrderGet.name.rawValue))
        } else {
            return nil
        }
    }

    var method: ControlMethodName {
        switch self {
        case .history: return .orderHistory
        case .order: return .orderGet
        }
    }
}

/// A page of one order's history: the entries a call answers and the cursor that resumes after them.
struct HistoryPage {
    var orderId: String
    var entries: ArraySlice<HistoryEntry>
    var nextCursor: String?

    /// The page `params` asks for of the whole history `entries`; an order with no event is not found.
    init(_ entries: [HistoryEntry], _ params: OrderHistory.Params) throws(ControlError) {
        let orderId = params.orderId
        let limit = params.limit ?? ControlPages.historyDefault
        guard !entries.isEmpty else {
            throw ControlError(code: -32001, name: "order-not-found", message: "No event names order \(orderId).")
        }
        var start = 0
        // The cursor is the sequence number of the last entry returned; the page resumes after it.
        if let after = params.cursor {
            guard let index = entries.firstIndex(where: { $0.event.sequence == after }) else {
                throw ControlError.invalidParams("order.history: cursor \(after) is not an event of order \(orderId).")
            }
            start = index + 1
        }
        self.orderId = orderId
        self.entries = entries[start..<min(entries.count, start + limit)]
        let end = self.entries.endIndex
        self.nextCursor = end < entries.count ? String(entries[end - 1].event.sequence) : nil
    }
}

extension ControlMethods {
    /// The store's blocking reads, or nil when it has none (PostgreSQL, the tests' in-memory store): those
    /// requests take the general path.
    func blockingReads() throws -> (any BlockingOrderReads)? {
        if let handle = self.store as? StoreHandle { return try handle.blockingReads() }
        return self.store as? any BlockingOrderReads
    }

    /// The state of an order that was created; `order-not-found` otherwise.
    static func created(_ state: OrderState?, _ orderId: String) throws(ControlError) -> OrderState {
        guard let state, state.order != nil else { throw ControlError.orderNotFound(orderId) }
        return state
    }

    /// Answers `read` from the store's blocking reads, on the calling thread (a control connection's event loop,
    /// never the cooperative pool nor HTTP's loops): the response line, written once into a buffer from
    /// `allocator`, or the error response. Nil for a notification (no id), which gets no answer.
    func answer(
        _ read: ControlRead,
        id: JSONValue?,
        reads: any BlockingOrderReads,
        allocator: ByteBufferAllocator
    ) -> ByteBuffer? {
        do {
            switch read {
            case .history(let params):
                let events = try reads.blockingEvents(forOrder: params.orderId)
                let page = try HistoryPage(HistoryEntry.derive(orderId: params.orderId, from: events), params)
                guard let id else { return nil }
                // About what a callback's event takes as JSON, so most answers are written without regrowing.
                var writer = ControlAnswerWriter(allocator.buffer(capacity: 512 + 1536 * page.entries.count))
                writer.history(id: id, orderId: page.orderId, page: page.entries, nextCursor: page.nextCursor)
                return writer.buffer
            case .order(let params):
                let state = try Self.created(try reads.blockingOrder(params.orderId), params.orderId)
                guard let id else { return nil }
                var writer = ControlAnswerWriter(allocator.buffer(capacity: 1024))
                writer.order(id: id, OrderView(state))
                return writer.buffer
            }
        } catch {
            guard let id else { return nil }
            let answer = ControlEnvelope.response(id: id, error: self.failure(error, method: read.method.rawValue))
            return ControlConnectionHandler.encode(answer)
        }
    }

    /// The protocol error for a method's failure. A failure of the daemon's own (the store, an unexpected error) is
    /// logged with its cause and where it was raised; refusals the protocol defines (polling or forwarding off,
    /// bad params) are the client's answer only. The client gets the message alone either way.
    func failure(_ error: any Error, method: String) -> ControlError {
        if !(error is ControlError), !(error is LedgerError) {
            self.ledger.logger.error(
                "control method failed",
                metadata: ["method": "\(method)", "error": "\(String(reflecting: error))"]
            )
        }
        return ControlError.from(error)
    }
}
