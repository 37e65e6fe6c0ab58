public import LedgerCore
import Synchronization

/// What to append: events that belong together, stored in one transaction or not at all.
public struct AppendRequest: Sendable {
    /// A condition checked inside the write transaction, so that check and append cannot be interleaved by
    /// another writer (or, with a shared store, another daemon).
    public enum Precondition: Sendable, Hashable {
        case none
        /// The order must not exist yet: its id has no order-created event.
        case orderAbsent(String)
    }

    public var events: [PendingEvent]
    public var precondition: Precondition

    public init(_ events: [PendingEvent], precondition: Precondition = .none) {
        self.events = events
        self.precondition = precondition
    }

    /// An estimate of the stored size, used to bound a commit batch by bytes.
    public var estimatedBytes: Int {
        self.events.reduce(0) { total, event in
            switch event.payload {
            case .orderCreated: return total + 512
            case .callbackReceived(let callback): return total + 256 + callback.rawBody.count * 2
            case .queryResult(let result): return total + 256 + result.body.count * 2
            }
        }
    }
}

/// The events one append stored, what the projection made of each, and the touched orders' states after them.
public struct Appended: Sendable, Hashable {
    public var events: [Event]
    public var effects: [EventEffect]
    public var orders: [String: OrderState]

    public init(events: [Event], effects: [EventEffect], orders: [String: OrderState]) {
        self.events = events
        self.effects = effects
        self.orders = orders
    }
}

/// What became of an append.
public enum AppendOutcome: Sendable, Hashable {
    /// Stored, committed and synced: the events with their sequence numbers and hashes, what the projection made
    /// of each, and the state of each order they touched after them.
    case appended(Appended)
    /// Nothing stored: the precondition did not hold. Carries the order as it is.
    case preconditionFailed(OrderState)

    /// The appended events, or nil when the precondition failed.
    public var events: [Event]? {
        if case .appended(let appended) = self { return appended.events }
        return nil
    }
}

/// The head of the log: the last sequence number and its event's hash.
public struct LogHead: Sendable, Hashable {
    public var sequence: UInt64
    public var hash: Digest32

    public init(sequence: UInt64, hash: Digest32) {
        self.sequence = sequence
        self.hash = hash
    }

    public static let empty = LogHead(sequence: 0, hash: .zero)
}

/// Progress of a long operation (rebuild, verification), reported a few times a second.
public struct StoreProgress: Sendable, Hashable {
    public var phase: String
    public var done: UInt64
    public var total: UInt64
    /// Items per second so far.
    public var rate: Double
    /// Seconds left at that rate.
    public var secondsRemaining: Double?

    public init(phase: String, done: UInt64, total: UInt64, rate: Double, secondsRemaining: Double?) {
        self.phase = phase
        self.done = done
        self.total = total
        self.rate = rate
        self.secondsRemaining = secondsRemaining
    }
}

public typealias ProgressHandler = @Sendable (StoreProgress) -> Void

/// The result of walking the hash chain.
public struct ChainReport: Sendable, Hashable {
    /// Where and why the chain breaks.
    public enum Break: Sendable, Hashable, CustomStringConvertible {
        /// The sequence numbers skip (or repeat): `expected` was due, `found` is stored.
        case sequenceGap(expected: UInt64, found: UInt64)
        /// The stored bytes fail their checksum, or do not decode.
        case corrupted(sequence: UInt64, reason: String)
        /// The event's own hash does not match its content.
        case hashMismatch(sequence: UInt64)
        /// The event's previous-hash is not its predecessor's hash.
        case chainMismatch(sequence: UInt64)
        /// The head recorded in the store's metadata is not the last event.
        case headMismatch(recorded: UInt64, last: UInt64)

        public var sequence: UInt64 {
            switch self {
            case .sequenceGap(let expected, _): return expected
            case .corrupted(let sequence, _), .hashMismatch(let sequence), .chainMismatch(let sequence):
                return sequence
            case .headMismatch(let recorded, _): return recorded
            }
        }

