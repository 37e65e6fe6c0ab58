import Foundation
import LedgerCore
import LedgerStore
import Synchronization

/// What a method answers: its result, and work to run once the result is written (a subscription's stream), so
/// notifications never overtake the response that announces them.
struct ControlAnswer: Sendable {
    var result: JSONValue
    var after: (@Sendable () async -> Void)?

    init(_ result: JSONValue, after: (@Sendable () async -> Void)? = nil) {
        self.result = result
        self.after = after
    }
}

/// Sends a JSON-RPC notification (`method`, `params`) on the requesting connection.
typealias ControlNotify = @Sendable (_ method: String, _ params: JSONValue) -> Void

/// The control methods: each reads its params, calls the ledger, the store or the poller, and shapes the result.
/// No I/O of its own, so every method can be tested without a socket.
public final class ControlMethods: Sendable {
    let ledger: Ledger
    let poller: QueryPoller
    /// Nil in tests that build the methods without one; `forward.*` then answer that forwarding is off.
    let forwarder: Forwarder?
    let settings: ControlSettings
    let started = ContinuousClock.now
    /// Set while a rebuild or a projection verification runs: both replay the whole log, and two at once only
    /// slow each other down.
    private let replaying = Mutex(false)
    /// Open connections, maintained by the server, for `ledger.stats`.
    let connections = Atomic<Int>(0)

    /// Every method name, in the order `ledgerctl` lists them.
    public static let names = [
        "order.create", "order.get", "order.history", "order.list", "order.queryNow", "callbacks.audit", "quarantine.read",
        "projection.rebuild", "projection.verify", "ledger.verify", "ledger.stats", "ledger.backup", "events.read",
        "events.subscribe",
    ] + ControlMethods.forwardNames

    public init(ledger: Ledger, poller: QueryPoller, settings: ControlSettings, forwarder: Forwarder? = nil) {
        self.ledger = ledger
        self.poller = poller
        self.forwarder = forwarder
        self.settings = settings
    }

    var store: any EventStore { self.ledger.store }

    func call(_ method: String, _ params: JSONValue?, notify: @escaping ControlNotify) async throws(ControlError)
        -> ControlAnswer
    {
        // An unknown method is -32601 whatever its params look like.
        guard Self.names.contains(method) else { throw .methodNotFound(method) }
        let params = try ControlParams(params, method: method)
        do {
            switch method {
            case "order.create": return ControlAnswer(try await self.createOrder(params))
            case "order.get": return ControlAnswer(try await self.getOrder(params))
            case "order.history": return ControlAnswer(try await self.history(params))
            case "order.list": return ControlAnswer(try await self.listOrders(params))
            case "order.queryNow": return ControlAnswer(try await self.queryNow(params))
            case "callbacks.audit": return ControlAnswer(try await self.audit(params))
            case "quarantine.read": return ControlAnswer(try await self.readQuarantine(params))
            case "projection.rebuild": return ControlAnswer(try await self.rebuild(params, notify: notify))
            case "projection.verify": return ControlAnswer(try await self.verifyProjection(params, notify: notify))
            case "ledger.verify": return ControlAnswer(try await self.verifyChain(params, notify: notify))
            case "ledger.stats": return ControlAnswer(try await self.stats(params))
            case "ledger.backup": return ControlAnswer(try await self.backup(params))
            case "events.read": return ControlAnswer(try await self.readEvents(params))
            case "events.subscribe": return try await self.subscribe(params, notify: notify)
            case "forward.status", "forward.retry", "forward.replay":
                return ControlAnswer(try await self.callForward(method, params))
            default: throw ControlError.methodNotFound(method)
            }
        } catch {
            throw ControlError.from(error)
        }
    }

    // MARK: Orders

    func createOrder(_ params: ControlParams) async throws -> JSONValue {
        try params.allow(["orderId", "amount", "bankCode", "productName", "attach", "productNum", "productDesc", "productUrl"])
        let request = CreateOrderRequest(
            orderId: try params.string("orderId"),
            amount: try params.requiredString("amount"),
            bankCode: try params.requiredString("bankCode"),
            productName: try params.requiredString("productName"),
            attach: try params.string("attach"),
            productNum: try params.string("productNum"),
            productDesc: try params.string("productDesc"),
            productURL: try params.string("productUrl")
        )
        let created = try await self.ledger.createOrder(request)
        // The pay request's field names are unique (PayRequest builds them), so an object loses nothing; the
        // object keeps the signed order for people who read it.
        let fields = JSONObject(created.fields.map { ($0.name, JSONValue.string($0.value)) })
        return .object([
            "orderId": .string(created.orderId), "gatewayUrl": .string(created.gatewayURL), "fields": .object(fields),
            "payUrl": .string(created.payURL), "created": .bool(created.created),
        ])
    }

