public import LedgerCore

/// A method of the control protocol: its name and the types of its params and result.
public protocol ControlMethod {
    associatedtype Params: ControlMessage
    associatedtype Result: ControlMessage
    static var name: ControlMethodName { get }
}

/// Every method, in the order `ledgerctl` lists them. A name outside this list is -32601 whatever its params.
public enum ControlMethodName: String, Sendable, Hashable, CaseIterable {
    case orderCreate = "order.create"
    case orderGet = "order.get"
    case orderHistory = "order.history"
    case orderList = "order.list"
    case orderQueryNow = "order.queryNow"
    case callbacksAudit = "callbacks.audit"
    case quarantineRead = "quarantine.read"
    case projectionRebuild = "projection.rebuild"
    case projectionVerify = "projection.verify"
    case ledgerVerify = "ledger.verify"
    case ledgerStats = "ledger.stats"
    case ledgerBackup = "ledger.backup"
    case eventsRead = "events.read"
    case eventsSubscribe = "events.subscribe"
    case forwardStatus = "forward.status"
    case forwardRetry = "forward.retry"
    case forwardReplay = "forward.replay"
}

extension ControlMethodName {
    /// The method's params and result types.
    public var method: any ControlMethod.Type {
        switch self {
        case .orderCreate: return OrderCreate.self
        case .orderGet: return OrderGet.self
        case .orderHistory: return OrderHistory.self
        case .orderList: return OrderList.self
        case .orderQueryNow: return OrderQueryNow.self
        case .callbacksAudit: return CallbacksAudit.self
        case .quarantineRead: return QuarantineRead.self
        case .projectionRebuild: return ProjectionRebuild.self
        case .projectionVerify: return ProjectionVerify.self
        case .ledgerVerify: return LedgerVerify.self
        case .ledgerStats: return LedgerStats.self
        case .ledgerBackup: return LedgerBackup.self
        case .eventsRead: return EventsRead.self
        case .eventsSubscribe: return EventsSubscribe.self
        case .forwardStatus: return ForwardStatus.self
        case .forwardRetry: return ForwardRetry.self
        case .forwardReplay: return ForwardReplay.self
        }
    }
}

extension ControlMethod {
    /// Reads a result and writes it again: what a client reads of the daemon's answer, as JSON. Tests compare it
    /// with the answer itself, so a member the types drop or change shows up.
    public static func resultRoundTrip(_ json: JSONValue) throws(ControlError) -> JSONValue {
        try Result(json: json, context: Self.name.rawValue).json
    }

    /// The same for params.
    public static func paramsRoundTrip(_ json: JSONValue) throws(ControlError) -> JSONValue {
        try Params(json: json, context: Self.name.rawValue).json
    }
}

/// The bounds of the methods' pages, where client and daemon must agree: the daemon's limits table
/// (`ControlLimits`) holds them and says why; these are the protocol's names for them.
public enum ControlPages {
    /// `order.history`'s page size when none is asked for, and the largest.
    public static let historyDefault = ControlLimits.historyPageDefault
    public static let historyMax = ControlLimits.historyPageMax
    /// `order.list` and `quarantine.read`.
    public static let listDefault = ControlLimits.listPageDefault
    public static let listMax = ControlLimits.listPageMax
    /// `projection.verify`'s differences.
    public static let differencesDefault = ControlLimits.differencesDefault
    public static let differencesMax = ControlLimits.differencesMax
}

/// An RFC 3339 time given as a parameter (`2026-11-27T09:30:00Z`, fractions allowed), read by the core's own
/// reader: a date formatter would bring the whole of internationalized Foundation into `ledgerctl`.
public func controlInstant(_ text: String, _ name: String) throws(ControlError) -> Instant {
    guard let instant = Instant(rfc3339: text) else {
        throw .invalidParams("\(name) must be an RFC 3339 time such as 2026-11-27T09:30:00Z.")
    }
    return instant
}

extension ControlFields {
    /// An RFC 3339 time member, checked; kept as the text given.
    func instantText(_ name: String) throws(ControlError) -> String? {
        guard let text = try self.string(name) else { return nil }
        _ = try controlInstant(text, name)
        return text
    }
}

// MARK: Orders

public enum OrderCreate: ControlMethod {
    public static let name = ControlMethodName.orderCreate

    public struct Params: ControlMessage, Hashable {
        public var orderId: String?
        public var amount: String
        public var bankCode: String
        public var productName: String
        public var attach: String?
        public var productNum: String?
        public var productDesc: String?
        public var productUrl: String?

