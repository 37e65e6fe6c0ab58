import Foundation
public import LedgerControlProtocol
public import LedgerCore
public import LedgerStore
public import Logging
public import NIOCore

/// What shop code asks for in `order.create`: the protocol's params, so the request is one type from the socket to
/// the ledger.
public typealias CreateOrderRequest = OrderCreate.Params

/// A created order: what the shop needs to send the buyer to the gateway.
public struct CreatedOrder: Sendable, Hashable {
    public var orderId: String
    /// `Pay_Index.html` on the gateway.
    public var gatewayURL: String
    /// The signed form fields, in order.
    public var fields: [FormField]
    /// The daemon's auto-submitting page for the buyer (`GET /pay/{orderId}`).
    public var payURL: String
    /// False when the order already existed with the same fields and this is the earlier result again.
    public var created: Bool
    public var request: PayRequest
}

/// What became of a notification body.
public enum NotificationReceipt: Sendable, Hashable {
    /// Recorded durably, with what the projection made of it.
    case recorded(CallbackClassification, sequence: UInt64)
    /// Not a notification at all: not recorded (so garbage cannot fill the disk), only counted.
    case rejected(NotificationRejection)
    /// A notification the gateway did not vouch for (a bad signature, a foreign member id): kept in the bounded
    /// quarantine and counted, never appended to the log. `id` is its quarantine entry.
    case quarantined(QuarantineReason, id: UInt64)

    /// Whether the gateway is answered `OK`: every validly signed notification for our member id that is now
    /// recorded, duplicates and mismatches included (the projection flags those); never a bad signature, a
    /// foreign member id or an unknown order, so the gateway retries and the audit shows them. The answer itself is
    /// `NotifyReply.refusal(for:)`, the one mapping.
    public var acknowledges: Bool { NotifyReply.refusal(for: self) == nil }
}

/// One event of an order's history with what the projection made of it and the state after it.
public struct HistoryEntry: Sendable, Hashable {
    public var event: Event
    public var effect: EventEffect
    public var state: OrderState

    /// The history of one order from its events, in log order: each event applied to the state before it.
    public static func derive(orderId: String, from events: [Event]) -> [HistoryEntry] {
        var state = OrderState(orderId: orderId)
        return events.map { event in
            let effect = state.apply(event)
            return HistoryEntry(event: event, effect: effect, state: state)
        }
    }
}

/// Source of the random part of generated order ids; injected so tests are deterministic.
public protocol OrderIdSource: Sendable {
    func randomCharacters(_ count: Int) -> String
}

/// Random characters from the system generator.
public struct SystemOrderIdSource: OrderIdSource {
    static let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")

    public init() {}

    public func randomCharacters(_ count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return String((0..<count).map { _ in Self.alphabet.randomElement(using: &generator)! })
    }
}

