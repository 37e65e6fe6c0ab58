import LedgerControlProtocol
import LedgerCore
public import Logging
import NIOCore
import NIOPosix
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The control socket: JSON-RPC 2.0, one object per line, over a Unix stream socket (issue 5).
///
/// A handler pipeline rather than `NIOAsyncChannel`: per connection a line framer bounded by
/// `control.lineBytesMax`, an idle timer, and a handler that parses, dispatches each request to its own task
/// (so requests pipeline and answers carry their ids) and writes answers back. The accept side checks the
/// peer's uid, then counts connections, before any byte is read. Connections run on event loops of their own
/// (`control.threads`), because `order.history` and `order.get` read LMDB inline on them.
public struct ControlServer: Service {
    let path: String
    let mode: UInt32
    let settings: ControlSettings
    let methods: ControlMethods
    let logger: Logger
    let onBound: @Sendable () -> Void

    public init(
        path: String,
        mode: UInt32,
        settings: ControlSettings,
        ledger: Ledger,
        poller: QueryPoller,
        forwarder: Forwarder? = nil,
        logger: Logger,
        onBound: @escaping @Sendable () -> Void = {}
    ) {
        self.path = path
        self.mode = mode
        self.settings = settings
        self.methods = ControlMethods(ledger: ledger, poller: poller, settings: settings, forwarder: forwarder)
        self.logger = logger
        self.onBound = onBound
    }

    public func run() async throws {
        switch try ControlSocketFile.probe(self.path) {
        case .absent: break
        case .stale: self.logger.notice("replacing a stale control socket", metadata: ["socket.path": "\(self.path)"])
        case .live: throw ControlServerError.alreadyRunning(self.path)
        }
        let directory = try ControlSocketFile.privateDirectory(near: self.path)
        let bound = directory + "/s"
        let connections = ControlConnections()
        // The connections' own loops, so that the reads they run inline never hold up HTTP's.
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: self.settings.threads)
        let channel: any Channel
        do {
            channel = try await self.bootstrap(connections: connections, loops: loops)
                .bind(unixDomainSocketPath: bound).get()
        } catch {
            rmdir(directory)
            try? await loops.shutdownGracefully()
            throw ControlServerError.socketPath(self.path, "cannot be bound: \(error)")
        }
        let inode: UInt64
        do {
            inode = try ControlSocketFile.install(bound: bound, directory: directory, at: self.path, mode: self.mode)
        } catch {
            try? await channel.close()
            try? await loops.shutdownGracefully()
            throw error
        }
        self.logger.info("control socket listening", metadata: ["socket.path": "\(self.path)"])
        self.onBound()
        // Serve until the group shuts down (or this task is cancelled), then stop accepting, close every
        // connection (which cancels their requests and subscriptions) and remove the socket file.
        try? await gracefulShutdown()
        try? await channel.close()
        connections.closeAll()
        ControlSocketFile.remove(self.path, inode: inode)
        try? await loops.shutdownGracefully()
    }

    private func bootstrap(connections: ControlConnections, loops: MultiThreadedEventLoopGroup) -> ServerBootstrap {
        let settings = self.settings
        let methods = self.methods
        let logger = self.logger
        let allowed = settings.allowedUids.union([0, getuid()])
        let waterMark = ChannelOptions.Types.WriteBufferWaterMark(
            low: settings.writeBufferBytesMax / 2,
            high: settings.writeBufferBytesMax
        )
        return ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton, childGroup: loops)
            .serverChannelOption(.backlog, value: Int32(ControlLimits.listenBacklog))
            .childChannelOption(.writeBufferWaterMark, value: waterMark)
            // A client that writes its requests and then shuts down its write side (`socat`, `nc -N`, a script
            // piping a file) still reads the answers: the connection closes once they are written, not at EOF.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                connections.add(channel)
                channel.closeFuture.whenComplete { _ in connections.remove(channel) }
                guard let provider = channel as? any SocketOptionProvider else {
                    return Self.refuse(
                        channel,
                        .internalError("The daemon cannot read the peer's credentials on this platform.")
                    )
                }
                // The peer's uid is checked first: a refused peer never counts against control.connectionsMax, so
                // another user cannot lock the allowed ones out by holding connections. It hears why and its side
                // is closed at once; the socket lingers until the client closes (up to 2 s, so a client that
                // writes before it reads still reads the answer), but only for connectionsMax refused peers at a
                // time: past that, refused peers are closed outright.
                let credentials: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
                    level: SocketOptionLevel(SOL_SOCKET),
                    name: SocketOptionName(peerCredentialsOption)
                )
                return credentials.flatMap { peer in
                    guard allowed.contains(peer.uid) else {
                        logger.warning(
                            "control connection refused: uid not allowed",
                            metadata: ["peer.uid": "\(peer.uid)", "peer.pid": "\(peer.pid)"]
                        )
                        guard connections.lingerRefused(channel, upTo: settings.connectionsMax) else {
                            return Self.refuseAtOnce(channel, .permissionDenied(peer.uid))
                        }
                        return Self.refuse(channel, .permissionDenied(peer.uid))
                    }
                    let open = methods.connections.wrappingAdd(1, ordering: .relaxed).newValue
                    channel.closeFuture.whenComplete { _ in
                        methods.connections.wrappingSubtract(1, ordering: .relaxed)
                    }
                    guard open <= settings.connectionsMax else {
                        logger.warning(
                            "control connection refused: too many",
                            metadata: ["control.connections": "\(open - 1)"]
                        )
                        return Self.refuse(channel, .tooManyConnections(settings.connectionsMax))
                    }
                    return channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(
                            ByteToMessageHandler(ControlLineDecoder(lineBytesMax: settings.lineBytesMax))
                        )
                        try sync.addHandler(
                            IdleStateHandler(readTimeout: .milliseconds(Int64(settings.idleTimeout / .milliseconds(1))))
                        )
                        try sync.addHandler(
                            ControlConnectionHandler(methods: methods, settings: settings, logger: logger)
                        )
                    }
                }.flatMapErrorThrowing { error in
                    logger.warning("control connection failed to start", metadata: ["error": "\(error)"])
                    throw error
                }
            }
    }
}