        public init(
            orderId: String? = nil,
            amount: String,
            bankCode: String,
            productName: String,
            attach: String? = nil,
            productNum: String? = nil,
            productDesc: String? = nil,
            productUrl: String? = nil
        ) {
            self.orderId = orderId
            self.amount = amount
            self.bankCode = bankCode
            self.productName = productName
            self.attach = attach
            self.productNum = productNum
            self.productDesc = productDesc
            self.productUrl = productUrl
        }

        public init(fields: ControlFields) throws(ControlError) {
            try fields.allow([
                "orderId", "amount", "bankCode", "productName", "attach", "productNum", "productDesc", "productUrl",
            ])
            // The order id is checked by the ledger with the rest of the order, so its error is invalid-order.
            self.orderId = try fields.string("orderId")
            self.amount = try fields.requiredString("amount")
            self.bankCode = try fields.requiredString("bankCode")
            self.productName = try fields.requiredString("productName")
            self.attach = try fields.string("attach")
            self.productNum = try fields.string("productNum")
            self.productDesc = try fields.string("productDesc")
            self.productUrl = try fields.string("productUrl")
        }

        public var json: JSONValue {
            var object: JSONObject = [
                "amount": .string(self.amount), "bankCode": .string(self.bankCode),
                "productName": .string(self.productName),
            ]
            if let orderId { object["orderId"] = .string(orderId) }
            if let attach { object["attach"] = .string(attach) }
            if let productNum { object["productNum"] = .string(productNum) }
            if let productDesc { object["productDesc"] = .string(productDesc) }
            if let productUrl { object["productUrl"] = .string(productUrl) }
            return .object(object)
        }
    }

    public struct Result: ControlMessage, Hashable {
        public var orderId: String
        public var gatewayUrl: String
        /// The signed pay request's fields, in the order they are posted (their names are unique).
        public var fields: [(name: String, value: String)]
        public var payUrl: String
        /// False when an order with this id and these fields already existed.
        public var created: Bool

        public init(
            orderId: String,
            gatewayUrl: String,
            fields: [(name: String, value: String)],
            payUrl: String,
            created: Bool
        ) {
            self.orderId = orderId
            self.gatewayUrl = gatewayUrl
            self.fields = fields
            self.payUrl = payUrl
            self.created = created
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.orderId = try fields.requiredString("orderId")
            self.gatewayUrl = try fields.requiredString("gatewayUrl")
            var pairs: [(name: String, value: String)] = []
            for (name, value) in try fields.members("fields") {
                guard case .string(let text) = value else {
                    throw .invalidParams("\(fields.context): fields.\(name) must be a string.")
                }
                pairs.append((name, text))
            }
            self.fields = pairs
            self.payUrl = try fields.requiredString("payUrl")
            self.created = try fields.requiredBool("created")
        }

        public var json: JSONValue {
            .object([
                "orderId": .string(self.orderId), "gatewayUrl": .string(self.gatewayUrl),
                "fields": .object(JSONObject(self.fields.map { ($0.name, JSONValue.string($0.value)) })),
                "payUrl": .string(self.payUrl), "created": .bool(self.created),
            ])
        }

        public static func == (lhs: Self, rhs: Self) -> Bool { lhs.json == rhs.json }
        public func hash(into hasher: inout Hasher) { hasher.combine(self.json) }
    }
}

/// The params of the methods that name one order.
public struct OrderIdParams: ControlMessage, Hashable {
    public var orderId: String

    public init(orderId: String) {
        self.orderId = orderId
    }

    public init(fields: ControlFields) throws(ControlError) {
        try fields.allow(["orderId"])
        self.orderId = try fields.requiredOrderId()
    }

    public var json: JSONValue { .object(["orderId": .string(self.orderId)]) }
}

public enum OrderGet: ControlMethod {
    public static let name = ControlMethodName.orderGet
    public typealias Params = OrderIdParams
    public typealias Result = OrderView
}

public enum OrderHistory: ControlMethod {
    public static let name = ControlMethodName.orderHistory

    public struct Params: ControlMessage, Hashable {
        public var orderId: String
        public var limit: Int?
        /// The sequence number of the last entry of the previous page.
        public var cursor: UInt64?

        public init(orderId: String, limit: Int? = nil, cursor: UInt64? = nil) {
            self.orderId = orderId
            self.limit = limit
            self.cursor = cursor
        }

        public init(fields: ControlFields) throws(ControlError) {
            try fields.allow(["orderId", "limit", "cursor"])
            self.orderId = try fields.requiredOrderId()
            self.limit = try fields.int("limit", 1...Int64(ControlPages.historyMax)).map { Int($0) }
            if let cursor = try fields.string("cursor") {
                guard let sequence = OrderHistory.sequence(cursor: cursor) else {
                    throw .invalidParams("order.history: cursor is not one this method returned.")
                }
                self.cursor = sequence
            }
        }