        public var description: String {
            switch self {
            case .sequenceGap(let expected, let found):
                return "The log skips from sequence \(expected - 1) to \(found)."
            case .corrupted(let sequence, let reason): return "Event \(sequence) is corrupted: \(reason)"
            case .hashMismatch(let sequence): return "Event \(sequence)'s hash does not match its content."
            case .chainMismatch(let sequence):
                return "Event \(sequence)'s previous hash is not the hash of event \(sequence - 1)."
            case .headMismatch(let recorded, let last):
                return "The recorded head is \(recorded) but the last event is \(last)."
            }
        }
    }

    /// How many events were checked.
    public var eventsChecked: UInt64
    /// The head (the last event checked) when the chain is whole.
    public var head: LogHead
    /// The first break, if any.
    public var firstBreak: Break?
    public var seconds: Double

    public var isIntact: Bool { self.firstBreak == nil }

    public init(eventsChecked: UInt64, head: LogHead, firstBreak: Break?, seconds: Double) {
        self.eventsChecked = eventsChecked
        self.head = head
        self.firstBreak = firstBreak
        self.seconds = seconds
    }
}

/// The result of a projection rebuild.
public struct RebuildReport: Sendable, Hashable {
    public var eventsReplayed: UInt64
    public var orders: UInt64
    /// The head the new projection reflects when it was swapped in.
    public var head: LogHead
    public var seconds: Double

    public init(eventsReplayed: UInt64, orders: UInt64, head: LogHead, seconds: Double) {
        self.eventsReplayed = eventsReplayed
        self.orders = orders
        self.head = head
        self.seconds = seconds
    }
}

/// One order whose live projection differs from a rebuild.
public struct ProjectionDifference: Sendable, Hashable {
    public var orderId: String
    public var live: OrderState?
    public var rebuilt: OrderState?

    public init(orderId: String, live: OrderState?, rebuilt: OrderState?) {
        self.orderId = orderId
        self.live = live
        self.rebuilt = rebuilt
    }
}

/// The result of a projection verification.
public struct ProjectionVerifyReport: Sendable, Hashable {
    public var eventsReplayed: UInt64
    public var ordersCompared: UInt64
    /// The differing orders, at most `differencesMax`.
    public var differences: [ProjectionDifference]
    /// How many differ in all.
    public var differenceCount: UInt64
    public var head: LogHead
    public var seconds: Double

    public init(
        eventsReplayed: UInt64,
        ordersCompared: UInt64,
        differences: [ProjectionDifference],
        differenceCount: UInt64,
        head: LogHead,
        seconds: Double
    ) {
        self.eventsReplayed = eventsReplayed
        self.ordersCompared = ordersCompared
        self.differences = differences
        self.differenceCount = differenceCount
        self.head = head
        self.seconds = seconds
    }
}

/// The result of a backup.
public struct BackupReport: Sendable, Hashable {
    public var path: String
    public var bytes: UInt64
    public var head: LogHead
    public var seconds: Double
}

/// Sizes and counts for `ledger.stats`.
public struct StoreStatistics: Sendable, Hashable {
    public var head: LogHead
    public var eventsByType: [EventType: UInt64]
    public var ordersByStatus: [OrderStatus: UInt64]
    /// Bytes the store occupies.
    public var storeBytes: UInt64
    /// Bytes the store may grow to without remapping (LMDB's map size), or nil where that means nothing.
    public var mapBytes: UInt64?

    public init(
        head: LogHead,
        eventsByType: [EventType: UInt64],
        ordersByStatus: [OrderStatus: UInt64],
        storeBytes: UInt64,
        mapBytes: UInt64?
    ) {
        self.head = head
        self.eventsByType = eventsByType
        self.ordersByStatus = ordersByStatus
        self.storeBytes = storeBytes
        self.mapBytes = mapBytes
    }
}

/// Why the store could not do what was asked, in the codes the daemon maps to its answers.
public enum StoreErrorCode: String, Sendable, Hashable {
    case full = "store-full"
    case corrupted
    case closed
    case busy
    case io
    case invalidArgument = "invalid-argument"
}

