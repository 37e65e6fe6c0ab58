import HTTPTypes
public import HummingbirdCore
public import Logging
public import NIOCore
import NIOHTTPTypes
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The HTTP server's connection bounds, shared by every connection: `limits.http.connectionsMax` in all and
/// `limits.http.connectionsPerAddressMax` from one remote address.
///
/// The server's accept loop asks `isAccepting` before it accepts more (Hummingbird's available-connections
/// handler), and counts each accepted connection as undecided until the connection's setup decides it: a
/// connection over its address's bound is closed there at once and never counts as open, so one address cannot
/// take the slots that other clients need.
final class HTTPConnectionBudget: Sendable {
    /// An address as the per-address bound groups it: an IPv4 address, or an IPv6 /64 (one subscriber's
    /// allocation, so a host cannot multiply its share by using more of its own addresses).
    struct AddressKey: Hashable, Sendable {
        var bytes: [UInt8]

        init(_ address: SocketAddress?) {
            switch address {
            case .v4:
                self.bytes = Self.binary(address?.ipAddress, family: AF_INET, length: 4)
            case .v6:
                let all = Self.binary(address?.ipAddress, family: AF_INET6, length: 16)
                // An IPv4 client on a dual-stack socket (::ffff:a.b.c.d) is its IPv4 address.
                let mapped: [UInt8] = Array(repeating: 0, count: 10) + [0xff, 0xff]
                self.bytes = all.count == 16 && Array(all[..<12]) == mapped ? Array(all[12...]) : Array(all.prefix(8))
            case .unixDomainSocket, nil:
                self.bytes = []
            }
        }

        /// The address in network byte order (inet_pton(3)); empty if it does not parse, which groups such
        /// peers together rather than letting them escape the bound.
        private static func binary(_ text: String?, family: Int32, length: Int) -> [UInt8] {
            guard let text else { return [] }
            var bytes = [UInt8](repeating: 0, count: length)
            let parsed = bytes.withUnsafeMutableBytes { inet_pton(family, text, $0.baseAddress) }
            return parsed == 1 ? bytes : []
        }
    }

    private struct State {
        var undecided = 0
        var open = 0
        var perAddress: [AddressKey: Int] = [:]
    }

    let connectionsMax: Int
    let perAddressMax: Int
    private let state = Mutex(State())

    init(connectionsMax: Int, perAddressMax: Int) {
        self.connectionsMax = connectionsMax
        self.perAddressMax = perAddressMax
    }

    var isAccepting: Bool { self.state.withLock { $0.undecided + $0.open < self.connectionsMax } }

    /// Open connections, for tests and metrics.
    var openCount: Int { self.state.withLock { $0.open } }

    /// The accept loop took a connection; its setup decides it next.
    func accepted() { self.state.withLock { $0.undecided += 1 } }

    /// Decides an accepted connection: its key when it may stay open (release it when it closes), nil when its
    /// address already holds `perAddressMax` connections.
    func admit(_ address: SocketAddress?) -> AddressKey? {
        let key = AddressKey(address)
        return self.state.withLock { state -> AddressKey? in
            state.undecided = max(0, state.undecided - 1)
            let held = state.perAddress[key, default: 0]
            guard held < self.perAddressMax else { return nil }
            state.perAddress[key] = held + 1
            state.open += 1
            return key
        }
    }

    /// An admitted connection closed.
    func release(_ key: AddressKey) {
        self.state.withLock { state in
            state.open -= 1
            let held = state.perAddress[key, default: 1] - 1
            state.perAddress[key] = held > 0 ? held : nil
        }
    }

    /// What Hummingbird's accept loop consults: it counts through the budget, which the connections' setup
    /// completes.
    struct Delegate: AvailableConnectionsDelegate {
        let budget: HTTPConnectionBudget