/// The ledger: the one writer of the event store. Order creation, notifications and query results all go through
/// it; reads go straight to the store.
public actor Ledger {
    public let store: any EventStore
    public let settings: GatewaySettings
    let key: MerchantKey
    let clock: any LedgerClock
    let orderIds: any OrderIdSource
    let publicURL: String
    let formLimits: FormLimits
    let quarantineLimits: QuarantineLimits
    let logger: Logger
    let metrics: LedgerMetrics
    /// Every committed event, for `events.subscribe`.
    public nonisolated let feed = EventFeed()
    /// On a store several daemons share, publishes the feed in log order and reports orders the others changed;
    /// nil on an embedded store, where every event is this daemon's and is published as it commits.
    public nonisolated let follower: LogFollower?
    /// Hands each commit to the feed and the order observer (the poller, the forwarder) in log order, without the
    /// appender waiting for them.
    public nonisolated let commits: CommitPublisher

    public init(
        store: any EventStore,
        settings: GatewaySettings,
        key: MerchantKey,
        publicURL: String,
        formLimits: FormLimits = .default,
        quarantineLimits: QuarantineLimits = .default,
        clock: any LedgerClock = SystemLedgerClock(),
        orderIds: any OrderIdSource = SystemOrderIdSource(),
        metrics: LedgerMetrics = LedgerMetrics(),
        followInterval: Duration = .milliseconds(100),
        heldCommitsMax: Int = CommitPublisher.heldMaxDefault,
        logger: Logger
    ) {
        self.store = store
        self.follower =
            store is any SharedEventStore
            ? LogFollower(store: store, feed: self.feed, interval: followInterval, logger: logger) : nil
        self.commits = CommitPublisher(feed: self.feed, heldMax: heldCommitsMax, logger: logger)
        self.settings = settings
        self.key = key
        self.clock = clock
        self.orderIds = orderIds
        self.publicURL = publicURL
        self.formLimits = formLimits
        self.quarantineLimits = quarantineLimits
        self.metrics = metrics
        self.logger = logger
    }

    /// Orders the feed from the log's head on: called once the store is open and before anything appends. On a
    /// shared store the follower orders it, reading the others' events too; on an embedded one, the publisher.
    public func start() async throws {
        if let follower = self.follower {
            try await follower.start()
        } else {
            self.commits.start(after: try await self.store.head().sequence)
        }
    }

    /// Sets the observer told of the order states each append produced. It runs on the appending thread, under the
    /// publisher's lock, so it only hands the states on (see `OrderStateInbox`).
    public nonisolated func observeOrders(_ observer: @escaping CommitPublisher.Observer) {
        self.commits.observe(observer)
    }

    /// Passes a commit on: to the feed in log order (through the follower on a shared store) and, when `observed`,
    /// its order states to the observer. Every append that commits comes here, or the feed would wait for it.
    private nonisolated func committed(_ appended: Appended, observed: Bool) async {
        guard let follower = self.follower else {
            self.commits.committed(appended, observed: observed)
            return
        }
        if observed { self.commits.tell(Array(appended.orders.values)) }
        await follower.publishLocal(appended.events)
    }

    // MARK: Orders

    /// Creates an order: validates it, signs it and records it durably, then returns the signed request.
    /// Creating the same order id again with the same fields returns the same result; with different fields it is
    /// a conflict.
    public func createOrder(_ request: CreateOrderRequest) async throws -> CreatedOrder {
        let now = self.clock.now()
        let orderId = request.orderId ?? self.generateOrderId(at: now)
        let orderRequest = OrderRequest(
            orderId: orderId,
            amount: request.amount,
            bankCode: request.bankCode,
            productName: request.productName,
            attach: request.attach,
            productNum: request.productNum,
            productDesc: request.productDesc,
            productURL: request.productUrl
        )
        if let existing = try await self.orderCreated(orderId) {
            return try self.sameOrConflict(existing, orderRequest)
        }
        let pay: PayRequest
        switch PayRequest.build(orderRequest, settings: self.settings, key: self.key, appliedAt: now) {
        case .success(let built): pay = built
        case .failure(let rejection): throw LedgerError(.invalidOrder, rejection.description)
        }
        let event = PendingEvent(
            recordedAt: now,
            orderId: orderId,
            payload: .orderCreated(
                OrderCreated(request: pay, gatewayURL: self.settings.payURL, dialect: self.settings.dialect)
            )
        )
        let started = ContinuousClock.now
        let outcome = try await self.store.append(AppendRequest([event], precondition: .orderAbsent(orderId)))
        self.metrics.recordAppend(events: 1, since: started)
        switch outcome {
        case .appended(let appended):
            await self.committed(appended, observed: true)
            self.logger.info(
                "order created",
                metadata: ["order.id": "\(orderId)", "order.amount": "\(pay.amount.text)"]
            )
            return self.created(pay, created: true)
        case .preconditionFailed:
            // Another request created it between our check and our append: answer as for a repeat.
            guard let existing = try await self.orderCreated(orderId) else {
                throw LedgerError(.orderConflict, "Order \(orderId) exists but has no order-created event.")
            }
            return try self.sameOrConflict(existing, orderRequest)
        }
    }

    private func created(_ pay: PayRequest, created: Bool) -> CreatedOrder {
        CreatedOrder(
            orderId: pay.orderId,
            gatewayURL: self.settings.payURL,
            fields: pay.fields,
            payURL: self.publicURL + "/pay/" + pay.orderId,
            created: created,
            request: pay
        )
    }

    private func sameOrConflict(_ existing: OrderCreated, _ request: OrderRequest) throws -> CreatedOrder {
        let pay = existing.request
        // Byte for byte: String's == would take a canonically equivalent spelling of a field for the same order,
        // though the gateway signs bytes.
        func same(_ stored: String?, _ asked: String?) -> Bool {
            switch (stored, asked) {
            case (nil, nil): return true
            case (let stored?, let asked?): return stored.hasSameBytes(as: asked)
            case (nil, _?), (_?, nil): return false
            }
        }
        let same =
            same(pay.amount.text, request.amount) && same(pay.bankCode, request.bankCode)
            && same(pay.productName, request.productName) && same(pay.attach, request.attach)
            && same(pay.productNum, request.productNum) && same(pay.productDesc, request.productDesc)
            && same(pay.productURL, request.productURL)
        guard same else {
            throw LedgerError(
                .orderConflict,
                "Order \(request.orderId) already exists with other fields (amount \(pay.amount.text), bank code \(pay.bankCode)); an order id is used once."
            )
        }
        return self.created(pay, created: false)
    }

    /// The order-created event of an order, if it was created. One event is read, not the order's history: the
    /// pay page calls this, and anyone can add callbacks to an order's history.
    public func orderCreated(_ orderId: String) async throws -> OrderCreated? {
        guard let event = try await self.store.createdEvent(forOrder: orderId) else { return nil }
        if case .orderCreated(let created) = event.payload { return created }
        return nil
    }

    /// `L`, the gateway-time date and time to the second, and five random characters: 20 characters that sort
    /// by creation time and do not collide in practice.
    private func generateOrderId(at now: Instant) -> String {
        let stamp = self.settings.timeZone.applyDate(for: now).filter(\.isNumber)
        return "L" + stamp + self.orderIds.randomCharacters(20 - 1 - stamp.count)
    }

    // MARK: Notifications

    /// Parses, verifies and records a notification body; the receipt says whether to answer `OK`.
    ///
    /// Only what the gateway vouched for enters the log: a notification whose signature verifies under the merchant
    /// key and the dialect in force, for this daemon's member id (for an order the ledger does not hold, too: the
    /// gateway vouches for it). Anything else that parses goes to the quarantine, outside the chain.
    ///
    /// Nonisolated: parsing, the signature check and the payload touch none of the actor's state, so they run on the
    /// caller's thread, callbacks on every core at once; only the append crosses to the store's writer, and the
    /// answer does not wait for the poller or the feed to hear of it.
    public nonisolated func recordNotification(body: [UInt8], remoteAddress: String) async throws
        -> NotificationReceipt
    {
        switch self.intake(body: body, remoteAddress: remoteAddress) {
        case .decided(let receipt):
            return receipt
        case .quarantine(let entry, let verdict):
            return try await self.quarantine(entry, verdict: verdict)
        case .append(let request, let orderId):
            return try await self.append(request, orderId: orderId)
        }
    }

    /// The same, answered on `eventLoop`: on an embedded store the writer's thread hands the commit straight to
    /// the loop, so a request served there never waits on a task (`NotifyHTTPHandler`). On a shared store, where
    /// the follower publishes the commit, and for the quarantine, it awaits the same steps in a task.
    public nonisolated func recordNotification(
        body: [UInt8],
        remoteAddress: String,
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<NotificationReceipt> {
        switch self.intake(body: body, remoteAddress: remoteAddress) {
        case .decided(let receipt):
            return eventLoop.makeSucceededFuture(receipt)
        case .quarantine(let entry, let verdict):
            return eventLoop.makeFutureWithTask { try await self.quarantine(entry, verdict: verdict) }
        case .append(let request, let orderId):
            guard self.follower == nil else {
                return eventLoop.makeFutureWithTask { try await self.append(request, orderId: orderId) }
            }
            let started = ContinuousClock.now
            let promise = eventLoop.makePromise(of: AppendOutcome.self)
            self.store.append(request) { promise.completeWith($0) }
            return promise.futureResult.flatMapThrowing { outcome in
                let appended = try self.appended(outcome, started: started)
                self.commits.committed(appended, observed: true)
                return try self.recorded(appended, orderId: orderId)
            }
        }
    }

    /// What a notification's body asks of the store, decided without it: parsing, the signature check and building
    /// the event touch none of the actor's state.
    private enum Intake {
        /// Answered without the store: not a notification.
        case decided(NotificationReceipt)
        /// Not vouched for by the gateway: to the quarantine.
        case quarantine(QuarantineEntry, verdict: SignatureVerdict)
        /// Vouched for: one callback-received event to append.
        case append(AppendRequest, orderId: String)
    }

    private nonisolated func intake(body: [UInt8], remoteAddress: String) -> Intake {
        let notification: PaymentNotification
        do {
            notification = try PaymentNotification.parse(
                body,
                limits: self.formLimits,
                dialect: self.settings.dialect,
                extraFields: self.settings.notificationExtraFields
            )
        } catch {
            if case .form(.bodyTooLarge) = error {
                self.metrics.notificationRejected(.tooLarge)
            } else {
                self.metrics.notificationRejected(.malformed)
            }
            return .decided(.rejected(error))
        }
        let verdict = notification.verify(key: self.key, dialect: self.settings.dialect)
        if let (reason, detail) = Self.unvouched(notification, verdict: verdict, memberId: self.settings.memberId) {
            let entry = QuarantineEntry(
                receivedAt: self.clock.now(),
                remoteAddress: remoteAddress,
                reason: reason,
                detail: detail,
                orderId: notification.orderId,
                body: body,
                limits: self.quarantineLimits
            )
            return .quarantine(entry, verdict: verdict)
        }
        let event = PendingEvent(
            recordedAt: self.clock.now(),
            orderId: notification.orderId,
            payload: .callbackReceived(
                CallbackReceived(
                    notification,
                    remoteAddress: remoteAddress,
                    verdict: verdict,
                    dialect: self.settings.dialect
                )
            )
        )
        return .append(AppendRequest([event]), orderId: notification.orderId)
    }

    private nonisolated func quarantine(_ entry: QuarantineEntry, verdict: SignatureVerdict) async throws
        -> NotificationReceipt
    {
        let receipt = try await self.store.quarantine(entry)
        self.metrics.notificationQuarantined(entry.reason, dropped: receipt.dropped)
        self.metrics.notificationRefused(Self.refusalCause(verdict))
        return .quarantined(entry.reason, id: receipt.id)
    }

    /// Appends a vouched-for notification's event and passes its commit on, awaiting both.
    private nonisolated func append(_ request: AppendRequest, orderId: String) async throws -> NotificationReceipt {
        let started = ContinuousClock.now
        let appended = try self.appended(try await self.store.append(request), started: started)
        await self.committed(appended, observed: true)
        return try self.recorded(appended, orderId: orderId)
    }

    /// The notification's append as stored, timed for the metrics; an append with no precondition is never refused.
    private nonisolated func appended(_ outcome: AppendOutcome, started: ContinuousClock.Instant) throws -> Appended {
        self.metrics.recordAppend(events: 1, since: started)
        guard case .appended(let appended) = outcome else {
            throw LedgerError(.orderConflict, "The store refused a notification's append, which has no precondition.")
        }
        return appended
    }

    /// The receipt of a stored notification, once its commit is passed on.
    private nonisolated func recorded(_ appended: Appended, orderId: String) throws -> NotificationReceipt {
        guard case .callback(let classification) = appended.effects.first,
            let sequence = appended.events.first?.sequence
        else {
            throw LedgerError(.orderConflict, "The store did not record the notification as a callback.")
        }
        self.metrics.callbackRecorded(classification)
        self.logger.debug(
            "notification recorded",
            metadata: [
                "order.id": "\(orderId)", "callback.classification": "\(classification.rawValue)",
                "event.seq": "\(sequence)",
            ]
        )
        return .recorded(classification, sequence: sequence)
    }

    /// Why the gateway did not vouch for a notification, or nil when it did.
    static func unvouched(
        _ notification: PaymentNotification,
        verdict: SignatureVerdict,
        memberId: String
    ) -> (QuarantineReason, String)? {
        switch verdict {
        case .valid: break
        case .missing: return (.badSignature, "The sign field is missing or empty.")
        case .malformed: return (.badSignature, "The sign field is not 32 hexadecimal digits.")
        case .mismatch: return (.badSignature, "The signature does not match under the merchant key and dialect.")
        }
        guard notification.memberId == memberId else {
            return (.foreignMember, "Validly signed for member id \(notification.memberId), not \(memberId).")
        }
        return nil
    }

    /// How `ledger_notifications_refused_total` counts a notification the gateway did not vouch for: by what is
    /// wrong with its signature, or, validly signed, as another member's.
    static func refusalCause(_ verdict: SignatureVerdict) -> RefusalCause {
        switch verdict {
        case .valid: return .foreignMember
        case .missing: return .signatureMissing
        case .malformed: return .signatureMalformed
        case .mismatch: return .signatureMismatch
        }
    }

    /// Why a quarantined notification was not vouched for, for the log: for a bad signature, the diagnosis that
    /// `ledgerctl sign --verify` gives (the settings under which it would verify, or that none would), without the
    /// expected signature; for a foreign member id, whose it is. Computed only for the lines the rate limit lets
    /// through, so a flood of forgeries costs no more than the refusals themselves.
    public nonisolated func unvouchedDiagnosis(body: [UInt8]) -> (diagnosis: String, explanation: String) {
        guard
            let notification = try? PaymentNotification.parse(
                body,
                limits: self.formLimits,
                dialect: self.settings.dialect,
                extraFields: self.settings.notificationExtraFields
            )
        else { return ("not a notification", "") }
        let diagnosis = Signer.diagnose(
            notification.fields.fields,
            kind: .notify,
            key: self.key,
            dialect: self.settings.dialect
        )
        if diagnosis.verdict == .valid {
            return ("signed for member id \(notification.memberId), not \(self.settings.memberId)", "")
        }
        return (diagnosis.summary, diagnosis.explanation)
    }

    // MARK: Query results

    /// Records one query attempt and returns what the projection made of it.
    public func recordQueryResult(orderId: String, _ result: QueryResult) async throws -> (
        QueryClassification, OrderState
    ) {
        let event = PendingEvent(recordedAt: self.clock.now(), orderId: orderId, payload: .queryResult(result))
        let started = ContinuousClock.now
        let outcome = try await self.store.append(AppendRequest([event]))
        self.metrics.recordAppend(events: 1, since: started)
        guard case .appended(let appended) = outcome else {
            throw LedgerError(.orderConflict, "The store refused a query result's append, which has no precondition.")
        }
        // The poller that recorded it reschedules the order itself.
        await self.committed(appended, observed: false)
        guard case .query(let classification) = appended.effects.first, let state = appended.orders[orderId] else {
            throw LedgerError(.orderConflict, "The store did not record the query result.")
        }
        return (classification, state)
    }

    // MARK: Reading

    /// Every event of one order with what the projection made of it and the state after it.
    public nonisolated func history(_ orderId: String) async throws -> [HistoryEntry] {
        HistoryEntry.derive(orderId: orderId, from: try await self.store.events(forOrder: orderId))
    }

    public nonisolated func order(_ orderId: String) async throws -> OrderState? {
        try await self.store.order(orderId)
    }
}