/// A store's failure: a code the daemon maps to its answers, a message an operator can act on, the error that
/// caused it (an `LMDBError` with its failing call, a PostgreSQL error), and where it was raised.
public typealias StoreError = LocatedError<StoreErrorCode>

/// The ledger's storage, behind which LMDB (the embedded default) or another engine sits. The daemon depends on
/// this protocol only; one contract test suite runs against every implementation.
public protocol EventStore: AnyObject, Sendable {
    /// Appends events durably: returns only after they are committed and synced.
    func append(_ request: AppendRequest) async throws -> AppendOutcome
    /// The same append, answered through `completion` instead of to an awaiting task. A store with a writer thread
    /// calls it on that thread as soon as the events are durable (or refused), so an event loop can take the
    /// answer without a task hop; `completion` must only hand the result on. The default awaits `append` in a task.
    func append(_ request: AppendRequest, completion: @escaping AppendCompletion)
    /// The head of the log.
    func head() async throws -> LogHead
    /// Up to `limit` events from sequence `from` (inclusive), in order.
    func readEvents(from sequence: UInt64, limit: Int) async throws -> [Event]
    /// Every event of one order, in order.
    func events(forOrder orderId: String) async throws -> [Event]
    /// The order's first order-created event, or nil when it has none: one event read, however many others name
    /// the order (a page that shows the order must not slow down as forged callbacks pile up under its id).
    func createdEvent(forOrder orderId: String) async throws -> Event?
    /// The projected state of one order, or nil when no event names it.
    func order(_ orderId: String) async throws -> OrderState?
    /// Orders with a status, oldest first (in the order the ledger first recorded an event naming each), after the
    /// order `afterOrderId` (exclusive), at most `limit`. An `afterOrderId` the ledger does not hold is an
    /// `invalidArgument` error, not an empty page.
    func orders(status: OrderStatus, after afterOrderId: String?, limit: Int) async throws -> [OrderState]
    /// The first event that recorded a validly signed callback with this signed content, if any.
    func firstCallback(orderId: String, signedContentKey: String) async throws -> UInt64?
    /// Counts and sizes.
    func statistics() async throws -> StoreStatistics
    /// Walks the hash chain and reports the first break.
    func verifyChain(progress: ProgressHandler?) async throws -> ChainReport
    /// Replays the log into a fresh projection while appends go on, and swaps it in atomically.
    func rebuildProjection(progress: ProgressHandler?) async throws -> RebuildReport
    /// Rebuilds into scratch space and compares with the live projection, order by order.
    func verifyProjection(differencesMax: Int, progress: ProgressHandler?) async throws -> ProjectionVerifyReport
    /// A hot, consistent copy of the store at `path`.
    func backup(to path: String) async throws -> BackupReport

    // The quarantine: notifications the gateway did not vouch for, kept outside the log (architecture.md, "Nothing
    // unverified enters the log"), within `QuarantineLimits` and under `QuarantineBook`'s eviction rule.

    /// Keeps `entry` (its `id` is assigned here), counts it exactly (per order when the ledger holds an order-created
    /// event for its order id, otherwise among the unknown orders), and drops the entries the bounds require.
    /// Nothing is appended to the log, and no order handle, projection row or status entry is made.
    func quarantine(_ entry: QuarantineEntry) async throws -> QuarantineReceipt
    /// A page of the quarantine, newest first.
    func quarantined(_ query: QuarantineQuery) async throws -> QuarantinePage
    /// The exact per-order counts of quarantined notifications: for `orderId` alone, or for every order that has any.
    func quarantineCounts(orderId: String?) async throws -> [String: QuarantineCounts]
    /// What the quarantine holds and has counted.
    func quarantineStatus() async throws -> QuarantineStatus

    // Forwarding (issue 16): how far the forwarder has derived outcomes from the log, and its outbox of deliveries
    // (pending and dead) per receiver, kept in the same store as the log so a restart resumes where it stopped.