        public var json: JSONValue {
            var object: JSONObject = ["orderId": .string(self.orderId)]
            if let limit { object["limit"] = ControlJSON.number(limit) }
            if let cursor { object["cursor"] = .string(String(cursor)) }
            return .object(object)
        }
    }

    /// One event of the order, what the projection made of it, and the order's state after it.
    public struct Entry: ControlMessage, Hashable {
        public var event: EventView
        public var effect: EffectView
        public var stateAfter: String
        public var flagsAfter: [String]

        public init(event: EventView, effect: EffectView, stateAfter: String, flagsAfter: [String]) {
            self.event = event
            self.effect = effect
            self.stateAfter = stateAfter
            self.flagsAfter = flagsAfter
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.event = try fields.requiredMessage("event")
            self.effect = try fields.requiredMessage("effect")
            self.stateAfter = try fields.requiredString("stateAfter")
            self.flagsAfter = try fields.strings("flagsAfter")
        }

        public var json: JSONValue {
            .object([
                "event": self.event.json, "effect": self.effect.json, "stateAfter": .string(self.stateAfter),
                "flagsAfter": .array(self.flagsAfter.map { .string($0) }),
            ])
        }
    }

    public struct Result: ControlMessage, Hashable {
        public var orderId: String
        public var entries: [Entry]
        public var nextCursor: String?

        public init(orderId: String, entries: [Entry], nextCursor: String?) {
            self.orderId = orderId
            self.entries = entries
            self.nextCursor = nextCursor
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.orderId = try fields.requiredString("orderId")
            self.entries = try fields.messages("entries")
            self.nextCursor = try fields.string("nextCursor")
        }

        public var json: JSONValue {
            .object([
                "orderId": .string(self.orderId), "entries": .array(self.entries.map(\.json)),
                "nextCursor": ControlJSON.optional(self.nextCursor),
            ])
        }
    }
}

public enum OrderList: ControlMethod {
    public static let name = ControlMethodName.orderList

    public struct Params: ControlMessage, Hashable {
        public var status: OrderStatus?
        /// A review flag's name (`amount-mismatch`).
        public var flag: String?
        public var bankCode: String?
        public var createdFrom: String?
        public var createdTo: String?
        /// `status:orderId`, the last order of the previous page.
        public var cursor: String?
        public var limit: Int?

        public init(
            status: OrderStatus? = nil,
            flag: String? = nil,
            bankCode: String? = nil,
            createdFrom: String? = nil,
            createdTo: String? = nil,
            cursor: String? = nil,
            limit: Int? = nil
        ) {
            self.status = status
            self.flag = flag
            self.bankCode = bankCode
            self.createdFrom = createdFrom
            self.createdTo = createdTo
            self.cursor = cursor
            self.limit = limit
        }

        public init(fields: ControlFields) throws(ControlError) {
            try fields.allow(["status", "flag", "bankCode", "createdFrom", "createdTo", "cursor", "limit"])
            if let text = try fields.string("status") {
                guard let status = OrderStatus(exactly: text) else {
                    throw .invalidParams("order.list: status must be one of created, paid, expired, unknown.")
                }
                self.status = status
            }
            if let name = try fields.string("flag") {
                guard ReviewFlags(name: name) != nil else {
                    throw .invalidParams(
                        "order.list: flag must be one of \(ReviewFlags.names.map(\.1).joined(separator: ", "))."
                    )
                }
                self.flag = name
            }
            self.bankCode = try fields.string("bankCode")
            self.createdFrom = try fields.instantText("createdFrom")
            self.createdTo = try fields.instantText("createdTo")
            self.cursor = try fields.string("cursor")
            self.limit = try fields.int("limit", 1...Int64(ControlPages.listMax)).map { Int($0) }
        }

        public var json: JSONValue {
            var object: JSONObject = [:]
            if let status { object["status"] = .string(status.rawValue) }
            if let flag { object["flag"] = .string(flag) }
            if let bankCode { object["bankCode"] = .string(bankCode) }
            if let createdFrom { object["createdFrom"] = .string(createdFrom) }
            if let createdTo { object["createdTo"] = .string(createdTo) }
            if let cursor { object["cursor"] = .string(cursor) }
            if let limit { object["limit"] = ControlJSON.number(limit) }
            return .object(object)
        }
    }

    public struct Result: ControlMessage, Hashable {
        public var orders: [OrderView]
        public var nextCursor: String?
        /// Orders by state, over the whole ledger.
        public var counts: [(state: String, count: UInt64)]

