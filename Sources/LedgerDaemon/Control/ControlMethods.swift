import Foundation
public import LedgerControlProtocol
import LedgerCore
import LedgerStore
import Logging
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

/// Sends a JSON-RPC notification on the requesting connection.
typealias ControlNotify = @Sendable (_ notification: ControlNotification) -> Void

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
        guard let name = ControlMethodName(exactly: method) else { throw .methodNotFound(method) }
        do {
            switch name {
            case .orderCreate: return try await Self.answer(OrderCreate.self, params, self.createOrder)
            case .orderGet: return try await Self.answer(OrderGet.self, params, self.getOrder)
            case .orderHistory: return try await Self.answer(OrderHistory.self, params, self.history)
            case .orderList: return try await Self.answer(OrderList.self, params, self.listOrders)
            case .orderQueryNow: return try await Self.answer(OrderQueryNow.self, params, self.queryNow)
            case .callbacksAudit: return try await Self.answer(CallbacksAudit.self, params, self.audit)
            case .quarantineRead: return try await Self.answer(QuarantineRead.self, params, self.readQuarantine)
            case .projectionRebuild:
                return try await Self.answer(ProjectionRebuild.self, params) {
                    try await self.rebuild($0, notify: notify)
                }
            case .projectionVerify:
                return try await Self.answer(ProjectionVerify.self, params) {
                    try await self.verifyProjection($0, notify: notify)
                }
            case .ledgerVerify:
                return try await Self.answer(LedgerVerify.self, params) {
                    try await self.verifyChain($0, notify: notify)
                }
            case .ledgerStats: return try await Self.answer(LedgerStats.self, params, self.stats)
            case .ledgerBackup: return try await Self.answer(LedgerBackup.self, params, self.backup)
            case .eventsRead: return try await Self.answer(EventsRead.self, params, self.readEvents)
            case .eventsSubscribe:
                let params = try EventsSubscribe.Params(json: params, context: method)
                return try await self.subscribe(params, notify: notify)
            case .forwardStatus: return try await Self.answer(ForwardStatus.self, params, self.forwardStatus)
            case .forwardRetry: return try await Self.answer(ForwardRetry.self, params, self.forwardRetry)
            case .forwardReplay: return try await Self.answer(ForwardReplay.self, params, self.forwardReplay)
            }
        } catch {
            throw self.failure(error, method: method)
        }
    }

    /// Reads a method's params (a -32602 error naming what is wrong), runs it, and writes its result.
    private static func answer<M: ControlMethod>(
        _ method: M.Type,
        _ params: JSONValue?,
        _ body: (M.Params) async throws -> M.Result
    ) async throws -> ControlAnswer {
        let params = try M.Params(json: params, context: M.name.rawValue)
        return ControlAnswer(try await body(params).json)
    }

    // MARK: Orders

    func createOrder(_ params: OrderCreate.Params) async throws -> OrderCreate.Result {
        let created = try await self.ledger.createOrder(params)
        return OrderCreate.Result(
            orderId: created.orderId,
            gatewayUrl: created.gatewayURL,
            fields: created.fields.map { ($0.name, $0.value) },
            payUrl: created.payURL,
            created: created.created
        )
    }

    func getOrder(_ params: OrderIdParams) async throws -> OrderView {
        OrderView(try Self.created(try await self.store.order(params.orderId), params.orderId))
    }

    func history(_ params: OrderHistory.Params) async throws -> OrderHistory.Result {
        let page = try HistoryPage(try await self.ledger.history(params.orderId), params)
        return OrderHistory.Result(
            orderId: page.orderId,
            entries: page.entries.map(OrderHistory.Entry.init),
            nextCursor: page.nextCursor
        )
    }

    /// The statuses in the order `order.list` walks them when no status is given.
    static let listOrder: [OrderStatus] = [.created, .paid, .expired, .unknown]

    func listOrders(_ params: OrderList.Params) async throws -> OrderList.Result {
        let statuses = params.status.map { [$0] } ?? Self.listOrder
        let flag = params.flag.flatMap(ReviewFlags.init(name:))
        let bankCode = params.bankCode
        let from = try params.createdFrom.map { text throws(ControlError) in try controlInstant(text, "createdFrom") }
        let to = try params.createdTo.map { text throws(ControlError) in try controlInstant(text, "createdTo") }
        let limit = params.limit ?? ControlPages.listDefault
        // The cursor is `status:orderId`, the last order returned: paging resumes after it in the same walk.
        var position: (status: OrderStatus, after: String?) = (statuses[0], nil)
        if let cursor = params.cursor {
            // Split on the byte ':' (a ':' joined to a combining mark is no separator in `Character`s).
            let bytes = cursor.utf8
            guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")),
                let status = OrderStatus(exactly: String(decoding: bytes[..<colon], as: UTF8.self)),
                statuses.contains(status),
                case let after = String(decoding: bytes[bytes.index(after: colon)...], as: UTF8.self),
                GatewayValidation.isOrderId(after)
            else {
                throw ControlError.invalidParams(
                    "order.list: cursor is not one this method returned for these filters."
                )
            }
            position = (status, after)
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
        return OrderList.Result(
            orders: found.map(OrderView.init),
            nextCursor: next,
            counts: OrderStatus.allCases.map { ($0.rawValue, UInt64(statistics.ordersByStatus[$0] ?? 0)) }
        )
    }

    func queryNow(_ params: OrderIdParams) async throws -> OrderQueryNow.Result {
        let (result, classification, state) = try await self.poller.queryNow(params.orderId)
        return OrderQueryNow.Result(
            orderId: params.orderId,
            classification: classification.rawValue,
            result: result.json,
            order: OrderView(state)
        )
    }

    func audit(_ params: CallbacksAudit.Params) async throws -> CallbacksAudit.Result {
        let audit = try await CallbackAudit.build(
            store: self.store,
            orderId: params.orderId,
            from: try params.from.map { text throws(ControlError) in try controlInstant(text, "from") },
            to: try params.to.map { text throws(ControlError) in try controlInstant(text, "to") }
        )
        return audit.result
    }

    /// A page of the quarantine, newest first, with what it holds and has dropped.
    func readQuarantine(_ params: QuarantineRead.Params) async throws -> QuarantineRead.Result {
        var query = QuarantineQuery(limit: params.limit ?? ControlPages.listDefault)
        query.reason = params.reason
        query.orderId = params.orderId
        query.remoteAddress = params.remoteAddress
        query.before = params.cursor
        let page = try await self.store.quarantined(query)
        let status = try await self.store.quarantineStatus()
        return QuarantineRead.Result(
            entries: page.entries.map(QuarantineEntryView.init),
            nextCursor: page.nextCursor.map { String($0) },
            quarantine: QuarantineStatusView(status)
        )
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

    func rebuild(_ params: NoParams, notify: @escaping ControlNotify) async throws -> ProjectionRebuild.Result {
        let report = try await self.exclusiveReplay {
            try await self.store.rebuildProjection { notify(.progress(method: .projectionRebuild, ProgressView($0))) }
        }
        return ProjectionRebuild.Result(
            eventsReplayed: UInt64(report.eventsReplayed),
            orders: UInt64(report.orders),
            head: HeadView(report.head),
            seconds: ControlJSON.seconds(report.seconds).numberText
        )
    }

    func verifyProjection(_ params: ProjectionVerify.Params, notify: @escaping ControlNotify) async throws
        -> ProjectionVerify.Result
    {
        let differencesMax = params.differencesMax ?? ControlPages.differencesDefault
        let report = try await self.exclusiveReplay {
            try await self.store.verifyProjection(differencesMax: differencesMax) {
                notify(.progress(method: .projectionVerify, ProgressView($0)))
            }
        }
        return ProjectionVerify.Result(
            matches: report.differenceCount == 0,
            eventsReplayed: UInt64(report.eventsReplayed),
            ordersCompared: UInt64(report.ordersCompared),
            differenceCount: UInt64(report.differenceCount),
            differences: report.differences.map { difference in
                ProjectionVerify.Difference(
                    orderId: difference.orderId,
                    live: difference.live.map(OrderView.init),
                    rebuilt: difference.rebuilt.map(OrderView.init)
                )
            },
            head: HeadView(report.head),
            seconds: ControlJSON.seconds(report.seconds).numberText
        )
    }

    func verifyChain(_ params: NoParams, notify: @escaping ControlNotify) async throws -> LedgerVerify.Result {
        let report = try await self.store.verifyChain { notify(.progress(method: .ledgerVerify, ProgressView($0))) }
        return LedgerVerify.Result(
            intact: report.isIntact,
            eventsChecked: UInt64(report.eventsChecked),
            head: HeadView(report.head),
            firstBreak: report.firstBreak.map { LedgerVerify.Break(sequence: $0.sequence, reason: $0.description) },
            seconds: ControlJSON.seconds(report.seconds).numberText
        )
    }

    func stats(_ params: NoParams) async throws -> LedgerStats.Result {
        let statistics = try await self.store.statistics()
        let uptime = ContinuousClock.now - self.started
        return LedgerStats.Result(
            head: HeadView(statistics.head),
            eventsByType: EventType.allCases.map { ($0.rawValue, UInt64(statistics.eventsByType[$0] ?? 0)) },
            ordersByState: OrderStatus.allCases.map { ($0.rawValue, UInt64(statistics.ordersByStatus[$0] ?? 0)) },
            storeBytes: UInt64(statistics.storeBytes),
            mapBytes: statistics.mapBytes.map { UInt64($0) },
            pollerPending: UInt64(await self.poller.pendingCount),
            pollLeader: await self.poller.isLeading,
            connections: UInt64(max(0, self.connections.load(ordering: .relaxed))),
            subscribers: UInt64(self.ledger.feed.subscriberCount),
            uptimeSeconds: UInt64(max(0, uptime.components.seconds))
        )
    }

    func backup(_ params: LedgerBackup.Params) async throws -> LedgerBackup.Result {
        let path = params.path
        if let problem = BackupDestination.problem(path) {
            throw ControlError.invalidParams("ledger.backup: the path \(path) is refused because \(problem).")
        }
        let report: BackupReport
        do {
            report = try await self.store.backup(to: path)
        } catch let error as StoreError where error.code == .io || error.code == .invalidArgument {
            throw ControlError.backupFailed(error.message)
        }
        return LedgerBackup.Result(
            path: report.path,
            bytes: UInt64(report.bytes),
            head: HeadView(report.head),
            seconds: ControlJSON.seconds(report.seconds).numberText
        )
    }

    func readEvents(_ params: EventsRead.Params) async throws -> EventsRead.Result {
        let from = params.fromSequence ?? 1
        let limit = params.limit ?? min(ControlLimits.eventsPageDefault, self.settings.eventsPageMax)
        guard limit <= self.settings.eventsPageMax else {
            throw ControlFields.outOfRange("events.read", "limit", 1...Int64(self.settings.eventsPageMax))
        }
        let events = try await self.store.readEvents(from: from, limit: limit)
        let head = try await self.store.head()
        let next = (events.last?.sequence).map { $0 + 1 } ?? from
        return EventsRead.Result(events: events.map(EventView.init), nextSequence: next, head: HeadView(head))
    }

    /// Sends every event from `fromSequence` (the backlog from the store, then live ones from the feed) as
    /// `events.event` notifications, until the connection closes or the subscriber falls behind.
    func subscribe(_ params: EventsSubscribe.Params, notify: @escaping ControlNotify) async throws -> ControlAnswer {
        let head = try await self.store.head()
        let from = params.fromSequence ?? (head.sequence + 1)
        // Subscribe before reading the backlog, so no event falls between the two; live events already sent
        // from the backlog are skipped by sequence number.
        let (id, stream) = self.ledger.feed.subscribe(queueMax: self.settings.subscriberQueueMax)
        let subscription = UInt64(id)
        let store = self.store
        let pageMax = self.settings.eventsPageMax
        let feed = self.ledger.feed
        let result = EventsSubscribe.Result(subscription: subscription, fromSequence: from)
        return ControlAnswer(result.json) {
            defer { feed.unsubscribe(id) }
            var next = from
            /// Sends the stored events from `next` up to `end` (exclusive; nil: the head) and advances `next`.
            func sendStored(upTo end: UInt64?) async throws {
                while !Task.isCancelled, end.map({ next < $0 }) ?? true {
                    let limit = end.map { Int(min(UInt64(pageMax), $0 - next)) } ?? pageMax
                    let page = try await store.readEvents(from: next, limit: limit)
                    for event in page { notify(.event(subscription: subscription, event: EventView(event))) }
                    guard let last = page.last else {
                        guard let end else { return }
                        throw StoreError(
                            .corrupted,
                            "The log does not hold events \(next) to \(end - 1), though event \(end) was published."
                        )
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
                        notify(.event(subscription: subscription, event: EventView(event)))
                        next = event.sequence + 1
                    }
                }
            } catch {
                notify(.dropped(subscription: subscription, reason: "Reading the log failed: \(error)"))
                return
            }
            guard !Task.isCancelled else { return }
            notify(
                .dropped(
                    subscription: subscription,
                    reason: "The subscriber fell more than control.subscriberQueueMax "
                        + "(\(self.settings.subscriberQueueMax)) appends behind; subscribe again from sequence \(next)."
                )
            )
        }
    }
}

// The control messages built from the store's reports, which the protocol module does not know.

extension HeadView {
    init(_ head: LogHead) {
        self.init(sequence: head.sequence, hash: head.hash.hex)
    }
}

extension ProgressView {
    init(_ progress: StoreProgress) {
        self.init(
            phase: progress.phase,
            done: UInt64(progress.done),
            total: UInt64(progress.total),
            rate: ControlJSON.seconds(progress.rate).numberText,
            secondsRemaining: progress.secondsRemaining.flatMap { ControlJSON.seconds($0).numberText }
        )
    }
}

extension OrderHistory.Entry {
    public init(_ entry: HistoryEntry) {
        self.init(
            event: EventView(entry.event),
            effect: EffectView(entry.effect),
            stateAfter: entry.state.status.rawValue,
            flagsAfter: entry.state.flags.names
        )
    }
}

extension CallbackAudit {
    /// The audit as `callbacks.audit` answers it.
    public var result: CallbacksAudit.Result {
        CallbacksAudit.Result(
            orders: self.rows.map { row in
                CallbacksAudit.Row(orderId: row.orderId, state: row.status.rawValue, counts: CountsView(row.counts))
            },
            total: CountsView(self.total),
            quarantine: QuarantineStatusView(self.quarantine)
        )
    }
}

extension ControlError {
    /// Maps the ledger's and the store's errors to protocol errors; anything else is internal.
    static func from(_ error: any Error) -> ControlError {
        if let error = error as? ControlError { return error }
        if let error = error as? LedgerError {
            switch error.code {
            case .invalidOrder: return .invalidOrder(error.message)
            case .orderConflict: return .orderConflict(error.message)
            case .orderNotFound: return .init(code: -32001, name: "order-not-found", message: error.message)
            case .pollingOff: return .unavailable(error.message)
            }
        }
        if let error = error as? StoreError {
            switch error.code {
            case .full: return .storeFull(error.message)
            case .corrupted: return .storeCorrupted(error.message)
            case .closed, .busy, .io: return .unavailable(error.message)
            case .invalidArgument: return .invalidParams(error.message)
            }
        }
        return .internalError("The daemon failed: \(error)")
    }
}
