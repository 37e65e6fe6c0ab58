import Foundation
public import Hummingbird
import HummingbirdCore
public import LedgerCore
import LedgerPostgres
public import LedgerStore
public import Logging
import NIOCore
import NIOPosix
public import ServiceLifecycle
import Synchronization
import UnixSignals

/// Lets whoever started the daemon stop it gracefully (as SIGTERM does) instead of cancelling it: the demo and the
/// tests, which run it in-process. Cancelling cuts connections off mid-request; this drains them.
public final class ShutdownHandle: Sendable {
    private let state = Mutex<(group: ServiceGroup?, requested: Bool)>((nil, false))

    public init() {}

    func attach(_ group: ServiceGroup) async {
        let requested = self.state.withLock { state -> Bool in
            state.group = group
            return state.requested
        }
        if requested { await group.triggerGracefulShutdown() }
    }

    /// Starts a graceful shutdown now, or as soon as the daemon is running.
    public func shutdown() async {
        let group = self.state.withLock { state -> ServiceGroup? in
            state.requested = true
            return state.group
        }
        await group?.triggerGracefulShutdown()
    }
}

/// Owns the ledger's store: opens it when it runs, then starts the parts that use it, and closes it when it stops.
///
/// It is the group's first service and the one it starts with; the others are added by it once the store is open,
/// so a store that cannot open stops the daemon before any socket is bound. Being first, it is told of a graceful
/// shutdown last, after the HTTP listeners have drained their in-flight callbacks and every part that appends has
/// stopped; closing then lets every queued commit finish.
struct StoreService: Service {
    /// What the other parts hold: open from when the store opens until this service stops.
    let handle: StoreHandle
    let open: @Sendable () async throws -> any EventStore
    /// Runs once the store is open and before any part that appends starts: the log follower reads the head here,
    /// so the feed follows on from it without a gap.
    let prepare: @Sendable () async throws -> Void
    /// Starts the parts that use the store, in dependency order (none once the group is shutting down).
    let startDependents: @Sendable () async -> Void
    let staleReaderInterval: Duration = .seconds(60)

    func run() async throws {
        let store: any EventStore
        do {
            // A graceful shutdown while the store opens (a PostgreSQL server slow to answer) cuts the opening
            // short, and the daemon stops without an error, having started nothing else.
            store = try await cancelWhenGracefulShutdown { try await self.openOutsideShutdown() }
        } catch  where Task.isShuttingDownGracefully {
            return
        }
        try await self.handle.open(store)
        do {
            try await self.prepare()
        } catch {
            await self.handle.close()
            throw error
        }
        await self.startDependents()
        // Clear stale LMDB reader slots periodically (lmdb.h, mdb_reader_check), until shutdown.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: self.staleReaderInterval)
                if let lmdb = store as? LMDBEventStore { _ = try? lmdb.clearStaleReaders() }
            }
        }
        await self.handle.close()
    }

    /// Opens the store in a task of its own, which does not see this service's graceful shutdown: a store that runs
    /// a service inside (PostgreSQL's client runs its connection pool, and stops it on a graceful shutdown) keeps its
    /// connections until `close()` has let the queued commits finish. Cancelling this cancels the opening.
    private func openOutsideShutdown() async throws -> any EventStore {
        let opening = Task.detached { try await self.open() }
        return try await withTaskCancellationHandler {
            try await opening.value
        } onCancel: {
            opening.cancel()
        }
    }
}

/// The group a daemon runs in, for its store service: the service is made before the group, and adds the parts
/// that use the store to it once the store is open.
final class ServiceGroupReference: Sendable {
    private let group = Mutex<ServiceGroup?>(nil)

    func set(_ group: ServiceGroup) {
        self.group.withLock { $0 = group }
    }

    /// Adds `services` in order: the group starts each at once, in that order, and shuts them down in reverse. Once
    /// it is shutting down it starts none.
    func add(_ services: [any Service]) async {
        guard let group = self.group.withLock({ $0 }) else { return }
        for service in services { await group.addServiceUnlessShutdown(service) }
    }
}

