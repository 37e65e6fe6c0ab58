public import LedgerCore

// The values that several methods' results share: the log's head, an order, callback counts, the quarantine, an
// event, progress. Each is built from the ledger's own types by the daemon and read back by clients, and written
// the one way `schemas/control/` describes.

/// The last event of the log: its sequence number and hash.
public struct HeadView: ControlMessage, Hashable {
    public var sequence: UInt64
    public var hash: String

    public init(sequence: UInt64, hash: String) {
        self.sequence = sequence
        self.hash = hash
    }

    public init(fields: ControlFields) throws(ControlError) {
        self.sequence = try fields.count("sequence")
        self.hash = try fields.requiredString("hash")
    }

    public var json: JSONValue { .object(["sequence": ControlJSON.number(self.sequence), "hash": .string(self.hash)]) }
}

/// What became of an order's notifications (or of all orders'), by classification.
public struct CountsView: ControlMessage, Hashable {
    public var received: UInt64 = 0
    public var accepted: UInt64 = 0
    public var duplicate: UInt64 = 0
    public var conflicting: UInt64 = 0
    public var amountMismatch: UInt64 = 0
    public var memberMismatch: UInt64 = 0
    public var notSuccess: UInt64 = 0
    public var badSignature: UInt64 = 0
    public var unknownOrder: UInt64 = 0
    public var firstAt: String?
    public var lastAt: String?

    public init() {}

    public init(_ counts: CallbackCounts) {
        self.received = UInt64(counts.received)
        self.accepted = UInt64(counts.accepted)
        self.duplicate = UInt64(counts.duplicate)
        self.conflicting = UInt64(counts.conflicting)
        self.amountMismatch = UInt64(counts.amountMismatch)
        self.memberMismatch = UInt64(counts.memberMismatch)
        self.notSuccess = UInt64(counts.notSuccess)
        self.badSignature = UInt64(counts.badSignature)
        self.unknownOrder = UInt64(counts.unknownOrder)
        self.firstAt = counts.firstAt?.description
        self.lastAt = counts.lastAt?.description
    }

    public init(fields: ControlFields) throws(ControlError) {
        self.received = try fields.count("received")
        self.accepted = try fields.count("accepted")
        self.duplicate = try fields.count("duplicate")
        self.conflicting = try fields.count("conflicting")
        self.amountMismatch = try fields.count("amountMismatch")
        self.memberMismatch = try fields.count("memberMismatch")
        self.notSuccess = try fields.count("notSuccess")
        self.badSignature = try fields.count("badSignature")
        self.unknownOrder = try fields.count("unknownOrder")
        self.firstAt = try fields.string("firstAt")
        self.lastAt = try fields.string("lastAt")
    }

    /// The counts with their member names, in the order tables show them.
    public var named: [(name: String, column: String, value: UInt64)] {
        [
            ("received", "received", self.received), ("accepted", "accepted", self.accepted),
            ("duplicate", "duplicate", self.duplicate), ("conflicting", "conflicting", self.conflicting),
            ("amountMismatch", "amount", self.amountMismatch), ("memberMismatch", "member", self.memberMismatch),
            ("notSuccess", "not-00", self.notSuccess), ("badSignature", "bad-sign", self.badSignature),
            ("unknownOrder", "unknown", self.unknownOrder),
        ]
    }

    public var json: JSONValue {
        var object = JSONObject(self.named.map { ($0.name, ControlJSON.number($0.value)) })
        object["firstAt"] = ControlJSON.optional(self.firstAt)
        object["lastAt"] = ControlJSON.optional(self.lastAt)
        return .object(object)
    }
}

/// What the quarantine holds and has dropped, and its exact counts of all and of unknown orders.
public struct QuarantineStatusView: ControlMessage, Hashable {
    public var entries: UInt64
    public var bytes: UInt64
    public var dropped: UInt64
    public var badSignature: UInt64
    public var foreignMember: UInt64
    public var unknownOrders: UInt64

    public init(_ status: QuarantineStatus) {
        self.entries = status.entries
        self.bytes = status.bytes
        self.dropped = status.dropped
        self.badSignature = UInt64(status.total.badSignature)
        self.foreignMember = UInt64(status.total.foreignMember)
        self.unknownOrders = UInt64(status.unknownOrders.total)
    }

    public init(fields: ControlFields) throws(ControlError) {
        self.entries = try fields.count("entries")
        self.bytes = try fields.count("bytes")
        self.dropped = try fields.count("dropped")
        self.badSignature = try fields.count("badSignature")
        self.foreignMember = try fields.count("foreignMember")
        self.unknownOrders = try fields.count("unknownOrders")
    }

    public var json: JSONValue {
        .object([
            "entries": ControlJSON.number(self.entries), "bytes": ControlJSON.number(self.bytes),
            "dropped": ControlJSON.number(self.dropped), "badSignature": ControlJSON.number(self.badSignature),
            "foreignMember": ControlJSON.number(self.foreignMember),
            "unknownOrders": ControlJSON.number(self.unknownOrders),
        ])
    }
}

