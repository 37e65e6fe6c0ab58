import HTTPTypes
import LedgerCore
import Logging
import NIOCore
import NIOHTTPTypes
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `POST /notify`: what the endpoint needs, and the decisions both of its steps share: the bound on the body, the
/// answer to each receipt, and the rate-limited log lines about refusals.
struct NotifyEndpoint: Sendable {
    let ledger: Ledger
    let limits: HTTPLimits
    let metrics: LedgerMetrics
    let refusalLog: RateLimitedLog
    let trustedProxies: TrustedProxies
    let logger: Logger

    /// The pattern `ledger_http_requests_total` counts the endpoint's answers under.
    static let route = "/notify"

    /// Every refusal is counted (`ledger_notifications_refused_total`); the log lines are rate-limited
    /// (`limits.http.rejectLogPerMinute`), so a flood of bad bodies cannot flood the log.
    func logRefusal(_ reason: String, remote: String) {
        self.refusalLog.warning("refused a body that is not a notification") {
            ["reason": "\(reason)", "remote": "\(remote)"]
        }
    }

    /// A body over `limits.notify.bodyBytesMax`, announced (`declared`, refused before any of it is read) or read.
    func refuseTooLarge(declared: Int?, remote: String) -> NotifyReply {
        self.metrics.notificationRejected(.tooLarge)
        let bound = self.limits.form.bodyBytesMax
        if let declared {
            self.logRefusal(
                "a declared body of \(declared) bytes, over limits.notify.bodyBytesMax (\(bound))",
                remote: remote
            )
        } else {
            self.logRefusal("a body over limits.notify.bodyBytesMax (\(bound) bytes)", remote: remote)
        }
        return .tooLarge
    }

    /// The answer to a notification the ledger took (`nil`: `OK`), with the log line its refusal calls for.
    func reply(to result: Result<NotificationReceipt, any Error>, body: [UInt8], remote: String) -> NotifyReply? {
        let receipt: NotificationReceipt
        switch result {
        case .success(let taken):
            receipt = taken
        case .failure(let error):
            // Not stored, so not acknowledged: the gateway sends it again.
            self.logger.error(
                "notification not recorded",
                metadata: ["error": "\(String(reflecting: error))", "remote": "\(remote)"]
            )
            return .unavailable
        }
        switch receipt {
        case .rejected(let rejection):
            self.logRefusal("\(rejection)", remote: remote)
        case .quarantined(let reason, let id):
            // A live 403 is what an operator sees when the gateway and the daemon disagree on the signing
            // dialect: the line says which setting would accept the signature, as `ledgerctl sign --verify` does.
            let ledger = self.ledger
            self.refusalLog.warning("refused a notification the gateway did not vouch for") {
                let (diagnosis, explanation) = ledger.unvouchedDiagnosis(body: body)
                var metadata: Logger.Metadata = [
                    "reason": "\(reason.rawValue)", "remote": "\(remote)", "quarantine.id": "\(id)",
                    "signature.diagnosis": "\(diagnosis)",
                ]
                if !explanation.isEmpty { metadata["signature.explanation"] = "\(explanation)" }
                return metadata
            }
        case .recorded:
            break
        }
        return NotifyReply.refusal(for: receipt)
    }
}