/// Sends `STOPPING=1` to the service manager as soon as a graceful shutdown begins.
struct StoppingReport: Service {
    let notifier: ServiceManagerNotifier

    func run() async throws {
        try? await gracefulShutdown()
        self.notifier.send("STOPPING=1")
    }
}

/// The running daemon: everything built from one configuration, ready to run as one service group.
public struct LedgerDaemon: Sendable {
    public let configuration: DaemonConfiguration
    /// The configured store while the daemon runs; before it runs and after it stopped, every call fails `closed`.
    public let store: any EventStore
    let storeHandle: StoreHandle
    public let ledger: Ledger
    public let poller: QueryPoller
    /// Forwards order outcomes to the shop; runs only when `forward.url` is configured.
    public let forwarder: Forwarder
    public let metrics: LedgerMetrics
    public let health: HealthState
    /// The rate-limited log lines about refused notifications, shared by the listeners.
    let refusalLog: RateLimitedLog
    /// The control socket's bounds (`control.*`), from the configuration; tests may set them directly.
    public var control: ControlSettings
    /// The gateway's and the receivers' client: made when the daemon runs, shut down when it stops.
    let httpClient: OutboundHTTPClient
    let logger: Logger
    /// Stops a running daemon gracefully.
    public let shutdownHandle = ShutdownHandle()

    /// Opens the configured store: LMDB in `dataDir`, or PostgreSQL (connecting, and creating or migrating its
    /// schema). The daemon's store service calls it when it runs; the caller of this closes what it returns.
    public static func openStore(configuration: DaemonConfiguration, logger: Logger) async throws -> any EventStore {
        switch configuration.storeBackend {
        case .lmdb:
            return try LMDBEventStore(path: configuration.dataDirectory, options: configuration.store)
        case .postgres(let postgres):
            let options = PostgresEventStore.Options(
                schema: postgres.schema,
                limits: configuration.store.limits,
                postgres: postgres.limits,
                quarantineLimits: configuration.store.quarantineLimits
            )
            return try await PostgresEventStore.open(settings: postgres.connection, options: options, logger: logger)
        }
    }

    /// Builds the pieces; opens nothing. The store opens when the daemon runs (`run`) and is closed when it stops;
    /// until then `store` answers every call with a `closed` error. `clock` and `seed` are injected for tests.
    public init(
        configuration: DaemonConfiguration,
        clock: any LedgerClock = SystemLedgerClock(),
        seed: UInt64 = UInt64.random(in: 0...UInt64.max),
        logger: Logger
    ) {
        // Every line the daemon writes escapes control characters, whichever logger the caller built, because
        // many lines quote text from outside (refused field names, peer addresses, order ids).
        let logger = logger.escapingControlCharacters()
        self.configuration = configuration
        self.logger = logger
        self.control = configuration.control
        let shared: Bool
        switch configuration.storeBackend {
        case .lmdb: shared = false
        case .postgres: shared = true
        }
        self.storeHandle = StoreHandle.make(shared: shared)
        self.store = self.storeHandle
        self.metrics = LedgerMetrics()
        self.health = HealthState()
        self.refusalLog = RateLimitedLog(perMinute: configuration.httpLimits.rejectLogPerMinute, logger: logger)
        self.ledger = Ledger(
            store: self.store,
            settings: configuration.gateway,
            key: configuration.key,
            publicURL: configuration.publicURL,
            formLimits: configuration.httpLimits.form,
            quarantineLimits: configuration.store.quarantineLimits,
            clock: clock,
            metrics: self.metrics,
            followInterval: configuration.storeBackend.followInterval,
            heldCommitsMax: CommitPublisher.heldMax(
                queueDepthMax: configuration.store.queueDepthMax,
                batchCountMax: configuration.store.batchCountMax
            ),
            logger: logger
        )
        self.httpClient = OutboundHTTPClient()
        let gateway = GatewayClient(
            settings: configuration.gateway,
            key: configuration.key,
            httpClient: self.httpClient,
            timeout: configuration.poll.attemptTimeout,
            bodyBytesMax: configuration.poll.bodyBytesMax
        )
        self.poller = QueryPoller(
            ledger: self.ledger,
            gateway: gateway,
            settings: configuration.poll,
            clock: clock,
            seed: seed,
            metrics: self.metrics,
            health: self.health,
            election: (self.store as? any SharedEventStore).map { ($0, configuration.storeBackend.leaderRetry) },
            logger: logger
        )
        let poller = self.poller
        // On a shared store only the poll leader forwards: the election the poller already holds decides.
        let isLeading: @Sendable () async -> Bool
        if self.store is any SharedEventStore {
            isLeading = { await poller.isLeading }
        } else {
            isLeading = { true }
        }
        self.forwarder = Forwarder(
            store: self.store,
            settings: configuration.forward,
            transport: HTTPForwardTransport(httpClient: self.httpClient, timeout: configuration.forward.timeout),
            clock: clock,
            seed: seed &+ 1,
            metrics: self.metrics,
            isLeading: isLeading,
            logger: logger
        )
    }

