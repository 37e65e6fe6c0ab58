import Foundation
import LedgerCore
import LedgerTesting

/// Builds the benchmark's events through the real core, as the daemon would: a signed pay request for each order
/// (order-created), then the gateway's signed notification for it (callback-received). Every order id is distinct,
/// so each callback is a first, validly signed one: it writes a de-duplication entry and moves the order to paid.
///
/// Building is setup: every measurement builds its events before its clock starts.
struct Workload: Sendable {
    let key: MerchantKey
    let settings: GatewaySettings
    /// When the workload's orders were created: a fixed instant for the store benchmark, now for the system
    /// benchmark (so the daemon's poller sees fresh orders, not overdue ones).
    let start: Instant
    /// Distinguishes the order ids of one workload from another's, so two sets never name the same order.
    let prefix: String

    init(prefix: String, start: Instant = Instant(millisecondsSinceEpoch: 1_795_741_323_000)) throws {
        self.start = start
        // The merchant the harnessed daemon is configured for, so its signatures verify there.
        self.key = TestMerchant.key
        self.settings = GatewaySettings.testing(baseURL: "http://127.0.0.1:9090")
        self.prefix = prefix
    }

    /// The id of order `index`: like a merchant's, 20 characters.
    func orderId(_ index: Int) -> String {
        let digits = String(index)
        return self.prefix + String(repeating: "0", count: max(0, 20 - self.prefix.count - digits.count)) + digits
    }

    /// Event `index` of the stream: even indexes create order `index / 2`, odd ones record its paid callback.
    func event(_ index: Int) throws -> PendingEvent {
        let order = index / 2
        return index % 2 == 0 ? try self.created(order) : try self.callback(order)
    }

    /// `count` events from `first`, in stream order.
    func events(from first: Int, count: Int) throws -> [PendingEvent] {
        var events: [PendingEvent] = []
        events.reserveCapacity(count)
        for index in first..<(first + count) { events.append(try self.event(index)) }
        return events
    }

    /// The same, built on every core: building a million signed events takes a while on one.
    func eventsInParallel(from first: Int, count: Int) throws -> [PendingEvent] {
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 8))
        let slice = (count + workers - 1) / workers
        let parts = PartBox<[PendingEvent]>(count: workers)
        let failure = PartBox<any Error>(count: 1)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let low = min(count, worker * slice)
            let high = min(count, low + slice)
            do {
                parts.set(worker, try self.events(from: first + low, count: high - low))
            } catch {
                failure.set(0, error)
            }
        }
        if let error = failure.get(0) { throw error }
        return (0..<workers).flatMap { parts.get($0) ?? [] }
    }

    private func amount(_ order: Int) -> (request: String, notified: String) {
        let cents = 100 + (order * 7919) % 99_900
        let whole = cents / 100
        let fraction = cents % 100
        let two = fraction < 10 ? "0\(fraction)" : "\(fraction)"
        return ("\(whole).\(two)", "\(whole).\(two)00")
    }

    func created(_ order: Int) throws -> PendingEvent {
        let orderId = self.orderId(order)
        let request = OrderRequest(
            orderId: orderId,
            amount: self.amount(order).request,
            bankCode: "940",
            productName: "ledger bench product"
        )
        let pay = try PayRequest.build(request, settings: self.settings, key: self.key, appliedAt: self.start).get()
        return PendingEvent(
            recordedAt: self.start.adding(milliseconds: Int64(order)),
            orderId: orderId,
            payload: .orderCreated(OrderCreated(request: pay, gatewayURL: self.settings.payURL, dialect: .document))
        )
    }

    /// The gateway's signed notification that order `order` was paid, as the form body it posts.
    func notificationBody(_ order: Int) -> [UInt8] {
        let orderId = self.orderId(order)
        let fields = SignedNotification.fields(
            orderId: orderId,
            amount: self.amount(order).notified,
            transactionId: "T\(orderId)",
            memberId: "10001",
            key: self.key
        )
        return Array(SignedNotification.body(fields).utf8)
    }

    func callback(_ order: Int) throws -> PendingEvent {
        let orderId = self.orderId(order)
        let body = self.notificationBody(order)
        let notification = try PaymentNotification.parse(body)
        let verdict = notification.verify(key: self.key)
        guard verdict == .valid else { throw BenchError("The benchmark's own callback for \(orderId) is \(verdict).") }
        return PendingEvent(
            recordedAt: self.start.adding(milliseconds: Int64(order) + 1500),
            orderId: orderId,
            payload: .callbackReceived(
                CallbackReceived(notification, remoteAddress: "127.0.0.1:40000", verdict: verdict, dialect: .document)
            )
        )
    }
}

/// `events` cut in order into batches of `size` (the last may be shorter): one transaction each.
func batches<T>(_ events: [T], size: Int) -> [[T]] {
    stride(from: 0, to: events.count, by: size).map { low in Array(events[low..<min(low + size, events.count)]) }
}

/// Slots written by concurrent workers, each slot by one worker.
final class PartBox<T>: @unchecked Sendable {
    // @unchecked: every slot is guarded by `lock`.
    private var slots: [T?]
    private let lock = NSLock()

    init(count: Int) { self.slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: T) {
        self.lock.lock()
        self.slots[index] = value
        self.lock.unlock()
    }

    func get(_ index: Int) -> T? {
        self.lock.lock()
        defer { self.lock.unlock() }
        return self.slots[index]
    }
}

/// A benchmark that cannot go on, with a sentence saying why.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
