import Foundation
public import LedgerStore
import Logging
import PostgresNIO
import Synchronization

/// Poll leadership: a session-level advisory lock, held on a connection of its own (outside the pool, so leading
/// never takes a connection from appends or a rebuild).
///
/// - The lock is the server's, so it is released when the leader's session ends however it ends: a clean release,
///   the process killed (the server sees the socket close), or a leader that stops talking (the session sets
///   `idle_session_timeout`, and TCP keepalives, so the server ends a silent session within a bound).
/// - The leader confirms its session every retry interval, with a deadline of three intervals; when it cannot, it
///   stops leading at once and tries again. A leader cut off from the server therefore stops within four intervals,
///   before the server ends its silent session (five intervals) and lets another daemon lead.
/// - A standby daemon tries the lock every retry interval, so it takes over within one interval of the lock's
///   release.
extension PostgresEventStore: SharedEventStore {
    /// LEDP in ASCII: the seed of the poll leader's lock key. The key is one 64-bit value,
    /// `hashtextextended(schema, seed)`, not the two-int form of the other locks: ledgers in other schemas of the same
    /// database must never share a leader, and 32 bits of schema hash could collide.
    static let leaderLockClass: Int32 = 0x4C45_4450
    /// How long a query on the leader's session may take, in retry intervals: generous, so a loaded machine does not
    /// make the leader step down, and below the server's idle limit on the session (`idleIntervals`).
    static let answerIntervals = 3
    static let idleIntervals = 5

    public func whileLeading<T: Sendable>(
        retryInterval: Duration,
        standby: @escaping @Sendable () async -> Void,
        _ leading: @escaping @Sendable (LeaderLease) async throws -> T
    ) async throws -> T {
        var connection: PostgresConnection?
        defer {
            if let connection { Task { try? await connection.close() } }
        }
        while true {
            try Task.checkCancellation()
            var leader: PostgresConnection?
            do {
                let session: PostgresConnection
                if let connection, !connection.isClosed {
                    session = connection
                } else {
                    session = try await self.openLeaderSession(idleTimeout: retryInterval * Self.idleIntervals)
                    connection = session
                }
                let (seed, schema, logger) = (Int64(Self.leaderLockClass), self.schema.name, self.logger)
                let locked = try await Self.onSession(session, within: retryInterval * Self.answerIntervals) {
                    session in
                    try await session.query(
                        "SELECT pg_try_advisory_lock(hashtextextended(\(schema), \(seed)))",
                        logger: logger
                    )
                    .collect().first?.decode(Bool.self) ?? false
                }
                if locked { leader = session }
            } catch {
                try Task.checkCancellation()
                self.logger.warning(
                    "could not try for poll leadership; trying again",
                    metadata: [
                        "error":
                            "\(Self.storeError(error, during: "trying for poll leadership", settings: self.settings))"
                    ]
                )
                if let stale = connection {
                    connection = nil
                    try? await stale.close()
                }
            }
            if let leader {
                // leadOn gives the session up (or loses it) whatever happens.
                connection = nil
                return try await self.leadOn(leader, retryInterval: retryInterval, leading)
            }
            await standby()
            try await Task.sleep(for: retryInterval)
        }
    }

    private enum LeaderEvent<T: Sendable>: Sendable {
        case finished(Result<T, any Error>)
        case lost(String)
        case watchStopped
    }