/// One quarantine entry. The body is shown as UTF-8 text (the form decoder admits nothing else, but a body cut at
/// the bound may end inside a character, which shows as U+FFFD).
public struct QuarantineEntryView: ControlMessage, Hashable {
    public var id: UInt64
    public var receivedAt: String
    public var remoteAddress: String
    public var source: String
    public var reason: QuarantineReason
    public var detail: String
    public var orderId: String?
    public var body: String
    public var bodyBytes: UInt64
    public var bodyCut: Bool

    public init(_ entry: QuarantineEntry) {
        self.id = entry.id
        self.receivedAt = entry.receivedAt.description
        self.remoteAddress = entry.remoteAddress
        self.source = entry.source
        self.reason = entry.reason
        self.detail = entry.detail
        self.orderId = entry.orderId
        self.body = String(decoding: entry.body, as: UTF8.self)
        self.bodyBytes = UInt64(entry.bodyBytes)
        self.bodyCut = entry.isBodyCut
    }

    public init(fields: ControlFields) throws(ControlError) {
        self.id = try fields.count("id")
        self.receivedAt = try fields.requiredString("receivedAt")
        self.remoteAddress = try fields.requiredString("remoteAddress")
        self.source = try fields.requiredString("source")
        guard let reason = try fields.choice("reason", as: QuarantineReason.self) else {
            throw .invalidParams("\(fields.context) needs reason, a string.")
        }
        self.reason = reason
        self.detail = try fields.requiredString("detail")
        self.orderId = try fields.string("orderId")
        self.body = try fields.requiredString("body")
        self.bodyBytes = try fields.count("bodyBytes")
        self.bodyCut = try fields.requiredBool("bodyCut")
    }

    public var json: JSONValue {
        .object([
            "id": ControlJSON.number(self.id), "receivedAt": .string(self.receivedAt),
            "remoteAddress": .string(self.remoteAddress), "source": .string(self.source),
            "reason": .string(self.reason.rawValue), "detail": .string(self.detail),
            "orderId": ControlJSON.optional(self.orderId), "body": .string(self.body),
            "bodyBytes": ControlJSON.number(self.bodyBytes), "bodyCut": .bool(self.bodyCut),
        ])
    }
}

/// One order's projected state: `state` and `flags` are what shop code reads; the rest is for people.
public struct OrderView: ControlMessage, Hashable {
    /// The order as created.
    public struct Details: ControlMessage, Hashable {
        public var memberId: String
        public var amount: String
        public var amountFen: UInt64
        public var bankCode: String
        public var productName: String
        public var applyDate: String
        public var createdAt: String
        public var createdSequence: UInt64

        public init(_ order: OrderSummary) {
            self.memberId = order.memberId
            self.amount = order.amount.text
            self.amountFen = UInt64(order.amount.fen)
            self.bankCode = order.bankCode
            self.productName = order.productName
            self.applyDate = order.applyDate
            self.createdAt = order.createdAt.description
            self.createdSequence = order.createdSequence
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.memberId = try fields.requiredString("memberId")
            self.amount = try fields.requiredString("amount")
            self.amountFen = try fields.count("amountFen")
            self.bankCode = try fields.requiredString("bankCode")
            self.productName = try fields.requiredString("productName")
            self.applyDate = try fields.requiredString("applyDate")
            self.createdAt = try fields.requiredString("createdAt")
            self.createdSequence = try fields.count("createdSequence")
        }

        public var json: JSONValue {
            .object([
                "memberId": .string(self.memberId), "amount": .string(self.amount),
                "amountFen": ControlJSON.number(self.amountFen), "bankCode": .string(self.bankCode),
                "productName": .string(self.productName), "applyDate": .string(self.applyDate),
                "createdAt": .string(self.createdAt), "createdSequence": ControlJSON.number(self.createdSequence),
            ])
        }
    }

    /// The payment that paid the order.
    public struct PaymentView: ControlMessage, Hashable {
        public var source: String
        public var transactionId: String
        public var paidAt: String
        public var amount: String
        public var sequence: UInt64
        public var recordedAt: String

        public init(_ payment: Payment) {
            self.source = payment.source.rawValue
            self.transactionId = payment.transactionId
            self.paidAt = payment.paidAt
            self.amount = payment.amountText
            self.sequence = payment.sequence
            self.recordedAt = payment.recordedAt.description
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.source = try fields.requiredString("source")
            self.transactionId = try fields.requiredString("transactionId")
            self.paidAt = try fields.requiredString("paidAt")
            self.amount = try fields.requiredString("amount")
            self.sequence = try fields.count("sequence")
            self.recordedAt = try fields.requiredString("recordedAt")
        }

        public var json: JSONValue {
            .object([
                "source": .string(self.source), "transactionId": .string(self.transactionId),
                "paidAt": .string(self.paidAt), "amount": .string(self.amount),
                "sequence": ControlJSON.number(self.sequence), "recordedAt": .string(self.recordedAt),
            ])
        }
    }

    public var orderId: String
    public var state: OrderStatus
    public var flags: [String]
    public var order: Details?
    public var payment: PaymentView?
    public var callbacks: CountsView
    public var queryAttempts: UInt64
    public var lastQueryAt: String?
    public var lastSequence: UInt64
    public var eventCount: UInt64