/// Serves `POST /notify` on the connection's event loop, between Hummingbird's connection-state handler and its
/// request handling: the body is collected here, the ledger's intake runs here, and the append goes straight to the
/// store's writer, whose commit is answered back on this loop. A callback therefore costs two thread hops (to the
/// writer and back) instead of four, and no task, logger or request context is made for it. Every other request
/// passes on to Hummingbird's router untouched.
///
/// HTTP/1.1 answers a connection's requests in the order they came. So while a notification is being answered,
/// later requests wait; and a notification that arrives while Hummingbird still owes an earlier request its answer
/// waits until that answer has ended. They wait in `NotifyGateHandler`, in front of the request deadline and
/// Hummingbird's connection-state handler, so a request held by the daemon is not yet one the client is late with
/// or one the connection is idle on; and the socket is not read while anything waits, nor while the client leaves
/// its answers unread (backpressure, not refusal). Graceful shutdown, the idle timeout and the request deadline are
/// the handlers in front of this one, which see its requests and answers like any others.
final class NotifyHTTPHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// What the request being read is.
    private enum Reading {
        /// Between requests.
        case idle
        /// A request Hummingbird serves: its parts go on.
        case passing
        /// A notification: its body is collected.
        case collecting(Notification)
        /// A notification answered before its end (its body is too large): the rest of it is dropped.
        case discarding
    }

    private struct Notification {
        var body: ByteBuffer?
        let remote: String
        let closeAfter: Bool
    }

    private let endpoint: NotifyEndpoint
    private let deadline: RequestDeadline
    private var reading = Reading.idle
    /// Requests handed on to Hummingbird whose answer has not ended.
    private var passedUnanswered = 0
    /// A notification read whole, its answer not yet written.
    private var answering = false
    /// This handler's context, for answers written when a commit completes.
    private var context: ChannelHandlerContext?
    /// The TCP peer as the ledger records it, made once per connection.
    private var peerDescription: String?

    // The gate's state: what waits in front of the deadline and connection-state handlers.
    /// The gate's context: held parts go on from there, through the handlers between it and this one.
    private var gate: ChannelHandlerContext?
    /// Parts that arrived while an answer owed before theirs is pending, in order.
    private var held = CircularBuffer<HTTPRequestPart>()
    /// An error or the end of the client's input that arrived behind held parts: passed on after them.
    private var heldError: (any Error)?
    private var heldInputClosed = false
    /// A read asked for while the gate holds: made once nothing waits and the channel is writable.
    private var readHeld = false

    init(endpoint: NotifyEndpoint, deadline: RequestDeadline) {
        self.endpoint = endpoint
        self.deadline = deadline
    }

    /// The handler to put in front of the request deadline's handler.
    func makeGate() -> NotifyGateHandler { NotifyGateHandler(owner: self) }

    /// Whether a request head is `POST /notify`, with or without a query. The path is compared as bytes, segment by
    /// segment, with empty segments skipped as Hummingbird's router skips them (`//notify` and `/notify/` are the
    /// endpoint, as they were when the router served it).
    static func isNotify(_ head: HTTPRequest) -> Bool {
        guard head.method == .post, let path = head.path else { return false }
        let bytes = path.utf8
        let end = bytes.firstIndex(of: UInt8(ascii: "?")) ?? bytes.endIndex
        let segments = bytes[bytes.startIndex..<end].split(separator: UInt8(ascii: "/"))
        return segments.count == 1 && segments[0].elementsEqual("notify".utf8)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.gate = nil
        self.held.removeAll()
    }

    // MARK: The gate

    /// Whether `part` must wait for an answer still owed to an earlier request: any part while this handler answers,
    /// and a notification while Hummingbird does.
    private func mustWait(_ part: HTTPRequestPart) -> Bool {
        if self.answering { return true }
        if case .head(let head) = part, self.passedUnanswered > 0, Self.isNotify(head) { return true }
        return false
    }

    fileprivate func gateAdded(_ context: ChannelHandlerContext) {
        self.gate = context
    }

    fileprivate func gateRead(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        guard self.held.isEmpty && !self.mustWait(part) else {
            self.held.append(part)
            self.deadline.pause()
            return
        }
        context.fireChannelRead(NIOAny(part))
    }

    /// An error, or the client's end of input (a half-close), waits behind whatever is held or being answered:
    /// Hummingbird ends the connection on either, and the answers owed before it must be written first.
    fileprivate func gateEvent(error: (any Error)?, inputClosed: Bool, context: ChannelHandlerContext) {
        guard self.held.isEmpty && !self.answering else {
            if let error, self.heldError == nil { self.heldError = error }
            if inputClosed { self.heldInputClosed = true }
            return
        }
        if let error { context.fireErrorCaught(error) }
        if inputClosed { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
    }

    /// A read goes on while an answer is only being awaited: the socket stays registered for reading, instead of
    /// being taken off and put back (two `epoll_ctl` calls) around every notification. What that read brings is held
    /// behind the answer, so at most one read's worth of parts waits before reads stop. The request deadline stays
    /// paused until the answer is written: the next request's bytes may come while the daemon owes the answer, and
    /// the client is not late while it waits for it.
    fileprivate func gateWantsRead(_ context: ChannelHandlerContext) {
        guard self.held.isEmpty && context.channel.isWritable else {
            self.readHeld = true
            self.deadline.pause()
            return
        }
        if self.answering { self.deadline.pause() }
        context.read()
    }

    /// Set while `release` runs: a part it lets go may be answered at once (a refusal) and ask for release again;
    /// the running loop takes the next part instead, so many held refusals cannot nest calls without bound.
    private var releasing = false

    /// Lets waiting parts go in order, until one must wait again; then the held error or end of input, and the held
    /// read once the client has room for answers; then the request deadline runs again.
    func release() {
        guard !self.releasing, let gate = self.gate else { return }
        self.releasing = true
        defer { self.releasing = false }
        var passed = false
        while let part = self.held.first, !self.mustWait(part) {
            self.held.removeFirst()
            gate.fireChannelRead(NIOAny(part))
            passed = true
            // The part may have closed the connection (an answer with `Connection: close`).
            if self.gate == nil { return }
        }
        // Hummingbird's channel hands on what it read when the read completes.
        if passed { gate.fireChannelReadComplete() }
        guard self.held.isEmpty && !self.answering else { return }
        if self.heldError != nil || self.heldInputClosed {
            let (error, inputClosed) = (self.heldError, self.heldInputClosed)
            (self.heldError, self.heldInputClosed) = (nil, false)
            if let error { gate.fireErrorCaught(error) }
            if inputClosed { gate.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
        }
        if self.readHeld {
            guard gate.channel.isWritable else { return }
            self.readHeld = false
            gate.read()
        }
        self.deadline.resume(on: gate.eventLoop)
    }

    // MARK: Requests

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.take(Self.unwrapInboundIn(data), context: context)
    }

    /// Handles one part in its turn (the gate let it through).
    private func take(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch (self.reading, part) {
        case (.idle, .head(let head)):
            guard Self.isNotify(head) else {
                self.passedUnanswered += 1
                self.reading = .passing
                context.fireChannelRead(Self.wrapInboundOut(part))
                return
            }
            self.start(head, context: context)
        case (.passing, .end):
            self.reading = .idle
            context.fireChannelRead(Self.wrapInboundOut(part))
        case (.passing, _), (.idle, .body), (.idle, .end):
            // A stray body or end with no head is Hummingbird's to refuse, as it would without this handler.
            context.fireChannelRead(Self.wrapInboundOut(part))
        case (.collecting(var notification), .body(let chunk)):
            let bound = self.endpoint.limits.form.bodyBytesMax
            let size = (notification.body?.readableBytes ?? 0) + chunk.readableBytes
            guard size <= bound else {
                self.reading = .discarding
                let reply = self.endpoint.refuseTooLarge(declared: nil, remote: notification.remote)
                self.respond(reply, closeAfter: notification.closeAfter, context: context)
                return
            }
            if notification.body == nil {
                notification.body = chunk
            } else {
                var chunk = chunk
                notification.body!.writeBuffer(&chunk)
            }
            self.reading = .collecting(notification)
        case (.collecting(let notification), .end):
            self.reading = .idle
            self.submit(notification, context: context)
        case (.discarding, .body):
            break
        case (.discarding, .end):
            self.reading = .idle
        case (.collecting, .head), (.discarding, .head):
            // The codec never starts a request inside another; if it did, the connection is not HTTP any more.
            context.close(promise: nil)
        }
    }

    /// A notification's head: refused at once when it announces a body over the bound, else its body is collected.
    private func start(_ head: HTTPRequest, context: ChannelHandlerContext) {
        let remote = self.remoteAddress(head, context: context)
        let closeAfter = head.headerFields[.connection].map { Self.isClose($0) } ?? false
        let bound = self.endpoint.limits.form.bodyBytesMax
        if let declared = head.headerFields[.contentLength].flatMap({ Int($0) }), declared > bound {
            // Refused before any of the body is read, so the client hears 413 at once instead of sending (or
            // pretending to send) the whole body first; the body that does come is dropped.
            self.reading = .discarding
            let reply = self.endpoint.refuseTooLarge(declared: declared, remote: remote)
            self.respond(reply, closeAfter: closeAfter, context: context)
            return
        }
        self.reading = .collecting(Notification(body: nil, remote: remote, closeAfter: closeAfter))
    }

    /// Hands a whole notification to the ledger; its answer is written when the ledger's future completes here.
    private func submit(_ notification: Notification, context: ChannelHandlerContext) {
        self.answering = true
        let body = notification.body.map { Array(buffer: $0) } ?? []
        let endpoint = self.endpoint
        endpoint.ledger.recordNotification(body: body, remoteAddress: notification.remote, on: context.eventLoop)
            .assumeIsolated()
            .whenComplete { result in
                let reply = endpoint.reply(to: result, body: body, remote: notification.remote)
                self.answering = false
                guard let context = self.context else { return }
                self.respond(reply, closeAfter: notification.closeAfter, context: context)
                if !notification.closeAfter { self.release() }
            }
    }

    /// The client: the TCP peer, or behind a trusted proxy (`http.trustedProxies`) the address it forwarded.
    private func remoteAddress(_ head: HTTPRequest, context: ChannelHandlerContext) -> String {
        let peer = context.channel.remoteAddress
        let described = self.peerDescription ?? LedgerRequestContext.describe(peer)
        self.peerDescription = described
        guard !self.endpoint.trustedProxies.isEmpty else { return described }
        let forwardedFor = head.headerFields[values: ClientAddressMiddleware.forwardedFor]
        return self.endpoint.trustedProxies.clientAddress(
            peer: peer,
            described: described,
            forwardedFor: forwardedFor,
            metrics: self.endpoint.metrics
        )
    }

    /// `Connection: close`, in any case: the connection closes once the answer is written, as Hummingbird does.
    static func isClose(_ value: String) -> Bool {
        value.utf8.count == 5 && zip(value.utf8, "close".utf8).allSatisfy { $0 | 0x20 == $1 }
    }

    // MARK: Answers

    /// Hummingbird's answers pass here; the end of the last one owed lets a held notification go.
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
        guard case .end = Self.unwrapOutboundIn(data) else { return }
        self.passedUnanswered = max(0, self.passedUnanswered - 1)
        if self.passedUnanswered == 0 && !self.held.isEmpty {
            // After the write has gone on its way, not inside it.
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.execute { bound.value.release() }
        }
    }

    private static let acknowledgementFields = fields(
        contentType: NotifyReply.acknowledgementContentType,
        contentLength: NotifyReply.acknowledgementBody.readableBytes
    )

    private static func fields(contentType: String, contentLength: Int) -> HTTPFields {
        var fields = HTTPFields()
        fields.reserveCapacity(5)
        fields[.contentType] = contentType
        fields[.contentLength] = String(contentLength)
        fields[.server] = NotifyReply.serverName
        return fields
    }

    /// Writes one answer: `OK`, or the refusal's status and body.
    private func respond(_ reply: NotifyReply?, closeAfter: Bool, context: ChannelHandlerContext) {
        let (status, contentType, body) =
            reply.map { ($0.status, NotifyReply.contentType, $0.body) } ?? (
                .ok, NotifyReply.acknowledgementContentType, NotifyReply.acknowledgementBody
            )
        // The acknowledgement's fields are made once; only the date (and a close) is added to each answer.
        var fields =
            reply == nil
            ? Self.acknowledgementFields
            : Self.fields(contentType: contentType, contentLength: body.readableBytes)
        fields[.date] = HTTPDate.shared.now()
        if closeAfter { fields[.connection] = "close" }
        context.write(Self.wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: fields))), promise: nil)
        context.write(Self.wrapOutboundOut(.body(body)), promise: nil)
        self.endpoint.metrics.httpRequest(route: NotifyEndpoint.route, status: status.code)
        guard closeAfter else {
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
            return
        }
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).whenComplete { _ in
            bound.value.close(promise: nil)
        }
    }
}

