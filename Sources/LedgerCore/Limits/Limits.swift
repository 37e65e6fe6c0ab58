// Every bound of ledgerd, in one place: what it bounds, its configuration key (when it has one), its default and
// why that default. Bounds that are not configurable are here too, as `static let`, so that this one file answers
// "what are all the limits of this process". The relations between the bounds are checked by `Limits.contradictions`
// (run by the configuration loader, which refuses a configuration that breaks one) and by `Limits.constantRelations`
// (the ones between constants, checked by the tests, as compile-time assertions would be).
//
// The table lives in the core because every part of ledgerd sees the core: the LMDB and PostgreSQL stores, the
// daemon, the control protocol shared with `ledgerctl`. Each part is handed its group (`Limits.control`,
// `Limits.store`, …) and keeps no default of its own.

/// Every bound of ledgerd, grouped by the part that enforces it. The configuration loader fills it from the
/// configuration keys named on each bound; the defaults are the values below.
public struct Limits: Sendable, Hashable {
    /// The HTTP endpoints (`limits.http.*`) and the notification body (`limits.notify.*`).
    public var http: HTTPLimits
    /// What a merchant may put in an order (`limits.order.*`).
    public var order: OrderLimits
    /// The query poller's bounds (`poll.*`).
    public var poll: PollLimits
    /// The control socket (`control.*`).
    public var control: ControlLimits
    /// The event store's batches, queue and map (`store.*`), for both backends.
    public var store: StoreLimits
    /// The quarantine of notifications the gateway did not vouch for (`quarantine.*`).
    public var quarantine: QuarantineLimits
    /// Forwarding order outcomes to the shop (`forward.*`).
    public var forward: ForwardLimits
    /// The PostgreSQL store's connections (`store.postgres*`); unused on LMDB.
    public var postgres: PostgresLimits

    public init(
        http: HTTPLimits = HTTPLimits(),
        order: OrderLimits = OrderLimits(),
        poll: PollLimits = PollLimits(),
        control: ControlLimits = ControlLimits(),
        store: StoreLimits = StoreLimits(),
        quarantine: QuarantineLimits = QuarantineLimits(),
        forward: ForwardLimits = ForwardLimits(),
        postgres: PostgresLimits = PostgresLimits()
    ) {
        self.http = http
        self.order = order
        self.poll = poll
        self.control = control
        self.store = store
        self.quarantine = quarantine
        self.forward = forward
        self.postgres = postgres
    }
}

// MARK: - HTTP

/// Bounds on an untrusted form body: the gateway's notification (`limits.notify.*`) and the buyer's return.
public struct FormLimits: Sendable, Hashable {
    /// `limits.notify.bodyBytesMax`: bytes of the whole body. 8 KiB: the gateway's notification is eight short
    /// fields, well under 1 KiB; the rest is room for deployment extras, while a flood of large bodies costs little.
    public var bodyBytesMax: Int
    /// `limits.notify.fieldsMax`: number of fields. The notification has eight documented fields; 32 leaves room
    /// for deployment extras.
    public var fieldsMax: Int
    /// `limits.notify.fieldBytesMax`: decoded bytes of one name or one value. 2 KiB: the longest documented value
    /// is the order's `attach`, echoed back (`limits.order.attachBytesMax`, 256 bytes).
    public var fieldBytesMax: Int

    public init(bodyBytesMax: Int = 8 << 10, fieldsMax: Int = 32, fieldBytesMax: Int = 2 << 10) {
        self.bodyBytesMax = bodyBytesMax
        self.fieldsMax = fieldsMax
        self.fieldBytesMax = fieldBytesMax
    }

    public static let `default` = FormLimits()
}

