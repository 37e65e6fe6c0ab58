import Foundation
public import LedgerCore

/// How a ``GatewaySimulator`` behaves: where it listens, which merchant it serves, how it signs and how it delivers
/// notifications, and which faults it injects at random. Its bounds are `limits`, read through it as if they were
/// its own (`configuration.requestBytesMax`).
@dynamicMemberLookup
public struct SimulatorConfiguration: Sendable {
    /// The address to bind. Loopback by default: the simulator is a test double, never a public service.
    public var host: String = "127.0.0.1"
    /// The port to bind; 0 lets the system pick a free one (``GatewaySimulator/waitUntilListening()`` tells it).
    public var port: Int = 0
    /// The one merchant number this gateway knows (`pay_memberid`).
    public var memberId: String
    /// The merchant's secret key, shared with the merchant.
    public var key: MerchantKey
    /// How the simulator verifies requests and signs replies and notifications.
    public var dialect: SigningDialect = .document
    /// The notification's attempts, retry delay and timeout, and the bodies read at most.
    public var limits = SimulatorLimits()
    /// Wrap query replies as `{"status":"success","msg":…,"data":{…}}`, as some deployments do.
    public var queryEnvelope: Bool = false
    /// Faults injected at random, on top of the ones asked for per order. Drawn from a generator seeded with `seed`.
    public var faultRates: FaultRates = .none
    /// Seeds the fault generator and the transaction numbers, so a run can be reproduced.
    public var seed: UInt64 = 1
    /// How long a query with the ``QueryFault/timeout`` fault stays unanswered (unless the simulator stops first).
    public var queryTimeoutHold: Duration = .seconds(30)
    /// The simulator's clock, read for `datetime` and `time_end`. Replace it to make those fields deterministic.
    public var clock: @Sendable () -> Instant = SimulatorConfiguration.systemClock

    /// A configuration with the defaults above for a merchant.
    public init(memberId: String, key: MerchantKey) {
        self.memberId = memberId
        self.key = key
    }

    /// A configuration with the settings tests and the demo usually change.
    public init(
        memberId: String,
        key: MerchantKey,
        host: String = "127.0.0.1",
        port: Int = 0,
        dialect: SigningDialect = .document,
        notifyAttemptsMax: Int = SimulatorLimits().notifyAttemptsMax,
        notifyRetryDelay: Duration = SimulatorLimits().notifyRetryDelay,
        notifyTimeout: Duration = SimulatorLimits().notifyTimeout,
        queryEnvelope: Bool = false,
        faultRates: FaultRates = .none,
        seed: UInt64 = 1
    ) {
        self.memberId = memberId
        self.key = key
        self.host = host
        self.port = port
        self.dialect = dialect
        self.limits.notifyAttemptsMax = notifyAttemptsMax
        self.limits.notifyRetryDelay = notifyRetryDelay
        self.limits.notifyTimeout = notifyTimeout
        self.queryEnvelope = queryEnvelope
        self.faultRates = faultRates
        self.seed = seed
    }

    public subscript<Value>(dynamicMember path: WritableKeyPath<SimulatorLimits, Value>) -> Value {
        get { self.limits[keyPath: path] }
        set { self.limits[keyPath: path] = newValue }
    }

    /// The wall clock.
    public static let systemClock: @Sendable () -> Instant = {
        Instant(millisecondsSinceEpoch: Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)))
    }

    /// What is wrong with the settings, as full sentences; empty when they are usable.
    public func validate() -> [String] {
        var problems: [String] = []
        if !GatewayValidation.isMemberId(self.memberId) {
            problems.append("The member id must be 1 to 32 ASCII digits.")
        }
        if !(0...65_535).contains(self.port) { problems.append("The port must be between 0 and 65535.") }
        if self.notifyAttemptsMax < 1 { problems.append("notifyAttemptsMax must be at least 1.") }
        if self.notifyRetryDelay < .zero { problems.append("notifyRetryDelay must not be negative.") }
        if self.notifyTimeout <= .zero { problems.append("notifyTimeout must be positive.") }
        if self.requestBytesMax < 1024 { problems.append("requestBytesMax must be at least 1024.") }
        if self.replyBytesMax < 16 { problems.append("replyBytesMax must be at least 16.") }
        problems.append(contentsOf: self.faultRates.validate())
        return problems
    }
}

/// Faults applied to one notification (``GatewaySimulator/pay(_:faults:)`` and
/// ``GatewaySimulator/renotify(_:faults:)``).
public struct NotifyFaults: Sendable, Hashable {
    /// Send nothing at all, as when the gateway's notify queue loses a message.
    public var drop = false
    /// Send the same body this many times concurrently (a duplicate storm); each copy retries on its own.
    public var copies = 1
    /// Postpone the first send.
    public var delay: Duration = .zero
    /// Change the amount after signing, so the signature no longer covers what is sent.
    public var tamperAmount = false
    /// Flip one character of the signature (it stays 32 uppercase hex digits, so it is a mismatch, not malformed).
    public var breakSignature = false

    public init(
        drop: Bool = false,
        copies: Int = 1,
        delay: Duration = .zero,
        tamperAmount: Bool = false,
        breakSignature: Bool = false
    ) {
        self.drop = drop
        self.copies = copies
        self.delay = delay
        self.tamperAmount = tamperAmount
        self.breakSignature = breakSignature
    }

    /// A faithful notification.
    public static let none = NotifyFaults()
}

