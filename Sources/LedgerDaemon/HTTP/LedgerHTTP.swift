import Foundation
import HTTPTypes
public import Hummingbird
public import LedgerCore
import LedgerStore
public import Logging
public import NIOCore
import ServiceLifecycle
import Synchronization

/// The request context of the daemon's HTTP endpoints: Hummingbird's, plus the client's address, which every
/// recorded notification keeps.
public struct LedgerRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The TCP peer.
    public let peer: SocketAddress?
    /// The client: the TCP peer's address and port, or, behind a trusted proxy (`http.trustedProxies`), the
    /// address it forwarded (`ClientAddressMiddleware` sets it before any route runs).
    public var remoteAddress: String

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.peer = source.channel.remoteAddress
        self.remoteAddress = Self.describe(source.channel.remoteAddress)
    }

    static func describe(_ address: SocketAddress?) -> String {
        guard let address else { return "unknown" }
        if let ip = address.ipAddress, let port = address.port {
            return address.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
        }
        return address.pathname ?? "unknown"
    }
}

/// Liveness of the parts `GET /healthz` reports on.
public final class HealthState: Sendable {
    private let pollerHeartbeat = Mutex<ContinuousClock.Instant?>(nil)
    private let pollingOff = Mutex(false)
    public init() {}

    func pollerAlive() { self.pollerHeartbeat.withLock { $0 = .now } }
    /// The daemon runs with polling off: the poller has no heartbeat, and that is healthy.
    func pollerOff() { self.pollingOff.withLock { $0 = true } }
    var isPollingOff: Bool { self.pollingOff.withLock { $0 } }

    /// The poller beats at least once a second; three seconds of silence means it is stuck or gone.
    var pollerHealthy: Bool {
        guard let last = self.pollerHeartbeat.withLock({ $0 }) else { return false }
        return ContinuousClock.now - last < .seconds(3)
    }
}

/// The log lines about refused notifications: at most `perMinute` a minute (`limits.http.rejectLogPerMinute`); the
/// rest are only counted, and their number is logged as one line when the minute ends (or the daemon stops), so a
/// flood of garbage or forgeries cannot flood the log either. One limit for every kind of refusal.
public final class RateLimitedLog: Sendable {
    private struct Window {
        var start = ContinuousClock.now
        var logged = 0
        var suppressed = 0
    }

    private let window = Mutex(Window())
    private let perMinute: Int
    private let logger: Logger
    static let windowLength: Duration = .seconds(60)

    init(perMinute: Int, logger: Logger) {
        self.perMinute = perMinute
        self.logger = logger
    }

    /// Logs a warning unless this minute's lines are used up. `metadata` is built only for a line that is written,
    /// so a suppressed one costs nothing more than counting it.
    func warning(_ message: Logger.Message, metadata: () -> Logger.Metadata) {
        let (admitted, suppressedBefore) = self.window.withLock { window -> (Bool, Int) in
            var suppressedBefore = 0
            if ContinuousClock.now - window.start >= Self.windowLength {
                suppressedBefore = window.suppressed
                window = Window()
            }
            guard window.logged < self.perMinute else {
                window.suppressed += 1
                return (false, suppressedBefore)
            }
            window.logged += 1
            return (true, suppressedBefore)
        }
        self.logSuppressed(suppressedBefore)
        if admitted { self.logger.warning(message, metadata: metadata()) }
    }

    /// Logs how many lines were suppressed and not yet reported, if any.
    func reportSuppressed() {
        let suppressed = self.window.withLock { window -> Int in
            defer { window.suppressed = 0 }
            return window.suppressed
        }
        self.logSuppressed(suppressed)
    }

    private func logSuppressed(_ count: Int) {
        guard count > 0 else { return }
        // One message for every count, so the line is easy to find; the count is in the metadata too.
        let text = "suppressed \(count) log lines about refused notifications (limits.http.rejectLogPerMinute)"
        self.logger.warning("\(text)", metadata: ["suppressed": "\(count)"])
    }

    /// Reports the suppressed lines at the end of every minute and once more when the daemon stops, after the
    /// HTTP listeners have drained (it is before them in the service group).
    struct Reporter: Service {
        let log: RateLimitedLog

