import LedgerCore
import Logging
import NIOCore

/// One control connection: parses each line as a JSON-RPC 2.0 request, runs it in its own task and writes the
/// answer back with the request's id. Everything here runs on the channel's event loop; the tasks only touch the
/// (thread-safe) channel and hop back to the loop to say they are done.
final class ControlConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ControlFrame
    typealias OutboundOut = ByteBuffer

    let methods: ControlMethods
    let settings: ControlSettings
    let logger: Logger
    private var tasks: [UInt64: Task<Void, Never>] = [:]
    private var nextTask: UInt64 = 0
    private var closed = false
    /// Set when the client shut down its write side: the connection closes once the requests in flight answered.
    private var inputClosed: ChannelHandlerContext?

    init(methods: ControlMethods, settings: ControlSettings, logger: Logger) {
        self.methods = methods
        self.settings = settings
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .tooLong:
            ControlRefusalHandler.answerAndClose(context: context, Self.response(id: .null, error: .lineTooLong(self.settings.lineBytesMax)))
        case .line(let buffer):
            if ControlRequest.isBlank(buffer.readableBytesView) { return }
            self.handle(buffer.readableBytesView, context: context)
        }
    }

    private func handle(_ bytes: ByteBufferView, context: ChannelHandlerContext) {
        let limits = JSONLimits(
            bytesMax: self.settings.lineBytesMax,
            depthMax: self.settings.jsonDepthMax,
            stringBytesMax: self.settings.lineBytesMax,
            membersMax: 10_000
        )
        let parsed: ControlRequest
        switch ControlRequest.parse(bytes, limits: limits) {
        case .success(let request): parsed = request
        case .failure(.notJSON(let error)):
            self.write(Self.response(id: .null, error: .parseError("The request is not valid JSON: \(error.description)")), context: context)
            return
        case .failure(.invalid(let id, let message)):
            self.write(Self.response(id: id, error: .invalidRequest(message)), context: context)
            return
        }
        guard self.tasks.count < self.settings.requestsInFlightMax else {
            self.write(Self.response(id: parsed.id ?? .null, error: .tooManyRequests(self.settings.requestsInFlightMax)), context: context)
            return
        }
        let channel = context.channel
        let methods = self.methods
        let taskId = self.nextTask
        self.nextTask += 1
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let notify: ControlNotify = { method, params in
            let message: JSONValue = .object(["jsonrpc": "2.0", "method": .string(method), "params": params])
            channel.writeAndFlush(Self.encode(message), promise: nil)
        }
        let id = parsed.id
        let method = parsed.method
        let params = parsed.params
        let done: @Sendable () -> Void = { channel.eventLoop.execute { bound.value.finished(taskId) } }
        let task = Self.start(id: id, method: method, params: params, methods: methods, channel: channel, notify: notify, done: done)
        self.tasks[taskId] = task
    }

    private static func start(
        id: JSONValue?,
        method: String,
        params: JSONValue?,
        methods: ControlMethods,
        channel: any Channel,
        notify: @escaping ControlNotify,
        done: @escaping @Sendable () -> Void
    ) -> Task<Void, Never> {
        Task {
            await Self.serve(id: id, method: method, params: params, methods: methods, channel: channel, notify: notify)
            done()
        }
    }

    /// Runs one request and writes its answer; a notification (no id) gets no answer, not even an error
    /// (JSON-RPC 2.0 §4.1).
    private static func serve(
        id: JSONValue?,
        method: String,
        params: JSONValue?,
        methods: ControlMethods,
        channel: any Channel,
        notify: @escaping ControlNotify
    ) async {
        let answer: ControlAnswer
        do {
            answer = try await methods.call(method, params, notify: notify)
        } catch {
            if let id { channel.writeAndFlush(Self.encode(Self.response(id: id, error: ControlError.from(error))), promise: nil) }
            return
        }
        if let id {
            channel.writeAndFlush(Self.encode(.object(["jsonrpc": "2.0", "id": id, "result": answer.result])), promise: nil)
        }
        await answer.after?()
    }

    private func finished(_ taskId: UInt64) {
        self.tasks[taskId] = nil
        if self.tasks.isEmpty, let context = self.inputClosed { context.close(promise: nil) }
    }

    static func response(id: JSONValue, error: ControlError) -> JSONValue {
        .object(["jsonrpc": "2.0", "id": id, "error": error.json])
    }

    static func encode(_ message: JSONValue) -> ByteBuffer {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256)
        JSONWriter.write(message, into: &bytes)
        bytes.append(UInt8(ascii: "\n"))
        return ByteBuffer(bytes: bytes)
    }

    private func write(_ message: JSONValue, context: ChannelHandlerContext) {
        context.writeAndFlush(Self.wrapOutboundOut(Self.encode(message)), promise: nil)
    }

    /// A client that stops reading lets our output pile up: once it passes `control.writeBufferBytesMax` the
    /// connection is dropped, so one stuck client cannot grow the daemon's memory.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if !context.channel.isWritable {
            self.logger.warning(
                "control client dropped: it does not read its answers",
                metadata: ["control.writeBufferBytesMax": "\(self.settings.writeBufferBytesMax)"]
            )
            context.close(promise: nil)
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            // A subscriber or a long rebuild is legitimately quiet; only a connection with nothing running idles.
            if self.tasks.isEmpty { context.close(promise: nil) }
            return
        }
        if case ChannelEvent.inputClosed = event {
            // The line framer has already passed on a last line without its newline; answer what is running,
            // then close.
            self.inputClosed = context
            if self.tasks.isEmpty { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        for task in self.tasks.values { task.cancel() }
        self.tasks.removeAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.logger.debug("control connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}