    func getOrder(_ params: ControlParams) async throws -> JSONValue {
        try params.allow(["orderId"])
        let orderId = try params.requiredOrderId()
        guard let state = try await self.store.order(orderId), state.order != nil else {
            throw ControlError.orderNotFound(orderId)
        }
        return ControlJSON.order(state)
    }

    func history(_ params: ControlParams) async throws -> JSONValue {
        try params.allow(["orderId", "limit", "cursor"])
        let orderId = try params.requiredOrderId()
        let limit = Int(try params.int("limit", 1...Int64(Self.historyPageMax)) ?? Int64(Self.historyPageDefault))
        // The cursor is the sequence number of the last entry returned; the page resumes after it.
        var after: UInt64?
        if let cursor = try params.string("cursor") {
            guard !cursor.isEmpty, cursor.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                let sequence = UInt64(cursor)
            else {
                throw ControlError.invalidParams("order.history: cursor is not one this method returned.")
            }
            after = sequence
        }
        let entries = try await self.ledger.history(orderId)
        guard !entries.isEmpty else {
            throw ControlError(code: -32001, name: "order-not-found", message: "No event names order \(orderId).")
        }
        var start = 0
        if let after {
            guard let index = entries.firstIndex(where: { $0.event.sequence == after }) else {
                throw ControlError.invalidParams("order.history: cursor \(after) is not an event of order \(orderId).")
            }
            start = index + 1
        }
        let page = entries[start..<min(entries.count, start + limit)]
        let next: JSONValue =
            page.endIndex < entries.count ? .string(String(entries[page.endIndex - 1].event.sequence)) : .null
        return .object([
            "orderId": .string(orderId),
            "entries": .array(
                page.map { entry in
                    .object([
                        "event": entry.event.json, "effect": ControlJSON.effect(entry.effect),
                        "stateAfter": .string(entry.state.status.rawValue),
                        "flagsAfter": .array(entry.state.flags.names.map { .string($0) }),
                    ])
                }
            ),
            "nextCursor": next,
        ])
    }

    /// `order.history`'s page size when none is asked for, and the largest: pages keep one answer to a size a
    /// client reads at once, however many callbacks an order has collected.
    static let historyPageDefault = 100
    static let historyPageMax = 1000

    /// The statuses in the order `order.list` walks them when no status is given.
    static let listOrder: [OrderStatus] = [.created, .paid, .expired, .unknown]

    func listOrders(_ params: ControlParams) async throws -> JSONValue {
        try params.allow(["status", "flag", "bankCode", "createdFrom", "createdTo", "cursor", "limit"])
        let statuses: [OrderStatus]
        if let text = try params.string("status") {
            guard let status = OrderStatus(rawValue: text) else {
                throw ControlError.invalidParams("order.list: status must be one of created, paid, expired, unknown.")
            }
            statuses = [status]
        } else {
            statuses = Self.listOrder
        }
        var flag: ReviewFlags?
        if let name = try params.string("flag") {
            guard let parsed = ReviewFlags(name: name) else {
                throw ControlError.invalidParams(
                    "order.list: flag must be one of \(ReviewFlags.names.map(\.1).joined(separator: ", "))."
                )
            }
            flag = parsed
        }
        let bankCode = try params.string("bankCode")
        let from = try params.string("createdFrom").map { text throws(ControlError) in try Self.instant(text, "createdFrom") }
        let to = try params.string("createdTo").map { text throws(ControlError) in try Self.instant(text, "createdTo") }
        let limit = Int(try params.int("limit", 1...1000) ?? 100)
        // The cursor is `status:orderId`, the last order returned: paging resumes after it in the same walk.
        var position: (status: OrderStatus, after: String?) = (statuses[0], nil)
        if let cursor = try params.string("cursor") {
            guard let colon = cursor.firstIndex(of: ":"), let status = OrderStatus(rawValue: String(cursor[..<colon])),
                statuses.contains(status), GatewayValidation.isOrderId(String(cursor[cursor.index(after: colon)...]))
            else {
                throw ControlError.invalidParams("order.list: cursor is not one this method returned for these filters.")
            }
            position = (status, String(cursor[cursor.index(after: colon)...]))
        }
        func matches(_ state: OrderState) -> Bool {
            if let flag, !state.flags.contains(flag) { return false }
            if let bankCode, state.order?.bankCode != bankCode { return false }
            if let from, (state.order?.createdAt).map({ $0 < from }) ?? true { return false }
            if let to, (state.order?.createdAt).map({ $0 > to }) ?? true { return false }
            return true
        }
        var found: [OrderState] = []
        var next: String?
        // Filters other than status are applied while paging, so one call scans a bounded number of orders and
        // hands back a cursor when it stops early.
        var scanBudget = limit * 20 + 1000
        var statusIndex = statuses.firstIndex(of: position.status)!
        var after = position.after
        walk: while statusIndex < statuses.count {
            let status = statuses[statusIndex]
            while true {
                let pageLimit = min(500, scanBudget)
                let page = try await self.store.orders(status: status, after: after, limit: pageLimit)
                for state in page {
                    scanBudget -= 1
                    after = state.orderId
                    if matches(state) { found.append(state) }
                    if found.count == limit || scanBudget == 0 {
                        next = "\(status.rawValue):\(state.orderId)"
                        break walk
                    }
                }
                if page.count < pageLimit { break }
            }
            statusIndex += 1
            after = nil
        }
        let statistics = try await self.store.statistics()
        var counts: JSONObject = [:]
        for status in OrderStatus.allCases { counts[status.rawValue] = ControlJSON.number(statistics.ordersByStatus[status] ?? 0) }
        return .object([
            "orders": .array(found.map(ControlJSON.order)), "nextCursor": next.map { .string($0) } ?? .null,
            "counts": .object(counts),
        ])
    }