    /// The sequence up to which outcomes have been derived into the outbox; 0 for a new ledger.
    func forwardPosition() async throws -> UInt64
    /// Up to `limit` deliveries of the outbox after `after` (exclusive), in key order (receiver, sequence, type).
    func forwardOutbox(after: ForwardKey?, limit: Int) async throws -> [ForwardDelivery]
    /// Applies one change atomically: sets the position (when given), stores each delivery of `put` (replacing one
    /// with its key), and drops each key of `remove` (one not held is no error). A position beyond the head is an
    /// `invalidArgument` error and nothing is written: the forwarder is never ahead of a durable fact.
    func forwardWrite(_ write: ForwardWrite) async throws
    /// Stops accepting appends, finishes those queued, and releases the store.
    func close() async
}

/// What an append's caller hears once the events are durable, or why they are not.
public typealias AppendCompletion = @Sendable (Result<AppendOutcome, any Error>) -> Void

extension EventStore {
    public func append(_ request: AppendRequest, completion: @escaping AppendCompletion) {
        Task {
            do {
                completion(.success(try await self.append(request)))
            } catch {
                completion(.failure(error))
            }
        }
    }
}

/// A store that groups concurrent appends into commits (group commit) and reports the size of each, for the
/// daemon's `ledger_commit_batch_size` metric.
public protocol CommitBatchReporting: EventStore {
    /// Batch sizes committed since the last call.
    func takeCommitBatchSizes() -> [Int]
}

/// A store that several daemons share (PostgreSQL). Any daemon appends and reads; exactly one at a time polls the
/// gateway, elected through the store; and each daemon follows the log for what the others append (an embedded store
/// such as LMDB belongs to one process and does not conform).
public protocol SharedEventStore: EventStore {
    /// Waits until this daemon holds the ledger's poll leadership, trying every `retryInterval` (and calling
    /// `standby` after each try that found another leader), then runs `leading` while it holds it.
    ///
    /// Returns what `leading` returns, after giving up leadership. When leadership is lost while `leading` runs (the
    /// store stopped answering, so another daemon may take over), `leading` is cancelled, and this throws
    /// `LeadershipLost` once it has returned. Cancelling the caller while it waits throws `CancellationError`.
    ///
    /// `leading` gets the lease: it should start no new work while `lease.isCurrent` is false (leadership not
    /// confirmed for two intervals, so it may be about to be lost), which bounds how long two daemons overlap.
    func whileLeading<T: Sendable>(
        retryInterval: Duration,
        standby: @escaping @Sendable () async -> Void,
        _ leading: @escaping @Sendable (LeaderLease) async throws -> T
    ) async throws -> T
}

/// When a leader last confirmed its leadership. Work started only while the lease is current ends, at worst, with
/// the work already in flight when leadership is lost (which is cancelled then).
public final class LeaderLease: Sendable {
    private let origin = ContinuousClock.now
    private let confirmedNanoseconds: Atomic<Int64>
    private let validity: Duration

    /// A lease not yet confirmed (not current), current for `validity` after each confirmation.
    public init(validity: Duration) {
        self.validity = validity
        // Far enough in the past that no validity reaches it, and no subtraction overflows.
        self.confirmedNanoseconds = Atomic(Int64.min / 2)
    }

    private func elapsed() -> Int64 {
        let elapsed = ContinuousClock.now - self.origin
        return elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
    }

    /// Leadership was confirmed just now.
    public func confirm() { self.confirmedNanoseconds.store(self.elapsed(), ordering: .releasing) }

    /// Whether leadership was confirmed within the validity.
    public var isCurrent: Bool {
        let validity =
            self.validity.components.seconds * 1_000_000_000 + self.validity.components.attoseconds / 1_000_000_000
        return self.elapsed() - self.confirmedNanoseconds.load(ordering: .acquiring) < validity
    }
}

/// Poll leadership ended without being given up: the store could not confirm it within the retry interval, so
/// another daemon may lead now.
public struct LeadershipLost: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "Poll leadership lost: \(self.reason)" }
}
