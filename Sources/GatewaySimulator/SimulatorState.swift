import LedgerCore

/// The simulator's draws: a seed reproduces every fault of a run.
extension SplitMix64 {
    /// True with probability `rate`; draws nothing when the rate is 0, so enabling one fault does not shift the others.
    mutating func chance(_ rate: Double) -> Bool {
        guard rate > 0 else { return false }
        return Double(self.next() >> 11) / Double(UInt64(1) << 53) < rate
    }
}

/// One notification to deliver: the exact body, sent `copies` times after `delay`.
struct NotificationJob: Sendable {
    var orderId: String
    var url: String
    var body: String
    var copies: Int
    var delay: Duration
}

/// How a submission to `Pay_Index.html` ended, once its fields and signature checked out.
enum SubmissionOutcome: Sendable {
    case accepted(SimulatedOrder)
    case duplicate
}

/// How to answer one signed query.
enum QueryDecision: Sendable {
    case unknownOrder
    case answer(order: SimulatedOrder, reportPaid: Bool, fault: QueryFault?)
}

/// The simulator's mutable state: orders, per-order faults, the seeded generator and the server's lifecycle. An
/// actor, so the HTTP handlers, the control API and the notification tasks see one consistent ledger of orders.
actor SimulatorState {
    enum Lifecycle {
        case idle
        case starting
        case listening(String)
        case stopped(String)
    }

    private var orderById: [String: SimulatedOrder] = [:]
    /// Submission order, so `orders()` lists orders as they came.
    private var orderIds: [String] = []
    private var queryFaults: [String: (fault: QueryFault, remaining: Int?)] = [:]
    /// Faults for an order's next queries, one each, in order; served before `queryFaults`.
    private var queuedQueryFaults: [String: [QueryFault]] = [:]
    private var reportsUnpaid: Set<String> = []
    private var random: SplitMix64
    private var transactionCounter: UInt64 = 0
    private let transactionPrefix: String
    private let faultRates: FaultRates

    private var lifecycle: Lifecycle = .idle
    private var listeningWaiters: [CheckedContinuation<String, any Error>] = []
    /// Where pay() hands notifications to run()'s task group; nil unless running.
    private var jobs: AsyncStream<NotificationJob>.Continuation?

    init(seed: UInt64, faultRates: FaultRates) {
        self.random = SplitMix64(seed: seed)
        self.faultRates = faultRates
        // Eight digits that differ between seeds, so two simulators in one test never share transaction numbers.
        var prefixGenerator = SplitMix64(seed: seed ^ 0x5349_4D5F_5452_414E)
        self.transactionPrefix = Self.digits(prefixGenerator.next() % 100_000_000, width: 8)
    }

    static func digits(_ value: UInt64, width: Int) -> String {
        let text = String(value)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }

    // MARK: Lifecycle

    func start(jobs: AsyncStream<NotificationJob>.Continuation) throws(SimulatorError) {
        guard case .idle = self.lifecycle else { throw .alreadyStarted }
        self.lifecycle = .starting
        self.jobs = jobs
    }

    func didStartListening(_ url: String) {
        self.lifecycle = .listening(url)
        let waiters = self.listeningWaiters
        self.listeningWaiters = []
        for waiter in waiters { waiter.resume(returning: url) }
    }

    func didStop(reason: String) {
        self.lifecycle = .stopped(reason)
        self.jobs?.finish()
        self.jobs = nil
        let waiters = self.listeningWaiters
        self.listeningWaiters = []
        for waiter in waiters { waiter.resume(throwing: SimulatorError.stopped(reason: reason)) }
    }

    var isStopped: Bool {
        if case .stopped = self.lifecycle { return true }
        return false
    }

    func waitUntilListening() async throws -> String {
        switch self.lifecycle {
        case .listening(let url): return url
        case .stopped(let reason): throw SimulatorError.stopped(reason: reason)
        case .idle, .starting:
            return try await withCheckedThrowingContinuation { self.listeningWaiters.append($0) }
        }
    }

    func enqueue(_ job: NotificationJob) throws(SimulatorError) {
        guard let jobs = self.jobs else { throw .notRunning }
        if case .terminated = jobs.yield(job) { throw .notRunning }
    }

    // MARK: Orders

    func orders() -> [SimulatedOrder] { self.orderIds.compactMap { self.orderById[$0] } }

    func order(_ orderId: String) -> SimulatedOrder? { self.orderById[orderId] }

    /// Records a verified submission unless its order id was seen before ("duplicate order").
    func submit(_ order: SimulatedOrder) -> SubmissionOutcome {
        guard self.orderById[order.orderId] == nil else { return .duplicate }
        var order = order
        self.transactionCounter += 1
        // "SIM" and 16 digits: a per-seed prefix and a counter, unique within a run and shaped like the real ones.
        order.transactionId = "SIM" + self.transactionPrefix + Self.digits(self.transactionCounter, width: 8)
        self.orderById[order.orderId] = order
        self.orderIds.append(order.orderId)
        return .accepted(order)
    }

    /// Marks an order paid at `paidAt` and returns it with the faults to apply (asked for, plus random ones).
    func markPaid(_ orderId: String, paidAt: String, faults: NotifyFaults) throws(SimulatorError)
        -> (SimulatedOrder, NotifyFaults)
    {
        guard var order = self.orderById[orderId] else { throw .unknownOrder(orderId) }
        guard !order.paid else { throw .alreadyPaid(orderId) }
        order.paid = true
        order.paidAt = paidAt
        self.orderById[orderId] = order
        return (order, self.withRandomFaults(faults))
    }

    /// A paid order, for a repeated notification, with the faults to apply.
    func paidOrder(_ orderId: String, faults: NotifyFaults) throws(SimulatorError) -> (SimulatedOrder, NotifyFaults) {
        guard let order = self.orderById[orderId] else { throw .unknownOrder(orderId) }
        guard order.paid else { throw .notPaid(orderId) }
        return (order, self.withRandomFaults(faults))
    }

    private func withRandomFaults(_ asked: NotifyFaults) -> NotifyFaults {
        var faults = asked
        let rates = self.faultRates
        if self.random.chance(rates.dropNotification) { faults.drop = true }
        if self.random.chance(rates.duplicateNotification) { faults.copies = max(faults.copies, 2) }
        if self.random.chance(rates.tamperAmount) { faults.tamperAmount = true }
        if self.random.chance(rates.breakNotificationSignature) { faults.breakSignature = true }
        return faults
    }

    func recordSent(_ orderId: String) { self.orderById[orderId]?.notificationsSent += 1 }

    func recordAcknowledged(_ orderId: String) { self.orderById[orderId]?.notificationsAcknowledged += 1 }

    // MARK: Queries

    func setQueryFault(_ orderId: String, _ fault: QueryFault?, count: Int?) {
        if let fault, count.map({ $0 > 0 }) ?? true {
            self.queryFaults[orderId] = (fault, count)
        } else {
            self.queryFaults[orderId] = nil
        }
    }

    func queueQueryFaults(_ orderId: String, _ faults: [QueryFault]) {
        self.queuedQueryFaults[orderId, default: []].append(contentsOf: faults)
    }

    func setReportsUnpaid(_ orderId: String, _ unpaid: Bool) {
        if unpaid { self.reportsUnpaid.insert(orderId) } else { self.reportsUnpaid.remove(orderId) }
    }

    /// Counts a signed query and decides its answer: the order's next queued fault first, then its own fault
    /// (consuming one of its count), otherwise one random draw over the query fault rates.
    func decideQuery(_ orderId: String) -> QueryDecision {
        guard var order = self.orderById[orderId] else { return .unknownOrder }
        order.queries += 1
        self.orderById[orderId] = order
        var fault: QueryFault?
        if var queued = self.queuedQueryFaults[orderId], !queued.isEmpty {
            fault = queued.removeFirst()
            self.queuedQueryFaults[orderId] = queued.isEmpty ? nil : queued
        } else if let (orderFault, remaining) = self.queryFaults[orderId] {
            fault = orderFault
            if let remaining {
                self.queryFaults[orderId] = remaining > 1 ? (orderFault, remaining - 1) : nil
            }
        } else {
            fault = self.randomQueryFault()
        }
        let reportPaid = order.paid && !self.reportsUnpaid.contains(orderId)
        return .answer(order: order, reportPaid: reportPaid, fault: fault)
    }

    private func randomQueryFault() -> QueryFault? {
        let rates = self.faultRates
        let total = rates.queryServerError + rates.queryHTML + rates.queryTimeout + rates.queryBadSignature
        guard total > 0 else { return nil }
        var draw = Double(self.random.next() >> 11) / Double(UInt64(1) << 53)
        for (fault, rate) in [
            (QueryFault.serverError, rates.queryServerError), (.html, rates.queryHTML),
            (.timeout, rates.queryTimeout), (.badSignature, rates.queryBadSignature),
        ] {
            if draw < rate { return fault }
            draw -= rate
        }
        return nil
    }
}