    static func instant(_ text: String, _ name: String) throws(ControlError) -> Instant {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let plain = ISO8601DateFormatter()
        guard let date = formatter.date(from: text) ?? plain.date(from: text) else {
            throw .invalidParams("\(name) must be an RFC 3339 time such as 2026-11-27T09:30:00Z.")
        }
        return Instant(millisecondsSinceEpoch: Int64((date.timeIntervalSince1970 * 1000).rounded()))
    }

    func queryNow(_ params: ControlParams) async throws -> JSONValue {
        try params.allow(["orderId"])
        let orderId = try params.requiredOrderId()
        let (result, classification, state) = try await self.poller.queryNow(orderId)
        return .object([
            "orderId": .string(orderId), "classification": .string(classification.rawValue), "result": result.json,
            "order": ControlJSON.order(state),
        ])
    }

    func audit(_ params: ControlParams) async throws -> JSONValue {
        try params.allow(["orderId", "from", "to"])
        let audit = try await CallbackAudit.build(
            store: self.store,
            orderId: try params.orderId(),
            from: try params.string("from").map { text throws(ControlError) in try Self.instant(text, "from") },
            to: try params.string("to").map { text throws(ControlError) in try Self.instant(text, "to") }
        )
        return .object([
            "orders": .array(
                audit.rows.map { row in
                    .object(["orderId": .string(row.orderId), "state": .string(row.status.rawValue), "counts": ControlJSON.counts(row.counts)])
                }
            ),
            "total": ControlJSON.counts(audit.total),
            "quarantine": ControlJSON.quarantineStatus(audit.quarantine),
        ])
    }

    /// A page of the quarantine, newest first, with what it holds and has dropped.
    func readQuarantine(_ params: ControlParams) async throws -> JSONValue {
        try params.allow(["reason", "orderId", "remoteAddress", "cursor", "limit"])
        var query = QuarantineQuery(limit: Int(try params.int("limit", 1...1000) ?? 100))
        if let text = try params.string("reason") {
            guard let reason = QuarantineReason(rawValue: text) else {
                let names = QuarantineReason.allCases.map(\.rawValue).joined(separator: ", ")
                throw ControlError.invalidParams("quarantine.read: reason must be one of \(names).")
            }
            query.reason = reason
        }
        if let orderId = try params.string("orderId") {
            guard GatewayValidation.isOrderId(orderId) else {
                throw ControlError.invalidParams("quarantine.read: orderId must be 1 to 20 of letters, digits, '_' and '-'.")
            }
            query.orderId = orderId
        }
        if let remote = try params.string("remoteAddress") {
            guard !remote.isEmpty, remote.utf8.count <= QuarantineEntry.textBytesMax else {
                throw ControlError.invalidParams(
                    "quarantine.read: remoteAddress must be 1 to \(QuarantineEntry.textBytesMax) bytes."
                )
            }
            query.remoteAddress = remote
        }
        if let cursor = try params.string("cursor") {
            guard let before = UInt64(cursor), before > 0 else {
                throw ControlError.invalidParams("quarantine.read: cursor is not one this method returned.")
            }
            query.before = before
        }
        let page = try await self.store.quarantined(query)
        let status = try await self.store.quarantineStatus()
        return .object([
            "entries": .array(page.entries.map(ControlJSON.quarantineEntry)),
            "nextCursor": page.nextCursor.map { .string(String($0)) } ?? .null,
            "quarantine": ControlJSON.quarantineStatus(status),
        ])
    }