/// The HTTP server's bounds (`limits.http.*`), with the notification body's (`limits.notify.*`).
public struct HTTPLimits: Sendable, Hashable {
    /// `limits.notify.bodyBytesMax`, `limits.notify.fieldsMax`, `limits.notify.fieldBytesMax`.
    public var form: FormLimits
    /// `limits.http.idleTimeoutMs`: a connection idle this long (including one that never finishes its headers)
    /// is closed. 10 s: the gateway and browsers send a request at once; an idle connection only holds a slot.
    public var idleTimeout: Duration
    /// `limits.http.requestTimeoutMs`: a request's head and body must arrive within this long of its first byte,
    /// however steadily they trickle in; otherwise it is answered 408 (when nothing was answered yet) and the
    /// connection is closed. The idle timeout alone restarts with every byte, so a client sending one byte a second
    /// would hold its connection for as long as it liked. 10 s: a whole notification is one packet.
    public var requestTimeout: Duration
    /// `limits.http.connectionsMax`: open HTTP connections at once. 1024: far above the gateway's bursts of
    /// notifications and buyers returning at once, while a flood of connections holds a bounded number of
    /// descriptors.
    public var connectionsMax: Int
    /// `limits.http.connectionsPerAddressMax`: open HTTP connections from one remote address (an IPv4 address or
    /// an IPv6 /64); one more is closed at once, before it counts against `connectionsMax`. 128 by default (at
    /// most `connectionsMax`): an eighth of the default `connectionsMax`, so one address can hold at most an
    /// eighth of the server, while the gateway's bursts of notifications from one egress address and buyers
    /// behind a carrier's shared address still fit. Behind a reverse proxy every connection comes from the
    /// proxy's address: set it to `connectionsMax` there.
    public var connectionsPerAddressMax: Int
    /// `limits.http.rejectLogPerMinute`: log lines about refused bodies per minute; the rest are only counted.
    /// 60: one a second tells an operator what is refused without letting a flood of bad bodies flood the log.
    public var rejectLogPerMinute: Int

    public init(
        form: FormLimits = FormLimits(),
        idleTimeout: Duration = .seconds(10),
        requestTimeout: Duration = .seconds(10),
        connectionsMax: Int = 1024,
        connectionsPerAddressMax: Int = 128,
        rejectLogPerMinute: Int = 60
    ) {
        self.form = form
        self.idleTimeout = idleTimeout
        self.requestTimeout = requestTimeout
        self.connectionsMax = connectionsMax
        self.connectionsPerAddressMax = connectionsPerAddressMax
        self.rejectLogPerMinute = rejectLogPerMinute
    }
}

// MARK: - Orders

/// Bounds on what a merchant may put in an order (`limits.order.*`). They travel with the gateway settings
/// (`GatewaySettings.limits`), where the pay request's builder reads them.
public struct OrderLimits: Sendable, Hashable {
    /// `limits.order.amountFenMax`: the largest order amount, in fen. Default 1,000,000.00 yuan: far above any
    /// single scan payment, low enough that a misplaced decimal point is refused instead of signed.
    public var amountFenMax: Int64
    /// `limits.order.textBytesMax`: bytes of `pay_productname`, `pay_productdesc` and the other free-text fields.
    /// 256: a product name and description, not a catalogue entry.
    public var textBytesMax: Int
    /// `limits.order.attachBytesMax`: bytes of `pay_attach`. 256: a merchant's reference, which the gateway echoes
    /// in its notification, so it must also fit the notification's field bound.
    public var attachBytesMax: Int
    /// `limits.order.urlBytesMax`: bytes of a URL. 512: any real product page, far under a form field's bound.
    public var urlBytesMax: Int

    public init(
        amountFenMax: Int64 = 100_000_000,
        textBytesMax: Int = 256,
        attachBytesMax: Int = 256,
        urlBytesMax: Int = 512
    ) {
        self.amountFenMax = amountFenMax
        self.textBytesMax = textBytesMax
        self.attachBytesMax = attachBytesMax
        self.urlBytesMax = urlBytesMax
    }

    public static let `default` = OrderLimits()

    /// The largest amount a configuration may set (`limits.order.amountFenMax`): ten billion yuan, so any amount
    /// in fen, with its decimal point, stays far inside the integers the signing text and the store use.
    public static let amountFenMaxMax: Int64 = 1_000_000_000_000
}

// MARK: - Query poller