        public init(orders: [OrderView], nextCursor: String?, counts: [(state: String, count: UInt64)]) {
            self.orders = orders
            self.nextCursor = nextCursor
            self.counts = counts
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.orders = try fields.messages("orders")
            self.nextCursor = try fields.string("nextCursor")
            self.counts = try countMembers(fields, "counts")
        }

        public var json: JSONValue {
            .object([
                "orders": .array(self.orders.map(\.json)), "nextCursor": ControlJSON.optional(self.nextCursor),
                "counts": countObject(self.counts),
            ])
        }

        public static func == (lhs: Self, rhs: Self) -> Bool { lhs.json == rhs.json }
        public func hash(into hasher: inout Hasher) { hasher.combine(self.json) }
    }
}

/// An object of counts by name (`{"paid": 3}`), in the order written.
func countMembers(_ fields: ControlFields, _ name: String) throws(ControlError) -> [(String, UInt64)] {
    var counts: [(String, UInt64)] = []
    for (key, value) in try fields.members(name) {
        guard case .number(let text) = value, let count = UInt64(text) else {
            throw .invalidParams("\(fields.context): \(name).\(key) must be a whole number from 0.")
        }
        counts.append((key, count))
    }
    return counts
}

func countObject(_ counts: [(String, UInt64)]) -> JSONValue {
    .object(JSONObject(counts.map { ($0.0, ControlJSON.number($0.1)) }))
}

public enum OrderQueryNow: ControlMethod {
    public static let name = ControlMethodName.orderQueryNow
    public typealias Params = OrderIdParams

    public struct Result: ControlMessage, Hashable {
        public var orderId: String
        public var classification: String
        /// The query-result event's data, as `schemas/events/` describes it.
        public var result: JSONValue
        public var order: OrderView

        public init(orderId: String, classification: String, result: JSONValue, order: OrderView) {
            self.orderId = orderId
            self.classification = classification
            self.result = result
            self.order = order
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.orderId = try fields.requiredString("orderId")
            self.classification = try fields.requiredString("classification")
            self.result = fields.value("result") ?? .null
            self.order = try fields.requiredMessage("order")
        }

        public var json: JSONValue {
            .object([
                "orderId": .string(self.orderId), "classification": .string(self.classification),
                "result": self.result, "order": self.order.json,
            ])
        }
    }
}

// MARK: Callbacks and the quarantine

public enum CallbacksAudit: ControlMethod {
    public static let name = ControlMethodName.callbacksAudit

    public struct Params: ControlMessage, Hashable {
        public var orderId: String?
        public var from: String?
        public var to: String?

        public init(orderId: String? = nil, from: String? = nil, to: String? = nil) {
            self.orderId = orderId
            self.from = from
            self.to = to
        }

        public init(fields: ControlFields) throws(ControlError) {
            try fields.allow(["orderId", "from", "to"])
            self.orderId = try fields.orderId()
            self.from = try fields.instantText("from")
            self.to = try fields.instantText("to")
        }

        public var json: JSONValue {
            var object: JSONObject = [:]
            if let orderId { object["orderId"] = .string(orderId) }
            if let from { object["from"] = .string(from) }
            if let to { object["to"] = .string(to) }
            return .object(object)
        }
    }

    public struct Row: ControlMessage, Hashable {
        public var orderId: String
        public var state: String
        public var counts: CountsView

        public init(orderId: String, state: String, counts: CountsView) {
            self.orderId = orderId
            self.state = state
            self.counts = counts
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.orderId = try fields.requiredString("orderId")
            self.state = try fields.requiredString("state")
            self.counts = try fields.requiredMessage("counts")
        }

        public var json: JSONValue {
            .object(["orderId": .string(self.orderId), "state": .string(self.state), "counts": self.counts.json])
        }
    }

    public struct Result: ControlMessage, Hashable {
        public var orders: [Row]
        public var total: CountsView
        public var quarantine: QuarantineStatusView

        public init(orders: [Row], total: CountsView, quarantine: QuarantineStatusView) {
            self.orders = orders
            self.total = total
            self.quarantine = quarantine
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.orders = try fields.messages("orders")
            self.total = try fields.requiredMessage("total")
            self.quarantine = try fields.requiredMessage("quarantine")
        }

        public var json: JSONValue {
            .object([
                "orders": .array(self.orders.map(\.json)), "total": self.total.json,
                "quarantine": self.quarantine.json,
            ])
        }
    }
}

public enum QuarantineRead: ControlMethod {
    public static let name = ControlMethodName.quarantineRead