/// The front half of `NotifyHTTPHandler`: right behind the HTTP codec, in front of the request deadline and the
/// connection-state handler, it holds the requests (and the reads) that must wait for an earlier answer, so those
/// handlers see a request only when the daemon takes it up. Its owner decides what waits.
final class NotifyGateHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let owner: NotifyHTTPHandler

    fileprivate init(owner: NotifyHTTPHandler) {
        self.owner = owner
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.owner.gateAdded(context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.owner.gateRead(Self.unwrapInboundIn(data), context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.owner.gateEvent(error: error, inputClosed: false, context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case .some(ChannelEvent.inputClosed) = event as? ChannelEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        self.owner.gateEvent(error: nil, inputClosed: true, context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        context.fireChannelWritabilityChanged()
        // The client read its answers: a read held for want of room may go now.
        if context.channel.isWritable { self.owner.release() }
    }

    func read(context: ChannelHandlerContext) {
        self.owner.gateWantsRead(context)
    }
}

/// The `Date` header's value (RFC 9110's IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`), formatted once a second.
final class HTTPDate: Sendable {
    static let shared = HTTPDate()

    private let cached = Mutex<(second: Int, text: String)>((-1, ""))

    func now() -> String {
        var seconds = time(nil)
        return self.cached.withLock { cached in
            if cached.second != seconds {
                cached = (seconds, Self.format(&seconds))
            }
            return cached.text
        }
    }

    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func format(_ seconds: inout time_t) -> String {
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(Self.days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(Self.months[Int(parts.tm_mon)]) "
            + "\(parts.tm_year + 1900) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