/// The query poller's bounds (`poll.*`). The schedule itself (`poll.firstDelayMs`, `poll.backoffBaseMs`,
/// `poll.backoffCapMs`, `poll.deadlineMs`) is the poller's settings.
public struct PollLimits: Sendable, Hashable {
    /// `poll.concurrency`: queries in flight at once. 8: a backlog drains in parallel while the gateway sees at
    /// most a handful of connections from one merchant.
    public var concurrency: Int
    /// `poll.queriesPerSecondMax`: queries started in any one second, whatever is due. After a restart with many
    /// pending orders, or while the gateway fails fast, the concurrency bound alone lets the poller send thousands
    /// of queries a second. 20 a second is well under what a gateway's query interface can be expected to take
    /// from one merchant, and still polls 72,000 orders an hour: a merchant's unpaid orders are polled on
    /// schedule, and a backlog drains steadily instead of hammering the gateway.
    public var queriesPerSecondMax: Int
    /// `poll.attemptTimeoutMs`: one query's timeout. 10 s: a gateway that has not answered by then is treated as
    /// down, and the order is asked again on its schedule.
    public var attemptTimeout: Duration
    /// `poll.bodyBytesMax`: the most of a reply body that is read and recorded. 16 KiB: a reply is a few hundred
    /// bytes of JSON, and an error page from a proxy is recorded far enough to be recognised.
    public var bodyBytesMax: Int

    public init(
        concurrency: Int = 8,
        queriesPerSecondMax: Int = 20,
        attemptTimeout: Duration = .seconds(10),
        bodyBytesMax: Int = 16 << 10
    ) {
        self.concurrency = concurrency
        self.queriesPerSecondMax = queriesPerSecondMax
        self.attemptTimeout = attemptTimeout
        self.bodyBytesMax = bodyBytesMax
    }

    /// The parser's bounds on a query reply's JSON (not configurable). A reply is one flat object of about ten
    /// short fields, or that object in a `status`/`msg`/`data` envelope: 64 KiB, nesting 8 deep, 4 KiB strings
    /// and 64 members are far above it, and low enough that a hostile reply costs nothing to refuse.
    public static let replyJSON = JSONLimits(bytesMax: 64 << 10, depthMax: 8, stringBytesMax: 4096, membersMax: 64)
}

// MARK: - Control socket

/// The control socket's bounds (`control.*`).
public struct ControlLimits: Sendable, Hashable {
    /// `control.lineBytesMax`: the longest request line, newline excluded. A longer line gets an error and the
    /// connection is closed, because the framing is lost once a line is cut. 1 MiB: the largest request
    /// (`order.create` with every text at its bound) is a few KiB.
    public var lineBytesMax: Int
    /// `control.connectionsMax`: open control connections at once; one more is told so and closed. 64: operators
    /// and a few scripts, with room for a monitoring subscriber or two.
    public var connectionsMax: Int
    /// `control.jsonDepthMax`: the deepest nesting of a request's arrays and objects. 32: a request is an object
    /// with a params object two levels deep; more is only a way to make the parser work.
    public var jsonDepthMax: Int
    /// `control.writeBufferBytesMax`: output queued for one client that does not read, beyond the message being
    /// written (so one large answer never counts as not reading); past it the client is dropped, so a stuck
    /// client cannot grow the daemon's memory. Output over it also stops the daemon reading the client's requests
    /// until the output drains below half of it. 8 MiB: many answers' worth, so only a client that has stopped
    /// reading reaches it.
    public var writeBufferBytesMax: Int
    /// `control.idleTimeoutMs`: a connection with nothing in flight, no subscription and no input for this long
    /// is closed. 5 minutes: longer than an operator takes between two commands of a session.
    public var idleTimeout: Duration
    /// `control.requestsInFlightMax`: requests one connection may have running at once. A client that pipelines
    /// more is slowed, never refused: the daemon stops reading its connection until answers drain. 32: enough
    /// to keep the store busy from one script.
    public var requestsInFlightMax: Int
    /// `control.subscriberQueueMax`: appends queued for one `events.subscribe` before the subscriber is dropped.
    /// 4096: four full commits of the default `store.batchCountMax`, which are published together.
    public var subscriberQueueMax: Int
    /// `control.eventsPageMax`: the most events one `events.read` returns, and one page of a subscription's
    /// backlog. 1000: a page an operator's tool reads at once.
    public var eventsPageMax: Int