    /// Runs `leading` while a watchdog confirms the session every `retryInterval`; gives the lock up afterwards. The
    /// session is closed on every path.
    private func leadOn<T: Sendable>(
        _ session: PostgresConnection,
        retryInterval: Duration,
        _ leading: @escaping @Sendable (LeaderLease) async throws -> T
    ) async throws -> T {
        self.logger.info("leading the poll", metadata: ["store.schema": "\(self.schema.name)"])
        let logger = self.logger
        // Current for two intervals after each confirmation (the lock was just taken: confirmed now).
        let lease = LeaderLease(validity: retryInterval * 2)
        lease.confirm()
        // Neither child throws, so the group always yields both: `leading`'s result, and the watchdog's verdict.
        let (result, lost): (Result<T, any Error>?, String?) = await withTaskGroup(of: LeaderEvent<T>.self) { group in
            group.addTask {
                do {
                    return .finished(.success(try await leading(lease)))
                } catch {
                    return .finished(.failure(error))
                }
            }
            group.addTask {
                while true {
                    do {
                        try await Task.sleep(for: retryInterval)
                    } catch {
                        return .watchStopped
                    }
                    if let reason = await Self.confirm(
                        session,
                        within: retryInterval * Self.answerIntervals,
                        logger: logger
                    ) {
                        // Cancelled mid-confirmation (the leader finished, or shutdown): not a lost lock.
                        return Task.isCancelled ? .watchStopped : .lost(reason)
                    }
                    lease.confirm()
                }
            }
            var result: Result<T, any Error>?
            var lost: String?
            // Whichever ends first ends the other: a leader that lost its lock must not go on polling, and the
            // watchdog has nothing to watch once `leading` returned. Both have stopped when the group returns.
            while let event = await group.next() {
                group.cancelAll()
                switch event {
                case .finished(let finished): result = finished
                case .lost(let reason): if result == nil { lost = reason }
                case .watchStopped: break
                }
            }
            return (result, lost)
        }
        if let lost {
            try? await session.close()
            self.logger.warning("poll leadership lost", metadata: ["reason": "\(lost)"])
            throw LeadershipLost(lost)
        }
        // A clean end: release the lock, then the session (whose end would release it anyway, so a shutdown, whose
        // cancellation gives the unlock up at once, loses nothing).
        let (seed, schema) = (Int64(Self.leaderLockClass), self.schema.name)
        _ = try? await Self.onSession(session, within: retryInterval * Self.answerIntervals) { session in
            try await Self.execute(
                session,
                "SELECT pg_advisory_unlock(hashtextextended(\(schema), \(seed)))",
                logger: logger
            )
        }
        try? await session.close()
        self.logger.info("gave up poll leadership")
        guard let result else { throw CancellationError() }
        return try result.get()
    }

    /// `nil` when the session answered within `deadline`, else why not.
    private static func confirm(_ session: PostgresConnection, within deadline: Duration, logger: Logger) async
        -> String?
    {
        do {
            try await Self.onSession(session, within: deadline) {
                try await Self.execute($0, "SELECT 1", logger: logger)
            }
            return nil
        } catch {
            return "the leader's session did not confirm the lock: \(error)"
        }
    }

    /// Runs `body` on the leader's session, or gives up after `deadline`: then the session is closed and `body` is
    /// left behind rather than waited for, because a query on a session the server ended may never return (seen
    /// with PostgresNIO after `pg_terminate_backend`). Every query on that session goes through here, so neither the
    /// poller's standby loop nor a shutdown can hang on a dead session. Cancelling the calling task gives up at once
    /// the same way (`CancellationError`), closing the session: a shutdown does not wait out the deadline.
    static func onSession<T: Sendable>(
        _ session: PostgresConnection,
        within deadline: Duration,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let call = SessionCall<T>()
        return try await withTaskCancellationHandler {
            try await Self.onSession(session, within: deadline, call: call, body)
        } onCancel: {
            // Runs at once if the task was cancelled before: then the waiter is not there yet, and the operation
            // sees `Task.isCancelled` after storing it.
            call.cancel(closing: session)
        }
    }

