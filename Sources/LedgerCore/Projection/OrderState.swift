/// Where an order is in its life (architecture.md, "Order life").
public enum OrderStatus: String, Sendable, Hashable, CaseIterable, Codable {
    /// Events arrived for this order id but no order-created event: callbacks for an order we never made.
    case unknown
    case created
    case paid
    case expired
}

/// What the projection made of one callback. Computed by the fold, never chosen by a handler, so a rebuild from
/// the log reproduces it exactly.
public enum CallbackClassification: String, Sendable, Hashable, CaseIterable, Codable {
    /// Validly signed, ours, success, right amount: it paid the order.
    case accepted
    /// The same signed content as an earlier callback, or the same payment (transaction id and amount) again.
    case duplicate
    /// Validly signed success for an order already paid by another transaction.
    case conflicting
    /// Validly signed success whose amount is not the order's amount.
    case amountMismatch = "amount-mismatch"
    /// Validly signed, for another merchant's member id.
    case memberMismatch = "member-mismatch"
    /// Validly signed, `returncode` not `00`.
    case notSuccess = "not-success"
    /// The signature is missing, malformed or does not verify.
    case badSignature = "bad-signature"
    /// For an order id we never created.
    case unknownOrder = "unknown-order"
}

/// What the projection made of one query result.
public enum QueryClassification: String, Sendable, Hashable, CaseIterable, Codable {
    /// A verified `SUCCESS` that paid the order.
    case paid
    /// A verified `SUCCESS` for an order already paid by the same transaction.
    case confirmed
    /// A verified `NOTPAY`.
    case notPaid = "not-paid"
    /// A verified reply that contradicts what is known (other transaction, other amount, NOTPAY after SUCCESS).
    case conflicting
    /// A reply whose signature does not verify: recorded and ignored for state.
    case badSignature = "bad-signature"
    /// A verified reply that is about another order or another merchant, or has an unknown trade state.
    case irrelevant
    /// No usable reply: transport error, HTTP error, HTML, the gateway's error envelope.
    case failed
}

/// Reasons an order needs a person to look at it. Paid never goes back; these flags are how later contradicting
/// facts are surfaced instead.
public struct ReviewFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// A validly signed success named another transaction id than the one that paid.
    public static let conflictingTransaction = ReviewFlags(rawValue: 1 << 0)
    /// A validly signed success named another amount than the one that paid.
    public static let conflictingAmount = ReviewFlags(rawValue: 1 << 1)
    /// A validly signed success carried an amount that is not the order's amount.
    public static let amountMismatch = ReviewFlags(rawValue: 1 << 2)
    /// A verified query said NOTPAY after the order was paid.
    public static let notPaidAfterPaid = ReviewFlags(rawValue: 1 << 3)
    /// Payment arrived after the poller had given up and expired the order.
    public static let paidAfterExpiry = ReviewFlags(rawValue: 1 << 4)
    /// A validly signed callback named another member id.
    public static let memberMismatch = ReviewFlags(rawValue: 1 << 5)
    /// A second order-created event for the same order id (the daemon never writes one; a log that has one was
    /// written by something else).
    public static let duplicateCreate = ReviewFlags(rawValue: 1 << 6)

    /// Stable names, for JSON and the control protocol.
    public static let names: [(ReviewFlags, String)] = [
        (.conflictingTransaction, "conflicting-transaction"), (.conflictingAmount, "conflicting-amount"),
        (.amountMismatch, "amount-mismatch"), (.notPaidAfterPaid, "notpay-after-paid"),
        (.paidAfterExpiry, "paid-after-expiry"), (.memberMismatch, "member-mismatch"),
        (.duplicateCreate, "duplicate-create"),
    ]

    public var names: [String] { Self.names.filter { self.contains($0.0) }.map(\.1) }

    public init?(name: String) {
        // Byte for byte: String's == would take a canonically equivalent spelling from outside for a name.
        guard let flag = Self.names.first(where: { $0.1.hasSameBytes(as: name) })?.0 else { return nil }
        self = flag
    }
}

/// How the order came to be paid.
public struct Payment: Sendable, Hashable {
    public enum Source: String, Sendable, Hashable, Codable {
        case callback
        case query
    }

    public var source: Source
    public var transactionId: String
    /// The gateway's payment time as it sent it (`datetime` or `time_end`).
    public var paidAt: String
    /// The amount as the gateway wrote it.
    public var amountText: String
    /// The event that paid the order.
    public var sequence: UInt64
    /// When that event was recorded.
    public var recordedAt: Instant
}