        mutating func connectionOpened() { self.budget.accepted() }
        // An admitted connection is released by its own pipeline (`RequestStartHandler`), before the accept loop
        // hears of the close, so the loop sees the freed slot when it asks.
        mutating func connectionClosed() {}
        func isAcceptingNewConnections() -> Bool { self.budget.isAccepting }
    }
}

/// The daemon's HTTP/1.1 child channel: Hummingbird's, with the per-address admission and the whole-request
/// deadline (`limits.http.requestTimeoutMs`) around it, and on a public listener `POST /notify` served in front of
/// Hummingbird's request handling.
struct LedgerHTTPChannel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let http: HTTP1Channel
    let budget: HTTPConnectionBudget
    let requestTimeout: TimeAmount
    /// The notify endpoint, on a listener that serves it.
    let notify: NotifyEndpoint?
    let logger: Logger

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        guard let key = self.budget.admit(channel.remoteAddress) else {
            // Closed before anything is read or written: the address already holds its share of connections.
            self.logger.debug(
                "connection refused: too many from one address",
                metadata: ["remote": "\(LedgerRequestContext.describe(channel.remoteAddress))"]
            )
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(ConnectionRefused())
        }
        let deadline = RequestDeadline(timeout: self.requestTimeout)
        do {
            try channel.pipeline.syncOperations.addHandler(
                RequestStartHandler(deadline: deadline, budget: self.budget, key: key),
                position: .first
            )
        } catch {
            self.budget.release(key)
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(error)
        }
        // Setup runs on the connection's event loop, and so does what follows it here.
        return self.http.setup(channel: channel, logger: logger).assumeIsolated().flatMapThrowing { value in
            // Between the HTTP codec and Hummingbird's connection-state handler, where whole requests and
            // responses pass.
            let pipeline = channel.pipeline.syncOperations
            let state = try pipeline.handler(type: HTTPConnectionStateHandler.self)
            let deadlineHandler = RequestDeadlineHandler(deadline: deadline)
            try pipeline.addHandler(deadlineHandler, position: .before(state))
            if let notify = self.notify {
                // Behind the connection-state handler, so graceful shutdown and the idle timeout count its
                // requests and answers like Hummingbird's; its gate in front of the deadline.
                let handler = NotifyHTTPHandler(endpoint: notify, deadline: deadline)
                try pipeline.addHandler(handler, position: .after(state))
                try pipeline.addHandler(handler.makeGate(), position: .before(deadlineHandler))
            }
            return value
        }.nonisolated()
    }

    func handle(value: Value, logger: Logger) async {
        await self.http.handle(value: value, logger: logger)
    }

    struct ConnectionRefused: Error {}
}

/// Whether the request a connection is reading has outlived `limits.http.requestTimeoutMs`: a value-type state
/// machine over what the connection reads and writes, which the two handlers below feed and carry out.
struct RequestDeadlineState {
    enum Arm: Equatable {
        case none
        /// Start the deadline now.
        case arm
        /// The request is read: stop the deadline.
        case disarm
    }

    enum Expiry: Equatable {
        /// Nothing is being read; the timer is stale.
        case none
        /// The request in progress has no answer, and none is owed to an earlier one: answer 408, then close.
        case answerThenClose
        /// Close without writing (an answer is already under way).
        case close
    }

    /// A request's bytes have started and its end has not been read.
    private(set) var reading = false
    /// The request being read has been parsed up to its head.
    private var headRead = false
    /// Requests whose head was read and whose response has not started.
    private var unanswered = 0

    /// Bytes arrived: the first of a request starts its deadline.
    mutating func bytesArrived() -> Arm {
        guard !self.reading else { return .none }
        self.reading = true
        self.headRead = false
        return .arm
    }

    /// A request head was parsed. A head that arrived in the same read as the previous request's end starts
    /// its deadline here.
    mutating func headParsed() -> Arm {
        self.unanswered += 1
        defer { self.headRead = true }
        guard !self.reading else { return .none }
        self.reading = true
        return .arm
    }

    mutating func endParsed() -> Arm {
        self.reading = false
        self.headRead = false
        return .disarm
    }