    // MARK: The log and the projection

    /// Runs `body` unless a replay already runs; answers `rebuild-running` then.
    private func exclusiveReplay<T>(_ body: () async throws -> T) async throws -> T {
        let claimed = self.replaying.withLock { running in
            if running { return false }
            running = true
            return true
        }
        guard claimed else { throw ControlError.rebuildRunning }
        defer { self.replaying.withLock { $0 = false } }
        return try await body()
    }

    func rebuild(_ params: ControlParams, notify: @escaping ControlNotify) async throws -> JSONValue {
        try params.allow([])
        let report = try await self.exclusiveReplay {
            try await self.store.rebuildProjection { notify("projection.rebuild.progress", ControlJSON.progress($0)) }
        }
        return .object([
            "eventsReplayed": ControlJSON.number(report.eventsReplayed), "orders": ControlJSON.number(report.orders),
            "head": ControlJSON.head(report.head), "seconds": ControlJSON.seconds(report.seconds),
        ])
    }

    func verifyProjection(_ params: ControlParams, notify: @escaping ControlNotify) async throws -> JSONValue {
        try params.allow(["differencesMax"])
        let differencesMax = Int(try params.int("differencesMax", 0...10_000) ?? 100)
        let report = try await self.exclusiveReplay {
            try await self.store.verifyProjection(differencesMax: differencesMax) {
                notify("projection.verify.progress", ControlJSON.progress($0))
            }
        }
        return .object([
            "matches": .bool(report.differenceCount == 0),
            "eventsReplayed": ControlJSON.number(report.eventsReplayed),
            "ordersCompared": ControlJSON.number(report.ordersCompared),
            "differenceCount": ControlJSON.number(report.differenceCount),
            "differences": .array(
                report.differences.map { difference in
                    .object([
                        "orderId": .string(difference.orderId),
                        "live": difference.live.map(ControlJSON.order) ?? .null,
                        "rebuilt": difference.rebuilt.map(ControlJSON.order) ?? .null,
                    ])
                }
            ),
            "head": ControlJSON.head(report.head), "seconds": ControlJSON.seconds(report.seconds),
        ])
    }

    func verifyChain(_ params: ControlParams, notify: @escaping ControlNotify) async throws -> JSONValue {
        try params.allow([])
        let report = try await self.store.verifyChain { notify("ledger.verify.progress", ControlJSON.progress($0)) }
        let firstBreak: JSONValue = report.firstBreak.map { brk in
            .object(["sequence": ControlJSON.number(brk.sequence), "reason": .string(brk.description)])
        } ?? .null
        return .object([
            "intact": .bool(report.isIntact), "eventsChecked": ControlJSON.number(report.eventsChecked),
            "head": ControlJSON.head(report.head), "firstBreak": firstBreak, "seconds": ControlJSON.seconds(report.seconds),
        ])
    }

    func stats(_ params: ControlParams) async throws -> JSONValue {
        try params.allow([])
        let statistics = try await self.store.statistics()
        var events: JSONObject = [:]
        for type in EventType.allCases { events[type.rawValue] = ControlJSON.number(statistics.eventsByType[type] ?? 0) }
        var orders: JSONObject = [:]
        for status in OrderStatus.allCases { orders[status.rawValue] = ControlJSON.number(statistics.ordersByStatus[status] ?? 0) }
        let uptime = ContinuousClock.now - self.started
        let pending = await self.poller.pendingCount
        let leading = await self.poller.isLeading
        return .object([
            "head": ControlJSON.head(statistics.head), "eventsByType": .object(events), "ordersByState": .object(orders),
            "storeBytes": ControlJSON.number(statistics.storeBytes),
            "mapBytes": statistics.mapBytes.map { ControlJSON.number($0) } ?? .null,
            "pollerPending": ControlJSON.number(pending), "pollLeader": .bool(leading),
            "connections": ControlJSON.number(self.connections.load(ordering: .relaxed)),
            "subscribers": ControlJSON.number(self.ledger.feed.subscriberCount),
            "uptimeSeconds": ControlJSON.number(uptime.components.seconds),
        ])
    }