/// Per-classification counts of an order's callbacks, for the duplicate-callback audit.
public struct CallbackCounts: Sendable, Hashable {
    public var received: UInt32 = 0
    public var accepted: UInt32 = 0
    public var duplicate: UInt32 = 0
    public var conflicting: UInt32 = 0
    public var amountMismatch: UInt32 = 0
    public var memberMismatch: UInt32 = 0
    public var notSuccess: UInt32 = 0
    public var badSignature: UInt32 = 0
    public var unknownOrder: UInt32 = 0
    public var firstAt: Instant?
    public var lastAt: Instant?

    public init() {}

    public subscript(classification: CallbackClassification) -> UInt32 {
        get {
            switch classification {
            case .accepted: return self.accepted
            case .duplicate: return self.duplicate
            case .conflicting: return self.conflicting
            case .amountMismatch: return self.amountMismatch
            case .memberMismatch: return self.memberMismatch
            case .notSuccess: return self.notSuccess
            case .badSignature: return self.badSignature
            case .unknownOrder: return self.unknownOrder
            }
        }
        set {
            switch classification {
            case .accepted: self.accepted = newValue
            case .duplicate: self.duplicate = newValue
            case .conflicting: self.conflicting = newValue
            case .amountMismatch: self.amountMismatch = newValue
            case .memberMismatch: self.memberMismatch = newValue
            case .notSuccess: self.notSuccess = newValue
            case .badSignature: self.badSignature = newValue
            case .unknownOrder: self.unknownOrder = newValue
            }
        }
    }

    mutating func count(_ classification: CallbackClassification, at instant: Instant) {
        self.received &+= 1
        self[classification] &+= 1
        if self.firstAt == nil { self.firstAt = instant }
        self.lastAt = instant
    }
}

/// The projected state of one order: a pure, total fold over its events.
public struct OrderState: Sendable, Hashable {
    public var orderId: String
    public var status: OrderStatus
    public var flags: ReviewFlags
    /// The order as created; nil while the status is `unknown`.
    public var order: OrderSummary?
    public var payment: Payment?
    public var callbacks: CallbackCounts
    public var queryAttempts: UInt32
    public var lastQueryAt: Instant?
    /// The sequence number of the last event applied.
    public var lastSequence: UInt64
    public var eventCount: UInt32
    /// Signatures of the validly signed callbacks seen, to recognise the same notification sent again. Bounded:
    /// only the gateway (which holds the key) can add to it, and it sends each notification at most four times.
    public var seenSignatures: [String]

    /// How many distinct signatures an order remembers.
    public static let seenSignaturesMax = 32

    /// The state before any event of the order.
    public init(orderId: String) {
        self.orderId = orderId
        self.status = .unknown
        self.flags = []
        self.order = nil
        self.payment = nil
        self.callbacks = CallbackCounts()
        self.queryAttempts = 0
        self.lastQueryAt = nil
        self.lastSequence = 0
        self.eventCount = 0
        self.seenSignatures = []
    }
}

/// The facts of the order-created event the projection keeps.
public struct OrderSummary: Sendable, Hashable {
    public var memberId: String
    public var amount: OrderAmount
    public var bankCode: String
    public var productName: String
    public var applyDate: String
    public var createdAt: Instant
    public var createdSequence: UInt64
}

/// What applying one event did, for `order.history`.
public enum EventEffect: Sendable, Hashable {
    case created
    case ignoredSecondCreate
    case callback(CallbackClassification)
    case query(QueryClassification)
}

extension OrderState {
    /// Applies one event of this order. Total: every event of every kind gives a state; nothing throws.
    public func applying(_ event: Event) -> OrderState {
        self.applyingWithEffect(event).state
    }

    /// Applies one event and says what it did.
    public func applyingWithEffect(_ event: Event) -> (state: OrderState, effect: EventEffect) {
        var next = self
        let effect = next.apply(event)
        return (next, effect)
    }

    /// Folds a sequence of events of one order from the initial state.
    public static func fold(orderId: String, _ events: some Sequence<Event>) -> OrderState {
        events.reduce(OrderState(orderId: orderId)) { $0.applying($1) }
    }

    /// Applies one event in place.
    @discardableResult
    public mutating func apply(_ event: Event) -> EventEffect {
        self.lastSequence = event.sequence
        self.eventCount &+= 1
        switch event.payload {
        case .orderCreated(let created):
            return self.applyCreated(created, event)
        case .callbackReceived(let callback):
            let classification = self.classify(callback, event)
            self.callbacks.count(classification, at: event.recordedAt)
            return .callback(classification)
        case .queryResult(let result):
            self.queryAttempts &+= 1
            self.lastQueryAt = event.recordedAt
            return .query(self.applyQuery(result, event))
        }
    }