    mutating func responseStarted() {
        self.unanswered = max(0, self.unanswered - 1)
    }

    func expired() -> Expiry {
        guard self.reading else { return .none }
        // A 408 is only written where it answers the request in progress: with no earlier answer still owed,
        // and none already started for this one.
        let owed = self.headRead ? 1 : 0
        return self.unanswered == owed ? .answerThenClose : .close
    }
}

/// One connection's request deadline, shared by the handler that sees its bytes and the one that sees its HTTP
/// parts. Both run on the connection's event loop.
final class RequestDeadline {
    let timeout: TimeAmount
    var state = RequestDeadlineState()
    /// The parts handler's context: the 408 is written there, between the codec and Hummingbird.
    var context: ChannelHandlerContext?
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    /// Set while the daemon itself holds the connection's requests or reads (`NotifyGateHandler`): the client cannot
    /// be late with bytes the daemon does not read, so the deadline does not run.
    private var paused = false

    func pause() {
        self.paused = true
        self.timer?.cancel()
        self.timer = nil
    }

    /// Reading again: a request under way gets its whole deadline from now.
    func resume(on loop: any EventLoop) {
        guard self.paused else { return }
        self.paused = false
        if self.state.reading { self.carryOut(.arm, on: loop) }
    }

    func carryOut(_ arm: RequestDeadlineState.Arm, on loop: any EventLoop) {
        switch arm {
        case .none:
            break
        case .arm:
            self.timer?.cancel()
            guard !self.paused else { return }
            self.timer = loop.assumeIsolated().scheduleTask(in: self.timeout) { self.fire() }
        case .disarm:
            self.timer?.cancel()
            self.timer = nil
        }
    }

    func cancel() {
        self.timer?.cancel()
        self.timer = nil
    }

    private func fire() {
        self.timer = nil
        guard let context = self.context else { return }
        switch self.state.expired() {
        case .none:
            break
        case .close:
            context.close(promise: nil)
        case .answerThenClose:
            guard context.channel.isActive, context.channel.isWritable else {
                context.close(promise: nil)
                return
            }
            let head = HTTPResponse(status: .requestTimeout, headerFields: [.connection: "close", .contentLength: "0"])
            context.write(NIOAny(HTTPResponsePart.head(head)), promise: nil)
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(NIOAny(HTTPResponsePart.end(nil))).whenComplete { _ in bound.value.close(promise: nil)
            }
        }
    }
}

/// First in the pipeline: the first bytes of a request start its deadline. Also gives the connection's slot back
/// to the budget when the connection goes.
final class RequestStartHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let deadline: RequestDeadline
    private let budget: HTTPConnectionBudget
    private var key: HTTPConnectionBudget.AddressKey?

    init(deadline: RequestDeadline, budget: HTTPConnectionBudget, key: HTTPConnectionBudget.AddressKey) {
        self.deadline = deadline
        self.budget = budget
        self.key = key
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.deadline.carryOut(self.deadline.state.bytesArrived(), on: context.eventLoop)
        context.fireChannelRead(data)
    }

    /// Called when the channel closes, before its close future completes (and so before the accept loop
    /// looks at the budget again).
    func handlerRemoved(context: ChannelHandlerContext) {
        self.deadline.cancel()
        if let key = self.key { self.budget.release(key) }
        self.key = nil
    }
}

/// Between the HTTP codec and Hummingbird: a request's head and end, and each response's start.
final class RequestDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let deadline: RequestDeadline

    init(deadline: RequestDeadline) {
        self.deadline = deadline
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.deadline.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.deadline.context = nil
        self.deadline.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head: self.deadline.carryOut(self.deadline.state.headParsed(), on: context.eventLoop)
        case .body: break
        case .end: self.deadline.carryOut(self.deadline.state.endParsed(), on: context.eventLoop)
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .head = Self.unwrapOutboundIn(data) { self.deadline.state.responseStarted() }
        context.write(data, promise: promise)
    }
}