    func backup(_ params: ControlParams) async throws -> JSONValue {
        try params.allow(["path"])
        let path = try params.requiredString("path")
        if let problem = BackupDestination.problem(path) {
            throw ControlError.invalidParams("ledger.backup: the path \(path) is refused because \(problem).")
        }
        let report: BackupReport
        do {
            report = try await self.store.backup(to: path)
        } catch let error as StoreError where error.code == .io || error.code == .invalidArgument {
            throw ControlError.backupFailed(error.message)
        }
        return .object([
            "path": .string(report.path), "bytes": ControlJSON.number(report.bytes), "head": ControlJSON.head(report.head),
            "seconds": ControlJSON.seconds(report.seconds),
        ])
    }

    func readEvents(_ params: ControlParams) async throws -> JSONValue {
        try params.allow(["fromSequence", "limit"])
        let from = UInt64(try params.int("fromSequence", 1...Int64.max) ?? 1)
        let limit = Int(try params.int("limit", 1...Int64(self.settings.eventsPageMax)) ?? 100)
        let events = try await self.store.readEvents(from: from, limit: limit)
        let head = try await self.store.head()
        let next = (events.last?.sequence).map { $0 + 1 } ?? from
        return .object([
            "events": .array(events.map(\.json)), "nextSequence": ControlJSON.number(next), "head": ControlJSON.head(head),
        ])
    }

    /// Sends every event from `fromSequence` (the backlog from the store, then live ones from the feed) as
    /// `events.event` notifications, until the connection closes or the subscriber falls behind.
    func subscribe(_ params: ControlParams, notify: @escaping ControlNotify) async throws -> ControlAnswer {
        try params.allow(["fromSequence"])
        let head = try await self.store.head()
        let from = UInt64(try params.int("fromSequence", 1...Int64.max) ?? (Int64(head.sequence) + 1))
        // Subscribe before reading the backlog, so no event falls between the two; live events already sent
        // from the backlog are skipped by sequence number.
        let (id, stream) = self.ledger.feed.subscribe(queueMax: self.settings.subscriberQueueMax)
        let store = self.store
        let pageMax = self.settings.eventsPageMax
        let feed = self.ledger.feed
        return ControlAnswer(.object(["subscription": ControlJSON.number(id), "fromSequence": ControlJSON.number(from)])) {
            defer { feed.unsubscribe(id) }
            var next = from
            /// Sends the stored events from `next` up to `end` (exclusive; nil: the head) and advances `next`.
            func sendStored(upTo end: UInt64?) async throws {
                while !Task.isCancelled, end.map({ next < $0 }) ?? true {
                    let limit = end.map { Int(min(UInt64(pageMax), $0 - next)) } ?? pageMax
                    let page = try await store.readEvents(from: next, limit: limit)
                    for event in page { notify("events.event", .object(["subscription": ControlJSON.number(id), "event": event.json])) }
                    guard let last = page.last else {
                        guard let end else { return }
                        throw StoreError(.corrupted, "The log does not hold events \(next) to \(end - 1), though event \(end) was published.")
                    }
                    next = last.sequence + 1
                }
            }
            do {
                try await sendStored(upTo: nil)
                for await events in stream {
                    for event in events where event.sequence >= next {
                        // Appends commit in log order, but each is published by its own task when that task runs
                        // again, and two such tasks may run in either order. A later event arriving first is
                        // preceded by what it skipped, from the log (committed, as the later one is); the earlier
                        // publication then finds it sent and is skipped.
                        if event.sequence > next { try await sendStored(upTo: event.sequence) }
                        guard event.sequence == next else { continue }
                        notify("events.event", .object(["subscription": ControlJSON.number(id), "event": event.json]))
                        next = event.sequence + 1
                    }
                }
            } catch {
                notify("events.dropped", .object(["subscription": ControlJSON.number(id), "reason": .string("Reading the log failed: \(error)")]))
                return
            }
            guard !Task.isCancelled else { return }
            notify(
                "events.dropped",
                .object([
                    "subscription": ControlJSON.number(id),
                    "reason": .string(
                        "The subscriber fell more than control.subscriberQueueMax (\(self.settings.subscriberQueueMax)) appends behind; subscribe again from sequence \(next)."
                    ),
                ])
            )
        }
    }
}