    public init(
        lineBytesMax: Int = 1 << 20,
        connectionsMax: Int = 64,
        jsonDepthMax: Int = 32,
        writeBufferBytesMax: Int = 8 << 20,
        idleTimeout: Duration = .seconds(300),
        requestsInFlightMax: Int = 32,
        subscriberQueueMax: Int = 4096,
        eventsPageMax: Int = 1000
    ) {
        self.lineBytesMax = lineBytesMax
        self.connectionsMax = connectionsMax
        self.jsonDepthMax = jsonDepthMax
        self.writeBufferBytesMax = writeBufferBytesMax
        self.idleTimeout = idleTimeout
        self.requestsInFlightMax = requestsInFlightMax
        self.subscriberQueueMax = subscriberQueueMax
        self.eventsPageMax = eventsPageMax
    }

    /// Connections the kernel holds for the control socket before the daemon accepts them (`listen(2)`'s
    /// backlog, not configurable): 256 covers a burst of scripts connecting at once; the connection bound applies
    /// once they are accepted.
    public static let listenBacklog = 256
    /// Elements of one array or members of one object in a request (not configurable). No method takes a list;
    /// 10,000 only stops a request line of a million tiny members from costing a million allocations.
    public static let jsonMembersMax = 10_000
    /// `events.read`'s page when no limit is asked for (at most `control.eventsPageMax`).
    public static let eventsPageDefault = 100
    /// `order.history`'s page when none is asked for, and the largest: pages keep one answer to a size a client
    /// reads at once, however many callbacks an order has collected.
    public static let historyPageDefault = 100
    public static let historyPageMax = 1000
    /// `order.list` and `quarantine.read`'s page when none is asked for, and the largest.
    public static let listPageDefault = 100
    public static let listPageMax = 1000
    /// `projection.verify`'s differences reported when none is asked for, and the most.
    public static let differencesDefault = 100
    public static let differencesMax = 10_000
    /// `callbacks.audit`'s rows at most (the totals count every order): 10,000 rows are a report an operator can
    /// still read, and one answer of a size a client reads at once.
    public static let auditRowsMax = 10_000
    /// `forward.status`'s failing and dead deliveries listed when no limit is asked for, and the most.
    public static let forwardStatusPageDefault = 20
    public static let forwardStatusPageMax = 1000
}

// MARK: - Event store

/// The event store's bounds (`store.*`), shared by the LMDB and PostgreSQL backends where they apply.
public struct StoreLimits: Sendable, Hashable {
    /// `store.mapSize`: the LMDB map's initial size in bytes (at most `store.mapSizeMax`). 64 MiB: small maps grow
    /// by doubling when full, so a small start costs only a few growths and no disk for a new ledger.
    public var mapSize: Int
    /// `store.mapSizeMax`: the most the LMDB map may grow to; appends fail when it is full. 64 GiB: years of a
    /// busy merchant's events, and a clear stop before the disk fills.
    public var mapSizeMax: Int
    /// `store.batchCountMax`: appends per commit; 1 turns group commit off (one sync per append, the benchmark's
    /// baseline). 1024: far above the appends that arrive during one sync, so a burst commits in a few syncs.
    public var batchCountMax: Int
    /// `store.batchBytesMax`: estimated bytes per commit, so one batch cannot build a huge set of dirty pages; one
    /// append larger than this still commits, alone. 8 MiB: a thousand large events.
    public var batchBytesMax: Int
    /// `store.queueDepthMax`: appends waiting for the writer at once; beyond it an append fails fast with a
    /// "busy" error instead of queueing forever. 65,536: far above every request the other bounds admit at once.
    public var queueDepthMax: Int
    /// `store.rebuildChunkEvents`: events per rebuild chunk; each chunk holds the writer (and, on PostgreSQL, the
    /// append lock) for one transaction. 32,768: few commits for a whole rebuild, while appends wait for one chunk
    /// at most, never for the whole rebuild.
    public var rebuildChunkEvents: Int
    /// The most events, orders, deliveries or quarantine entries one store read returns (no key): a read asking for
    /// more gets this many. 10,000: every page the daemon and the control protocol ask for, with room.
    public var readPageMax: Int

    public init(
        mapSize: Int = 64 << 20,
        mapSizeMax: Int = 64 << 30,
        batchCountMax: Int = 1024,
        batchBytesMax: Int = 8 << 20,
        queueDepthMax: Int = 65_536,
        rebuildChunkEvents: Int = 32_768,
        readPageMax: Int = 10_000
    ) {
        self.mapSize = mapSize
        self.mapSizeMax = mapSizeMax
        self.batchCountMax = batchCountMax
        self.batchBytesMax = batchBytesMax
        self.queueDepthMax = queueDepthMax
        self.rebuildChunkEvents = rebuildChunkEvents
        self.readPageMax = readPageMax
    }