    public init(_ state: OrderState) {
        self.orderId = state.orderId
        self.state = state.status
        self.flags = state.flags.names
        self.order = state.order.map(Details.init)
        self.payment = state.payment.map(PaymentView.init)
        self.callbacks = CountsView(state.callbacks)
        self.queryAttempts = UInt64(state.queryAttempts)
        self.lastQueryAt = state.lastQueryAt?.description
        self.lastSequence = state.lastSequence
        self.eventCount = UInt64(state.eventCount)
    }

    public init(fields: ControlFields) throws(ControlError) {
        self.orderId = try fields.requiredString("orderId")
        guard let state = try fields.choice("state", as: OrderStatus.self) else {
            throw .invalidParams("\(fields.context) needs state, a string.")
        }
        self.state = state
        self.flags = try fields.strings("flags")
        self.order = try fields.message("order")
        self.payment = try fields.message("payment")
        self.callbacks = try fields.requiredMessage("callbacks")
        self.queryAttempts = try fields.count("queryAttempts")
        self.lastQueryAt = try fields.string("lastQueryAt")
        self.lastSequence = try fields.count("lastSequence")
        self.eventCount = try fields.count("eventCount")
    }

    public var json: JSONValue {
        .object([
            "orderId": .string(self.orderId), "state": .string(self.state.rawValue),
            "flags": .array(self.flags.map { .string($0) }), "order": self.order?.json ?? .null,
            "payment": self.payment?.json ?? .null, "callbacks": self.callbacks.json,
            "queryAttempts": ControlJSON.number(self.queryAttempts),
            "lastQueryAt": ControlJSON.optional(self.lastQueryAt),
            "lastSequence": ControlJSON.number(self.lastSequence), "eventCount": ControlJSON.number(self.eventCount),
        ])
    }
}

/// An event of the log as `schemas/events/` describes it: the members every event has, read, and the whole
/// event kept as JSON (its `data` differs by type).
public struct EventView: ControlMessage, Hashable {
    public var sequence: UInt64
    public var recordedAt: String
    public var type: String
    public var orderId: String
    /// The whole event, as the daemon wrote it.
    public var event: JSONValue

    public init(_ event: Event) {
        self.sequence = event.sequence
        self.recordedAt = event.recordedAt.description
        self.type = event.type.rawValue
        self.orderId = event.orderId
        self.event = event.json
    }

    public init(fields: ControlFields) throws(ControlError) {
        self.sequence = try fields.count("sequence")
        self.recordedAt = try fields.requiredString("recordedAt")
        self.type = try fields.requiredString("type")
        self.orderId = try fields.requiredString("orderId")
        self.event = .object(fields.object)
    }

    public var json: JSONValue { self.event }
}

/// What applying one event did to its order, for `order.history`.
public struct EffectView: ControlMessage, Hashable {
    /// `created`, `ignored-second-create`, `callback` or `query`.
    public var kind: String
    /// For callbacks and queries, how the projection classified the event.
    public var classification: String?

    public init(_ effect: EventEffect) {
        switch effect {
        case .created: self.kind = "created"
        case .ignoredSecondCreate: self.kind = "ignored-second-create"
        case .callback(let classification):
            self.kind = "callback"
            self.classification = classification.rawValue
        case .query(let classification):
            self.kind = "query"
            self.classification = classification.rawValue
        }
    }

    public init(fields: ControlFields) throws(ControlError) {
        self.kind = try fields.requiredString("kind")
        self.classification = try fields.string("classification")
    }

    public var json: JSONValue {
        var object: JSONObject = ["kind": .string(self.kind)]
        if let classification { object["classification"] = .string(classification) }
        return .object(object)
    }

    /// `kind: classification`, for tables.
    public var text: String { [self.kind, self.classification ?? ""].filter { !$0.isEmpty }.joined(separator: ": ") }
}

/// How far a long method (a rebuild, a verification) has come; sent as `<method>.progress` notifications.
public struct ProgressView: ControlMessage, Hashable {
    public var phase: String
    public var done: UInt64
    public var total: UInt64
    /// Items per second, as decimal text.
    public var rate: String?
    public var secondsRemaining: String?

    public init(phase: String, done: UInt64, total: UInt64, rate: String?, secondsRemaining: String?) {
        self.phase = phase
        self.done = done
        self.total = total
        self.rate = rate
        self.secondsRemaining = secondsRemaining
    }

    public init(fields: ControlFields) throws(ControlError) {
        self.phase = try fields.requiredString("phase")
        self.done = try fields.count("done")
        self.total = try fields.count("total")
        self.rate = try fields.decimal("rate")
        self.secondsRemaining = try fields.decimal("secondsRemaining")
    }

    public var json: JSONValue {
        .object([
            "phase": .string(self.phase), "done": ControlJSON.number(self.done),
            "total": ControlJSON.number(self.total),
            "rate": ControlJSON.optionalNumber(self.rate),
            "secondsRemaining": ControlJSON.optionalNumber(self.secondsRemaining),
        ])
    }
}