        func run() async throws {
            try? await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    try await Task.sleep(for: RateLimitedLog.windowLength)
                    self.log.reportSuppressed()
                }
            }
            self.log.reportSuppressed()
        }
    }
}

/// The short error bodies of `POST /notify`. None contains the letters "ok" in sequence in any case, because some
/// gateway deployments treat any body containing them as an acknowledgement and would stop retrying.
enum NotifyReply: String, CaseIterable {
    case malformed = "malformed notification"
    case tooLarge = "body too large"
    case badSignature = "bad signature"
    case foreignMember = "foreign member id"
    case unknownOrder = "unknown order"
    case unavailable = "ledger unavailable, retry later"

    var status: HTTPResponse.Status {
        switch self {
        case .malformed: return .badRequest
        case .tooLarge: return .contentTooLarge
        case .badSignature: return .forbidden
        case .foreignMember: return .forbidden
        case .unknownOrder: return .notFound
        case .unavailable: return .serviceUnavailable
        }
    }

    /// The refusal's body, checked never to read as an acknowledgement.
    var body: ByteBuffer {
        precondition(
            !GatewayAcknowledgement.readsAsAcknowledgement(self.rawValue),
            "an error body must never read as an acknowledgement"
        )
        return ByteBuffer(string: self.rawValue)
    }

    static let contentType = "text/plain; charset=utf-8"

    /// The one mapping from what became of a notification to the gateway's answer: nil, answered `OK`, exactly for
    /// a validly signed notification for our member id that is now recorded (duplicates and mismatches included:
    /// the projection flags those); otherwise the reply that says why, so the gateway retries and the audit shows it.
    /// `NotificationReceipt.acknowledges` is this being nil.
    static func refusal(for receipt: NotificationReceipt) -> NotifyReply? {
        switch receipt {
        case .rejected(.form(.bodyTooLarge)): return .tooLarge
        case .rejected: return .malformed
        case .quarantined(.badSignature, _): return .badSignature
        case .quarantined(.foreignMember, _): return .foreignMember
        case .recorded(let classification, _):
            switch classification {
            case .accepted, .duplicate, .conflicting, .amountMismatch, .notSuccess: return nil
            // Events in logs written before the quarantine existed classify so; a new one never does.
            case .badSignature: return .badSignature
            case .memberMismatch: return .foreignMember
            case .unknownOrder: return .unknownOrder
            }
        }
    }

    /// Exactly the two bytes `OK`: no newline, no BOM (the document: 输出“OK”). Every recorded callback is
    /// answered with it.
    static let acknowledgementBody = ByteBuffer(string: "OK")
    static let acknowledgementContentType = "text/plain"

    /// The `Server` header of every answer (Hummingbird's `serverName` for the other endpoints).
    static let serverName = "ledgerd"
}

/// Which of the daemon's endpoints a listener serves: the public ones (`/notify`, `/pay/…`, `/return`), the
/// operator's (`/healthz`, `/metrics`), or both when no `http.adminListen` is set.
public enum ListenerRole: Sendable {
    case publicAndAdmin
    case publicOnly
    case adminOnly

    var servesPublic: Bool {
        switch self {
        case .publicAndAdmin, .publicOnly: return true
        case .adminOnly: return false
        }
    }

    var servesAdmin: Bool {
        switch self {
        case .publicAndAdmin, .adminOnly: return true
        case .publicOnly: return false
        }
    }
}

/// Builds the router of one listener: `GET /pay/{orderId}`, `GET|POST /return`, `GET /healthz` and `GET /metrics`,
/// or the part of them `role` names. A path the role leaves out answers 404, as any unknown path does. `POST /notify`
/// is served in front of the router, on the connection's event loop (`NotifyHTTPHandler`), on the listeners that
/// serve the public endpoints.
public func buildLedgerRouter(
    ledger: Ledger,
    limits: HTTPLimits,
    metrics: LedgerMetrics,
    health: HealthState,
    trustedProxies: TrustedProxies = .none,
    role: ListenerRole = .publicAndAdmin
) -> Router<LedgerRequestContext> {
    let router = Router(context: LedgerRequestContext.self)
    // First, so they see every request, the ones no route matches included.
    router.add(middleware: RequestMetricsMiddleware(metrics: metrics))
    router.add(middleware: ClientAddressMiddleware(trustedProxies: trustedProxies, metrics: metrics))
    if role.servesPublic {
        addPublicRoutes(to: router, ledger: ledger, limits: limits)
    }
    if role.servesAdmin {
        addAdminRoutes(to: router, ledger: ledger, metrics: metrics, health: health)
    }
    return router
}