extension ControlServer {
    /// Refusals are written as one error line once the channel is active, then the channel closes: the client
    /// learns why instead of seeing a bare reset.
    static func refuse(_ channel: any Channel, _ error: ControlError) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ControlRefusalHandler(error))
        }
    }

    /// A refusal that does not wait for the client: the error line, then the channel closes as soon as it is
    /// written. On a Unix stream socket the client still reads the line before it sees the end.
    static func refuseAtOnce(_ channel: any Channel, _ error: ControlError) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ControlRefusalHandler(error, waitForClient: false))
        }
    }
}

/// Open connections, so shutdown can close them, and the refused ones still lingering.
final class ControlConnections: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])
    private let lingering = Atomic<Int>(0)

    /// Whether a refused connection may linger until its client closes: true while fewer than `limit` do, and
    /// then counted until it closes.
    func lingerRefused(_ channel: any Channel, upTo limit: Int) -> Bool {
        guard self.lingering.wrappingAdd(1, ordering: .relaxed).newValue <= limit else {
            self.lingering.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        channel.closeFuture.whenComplete { _ in self.lingering.wrappingSubtract(1, ordering: .relaxed) }
        return true
    }

    func add(_ channel: any Channel) { self.channels.withLock { $0[ObjectIdentifier(channel)] = channel } }
    func remove(_ channel: any Channel) {
        _ = self.channels.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    func closeAll() {
        for channel in self.channels.withLock({ Array($0.values) }) { channel.close(promise: nil) }
    }
}

/// One framed input line, or the news that the line outgrew the limit.
enum ControlFrame {
    case line(ByteBuffer)
    case tooLong
}

/// Frames input into lines with `ControlLineFramer` (LedgerCore), which decides; this decoder only carries its
/// actions out on the NIO buffer, so what runs here is exactly what the unit tests and the fuzzer exercise.
struct ControlLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = ControlFrame

    private var framer: ControlLineFramer

    init(lineBytesMax: Int) {
        self.framer = ControlLineFramer(lineBytesMax: lineBytesMax)
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let action = buffer.withUnsafeReadableBytes { self.framer.next($0) }
        return self.carryOut(action, context: context, buffer: &buffer)
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        // A last line without its newline (the client half-closed after writing) is still a request.
        let action = buffer.withUnsafeReadableBytes { self.framer.last($0) }
        return self.carryOut(action, context: context, buffer: &buffer)
    }

    private func carryOut(
        _ action: ControlLineFramer.Action,
        context: ChannelHandlerContext,
        buffer: inout ByteBuffer
    ) -> DecodingState {
        switch action {
        case .line(let length, let consumed):
            let line = buffer.readSlice(length: length)!
            buffer.moveReaderIndex(forwardBy: consumed - length)
            context.fireChannelRead(Self.wrapInboundOut(.line(line)))
            return .continue
        case .tooLong:
            buffer.moveReaderIndex(to: buffer.writerIndex)
            context.fireChannelRead(Self.wrapInboundOut(.tooLong))
            return .needMoreData
        case .discard:
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .needMoreData
        case .needMoreData:
            return .needMoreData
        }
    }
}

/// Writes one error line when the channel becomes active, then closes it.
final class ControlRefusalHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let error: ControlError
    let waitForClient: Bool

    init(_ error: ControlError, waitForClient: Bool = true) {
        self.error = error
        self.waitForClient = waitForClient
    }

    func channelActive(context: ChannelHandlerContext) {
        let message = ControlConnectionHandler.response(id: .null, error: self.error)
        guard self.waitForClient else {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(NIOAny(ControlConnectionHandler.encode(message))).whenComplete { _ in
                bound.value.close(promise: nil)
            }
            return
        }
        Self.answerAndClose(context: context, message)
    }

    /// Writes a last message, then closes our side for writing and the whole channel once the client has read
    /// it and closed (or after a grace period). Closing at once would make the kernel reset the connection if
    /// the client's request is still unread, and a reset can destroy our message before the client reads it.
    static func answerAndClose(context: ChannelHandlerContext, _ message: JSONValue) {
        let line = ControlConnectionHandler.encode(message)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(NIOAny(line)).whenComplete { _ in
            bound.value.close(mode: .output, promise: nil)
            bound.value.eventLoop.scheduleTask(in: .seconds(2)) { bound.value.close(promise: nil) }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}
