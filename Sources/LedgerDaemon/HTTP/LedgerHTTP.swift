import Foundation
public import Hummingbird
import LedgerCore
import LedgerStore
public import Logging
import NIOCore
import Synchronization

/// The request context of the daemon's HTTP endpoints: Hummingbird's, plus the peer's address, which every
/// recorded notification keeps.
public struct LedgerRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: String

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
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

/// Logs refused bodies at most `perMinute` times a minute; the rest are only counted, so a flood of garbage
/// cannot flood the log either.
final class RateLimitedLog: Sendable {
    private struct Window {
        var start = ContinuousClock.now
        var logged = 0
        var suppressed = 0
    }

    private let window = Mutex(Window())
    private let perMinute: Int

    init(perMinute: Int) {
        self.perMinute = perMinute
    }

    /// Whether to log this occurrence, and how many were suppressed since the last logged one.
    func admit() -> (log: Bool, suppressed: Int) {
        self.window.withLock { window in
            if ContinuousClock.now - window.start >= .seconds(60) {
                window = Window()
            }
            if window.logged < self.perMinute {
                window.logged += 1
                let suppressed = window.suppressed
                window.suppressed = 0
                return (true, suppressed)
            }
            window.suppressed += 1
            return (false, 0)
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

    var response: Response {
        precondition(
            !GatewayAcknowledgement.readsAsAcknowledgement(self.rawValue),
            "an error body must never read as an acknowledgement"
        )
        return Response(
            status: self.status,
            headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: self.rawValue))
        )
    }

    /// The one mapping from what became of a notification to the gateway's answer: `OK` exactly when
    /// `NotificationReceipt.acknowledges`, otherwise the reply that says why.
    static func answer(_ receipt: NotificationReceipt) -> Response {
        switch receipt {
        case .rejected(.form(.bodyTooLarge)): return Self.tooLarge.response
        case .rejected: return Self.malformed.response
        case .quarantined(.badSignature, _): return Self.badSignature.response
        case .quarantined(.foreignMember, _): return Self.foreignMember.response
        case .recorded(let classification, _):
            switch classification {
            case .accepted, .duplicate, .conflicting, .amountMismatch, .notSuccess: return Self.acknowledgement
            // Events in logs written before the quarantine existed classify so; a new one never does.
            case .badSignature: return Self.badSignature.response
            case .memberMismatch: return Self.foreignMember.response
            case .unknownOrder: return Self.unknownOrder.response
            }
        }
    }

    /// Exactly the two bytes `OK`: no newline, no BOM (the document: 输出“OK”).
    static var acknowledgement: Response {
        Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "OK")))
    }
}

/// Builds the router of the daemon's HTTP endpoints: `POST /notify`, `GET /pay/{orderId}`, `GET|POST /return`,
/// `GET /healthz` and `GET /metrics`.
public func buildLedgerRouter(
    ledger: Ledger,
    limits: HTTPLimits,
    metrics: LedgerMetrics,
    health: HealthState,
    logger: Logger
) -> Router<LedgerRequestContext> {
    let router = Router(context: LedgerRequestContext.self)
    let rejectLog = RateLimitedLog(perMinute: limits.rejectLogPerMinute)
    // Every refusal is counted (`ledger_callbacks_rejected_total`); the log lines are rate-limited
    // (`limits.http.rejectLogPerMinute`), so a flood of bad bodies cannot flood the log.
    let logRefusal: @Sendable (_ reason: String, _ remote: String) -> Void = { reason, remote in
        let (log, suppressed) = rejectLog.admit()
        guard log else { return }
        logger.warning(
            "refused a body that is not a notification",
            metadata: ["reason": "\(reason)", "remote": "\(remote)", "suppressed": "\(suppressed)"]
        )
    }

    router.post("/notify") { request, context -> Response in
        // A body announced larger than the bound is refused before any of it is read, so the client hears 413 at
        // once instead of sending (or pretending to send) the whole body first.
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > limits.form.bodyBytesMax {
            metrics.notificationRejected()
            logRefusal("a declared body of \(declared) bytes, over limits.notify.bodyBytesMax (\(limits.form.bodyBytesMax))", "\(context.remoteAddress)")
            return NotifyReply.tooLarge.response
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limits.form.bodyBytesMax)
        } catch is NIOTooManyBytesError {
            // Any other failure means the body never arrived whole (the client went away, or
            // limits.http.requestTimeoutMs cut it off and closed the connection): it is thrown, not counted as
            // a refused body, and there is no one left to answer.
            metrics.notificationRejected()
            logRefusal("a body over limits.notify.bodyBytesMax (\(limits.form.bodyBytesMax) bytes)", "\(context.remoteAddress)")
            return NotifyReply.tooLarge.response
        }
        let receipt: NotificationReceipt
        do {
            receipt = try await ledger.recordNotification(body: Array(buffer: body), remoteAddress: context.remoteAddress)
        } catch {
            // Not stored, so not acknowledged: the gateway sends it again.
            logger.error("notification not recorded", metadata: ["error": "\(error)", "remote": "\(context.remoteAddress)"])
            return NotifyReply.unavailable.response
        }
        if case .rejected(let rejection) = receipt { logRefusal("\(rejection)", "\(context.remoteAddress)") }
        return NotifyReply.answer(receipt)
    }

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
        if let store = ledger.store as? any CommitBatchReporting { metrics.commitBatchSizes(store.takeCommitBatchSizes()) }
        if let status = try? await ledger.store.quarantineStatus() { metrics.quarantineStatus(status) }
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; version=0.0.4"],
            body: .init(byteBuffer: ByteBuffer(string: metrics.render()))
        )
    }
    return router
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