    public struct Params: ControlMessage, Hashable {
        public var reason: QuarantineReason?
        public var orderId: String?
        public var remoteAddress: String?
        /// The id of the last entry of the previous page.
        public var cursor: UInt64?
        public var limit: Int?

        public init(
            reason: QuarantineReason? = nil,
            orderId: String? = nil,
            remoteAddress: String? = nil,
            cursor: UInt64? = nil,
            limit: Int? = nil
        ) {
            self.reason = reason
            self.orderId = orderId
            self.remoteAddress = remoteAddress
            self.cursor = cursor
            self.limit = limit
        }

        public init(fields: ControlFields) throws(ControlError) {
            try fields.allow(["reason", "orderId", "remoteAddress", "cursor", "limit"])
            self.reason = try fields.choice("reason")
            if let orderId = try fields.string("orderId") {
                guard GatewayValidation.isOrderId(orderId) else {
                    throw .invalidParams(
                        "quarantine.read: orderId must be 1 to 20 of letters, digits, '_' and '-'."
                    )
                }
                self.orderId = orderId
            }
            if let remote = try fields.string("remoteAddress") {
                guard !remote.isEmpty, remote.utf8.count <= QuarantineLimits.textBytesMax else {
                    throw .invalidParams(
                        "quarantine.read: remoteAddress must be 1 to \(QuarantineLimits.textBytesMax) bytes."
                    )
                }
                self.remoteAddress = remote
            }
            if let cursor = try fields.string("cursor") {
                guard let before = UInt64(cursor), before > 0 else {
                    throw .invalidParams("quarantine.read: cursor is not one this method returned.")
                }
                self.cursor = before
            }
            self.limit = try fields.int("limit", 1...Int64(ControlPages.listMax)).map { Int($0) }
        }

        public var json: JSONValue {
            var object: JSONObject = [:]
            if let reason { object["reason"] = .string(reason.rawValue) }
            if let orderId { object["orderId"] = .string(orderId) }
            if let remoteAddress { object["remoteAddress"] = .string(remoteAddress) }
            if let cursor { object["cursor"] = .string(String(cursor)) }
            if let limit { object["limit"] = ControlJSON.number(limit) }
            return .object(object)
        }
    }

    public struct Result: ControlMessage, Hashable {
        public var entries: [QuarantineEntryView]
        public var nextCursor: String?
        public var quarantine: QuarantineStatusView

        public init(entries: [QuarantineEntryView], nextCursor: String?, quarantine: QuarantineStatusView) {
            self.entries = entries
            self.nextCursor = nextCursor
            self.quarantine = quarantine
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.entries = try fields.messages("entries")
            self.nextCursor = try fields.string("nextCursor")
            self.quarantine = try fields.requiredMessage("quarantine")
        }

        public var json: JSONValue {
            .object([
                "entries": .array(self.entries.map(\.json)), "nextCursor": ControlJSON.optional(self.nextCursor),
                "quarantine": self.quarantine.json,
            ])
        }
    }
}

// MARK: The log and the projection

public enum ProjectionRebuild: ControlMethod {
    public static let name = ControlMethodName.projectionRebuild
    public typealias Params = NoParams

    public struct Result: ControlMessage, Hashable {
        public var eventsReplayed: UInt64
        public var orders: UInt64
        public var head: HeadView
        public var seconds: String?

        public init(eventsReplayed: UInt64, orders: UInt64, head: HeadView, seconds: String?) {
            self.eventsReplayed = eventsReplayed
            self.orders = orders
            self.head = head
            self.seconds = seconds
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.eventsReplayed = try fields.count("eventsReplayed")
            self.orders = try fields.count("orders")
            self.head = try fields.requiredMessage("head")
            self.seconds = try fields.decimal("seconds")
        }

        public var json: JSONValue {
            .object([
                "eventsReplayed": ControlJSON.number(self.eventsReplayed), "orders": ControlJSON.number(self.orders),
                "head": self.head.json, "seconds": ControlJSON.optionalNumber(self.seconds),
            ])
        }
    }
}

public enum ProjectionVerify: ControlMethod {
    public static let name = ControlMethodName.projectionVerify

    public struct Params: ControlMessage, Hashable {
        public var differencesMax: Int?

        public init(differencesMax: Int? = nil) {
            self.differencesMax = differencesMax
        }

        public init(fields: ControlFields) throws(ControlError) {
            try fields.allow(["differencesMax"])
            self.differencesMax = try fields.int("differencesMax", 0...Int64(ControlPages.differencesMax)).map {
                Int($0)
            }
        }

        public var json: JSONValue {
            var object: JSONObject = [:]
            if let differencesMax { object["differencesMax"] = ControlJSON.number(differencesMax) }
            return .object(object)
        }
    }