/// How one query is answered instead of faithfully.
public enum QueryFault: String, Sendable, Hashable, CaseIterable {
    /// `502 Bad Gateway` with a short body, as from a proxy in front of the gateway.
    case serverError = "server-error"
    /// `200` with a `text/html` error page, as ThinkPHP shows on an exception.
    case html
    /// No answer within any sensible client timeout: held for ``SimulatorConfiguration/queryTimeoutHold`` or until
    /// the simulator stops.
    case timeout
    /// The faithful reply with one character of `sign` flipped.
    case badSignature = "bad-signature"
    /// The error envelope `{"status":"error","msg":"订单不存在"}`.
    case errorEnvelope = "error-envelope"
}

/// Probabilities (0…1) of faults injected at random. Notification faults are drawn once per
/// ``GatewaySimulator/pay(_:faults:)`` or ``GatewaySimulator/renotify(_:faults:)`` and add to the faults asked for;
/// query faults are drawn per query that has no per-order fault set.
public struct FaultRates: Sendable, Hashable {
    /// The notification is never sent.
    public var dropNotification: Double
    /// The notification is sent twice concurrently.
    public var duplicateNotification: Double
    /// The notification's amount is changed after signing.
    public var tamperAmount: Double
    /// The notification's signature is broken.
    public var breakNotificationSignature: Double
    /// The query is answered with a 502.
    public var queryServerError: Double
    /// The query is answered with an HTML error page.
    public var queryHTML: Double
    /// The query is not answered in time.
    public var queryTimeout: Double
    /// The query reply is badly signed.
    public var queryBadSignature: Double

    public init(
        dropNotification: Double = 0,
        duplicateNotification: Double = 0,
        tamperAmount: Double = 0,
        breakNotificationSignature: Double = 0,
        queryServerError: Double = 0,
        queryHTML: Double = 0,
        queryTimeout: Double = 0,
        queryBadSignature: Double = 0
    ) {
        self.dropNotification = dropNotification
        self.duplicateNotification = duplicateNotification
        self.tamperAmount = tamperAmount
        self.breakNotificationSignature = breakNotificationSignature
        self.queryServerError = queryServerError
        self.queryHTML = queryHTML
        self.queryTimeout = queryTimeout
        self.queryBadSignature = queryBadSignature
    }

    /// No random faults.
    public static let none = FaultRates()

    /// Every rate must be a probability, and the query rates are exclusive outcomes of one draw so they must not
    /// add up to more than 1.
    public func validate() -> [String] {
        var problems: [String] = []
        let named: [(String, Double)] = [
            ("dropNotification", self.dropNotification), ("duplicateNotification", self.duplicateNotification),
            ("tamperAmount", self.tamperAmount), ("breakNotificationSignature", self.breakNotificationSignature),
            ("queryServerError", self.queryServerError), ("queryHTML", self.queryHTML),
            ("queryTimeout", self.queryTimeout), ("queryBadSignature", self.queryBadSignature),
        ]
        for (name, rate) in named where !(rate >= 0 && rate <= 1) {
            problems.append("The fault rate \(name) must be between 0 and 1.")
        }
        let queryTotal = self.queryServerError + self.queryHTML + self.queryTimeout + self.queryBadSignature
        if queryTotal > 1 { problems.append("The query fault rates must add up to at most 1.") }
        return problems
    }
}

/// What the simulator knows about one order submitted to `Pay_Index.html`.
public struct SimulatedOrder: Sendable, Hashable {
    public var orderId: String
    /// `pay_amount` exactly as submitted.
    public var amount: String
    public var notifyURL: String
    public var callbackURL: String
    public var bankCode: String
    /// `pay_attach` as submitted, echoed as `attach` in notifications.
    public var attach: String?
    /// `pay_applydate` as submitted.
    public var applyDate: String = ""
    public var productName: String = ""
    public var paid: Bool = false
    /// The gateway's number for the order, sent as `transaction_id`. Like deployments, the gateway assigns it when
    /// the order is submitted, so unpaid query replies carry it too; it is set from submission on.
    public var transactionId: String?
    /// When it was paid, `YYYY-MM-DD HH:MM:SS` China time (the query's `time_end`); nil while unpaid.
    public var paidAt: String?
    /// Notification POSTs made (every copy and every retry).
    public var notificationsSent: Int = 0
    /// Notification replies that contained "ok".
    public var notificationsAcknowledged: Int = 0
    /// Signed queries received for the order.
    public var queries: Int = 0
}

/// Why a simulator operation could not be carried out.
public enum SimulatorError: Error, Sendable, Hashable, CustomStringConvertible {
    case invalidConfiguration([String])
    case unknownOrder(String)
    case alreadyPaid(String)
    case notPaid(String)
    case notRunning
    case alreadyStarted
    case stopped(reason: String)
    case invalidURL(String)

    public var description: String {
        switch self {
        case .invalidConfiguration(let problems):
            return "The simulator configuration is invalid: " + problems.joined(separator: " ")
        case .unknownOrder(let id):
            return "The order '\(id)' was never submitted to Pay_Index.html."
        case .alreadyPaid(let id):
            return "The order '\(id)' is already paid; use renotify to send its notification again."
        case .notPaid(let id):
            return "The order '\(id)' is not paid, so there is no notification to send."
        case .notRunning:
            return "The simulator is not running; call run() first."
        case .alreadyStarted:
            return "The simulator was already started; a simulator runs once."
        case .stopped(let reason):
            return "The simulator has stopped: \(reason)"
        case .invalidURL(let url):
            return "'\(url)' is not an http:// or https:// URL."
        }
    }
}