    private mutating func applyCreated(_ created: OrderCreated, _ event: Event) -> EventEffect {
        guard self.order == nil else {
            self.flags.insert(.duplicateCreate)
            return .ignoredSecondCreate
        }
        let request = created.request
        self.order = OrderSummary(
            memberId: request.memberId,
            amount: request.amount,
            bankCode: request.bankCode,
            productName: request.productName,
            applyDate: request.applyDate,
            createdAt: event.recordedAt,
            createdSequence: event.sequence
        )
        // Callbacks may have been recorded for this id before the order existed; they stay counted as unknown.
        if self.status == .unknown { self.status = .created }
        return .created
    }

    /// The merchant's checks before an order is paid (gateway-protocol.md §3): signature, member id, order,
    /// amount, return code, and idempotence for duplicates.
    private mutating func classify(_ callback: CallbackReceived, _ event: Event) -> CallbackClassification {
        guard callback.verdict == .valid, let signature = callback.signedContentKey else { return .badSignature }
        // A callback is filed under its own orderid; one naming another order is not about this one.
        guard let order = self.order, callback["orderid"] == self.orderId else { return .unknownOrder }
        guard callback["memberid"] == order.memberId else {
            self.flags.insert(.memberMismatch)
            return .memberMismatch
        }
        if self.seenSignatures.contains(signature) { return .duplicate }
        if self.seenSignatures.count < Self.seenSignaturesMax { self.seenSignatures.append(signature) }
        guard callback["returncode"] == "00" else { return .notSuccess }
        let amountText = callback["amount"] ?? ""
        guard case .success(let amount) = GatewayAmount.parse(amountText), amount.equals(order.amount) else {
            if self.payment != nil {
                self.flags.insert(.conflictingAmount)
                return .conflicting
            }
            self.flags.insert(.amountMismatch)
            return .amountMismatch
        }
        let transactionId = callback["transaction_id"] ?? ""
        if let payment = self.payment {
            if payment.transactionId == transactionId { return .duplicate }
            self.flags.insert(.conflictingTransaction)
            return .conflicting
        }
        self.pay(
            Payment(
                source: .callback,
                transactionId: transactionId,
                paidAt: callback["datetime"] ?? "",
                amountText: amountText,
                sequence: event.sequence,
                recordedAt: event.recordedAt
            )
        )
        return .accepted
    }

    private mutating func applyQuery(_ result: QueryResult, _ event: Event) -> QueryClassification {
        let classification = self.classifyQuery(result, event)
        // The poller's last attempt expires an order that is still only created. A payment that arrives later
        // still counts (and is flagged): money that was taken is never ignored.
        if result.final && self.status == .created { self.status = .expired }
        return classification
    }

    private mutating func classifyQuery(_ result: QueryResult, _ event: Event) -> QueryClassification {
        guard case .reply(let fields, let enveloped, let verdict, _) = result.outcome else { return .failed }
        guard verdict == .valid else { return .badSignature }
        let reply = QueryReply(fields: fields, enveloped: enveloped)
        guard let order = self.order, reply.orderId == self.orderId, reply.memberId == order.memberId else {
            return .irrelevant
        }
        switch reply.tradeState {
        case .notPaid:
            if self.payment != nil {
                self.flags.insert(.notPaidAfterPaid)
                return .conflicting
            }
            return .notPaid
        case .other:
            return .irrelevant
        case .success:
            guard case .success(let amount) = reply.amount, amount.equals(order.amount) else {
                self.flags.insert(self.payment == nil ? .amountMismatch : .conflictingAmount)
                return .conflicting
            }
            if let payment = self.payment {
                if payment.transactionId == reply.transactionId { return .confirmed }
                self.flags.insert(.conflictingTransaction)
                return .conflicting
            }
            self.pay(
                Payment(
                    source: .query,
                    transactionId: reply.transactionId,
                    paidAt: reply.timeEnd,
                    amountText: reply.amountText,
                    sequence: event.sequence,
                    recordedAt: event.recordedAt
                )
            )
            return .paid
        }
    }

    private mutating func pay(_ payment: Payment) {
        if self.status == .expired { self.flags.insert(.paidAfterExpiry) }
        self.status = .paid
        self.payment = payment
    }
}
