import LedgerControlProtocol
import LedgerCore
import LedgerStore
import Logging
import NIOCore
import NIOPosix

/// One control connection: parses each line as a JSON-RPC 2.0 request, runs it in its own task and writes the
/// answer back with the request's id. Everything here runs on the channel's event loop; the tasks only touch the
/// (thread-safe) channel and hop back to the loop to say they are done.
///
/// `order.history` and `order.get` on a store whose reads block (LMDB) take a shorter way: the read and the
/// answer's encoding run right here, on the connection's event loop, which is one of the control socket's own
/// (`control.threads`), never HTTP's nor the cooperative pool (a blocked thread there is half this machine's
/// async capacity). A call then wakes one thread of the daemon, not three (the loop, a pool thread and the loop
/// again), and a read holds up only the control connections that share its loop.
///
/// Backpressure, not refusal: with `control.requestsInFlightMax` requests running, further lines wait here and the
/// connection is not read until answers drain; the same while the output waiting for the client is over the
/// write buffer's high-water mark, which also keeps the lines already read from being answered until it drains.
/// Only a client whose unwritten output grows past `control.writeBufferBytesMax` beyond the message being written
/// is dropped, as one that does not read.
final class ControlConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ControlFrame
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let methods: ControlMethods
    let settings: ControlSettings
    let logger: Logger
    private var tasks: [UInt64: Task<Void, Never>] = [:]
    /// The store's blocking reads, once it has them. A store handle opens once and keeps its store until it
    /// closes (after which the reads answer that it is closed), so the connection asks the handle, behind its
    /// lock, only until the answer is yes: with a thread per busy client, that lock was contended on every call.
    private var blockingReads: (any BlockingOrderReads)?
    private var nextTask: UInt64 = 0
    private var closed = false
    /// Set when the client shut down its write side: the connection closes once the requests in flight answered.
    private var inputClosed: ChannelHandlerContext?
    private var context: ChannelHandlerContext?
    /// Lines read while `requestsInFlightMax` requests ran, in order. Reading stops while any wait, so they are at
    /// most what one read of the socket brought in.
    private var waiting = CircularBuffer<ByteBuffer>()
    /// A read the channel asked for while input was held back.
    private var readHeld = false
    /// The sizes of the messages written and not yet handed to the socket, oldest first, and their sum.
    private var unwritten = CircularBuffer<Int>()
    private var unwrittenBytes = 0

    init(methods: ControlMethods, settings: ControlSettings, logger: Logger) {
        self.methods = methods
        self.settings = settings
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .tooLong:
            ControlRefusalHandler.answerAndClose(
                context: context,
                Self.response(id: .null, error: .lineTooLong(self.settings.lineBytesMax))
            )
        case .line(let buffer):
            if ControlRequest.isBlank(buffer.readableBytesView) { return }
            if !self.waiting.isEmpty || self.inFlight >= self.settings.requestsInFlightMax
                || !context.channel.isWritable
            {
                self.waiting.append(buffer)
                return
            }
            self.handle(buffer.readableBytesView, context: context)
        }
    }

    /// Requests running: the tasks (reads answered inline are done before the next line is looked at).
    private var inFlight: Int { self.tasks.count }

    /// Whether the connection's input waits: requests are queued, or answers are backed up.
    private func holdsInput(_ context: ChannelHandlerContext) -> Bool {
        !self.waiting.isEmpty || self.inFlight >= self.settings.requestsInFlightMax || !context.channel.isWritable
    }

    func read(context: ChannelHandlerContext) {
        if self.holdsInput(context) {
            self.readHeld = true
            return
        }
        context.read()
    }

    /// Starts waiting requests as slots free up and the output drains, then reads again once nothing is held back.
    private func resume(_ context: ChannelHandlerContext) {
        while self.inFlight < self.settings.requestsInFlightMax, context.channel.isWritable,
            let line = self.waiting.popFirst()
        {
            self.handle(line.readableBytesView, context: context)
        }
        if self.readHeld, !self.holdsInput(context) {
            self.readHeld = false
            context.read()
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        self.send(Self.unwrapOutboundIn(data), context: context, promise: promise)
    }

    /// Writes one message, counting it until the socket has taken it. The client is dropped as one that does not
    /// read when what waits behind the oldest unwritten message passes `control.writeBufferBytesMax`: one large
    /// answer is never enough.
    private func send(_ buffer: ByteBuffer, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        let size = buffer.readableBytes
        self.unwritten.append(size)
        self.unwrittenBytes += size
        let written = promise ?? context.eventLoop.makePromise(of: Void.self)
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        // Writes complete in the order they were made, so the oldest counted message is the one done.
        written.futureResult.whenComplete { _ in
            let handler = bound.value
            if let done = handler.unwritten.popFirst() { handler.unwrittenBytes -= done }
        }
        context.writeAndFlush(Self.wrapOutboundOut(buffer), promise: written)
        if self.unwrittenBytes - (self.unwritten.first ?? 0) > self.settings.writeBufferBytesMax {
            self.logger.warning(
                "control client dropped: it does not read its answers",
                metadata: ["control.writeBufferBytesMax": "\(self.settings.writeBufferBytesMax)"]
            )
            context.close(promise: nil)
        }
    }

    private func handle(_ bytes: ByteBufferView, context: ChannelHandlerContext) {
        let limits = JSONLimits(
            bytesMax: self.settings.lineBytesMax,
            depthMax: self.settings.jsonDepthMax,
            stringBytesMax: self.settings.lineBytesMax,
            membersMax: ControlLimits.jsonMembersMax
        )
        let parsed: ControlRequest
        switch ControlRequest.parse(bytes, limits: limits) {
        case .success(let request): parsed = request
        case .failure(.notJSON(let error)):
            self.write(
                Self.response(id: .null, error: .parseError("The request is not valid JSON: \(error.description)")),
                context: context
            )
            return
        case .failure(.invalid(let id, let message)):
            self.write(Self.response(id: id, error: .invalidRequest(message)), context: context)
            return
        }
        do throws(ControlError) {
            if let read = try ControlRead(method: parsed.method, params: parsed.params),
                let reads = self.blockingReads ?? (try? self.methods.blockingReads())
            {
                self.blockingReads = reads
                let allocator = context.channel.allocator
                if let answer = self.methods.answer(read, id: parsed.id, reads: reads, allocator: allocator) {
                    self.send(answer, context: context, promise: nil)
                }
                return
            }
        } catch {
            // Params that do not read: the -32602 answer the general path gives, and none to a notification.
            if let id = parsed.id { self.write(Self.response(id: id, error: error), context: context) }
            return
        }
        let channel = context.channel
        let methods = self.methods
        let taskId = self.nextTask
        self.nextTask += 1
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let notify: ControlNotify = { notification in
            channel.writeAndFlush(Self.encode(ControlEnvelope.notification(notification)), promise: nil)
        }
        let id = parsed.id
        let method = parsed.method
        let params = parsed.params
        let done: @Sendable () -> Void = { channel.eventLoop.execute { bound.value.finished(taskId) } }
        let task = Self.start(
            id: id,
            method: method,
            params: params,
            methods: methods,
            channel: channel,
            notify: notify,
            done: done
        )
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
            if let id {
                channel.writeAndFlush(Self.encode(Self.response(id: id, error: ControlError.from(error))), promise: nil)
            }
            return
        }
        if let id {
            channel.writeAndFlush(Self.encode(ControlEnvelope.response(id: id, result: answer.result)), promise: nil)
        }
        await answer.after?()
    }

    private func finished(_ taskId: UInt64) {
        self.tasks[taskId] = nil
        self.requestDone()
    }

    /// Starts what waits, and closes a half-closed connection once nothing runs.
    private func requestDone() {
        if let context = self.context { self.resume(context) }
        if self.inFlight == 0, self.waiting.isEmpty, let context = self.inputClosed { context.close(promise: nil) }
    }

    static func response(id: JSONValue, error: ControlError) -> JSONValue {
        ControlEnvelope.response(id: id, error: error)
    }

    static func encode(_ message: JSONValue) -> ByteBuffer {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256)
        JSONWriter.write(message, into: &bytes)
        bytes.append(UInt8(ascii: "\n"))
        return ByteBuffer(bytes: bytes)
    }

    private func write(_ message: JSONValue, context: ChannelHandlerContext) {
        self.send(Self.encode(message), context: context, promise: nil)
    }

    /// Output backed up over the high-water mark holds input back; once it drains, reading resumes.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { self.resume(context) }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            // A subscriber or a long rebuild is legitimately quiet; only a connection with nothing running idles.
            if self.inFlight == 0, self.waiting.isEmpty { context.close(promise: nil) }
            return
        }
        if case ChannelEvent.inputClosed = event {
            // The line framer has already passed on a last line without its newline; answer what is running,
            // then close.
            self.inputClosed = context
            if self.inFlight == 0, self.waiting.isEmpty { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        for task in self.tasks.values { task.cancel() }
        self.tasks.removeAll()
        self.waiting.removeAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.logger.debug("control connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}
