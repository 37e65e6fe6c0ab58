/// What the shop is told about an order (issue 16, "Forwarding"): the changes of its state it acts on.
public enum ForwardEventType: String, Sendable, Hashable, CaseIterable {
    /// The order became paid, by a callback or by a query.
    case orderPaid = "order.paid"
    /// The poller gave the order up at its deadline.
    case orderExpired = "order.expired"
    /// A review flag was raised: a later fact contradicts what is known, and a person should look.
    case orderFlagged = "order.flagged"

    /// The byte that orders two outcomes of one event (paid before flagged) in the store's keys.
    public var tag: UInt8 {
        switch self {
        case .orderPaid: return 1
        case .orderExpired: return 2
        case .orderFlagged: return 3
        }
    }

    public init?(tag: UInt8) {
        guard let type = Self.allCases.first(where: { $0.tag == tag }) else { return nil }
        self = type
    }
}

/// One outcome to forward: computed from the log alone, so the same event always yields the same outcome with the
/// same id, whether it is derived the first time, after a restart or by a replay. Its JSON form is the body POSTed
/// to the shop (`schemas/forward/order.event.json`).
public struct ForwardEvent: Sendable, Hashable {
    public var type: ForwardEventType
    public var orderId: String
    /// The order's state after the event.
    public var status: OrderStatus
    /// The order's amount, as the exact decimal text it was created with.
    public var amount: String
    /// The payment, when the order is paid: the gateway's payment time as sent, its transaction id, and whether a
    /// callback or a query paid it.
    public var paidAt: String?
    public var transactionId: String?
    public var source: Payment.Source?
    /// Every review flag the order carries after the event.
    public var flags: ReviewFlags
    /// The flags this event raised (empty unless the type is `order.flagged`).
    public var flagsRaised: ReviewFlags
    /// The ledger event this outcome was derived from.
    public var sequence: UInt64
    /// When that event was recorded.
    public var createdAt: Instant

    public init(
        type: ForwardEventType,
        orderId: String,
        status: OrderStatus,
        amount: String,
        paidAt: String?,
        transactionId: String?,
        source: Payment.Source?,
        flags: ReviewFlags,
        flagsRaised: ReviewFlags,
        sequence: UInt64,
        createdAt: Instant
    ) {
        self.type = type
        self.orderId = orderId
        self.status = status
        self.amount = amount
        self.paidAt = paidAt
        self.transactionId = transactionId
        self.source = source
        self.flags = flags
        self.flagsRaised = flagsRaised
        self.sequence = sequence
        self.createdAt = createdAt
    }

    /// The stable id the shop deduplicates on (`Ledger-Event-Id`): the ledger sequence and the type, so a delivery
    /// sent again after a restart or a replay carries the id it carried the first time.
    public var id: String { Self.id(sequence: self.sequence, type: self.type) }

    public static func id(sequence: UInt64, type: ForwardEventType) -> String {
        String(sequence) + "-" + type.rawValue
    }

    /// The body POSTed to the shop, members in a fixed order.
    public var json: JSONValue {
        func optional(_ text: String?) -> JSONValue { text.map { .string($0) } ?? .null }
        return .object([
            "id": .string(self.id),
            "type": .string(self.type.rawValue),
            "orderId": .string(self.orderId),
            "state": .string(self.status.rawValue),
            "amount": .string(self.amount),
            "paidAt": optional(self.paidAt),
            "transactionId": optional(self.transactionId),
            "source": optional(self.source?.rawValue),
            "flags": .array(self.flags.names.map { .string($0) }),
            "flagsRaised": .array(self.flagsRaised.names.map { .string($0) }),
            "sequence": .number(String(self.sequence)),
            "createdAt": .string(self.createdAt.description),
        ])
    }

    /// The body's bytes, exactly as they are signed and sent.
    public var body: [UInt8] {
        var bytes: [UInt8] = []
        JSONWriter.write(self.json, into: &bytes)
        return bytes
    }
}

/// Derives what to forward from the projection: a pure function of an order's state before and after one event, so
/// what is delivered is the log's consequence and a replay of the log derives it again exactly.
public enum ForwardDerivation {
    /// The outcomes one event caused: `order.paid` when it paid the order, `order.expired` when it expired it,
    /// `order.flagged` when it raised review flags. An order the ledger never created (callbacks for an unknown id)
    /// is not the shop's, so it yields nothing.
    public static func outcomes(before: OrderState, after: OrderState, event: Event) -> [ForwardEvent] {
        guard let order = after.order else { return [] }
        func outcome(_ type: ForwardEventType, raised: ReviewFlags = []) -> ForwardEvent {
            ForwardEvent(
                type: type,
                orderId: after.orderId,
                status: after.status,
                amount: order.amount.text,
                paidAt: after.payment?.paidAt,
                transactionId: after.payment?.transactionId,
                source: after.payment?.source,
                flags: after.flags,
                flagsRaised: raised,
                sequence: event.sequence,
                createdAt: event.recordedAt
            )
        }
        var outcomes: [ForwardEvent] = []
        if before.status != .paid && after.status == .paid { outcomes.append(outcome(.orderPaid)) }
        if before.status != .expired && after.status == .expired { outcomes.append(outcome(.orderExpired)) }
        let raised = after.flags.subtracting(before.flags)
        if !raised.isEmpty { outcomes.append(outcome(.orderFlagged, raised: raised)) }
        return outcomes
    }

    /// The outcomes of the events of one order whose sequence lies in `range`, folding all of the order's events (in
    /// log order) through the projection to know each event's before and after.
    public static func outcomes(orderId: String, events: [Event], in range: ClosedRange<UInt64>) -> [ForwardEvent] {
        var state = OrderState(orderId: orderId)
        var outcomes: [ForwardEvent] = []
        for event in events {
            if event.sequence > range.upperBound { break }
            let before = state
            state.apply(event)
            if range.contains(event.sequence) {
                outcomes += Self.outcomes(before: before, after: state, event: event)
            }
        }
        return outcomes
    }

    /// Whether an order in state `state` can have caused any outcome at any event so far. Status never returns to
    /// `created` and flags are never cleared, so an order that is still created (or unknown) with no flags caused
    /// none, and the forwarder need not read its events.
    public static func mayHaveOutcomes(_ state: OrderState) -> Bool {
        switch state.status {
        case .unknown, .created: return !state.flags.isEmpty
        case .paid, .expired: return true
        }
    }
}