    /// LMDB reader slots (not configurable): one per thread with a read transaction open. 254: the daemon's
    /// event loops, its tasks' reads and `ledgerd verify-store` beside it, with room; LMDB's own default is 126.
    public static let lmdbReadersMax = 254
    /// LMDB named databases (not configurable): the layout's, with room for a format's additions.
    public static let lmdbDatabasesMax = 16
    /// LMDB's largest key in the default build (`mdb_env_get_maxkeysize`, not configurable): every key the layout
    /// writes must fit, or the write fails.
    public static let lmdbKeyBytesMax = 511
    /// Committed batch sizes kept between two reads of the metrics (not configurable). 4096: a scrape every few
    /// seconds sees every batch; a daemon nobody scrapes keeps no more than this.
    public static let batchSamplesMax = 4096
    /// Orders, deliveries and log events read per page by the daemon's own scans (the poller's, the forwarder's,
    /// the callback audit's and the log follower's; not configurable). 1000: a page is one short read transaction.
    public static let scanPageMax = 1000
    /// The largest text or byte field of a stored event the decoder accepts (not configurable), so a corrupted
    /// length cannot ask for gigabytes. Every field the daemon stores (a notification's raw body, a reply body) is
    /// bounded below it, or the event would be written and never read again.
    public static let eventFieldBytesMax = 1 << 20
    /// The most form fields one stored event may carry, for the same reason.
    public static let eventFieldsMax = 4096
    /// How long growing the LMDB map waits for this process's open read transactions to end (not configurable).
    /// 10 s: far longer than any read the daemon makes, shorter than a client waits for an answer.
    public static let mapGrowthWaitMax: Duration = .seconds(10)
    /// Events per page when the PostgreSQL store verifies its log (not configurable): one round trip each.
    public static let postgresVerifyPageEvents = 4096
}

// MARK: - Quarantine

/// The bounds of the quarantine (`quarantine.*`).
public struct QuarantineLimits: Sendable, Hashable {
    /// `quarantine.entriesMax`: entries held at most; beyond it the oldest entry of the heaviest source is dropped.
    /// 10,000: enough to study a campaign of forgeries, while the heaviest source pays for a flood.
    public var entriesMax: Int
    /// `quarantine.bytesMax`: accounted bytes held at most, counted by `QuarantineEntry.accountedBytes`. 32 MiB:
    /// room for every entry when bodies are notification-sized, and bounded whatever the bodies are.
    public var bytesMax: Int
    /// `quarantine.bodyBytesMax`: bytes of a body kept; the rest is cut, and the entry says how long it was. 4096:
    /// a real notification (under 1 KiB) in full, so a forgery can be read, and half the largest body accepted.
    public var bodyBytesMax: Int

    public init(entriesMax: Int = 10_000, bytesMax: Int = 32 << 20, bodyBytesMax: Int = 4096) {
        self.entriesMax = entriesMax
        self.bytesMax = bytesMax
        self.bodyBytesMax = bodyBytesMax
    }

    public static let `default` = QuarantineLimits()

    /// An entry's texts other than the body (the peer, the source, the detail, the order id) are cut to this many
    /// bytes, at a scalar boundary (not configurable): 256 holds any address and verdict, and keeps an entry's
    /// accounted size near its body's.
    public static let textBytesMax = 256
}

// MARK: - Forwarding