    /// The HTTP application on the configured address (`http`): every endpoint, or only the public ones when
    /// `http.adminListen` gives `/healthz` and `/metrics` an address of their own.
    public func makeApplication(onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in })
        -> some ApplicationProtocol
    {
        let role: ListenerRole = self.configuration.adminListen == nil ? .publicAndAdmin : .publicOnly
        let address = (host: self.configuration.httpHost, port: self.configuration.httpPort)
        return self.makeApplication(role: role, address: address, onServerRunning: onServerRunning)
    }

    /// The admin listener (`http.adminListen`), serving `/healthz` and `/metrics` only; nil when it is not set.
    public func makeAdminApplication(onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in })
        -> Application<RouterResponder<LedgerRequestContext>>?
    {
        guard let address = self.configuration.adminListen else { return nil }
        return self.makeApplication(role: .adminOnly, address: address, onServerRunning: onServerRunning)
    }

    /// One listener: its router, and the connection bounds and request deadline every listener has.
    func makeApplication(
        role: ListenerRole,
        address: (host: String, port: Int),
        onServerRunning: @escaping @Sendable (any Channel) async -> Void
    ) -> Application<RouterResponder<LedgerRequestContext>> {
        let router = buildLedgerRouter(
            ledger: self.ledger,
            limits: self.configuration.httpLimits,
            metrics: self.metrics,
            health: self.health,
            trustedProxies: self.configuration.trustedProxies,
            role: role
        )
        let notify =
            role.servesPublic
            ? NotifyEndpoint(
                ledger: self.ledger,
                limits: self.configuration.httpLimits,
                metrics: self.metrics,
                refusalLog: self.refusalLog,
                trustedProxies: self.configuration.trustedProxies,
                logger: self.logger
            ) : nil
        let limits = self.configuration.httpLimits
        let idle = TimeAmount.milliseconds(PollSchedule.milliseconds(limits.idleTimeout))
        let requestTimeout = TimeAmount.milliseconds(PollSchedule.milliseconds(limits.requestTimeout))
        // Both connection bounds in one budget: the accept loop asks it before accepting, and each connection's
        // setup admits it (or closes it, over its address's share) before it counts as open. Each listener has
        // its own, so a flood on the public address cannot take the admin listener's connections.
        let budget = HTTPConnectionBudget(
            connectionsMax: limits.connectionsMax,
            perAddressMax: limits.connectionsPerAddressMax
        )
        let logger = self.logger
        let server = HTTPServerBuilder { responder in
            LedgerHTTPChannel(
                http: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: idle)),
                budget: budget,
                requestTimeout: requestTimeout,
                notify: notify,
                logger: logger
            )
        }
        return Application(
            router: router,
            server: server,
            configuration: .init(
                address: .hostname(address.host, port: address.port),
                serverName: "ledgerd",
                availableConnectionsDelegate: HTTPConnectionBudget.Delegate(budget: budget)
            ),
            onServerRunning: onServerRunning,
            logger: self.logger
        )
    }

    /// Runs the daemon until SIGTERM or SIGINT (or cancellation): store, outbound HTTP client, poller, forwarder,
    /// control socket, HTTP (the admin listener, then the public one), in that order; shutdown in reverse, so in-flight callbacks finish
    /// and are committed before the store closes, and both listeners drain the same way. The store opens here, and
    /// the other parts start only once it is open: a store that cannot open throws its error before any socket is
    /// bound. `notifier` (from `NOTIFY_SOCKET`) hears `READY=1` once the control socket is bound and every HTTP
    /// listener listens (the store is open and the poller started before any of them), and `STOPPING=1` when
    /// draining begins.
    public func run(
        extraServices: [any Service] = [],
        onHTTPRunning: @escaping @Sendable (any Channel) async -> Void = { _ in },
        onAdminRunning: @escaping @Sendable (any Channel) async -> Void = { _ in },
        notifier: ServiceManagerNotifier? = nil
    ) async throws {
        // The control socket and each HTTP listener report when they are up.
        let readiness = ReadinessReport(notifier: notifier, parts: self.configuration.adminListen == nil ? 2 : 3)
        let poller = self.poller
        let forwarder = self.forwarder
        let forwarding = forwarder.enabled
        // Appends hand their order states to the inbox and answer at once; the pump takes them to the poller.
        let inbox = OrderStateInbox()
        self.ledger.observeOrders { states in inbox.add(states) }
        var followers: [any Service] = []
        if let follower = self.ledger.follower {
            await follower.observeOrders(
                { state in
                    await poller.track(state)
                    if forwarding { await forwarder.wake() }
                },
                when: { await poller.isLeading }
            )
            followers.append(follower)
        }
        let control = ControlServer(
            path: self.configuration.socketPath,
            mode: self.configuration.socketMode,
            settings: self.control,
            ledger: self.ledger,
            poller: self.poller,
            forwarder: self.forwarder,
            logger: self.logger,
            onBound: { readiness.partUp() }
        )
        var listeners: [any Service] = [RateLimitedLog.Reporter(log: self.refusalLog)]
        let admin = self.makeAdminApplication { channel in
            readiness.partUp()
            await onAdminRunning(channel)
        }
        if let admin { listeners.append(admin) }
        listeners.append(
            self.makeApplication { channel in
                readiness.partUp()
                await onHTTPRunning(channel)
            }
        )
        // The stopping report is last, so it is the first told of a graceful shutdown, before HTTP drains.
        let stopping: [any Service] = notifier.map { [StoppingReport(notifier: $0)] } ?? []
        // The forwarder after the poller (whose leadership it follows) and before the servers: it stops after they
        // have drained, and before the store closes.
        let dependents: [any Service] =
            followers + [OrderStatePump(inbox: inbox, poller: poller, forwarder: forwarding ? forwarder : nil)]
            + [self.poller, self.forwarder, control] + extraServices + listeners + stopping
        let reference = ServiceGroupReference()
        let outbound = OutboundHTTPService(
            client: self.httpClient,
            startDependents: { await reference.add(dependents) }
        )
        let configuration = self.configuration
        let logger = self.logger
        let store = StoreService(
            handle: self.storeHandle,
            open: { try await LedgerDaemon.openStore(configuration: configuration, logger: logger) },
            // Before anything can append, so the feed follows on from the head without a gap.
            prepare: { [ledger = self.ledger] in try await ledger.start() },
            startDependents: { await reference.add([outbound]) }
        )
        // One group: the store service starts it alone and adds the others once the store is open (the HTTP client
        // first, which adds the rest once it is made), so they start in that order and shut down in reverse.
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: store)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: self.logger
            )
        )
        reference.set(group)
        await self.shutdownHandle.attach(group)
        try await group.run()
    }
}