/// `GET /pay/{orderId}` and `GET|POST /return`: what buyers reach.
func addPublicRoutes(to router: Router<LedgerRequestContext>, ledger: Ledger, limits: HTTPLimits) {
    router.get("/pay/:orderId") { _, context -> Response in
        let orderId = context.parameters.get("orderId") ?? ""
        guard GatewayValidation.isOrderId(orderId), let created = try await ledger.orderCreated(orderId) else {
            return PayPage.notFound(orderId)
        }
        return PayPage.render(created)
    }

    let returnPage: @Sendable (Request, LedgerRequestContext) async throws -> Response = { request, _ in
        // The buyer's browser copy of the notification: shown, never believed. State comes from the projection.
        var orderId = request.uri.queryParameters.get("orderid")
        if request.method == .post, orderId == nil {
            var request = request
            let body = try? await request.collectBody(upTo: limits.form.bodyBytesMax)
            if let body, let fields = try? FormCoding.decode(Array(buffer: body), limits: limits.form) {
                orderId = fields["orderid"]
            }
        }
        guard let orderId, GatewayValidation.isOrderId(orderId) else { return PayPage.notFound(orderId ?? "") }
        return PayPage.status(orderId: orderId, state: try await ledger.order(orderId))
    }
    router.get("/return", use: returnPage)
    router.post("/return", use: returnPage)

}

/// `GET /healthz` and `GET /metrics`: the operator's, never to be exposed to the Internet.
func addAdminRoutes(
    to router: Router<LedgerRequestContext>,
    ledger: Ledger,
    metrics: LedgerMetrics,
    health: HealthState
) {
    router.get("/healthz") { _, _ -> Response in
        // Each part says "ok" or what is wrong with it, so an operator (or a probe's log) sees which part failed.
        var checks: JSONObject = ["http": "ok"]
        do {
            _ = try await ledger.store.head()
            checks["store"] = "ok"
        } catch {
            checks["store"] = .string("\(error)")
        }
        checks["poller"] = health.isPollingOff ? "off" : health.pollerHealthy ? "ok" : "no heartbeat for 3 s"
        let healthy = checks.allSatisfy { $0.value == "ok" || $0.value == "off" }
        let body: JSONValue = ["status": healthy ? "healthy" : "unhealthy", "checks": .object(checks)]
        return Response(
            status: healthy ? .ok : .serviceUnavailable,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: JSONWriter.write(body, options: .sortedKeys)))
        )
    }

    router.get("/metrics") { _, _ -> Response in
        if let store = ledger.store as? any CommitBatchReporting {
            metrics.commitBatchSizes(store.takeCommitBatchSizes())
        }
        if let status = try? await ledger.store.quarantineStatus() { metrics.quarantineStatus(status) }
        if let store = ledger.store as? any StoreSizeReporting, let size = try? await store.storeSize() {
            metrics.storeSize(size)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; version=0.0.4"],
            body: .init(byteBuffer: ByteBuffer(string: metrics.render()))
        )
    }
}

/// Counts every answered request in `ledger_http_requests_total` by the route's pattern (`/pay/{orderId}`, never
/// the path a client sent, so no client can create label values) and the status.
struct RequestMetricsMiddleware: RouterMiddleware {
    typealias Context = LedgerRequestContext
    let metrics: LedgerMetrics

    /// The matched route's pattern; `unmatched` when no route took the request (the router says `NotFound`).
    static func route(_ context: Context) -> String {
        guard let path = context.endpointPath, path != "NotFound" else { return "unmatched" }
        return path
    }

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            let response = try await next(request, context)
            self.metrics.httpRequest(route: Self.route(context), status: response.status.code)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            self.metrics.httpRequest(route: Self.route(context), status: status.code)
            throw error
        }
    }
}

