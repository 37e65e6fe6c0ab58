import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerTesting

#if canImport(Glibc)
    import Glibc
#endif

/// One callback answered `OK`: the order and the transaction id its notification carried.
struct Acknowledgement: Sendable, Hashable {
    var orderId: String
    var transactionId: String
}

/// The side channel of acknowledgements: one line `orderId transactionId` per `OK`, appended with one write(2)
/// each, so the file can be checked again later (`ledger-faults check`).
final class AckFile: @unchecked Sendable {
    private let descriptor: Int32
    private let lock = NSLock()

    init(path: String) throws {
        self.descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o600)
        guard self.descriptor >= 0 else { throw HarnessError("cannot open the acknowledgement file \(path)") }
    }

    deinit { close(self.descriptor) }

    func record(_ ack: Acknowledgement) {
        let line = Array("\(ack.orderId) \(ack.transactionId)\n".utf8)
        self.lock.lock()
        _ = line.withUnsafeBytes { write(self.descriptor, $0.baseAddress, $0.count) }
        self.lock.unlock()
    }

    /// The complete lines of a file; a last line without its newline is ignored.
    static func read(_ path: String) throws -> [Acknowledgement] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if !text.hasSuffix("\n"), !lines.isEmpty { lines.removeLast() }
        return lines.compactMap { line in
            let parts = line.split(separator: " ")
            guard parts.count == 2 else { return nil }
            return Acknowledgement(orderId: String(parts[0]), transactionId: String(parts[1]))
        }
    }
}

/// Checks a running daemon's ledger against what it acknowledged, through the control socket only: the log
/// (`events.read`), the projection (`order.get`), the chain (`ledger.verify`) and a rebuild (`projection.verify`).
///
/// The log is read incrementally: each check reads only the events after the last one it saw, and first
/// re-reads that last event to prove it still has the same hash. Because every event carries its predecessor's
/// hash and `ledger.verify` walks the chain, an unchanged anchor proves the whole prefix unchanged.
final class AckChecker: @unchecked Sendable {
    /// Callback events with a valid signature seen so far, by order: their transaction ids in log order.
    private(set) var callbacks: [String: [String]] = [:]
    /// Orders with an order-created event.
    private(set) var created: Set<String> = []
    private var nextSequence: UInt64 = 1
    private var anchor: (sequence: UInt64, hash: String)?
    private(set) var eventsRead = 0

    /// Reads the new events and checks `acks` (the acknowledgements since the last check) and the orders in
    /// `touched` (orders notifications were sent for, with how many sends each). Returns the failures.
    func check(_ connection: ControlConnection, acks: [Acknowledgement], touched: [String: Int]) throws -> [String] {
        var failures: [String] = []
        if let anchor = self.anchor {
            let page = try connection.result(
                EventsRead.self,
                EventsRead.Params(fromSequence: anchor.sequence, limit: 1)
            )
            let hash = page.events.first?.event.string("hash")
            if hash != anchor.hash {
                failures.append(
                    "event \(anchor.sequence), checked before the restart, now has hash \(hash ?? "none") instead of \(anchor.hash)"
                )
            }
        }
        while true {
            let page = try connection.result(
                EventsRead.self,
                EventsRead.Params(fromSequence: self.nextSequence, limit: 1000)
            )
            for view in page.events {
                self.eventsRead += 1
                let event = view.event
                let orderId = view.orderId
                self.anchor = (view.sequence, event.string("hash") ?? "")
                switch view.type {
                case "order.created.v1": self.created.insert(orderId)
                case "callback.received.v1":
                    guard event["data"]?.string("verdict") == "valid" else { continue }
                    let transaction =
                        event["data"]?["fields"]?.arrayValue?.first { $0.string("name") == "transaction_id" }?.string(
                            "value"
                        ) ?? ""
                    self.callbacks[orderId, default: []].append(transaction)
                default: break
                }
            }
            guard !page.events.isEmpty else { break }
            self.nextSequence = page.nextSequence
        }
        // Every acknowledged callback is in the log.
        for ack in acks where !(self.callbacks[ack.orderId] ?? []).contains(ack.transactionId) {
            failures.append(
                "the acknowledged callback for order \(ack.orderId) (transaction \(ack.transactionId)) is not in the log"
            )
        }
        // No callback applied twice: each order's first callback pays it, every later copy is a duplicate, and the
        // log holds no more callbacks than were sent.
        let acked = Dictionary(acks.map { ($0.orderId, $0.transactionId) }, uniquingKeysWith: { first, _ in first })
        let orders = Array(Set(touched.keys).union(acked.keys)).sorted()
        for start in stride(from: 0, to: orders.count, by: 500) {
            let slice = Array(orders[start..<min(start + 500, orders.count)])
            let answers = try connection.pipeline(
                slice.map { (OrderGet.name.rawValue, OrderIdParams(orderId: $0).json.objectValue ?? [:]) }
            )
            for (orderId, answer) in zip(slice, answers) {
                let recorded = self.callbacks[orderId]?.count ?? 0
                guard let result = try? ControlConnection.unwrap(answer) else {
                    failures.append("order \(orderId) cannot be read: \(answer["error"] ?? .null)")
                    continue
                }
                let state = try ControlConnection.read(OrderGet.self, result)
                let counts = state.callbacks
                if recorded > 0 {
                    if state.state != .paid {
                        failures.append(
                            "order \(orderId) has \(recorded) valid callbacks but is \(state.state.rawValue)"
                        )
                    }
                    if counts.accepted != 1 {
                        failures.append(
                            "order \(orderId) accepted \(counts.accepted) callbacks; exactly one may change its state"
                        )
                    }
                    if counts.duplicate != recorded - 1 {
                        failures.append(
                            "order \(orderId): \(recorded) callbacks in the log but \(counts.duplicate) duplicates in the projection"
                        )
                    }
                }
                if let sends = touched[orderId], recorded > sends {
                    failures.append("order \(orderId) has \(recorded) callbacks in the log but only \(sends) were sent")
                }
                if let transaction = acked[orderId], state.payment?.transactionId != transaction {
                    failures.append(
                        "order \(orderId) was acknowledged with transaction \(transaction) but the projection has \(state.payment?.transactionId ?? "no payment")"
                    )
                }
            }
        }
        failures += try Self.verify(connection)
        return failures
    }

    /// The hash chain verifies and the projection equals a rebuild.
    static func verify(_ connection: ControlConnection) throws -> [String] {
        var failures: [String] = []
        let chain = try connection.result(LedgerVerify.self, NoParams())
        if !chain.intact { failures.append("the hash chain breaks: \(chain.firstBreak?.json ?? .null)") }
        let projection = try connection.result(ProjectionVerify.self, ProjectionVerify.Params())
        if !projection.matches {
            failures.append("the projection differs from a rebuild for \(projection.differenceCount) orders")
        }
        return failures
    }
}
