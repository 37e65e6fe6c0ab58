public import LedgerCore

// `forward.status`, `forward.retry`, `forward.replay`: operating the forwarder of order outcomes to the shop.

/// One delivery of an outcome to a receiver, as `forward.status` lists failing and dead ones.
public struct ForwardDeliveryView: ControlMessage, Hashable {
    public var receiver: String
    public var eventId: String
    public var type: String
    public var orderId: String
    public var sequence: UInt64
    public var attempts: UInt64
    public var lastError: String?
    public var lastAttemptAt: String?
    /// Nil for a dead delivery: none is planned.
    public var nextAttemptAt: String?
    public var dead: Bool

    public init(
        receiver: String,
        eventId: String,
        type: String,
        orderId: String,
        sequence: UInt64,
        attempts: UInt64,
        lastError: String?,
        lastAttemptAt: String?,
        nextAttemptAt: String?,
        dead: Bool
    ) {
        self.receiver = receiver
        self.eventId = eventId
        self.type = type
        self.orderId = orderId
        self.sequence = sequence
        self.attempts = attempts
        self.lastError = lastError
        self.lastAttemptAt = lastAttemptAt
        self.nextAttemptAt = nextAttemptAt
        self.dead = dead
    }

    public init(fields: ControlFields) throws(ControlError) {
        self.receiver = try fields.requiredString("receiver")
        self.eventId = try fields.requiredString("eventId")
        self.type = try fields.requiredString("type")
        self.orderId = try fields.requiredString("orderId")
        self.sequence = try fields.count("sequence")
        self.attempts = try fields.count("attempts")
        self.lastError = try fields.string("lastError")
        self.lastAttemptAt = try fields.string("lastAttemptAt")
        self.nextAttemptAt = try fields.string("nextAttemptAt")
        self.dead = try fields.requiredBool("dead")
    }

    public var json: JSONValue {
        .object([
            "receiver": .string(self.receiver), "eventId": .string(self.eventId), "type": .string(self.type),
            "orderId": .string(self.orderId), "sequence": ControlJSON.number(self.sequence),
            "attempts": ControlJSON.number(self.attempts), "lastError": ControlJSON.optional(self.lastError),
            "lastAttemptAt": ControlJSON.optional(self.lastAttemptAt),
            "nextAttemptAt": ControlJSON.optional(self.nextAttemptAt), "dead": .bool(self.dead),
        ])
    }
}

public enum ForwardStatus: ControlMethod {
    public static let name = ControlMethodName.forwardStatus

    /// Failing and dead deliveries listed, each, when no limit is asked for, and the most.
    public static let listDefault = ControlLimits.forwardStatusPageDefault
    public static let listMax = ControlLimits.forwardStatusPageMax

    public struct Params: ControlMessage, Hashable {
        public var limit: Int?

        public init(limit: Int? = nil) {
            self.limit = limit
        }

        public init(fields: ControlFields) throws(ControlError) {
            try fields.allow(["limit"])
            self.limit = try fields.int("limit", 0...Int64(ForwardStatus.listMax)).map { Int($0) }
        }

        public var json: JSONValue {
            var object: JSONObject = [:]
            if let limit { object["limit"] = ControlJSON.number(limit) }
            return .object(object)
        }
    }

    public struct Result: ControlMessage, Hashable {
        /// `forward.url` is configured.
        public var enabled: Bool
        /// This daemon forwards now (on a shared store, the poll leader does).
        public var active: Bool
        /// The ledger sequence outcomes have been derived up to.
        public var position: UInt64
        public var head: UInt64
        public var pending: UInt64
        public var dead: UInt64
        public var oldestPendingAt: String?
        public var receivers: [String]
        public var failing: [ForwardDeliveryView]
        public var deadDeliveries: [ForwardDeliveryView]

        public init(
            enabled: Bool,
            active: Bool,
            position: UInt64,
            head: UInt64,
            pending: UInt64,
            dead: UInt64,
            oldestPendingAt: String?,
            receivers: [String],
            failing: [ForwardDeliveryView],
            deadDeliveries: [ForwardDeliveryView]
        ) {
            self.enabled = enabled
            self.active = active
            self.position = position
            self.head = head
            self.pending = pending
            self.dead = dead
            self.oldestPendingAt = oldestPendingAt
            self.receivers = receivers
            self.failing = failing
            self.deadDeliveries = deadDeliveries
        }

        /// The answer of a daemon that forwards nothing.
        public static let off = Self(
            enabled: false,
            active: false,
            position: 0,
            head: 0,
            pending: 0,
            dead: 0,
            oldestPendingAt: nil,
            receivers: [],
            failing: [],
            deadDeliveries: []
        )