    /// An order whose live projection differs from the rebuilt one.
    public struct Difference: ControlMessage, Hashable {
        public var orderId: String
        public var live: OrderView?
        public var rebuilt: OrderView?

        public init(orderId: String, live: OrderView?, rebuilt: OrderView?) {
            self.orderId = orderId
            self.live = live
            self.rebuilt = rebuilt
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.orderId = try fields.requiredString("orderId")
            self.live = try fields.message("live")
            self.rebuilt = try fields.message("rebuilt")
        }

        public var json: JSONValue {
            .object([
                "orderId": .string(self.orderId), "live": self.live?.json ?? .null,
                "rebuilt": self.rebuilt?.json ?? .null,
            ])
        }
    }

    public struct Result: ControlMessage, Hashable {
        public var matches: Bool
        public var eventsReplayed: UInt64
        public var ordersCompared: UInt64
        public var differenceCount: UInt64
        public var differences: [Difference]
        public var head: HeadView
        public var seconds: String?

        public init(
            matches: Bool,
            eventsReplayed: UInt64,
            ordersCompared: UInt64,
            differenceCount: UInt64,
            differences: [Difference],
            head: HeadView,
            seconds: String?
        ) {
            self.matches = matches
            self.eventsReplayed = eventsReplayed
            self.ordersCompared = ordersCompared
            self.differenceCount = differenceCount
            self.differences = differences
            self.head = head
            self.seconds = seconds
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.matches = try fields.requiredBool("matches")
            self.eventsReplayed = try fields.count("eventsReplayed")
            self.ordersCompared = try fields.count("ordersCompared")
            self.differenceCount = try fields.count("differenceCount")
            self.differences = try fields.messages("differences")
            self.head = try fields.requiredMessage("head")
            self.seconds = try fields.decimal("seconds")
        }

        public var json: JSONValue {
            .object([
                "matches": .bool(self.matches), "eventsReplayed": ControlJSON.number(self.eventsReplayed),
                "ordersCompared": ControlJSON.number(self.ordersCompared),
                "differenceCount": ControlJSON.number(self.differenceCount),
                "differences": .array(self.differences.map(\.json)), "head": self.head.json,
                "seconds": ControlJSON.optionalNumber(self.seconds),
            ])
        }
    }
}

public enum LedgerVerify: ControlMethod {
    public static let name = ControlMethodName.ledgerVerify
    public typealias Params = NoParams

    /// Where the chain breaks first, and why.
    public struct Break: ControlMessage, Hashable {
        public var sequence: UInt64
        public var reason: String

        public init(sequence: UInt64, reason: String) {
            self.sequence = sequence
            self.reason = reason
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.sequence = try fields.count("sequence")
            self.reason = try fields.requiredString("reason")
        }

        public var json: JSONValue {
            .object(["sequence": ControlJSON.number(self.sequence), "reason": .string(self.reason)])
        }
    }

    public struct Result: ControlMessage, Hashable {
        public var intact: Bool
        public var eventsChecked: UInt64
        public var head: HeadView
        public var firstBreak: Break?
        public var seconds: String?

        public init(intact: Bool, eventsChecked: UInt64, head: HeadView, firstBreak: Break?, seconds: String?) {
            self.intact = intact
            self.eventsChecked = eventsChecked
            self.head = head
            self.firstBreak = firstBreak
            self.seconds = seconds
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.intact = try fields.requiredBool("intact")
            self.eventsChecked = try fields.count("eventsChecked")
            self.head = try fields.requiredMessage("head")
            self.firstBreak = try fields.message("firstBreak")
            self.seconds = try fields.decimal("seconds")
        }

        public var json: JSONValue {
            .object([
                "intact": .bool(self.intact), "eventsChecked": ControlJSON.number(self.eventsChecked),
                "head": self.head.json, "firstBreak": self.firstBreak?.json ?? .null,
                "seconds": ControlJSON.optionalNumber(self.seconds),
            ])
        }
    }
}

public enum LedgerStats: ControlMethod {
    public static let name = ControlMethodName.ledgerStats
    public typealias Params = NoParams

    public struct Result: ControlMessage, Hashable {
        public var head: HeadView
        public var eventsByType: [(type: String, count: UInt64)]
        public var ordersByState: [(state: String, count: UInt64)]
        public var storeBytes: UInt64
        public var mapBytes: UInt64?
        public var pollerPending: UInt64
        public var pollLeader: Bool
        public var connections: UInt64
        public var subscribers: UInt64
        public var uptimeSeconds: UInt64