/// Forwarding's bounds (`forward.*`). The receivers, the retry schedule and the intervals are its settings.
public struct ForwardLimits: Sendable, Hashable {
    /// `forward.timeoutMs`: a delivery counts only when a 2xx answer arrives within this long. 10 s: a shop's
    /// endpoint that has not answered by then is retried on the schedule.
    public var timeout: Duration
    /// `forward.concurrency`: deliveries in flight at once, over all receivers. 8: a backlog drains in parallel
    /// without a shop seeing more than a handful of connections.
    public var concurrency: Int
    /// `forward.outboxMax`: deliveries held at once, pending and dead. When it is reached the forwarder stops
    /// deriving new outcomes (they wait in the log, where nothing is lost) until deliveries finish or dead ones
    /// are retried. 100,000: a long outage's outcomes for a busy shop, bounded in memory and in the store.
    public var outboxMax: Int
    /// `forward.concurrencyUnderLoad`: deliveries in flight at once while callbacks arrive (an append less than
    /// `forward.writeIntervalMs` ago), for at most `forward.yieldMaxMs`; at most `forward.concurrency`. 1: on the
    /// daemon's own cores a delivery costs about what receiving a callback costs, so during a burst the forwarder
    /// keeps one going and leaves the CPU to the intake, whose callbacks are the facts it forwards.
    public var concurrencyUnderLoad: Int
    /// `forward.yieldMaxMs`: how long the forwarder keeps to `forward.concurrencyUnderLoad` while callbacks keep
    /// arriving; then it delivers what waits at `forward.concurrency` before it yields again. 10 s: outcomes of a
    /// burst reach the shop at most about this much later, and under a load that never stops the forwarder still
    /// keeps up. 0 never yields.
    public var yieldMax: Duration

    public init(
        timeout: Duration = .seconds(10),
        concurrency: Int = 8,
        outboxMax: Int = 100_000,
        concurrencyUnderLoad: Int = 1,
        yieldMax: Duration = .seconds(10)
    ) {
        self.timeout = timeout
        self.concurrency = concurrency
        self.outboxMax = outboxMax
        self.concurrencyUnderLoad = concurrencyUnderLoad
        self.yieldMax = yieldMax
    }

    /// Attempts at most in `forward.schedule`, however it is configured (not configurable): the standard schedule
    /// has 8; 32 leaves room for a shop that wants frequent early retries.
    public static let scheduleAttemptsMax = 32
    /// The longest single delay in `forward.schedule` (not configurable), a week: longer ones are surely a typing
    /// mistake.
    public static let scheduleDelayMillisecondsMax: Int64 = 7 * 86_400_000
    /// The longest receiver URL (not configurable): it is part of a stored key (`ForwardKey`: two length bytes,
    /// the URL, an eight-byte sequence and a type byte), and LMDB keys are at most 511 bytes.
    public static let urlBytesMax = 400
    /// Bytes of a `ForwardKey` besides its receiver URL.
    public static let keyOverheadBytes = 11
    /// The largest secret file read (not configurable): two secrets and their line ends, with a lot of room.
    public static let secretFileBytesMax = 4096
    /// Events read from the log per derivation step (not configurable).
    public static let deriveChunkEvents = 256
    /// Derivation steps per turn of the forwarder (not configurable): their outcomes and the new position are stored
    /// in one write, so a long history costs a sync per 2,048 events, and a turn holds the loop for at most that many.
    public static let deriveChunksPerTurn = 8
    /// Deliveries derived ahead of their first attempt at most while the forwarder yields to a burst of callbacks
    /// (`forward.concurrencyUnderLoad`; not configurable): derivation stops there and the rest waits in the log,
    /// where nothing is lost, so deriving, encoding and storing the burst's outcomes waits too instead of taking the
    /// CPU the intake needs. 4,096: two turns of derivation, far more than the forwarder delivers meanwhile.
    public static let deriveAheadMax = 4096
    /// The most of a receiver's answer body kept for `lastError` (not configurable): enough to tell an error page.
    public static let errorBodyBytesMax = 200
}

// MARK: - PostgreSQL

/// The PostgreSQL store's connection bounds (`store.postgresConnectionsMax`, `store.postgresConnectTimeoutMs`).
public struct PostgresLimits: Sendable, Hashable {
    /// `store.postgresConnectionsMax`: connections this daemon opens at most; at least 3 (a long operation holds
    /// one for its lock and uses another; appends and reads need one more). 8: appends, reads and a rebuild at
    /// once, a small share of a server's default 100.
    public var connectionsMax: Int
    /// `store.postgresConnectTimeoutMs`: how long a connection, and the start, may wait for the server. 10 s: a
    /// server that takes longer is down, and the start says so.
    public var connectTimeout: Duration

    public init(connectionsMax: Int = 8, connectTimeout: Duration = .seconds(10)) {
        self.connectionsMax = connectionsMax
        self.connectTimeout = connectTimeout
    }
}