    private static func onSession<T: Sendable>(
        _ session: PostgresConnection,
        within deadline: Duration,
        call: SessionCall<T>,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            call.waiter.withLock { $0 = continuation }
            if Task.isCancelled {
                call.cancel(closing: session)
                return
            }
            call.timer.withLock { timer in
                timer = Task {
                    // Cancelled: the body answered first, and took the waiter before cancelling this.
                    do { try await Task.sleep(for: deadline) } catch { return }
                    guard let waiting = call.waiter.withLock({ $0.take() }) else { return }
                    try? await session.close()
                    waiting.resume(
                        throwing: StoreError(.io, "The leader's PostgreSQL session did not answer within \(deadline).")
                    )
                }
            }
            Task {
                let result: Result<T, any Error>
                do {
                    result = .success(try await body(session))
                } catch {
                    result = .failure(error)
                }
                // Take the waiter before cancelling the timer, so the timer can never claim an answered call.
                let waiting = call.waiter.withLock { $0.take() }
                call.timer.withLock { $0?.cancel() }
                waiting?.resume(with: result)
            }
        }
    }

    /// A connection of its own for the leader lock, whose session the server ends after `idleTimeout` of silence
    /// (PostgreSQL 14 and later; TCP keepalives bound a dead peer on a TCP connection).
    private func openLeaderSession(idleTimeout: Duration) async throws -> PostgresConnection {
        let session = try await PostgresConnection.connect(
            configuration: try self.leaderConnectionConfiguration(),
            id: 0,
            logger: self.logger
        )
        do {
            let (endpoint, logger) = (self.settings.endpoint, self.logger)
            try await Self.onSession(session, within: idleTimeout) { session in
                let version =
                    try await session.query("SELECT current_setting('server_version_num')::int", logger: logger)
                    .collect().first?.decode(Int.self) ?? 0
                let idleMilliseconds = max(1000, Int(idleTimeout / .milliseconds(1)))
                if version >= 140_000 {
                    try await Self.execute(
                        session,
                        "SELECT set_config('idle_session_timeout', \(String(idleMilliseconds)), false)",
                        logger: logger
                    )
                }
                if case .tcp = endpoint {
                    let idleSeconds = String(max(1, idleMilliseconds / 3000))
                    try await Self.execute(
                        session,
                        """
                        SELECT set_config('tcp_keepalives_idle', \(idleSeconds), false),
                               set_config('tcp_keepalives_interval', \(idleSeconds), false),
                               set_config('tcp_keepalives_count', '3', false)
                        """,
                        logger: logger
                    )
                }
            }
            return session
        } catch {
            try? await session.close()
            throw error
        }
    }

    func leaderConnectionConfiguration() throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        switch self.settings.endpoint {
        case .unixSocket(let path):
            configuration = .init(
                unixSocketPath: path,
                username: self.settings.user,
                password: self.settings.password,
                database: self.settings.database
            )
        case .tcp(let host, let port):
            let tls: PostgresConnection.Configuration.TLS
            if let (client, required) = self.settings.tls.clientTLS {
                let context = try NIOSSLContext(configuration: client)
                tls = required ? .require(context) : .prefer(context)
            } else {
                tls = .disable
            }
            configuration = .init(
                host: host,
                port: port,
                username: self.settings.user,
                password: self.settings.password,
                database: self.settings.database,
                tls: tls
            )
        }
        configuration.options.connectTimeout = .milliseconds(Int64(self.options.connectTimeout / .milliseconds(1)))
        configuration.options.additionalStartupParameters = [("application_name", "ledgerd poll leader")]
        return configuration
    }
}

/// One call on the leader's session: whichever of the answer and the deadline comes first resumes the caller.
private final class SessionCall<T: Sendable>: Sendable {
    let waiter = Mutex<CheckedContinuation<T, any Error>?>(nil)
    let timer = Mutex<Task<Void, Never>?>(nil)

    /// Gives the call up for its task's cancellation, closing the session, unless it already ended.
    func cancel(closing session: PostgresConnection) {
        guard let waiting = self.waiter.withLock({ $0.take() }) else { return }
        self.timer.withLock { $0?.cancel() }
        Task { try? await session.close() }
        waiting.resume(throwing: CancellationError())
    }
}