        public init(
            head: HeadView,
            eventsByType: [(type: String, count: UInt64)],
            ordersByState: [(state: String, count: UInt64)],
            storeBytes: UInt64,
            mapBytes: UInt64?,
            pollerPending: UInt64,
            pollLeader: Bool,
            connections: UInt64,
            subscribers: UInt64,
            uptimeSeconds: UInt64
        ) {
            self.head = head
            self.eventsByType = eventsByType
            self.ordersByState = ordersByState
            self.storeBytes = storeBytes
            self.mapBytes = mapBytes
            self.pollerPending = pollerPending
            self.pollLeader = pollLeader
            self.connections = connections
            self.subscribers = subscribers
            self.uptimeSeconds = uptimeSeconds
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.head = try fields.requiredMessage("head")
            self.eventsByType = try countMembers(fields, "eventsByType")
            self.ordersByState = try countMembers(fields, "ordersByState")
            self.storeBytes = try fields.count("storeBytes")
            self.mapBytes = try fields.optionalCount("mapBytes")
            self.pollerPending = try fields.count("pollerPending")
            self.pollLeader = try fields.requiredBool("pollLeader")
            self.connections = try fields.count("connections")
            self.subscribers = try fields.count("subscribers")
            self.uptimeSeconds = try fields.count("uptimeSeconds")
        }

        public var json: JSONValue {
            .object([
                "head": self.head.json, "eventsByType": countObject(self.eventsByType),
                "ordersByState": countObject(self.ordersByState), "storeBytes": ControlJSON.number(self.storeBytes),
                "mapBytes": self.mapBytes.map { ControlJSON.number($0) } ?? .null,
                "pollerPending": ControlJSON.number(self.pollerPending), "pollLeader": .bool(self.pollLeader),
                "connections": ControlJSON.number(self.connections),
                "subscribers": ControlJSON.number(self.subscribers),
                "uptimeSeconds": ControlJSON.number(self.uptimeSeconds),
            ])
        }

        public static func == (lhs: Self, rhs: Self) -> Bool { lhs.json == rhs.json }
        public func hash(into hasher: inout Hasher) { hasher.combine(self.json) }
    }
}

public enum LedgerBackup: ControlMethod {
    public static let name = ControlMethodName.ledgerBackup

    public struct Params: ControlMessage, Hashable {
        /// A new directory for the copy; the daemon writes it, so it is resolved in the daemon's directory when
        /// relative (`ledgerctl` sends an absolute path).
        public var path: String

        public init(path: String) {
            self.path = path
        }

        public init(fields: ControlFields) throws(ControlError) {
            try fields.allow(["path"])
            self.path = try fields.requiredString("path")
        }

        public var json: JSONValue { .object(["path": .string(self.path)]) }
    }

    public struct Result: ControlMessage, Hashable {
        public var path: String
        public var bytes: UInt64
        public var head: HeadView
        public var seconds: String?

        public init(path: String, bytes: UInt64, head: HeadView, seconds: String?) {
            self.path = path
            self.bytes = bytes
            self.head = head
            self.seconds = seconds
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.path = try fields.requiredString("path")
            self.bytes = try fields.count("bytes")
            self.head = try fields.requiredMessage("head")
            self.seconds = try fields.decimal("seconds")
        }

        public var json: JSONValue {
            .object([
                "path": .string(self.path), "bytes": ControlJSON.number(self.bytes), "head": self.head.json,
                "seconds": ControlJSON.optionalNumber(self.seconds),
            ])
        }
    }
}

// MARK: Events

public enum EventsRead: ControlMethod {
    public static let name = ControlMethodName.eventsRead

    public struct Params: ControlMessage, Hashable {
        public var fromSequence: UInt64?
        /// Checked against `control.eventsPageMax` by the daemon.
        public var limit: Int?

        public init(fromSequence: UInt64? = nil, limit: Int? = nil) {
            self.fromSequence = fromSequence
            self.limit = limit
        }

        public init(fields: ControlFields) throws(ControlError) {
            try fields.allow(["fromSequence", "limit"])
            self.fromSequence = try fields.int("fromSequence", 1...Int64.max).map { UInt64($0) }
            self.limit = try fields.int("limit", 1...Int64.max).map { Int($0) }
        }

        public var json: JSONValue {
            var object: JSONObject = [:]
            if let fromSequence { object["fromSequence"] = ControlJSON.number(fromSequence) }
            if let limit { object["limit"] = ControlJSON.number(limit) }
            return .object(object)
        }
    }

    public struct Result: ControlMessage, Hashable {
        public var events: [EventView]
        public var nextSequence: UInt64
        public var head: HeadView