/// Sets the request's client address before any route runs: the TCP peer, or behind a trusted proxy the address
/// it forwarded in `X-Forwarded-For`. That address is what the ledger records, what the quarantine's per-sender
/// fairness groups by and what the log lines show.
struct ClientAddressMiddleware: RouterMiddleware {
    typealias Context = LedgerRequestContext
    let trustedProxies: TrustedProxies
    let metrics: LedgerMetrics

    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard !self.trustedProxies.isEmpty else { return try await next(request, context) }
        var context = context
        context.remoteAddress = self.trustedProxies.clientAddress(
            peer: context.peer,
            described: context.remoteAddress,
            forwardedFor: request.headers[values: Self.forwardedFor],
            metrics: self.metrics
        )
        return try await next(request, context)
    }
}

/// The buyer-facing HTML pages.
///
/// Every page carries a `Content-Security-Policy` that allows nothing but the pay page's one form post to the
/// gateway's origin and its one submit script (by hash), so text that got past escaping still could not run, load,
/// frame or send anything. Order ids a page cannot have issued are never echoed back.
enum PayPage {
    /// The pay page's only script. Its SHA-256 is in the pay page's policy; any other script is refused.
    static let submitScript = "document.forms[0].submit();"

    /// The policy of pages with no form and no script.
    static let policyWithoutForm = "default-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

    /// The submit script's policy source, `'sha256-…'`, computed once.
    static let submitScriptSource = HTMLText.scriptHashSource(PayPage.submitScript)

    /// The pay page's policy: the form may post only to the gateway's origin, and only the submit script runs.
    static func policy(formActionOrigin origin: String?) -> String {
        "default-src 'none'; script-src \(Self.submitScriptSource); "
            + "form-action \(origin ?? "'none'"); frame-ancestors 'none'; base-uri 'none'"
    }

    static func escape(_ text: String) -> String { HTMLText.escape(text) }

    static func html(_ status: HTTPResponse.Status, _ body: String, policy: String = PayPage.policyWithoutForm)
        -> Response
    {
        Response(
            status: status,
            headers: [
                .contentType: "text/html; charset=utf-8", .cacheControl: "no-store", .contentSecurityPolicy: policy,
                .xContentTypeOptions: "nosniff", Self.referrerPolicy: "no-referrer",
            ],
            body: .init(byteBuffer: ByteBuffer(string: body))
        )
    }

    /// `Referrer-Policy`: the pages' URLs carry order ids, which no other site needs to see.
    static let referrerPolicy = HTTPFields.Element.Name("Referrer-Policy")!

    /// An auto-submitting form that POSTs the signed fields to the gateway, with a button where scripts are off.
    static func render(_ created: OrderCreated) -> Response {
        let inputs = created.request.fields.map {
            "<input type=\"hidden\" name=\"\(Self.escape($0.name))\" value=\"\(Self.escape($0.value))\">"
        }.joined(separator: "\n")
        let orderId = Self.escape(created.request.orderId)
        let page = """
            <!DOCTYPE html>
            <html><head><meta charset="utf-8"><title>Pay order \(orderId)</title></head>
            <body>
            <form method="post" action="\(Self.escape(created.gatewayURL))" accept-charset="utf-8">
            \(inputs)
            <noscript><p>Order \(orderId): \(Self.escape(created.request.amount.text)) yuan.</p></noscript>
            <button type="submit">Continue to payment</button>
            </form>
            <script>\(Self.submitScript)</script>
            </body></html>
            """
        let origin = GatewayValidation.origin(of: created.gatewayURL)
        return Self.html(.ok, page, policy: Self.policy(formActionOrigin: origin))
    }

    /// No order under this id. An id that is not one by the gateway's order-id rules is not shown at all, so the
    /// page never reflects what a link's author chose; a well-formed id (letters, digits, `_`, `-`) is shown.
    static func notFound(_ orderId: String) -> Response {
        let shown = GatewayValidation.isOrderId(orderId) ? "No such order: \(Self.escape(orderId))" : "No such order."
        return Self.html(
            .notFound,
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body><p>\(shown)</p></body></html>"
        )
    }

    static func status(orderId: String, state: OrderState?) -> Response {
        guard let state, state.order != nil else { return Self.notFound(orderId) }
        let text: String
        switch state.status {
        case .paid: text = "paid"
        case .created: text = "waiting for the payment to be confirmed"
        case .expired: text = "expired without payment"
        case .unknown: text = "unknown"
        }
        return Self.html(
            .ok,
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body><p>Order \(Self.escape(orderId)): \(text)</p></body></html>"
        )
    }
}