        public init(fields: ControlFields) throws(ControlError) {
            self.enabled = try fields.requiredBool("enabled")
            self.active = try fields.requiredBool("active")
            self.position = try fields.count("position")
            self.head = try fields.count("head")
            self.pending = try fields.count("pending")
            self.dead = try fields.count("dead")
            self.oldestPendingAt = try fields.string("oldestPendingAt")
            self.receivers = try fields.strings("receivers")
            self.failing = try fields.messages("failing")
            self.deadDeliveries = try fields.messages("deadDeliveries")
        }

        public var json: JSONValue {
            .object([
                "enabled": .bool(self.enabled), "active": .bool(self.active),
                "position": ControlJSON.number(self.position), "head": ControlJSON.number(self.head),
                "pending": ControlJSON.number(self.pending), "dead": ControlJSON.number(self.dead),
                "oldestPendingAt": ControlJSON.optional(self.oldestPendingAt),
                "receivers": .array(self.receivers.map { .string($0) }),
                "failing": .array(self.failing.map(\.json)), "deadDeliveries": .array(self.deadDeliveries.map(\.json)),
            ])
        }

        public var text: String {
            guard self.enabled else { return "Forwarding is not configured (forward.url): nothing is forwarded." }
            var text = TextTable.fields([
                ("active", self.active ? "yes" : "no"), ("position", String(self.position)),
                ("head", String(self.head)), ("pending", String(self.pending)), ("dead", String(self.dead)),
                ("oldest pending", self.oldestPendingAt), ("receivers", self.receivers.joined(separator: ", ")),
            ])
            func table(
                _ title: String,
                _ deliveries: [ForwardDeliveryView],
                _ when: String,
                _ at: (ForwardDeliveryView) -> String?
            ) {
                guard !deliveries.isEmpty else { return }
                text += "\n\n" + title + "\n"
                text += TextTable.render(
                    ["order", "event", "attempts", when, "last error", "receiver"],
                    deliveries.map {
                        [$0.orderId, $0.eventId, String($0.attempts), at($0) ?? "", $0.lastError ?? "", $0.receiver]
                    }
                )
            }
            table("failing", self.failing, "next attempt") { $0.nextAttemptAt }
            table("dead", self.deadDeliveries, "last attempt") { $0.lastAttemptAt }
            return text
        }
    }
}

public enum ForwardRetry: ControlMethod {
    public static let name = ControlMethodName.forwardRetry

    /// One order's dead deliveries, or every dead one.
    public struct Params: ControlMessage, Hashable {
        public var orderId: String?
        public var allDead: Bool

        public init(orderId: String) {
            self.orderId = orderId
            self.allDead = false
        }

        /// Every dead delivery.
        public static let allDead = Self(orderId: nil, allDead: true)

        init(orderId: String?, allDead: Bool) {
            self.orderId = orderId
            self.allDead = allDead
        }

        public init(fields: ControlFields) throws(ControlError) {
            try fields.allow(["orderId", "allDead"])
            self.orderId = try fields.orderId()
            let allDead = try fields.bool("allDead")
            self.allDead = allDead ?? false
            // Exactly one of the two, as the schema says: an order id, or `allDead: true` alone.
            guard (self.orderId != nil) != self.allDead, self.orderId == nil || allDead == nil else {
                throw .invalidParams("forward.retry needs either orderId or allDead: true, not both.")
            }
        }

        public var json: JSONValue {
            if let orderId { return .object(["orderId": .string(orderId)]) }
            return .object(["allDead": .bool(self.allDead)])
        }
    }

    public struct Result: ControlMessage, Hashable {
        /// Dead deliveries made pending again.
        public var retried: UInt64

        public init(retried: UInt64) {
            self.retried = retried
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.retried = try fields.count("retried")
        }

        public var json: JSONValue { .object(["retried": ControlJSON.number(self.retried)]) }

        public var text: String { "\(self.retried) dead deliveries pending again." }
    }
}

public enum ForwardReplay: ControlMethod {
    public static let name = ControlMethodName.forwardReplay

    public struct Params: ControlMessage, Hashable {
        /// The first ledger sequence to derive again.
        public var from: UInt64

        public init(from: UInt64) {
            self.from = from
        }

        public init(fields: ControlFields) throws(ControlError) {
            try fields.allow(["from"])
            guard let from = try fields.int("from", 1...Int64.max) else {
                throw .invalidParams("forward.replay needs from, the first sequence to derive again.")
            }
            self.from = UInt64(from)
        }

        public var json: JSONValue { .object(["from": ControlJSON.number(self.from)]) }
    }

    public struct Result: ControlMessage, Hashable {
        /// The new derivation position (`from` - 1).
        public var position: UInt64

        public init(position: UInt64) {
            self.position = position
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.position = try fields.count("position")
        }

        public var json: JSONValue { .object(["position": ControlJSON.number(self.position)]) }

        public var text: String { "Forwarding derives again after sequence \(self.position)." }
    }
}