        public init(events: [EventView], nextSequence: UInt64, head: HeadView) {
            self.events = events
            self.nextSequence = nextSequence
            self.head = head
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.events = try fields.messages("events")
            self.nextSequence = try fields.count("nextSequence")
            self.head = try fields.requiredMessage("head")
        }

        public var json: JSONValue {
            .object([
                "events": .array(self.events.map(\.json)), "nextSequence": ControlJSON.number(self.nextSequence),
                "head": self.head.json,
            ])
        }
    }
}

public enum EventsSubscribe: ControlMethod {
    public static let name = ControlMethodName.eventsSubscribe

    public struct Params: ControlMessage, Hashable {
        /// The first event to send; the head's successor (only new events) when absent.
        public var fromSequence: UInt64?

        public init(fromSequence: UInt64? = nil) {
            self.fromSequence = fromSequence
        }

        public init(fields: ControlFields) throws(ControlError) {
            try fields.allow(["fromSequence"])
            self.fromSequence = try fields.int("fromSequence", 1...Int64.max).map { UInt64($0) }
        }

        public var json: JSONValue {
            var object: JSONObject = [:]
            if let fromSequence { object["fromSequence"] = ControlJSON.number(fromSequence) }
            return .object(object)
        }
    }

    public struct Result: ControlMessage, Hashable {
        public var subscription: UInt64
        public var fromSequence: UInt64

        public init(subscription: UInt64, fromSequence: UInt64) {
            self.subscription = subscription
            self.fromSequence = fromSequence
        }

        public init(fields: ControlFields) throws(ControlError) {
            self.subscription = try fields.count("subscription")
            self.fromSequence = try fields.count("fromSequence")
        }

        public var json: JSONValue {
            .object([
                "subscription": ControlJSON.number(self.subscription),
                "fromSequence": ControlJSON.number(self.fromSequence),
            ])
        }
    }
}

// MARK: Notifications

/// What the daemon sends unasked on a connection: events of a subscription, the end of one, and the progress of
/// a long method.
public enum ControlNotification: Sendable, Hashable {
    /// `events.event`: one committed event of a subscription.
    case event(subscription: UInt64, event: EventView)
    /// `events.dropped`: the subscription ended, and why.
    case dropped(subscription: UInt64, reason: String)
    /// `<method>.progress` for `projection.rebuild`, `projection.verify` and `ledger.verify`.
    case progress(method: ControlMethodName, ProgressView)

    public var method: String {
        switch self {
        case .event: return "events.event"
        case .dropped: return "events.dropped"
        case .progress(let method, _): return method.rawValue + ".progress"
        }
    }

    public var params: JSONValue {
        switch self {
        case .event(let subscription, let event):
            return .object(["subscription": ControlJSON.number(subscription), "event": event.json])
        case .dropped(let subscription, let reason):
            return .object(["subscription": ControlJSON.number(subscription), "reason": .string(reason)])
        case .progress(_, let progress):
            return progress.json
        }
    }

    /// Reads a notification; nil for a method this build does not know (a newer daemon's).
    public init?(method: String, params: JSONValue) throws(ControlError) {
        let fields = try ControlFields(params, context: method)
        // Byte for byte, as every name from outside.
        let suffix = ".progress".utf8
        if method.hasSameBytes(as: "events.event") {
            self = .event(subscription: try fields.count("subscription"), event: try fields.requiredMessage("event"))
        } else if method.hasSameBytes(as: "events.dropped") {
            self = .dropped(subscription: try fields.count("subscription"), reason: try fields.requiredString("reason"))
        } else {
            let bytes = method.utf8
            guard bytes.count > suffix.count, bytes.suffix(suffix.count).elementsEqual(suffix),
                let name = ControlMethodName(exactly: String(decoding: bytes.dropLast(suffix.count), as: UTF8.self))
            else { return nil }
            self = .progress(method: name, try ProgressView(fields: fields))
        }
    }
}

// MARK: Envelopes

/// The JSON-RPC 2.0 envelopes, one line each on the socket.
public enum ControlEnvelope {
    public static func request(id: Int, method: String, params: JSONValue) -> JSONValue {
        .object(["jsonrpc": "2.0", "id": .number(String(id)), "method": .string(method), "params": params])
    }

    public static func response(id: JSONValue, result: JSONValue) -> JSONValue {
        .object(["jsonrpc": "2.0", "id": id, "result": result])
    }

    public static func response(id: JSONValue, error: ControlError) -> JSONValue {
        .object(["jsonrpc": "2.0", "id": id, "error": error.json])
    }

    public static func notification(_ notification: ControlNotification) -> JSONValue {
        .object(["jsonrpc": "2.0", "method": .string(notification.method), "params": notification.params])
    }
}
