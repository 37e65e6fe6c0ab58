import Foundation
import LedgerCore
import LedgerStore
import LedgerTesting
import Logging
import PostgresNIO
import Synchronization
import Testing

@testable import LedgerPostgres

/// Poll leadership on PostgreSQL (`SharedEventStore.whileLeading`): one leader per ledger at a time, a standby
/// that takes over when the leader gives up or loses its session, and nothing left held after cancellation.
extension PostgresEventStoreTests {
    /// Counts a standby's tries and records what a leader's body saw.
    final class Probe: Sendable {
        let standbyTries = Atomic<Int>(0)
        let leading = Atomic<Bool>(false)
        let cancelled = Atomic<Bool>(false)
        let started = AsyncStream<Void>.makeStream()
        var isLeading: Bool { self.leading.load(ordering: .relaxed) }
        var wasCancelled: Bool { self.cancelled.load(ordering: .relaxed) }
        var tries: Int { self.standbyTries.load(ordering: .relaxed) }
    }

    /// Leads until `release` yields (or the task is cancelled), marking the probe.
    static func lead(_ store: PostgresEventStore, _ probe: Probe, release: AsyncStream<Void>?) async throws {
        try await store.whileLeading(
            retryInterval: .seconds(1),
            standby: { probe.standbyTries.add(1, ordering: .relaxed) }
        ) { lease in
            // The lock was just taken: the lease is current.
            #expect(lease.isCurrent)
            probe.leading.store(true, ordering: .relaxed)
            probe.started.continuation.yield()
            if let release {
                for await _ in release { break }
            } else {
                while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(20)) }
            }
            probe.cancelled.store(Task.isCancelled, ordering: .relaxed)
            probe.leading.store(false, ordering: .relaxed)
        }
    }

    static func waitUntil(_ condition: () -> Bool) async throws {
        #expect(try await eventually(seconds: 30) { condition() })
    }

    /// The first daemon to try leads; the second stands by, trying, until the first gives leadership up; a standby
    /// cancelled while waiting throws and holds nothing, so a third daemon can lead afterwards.
    @Test(.timeLimit(.minutes(1))) func oneLeaderAtATime() async throws {
        let first = try await PostgresTestDatabase.freshStore()
        let second = try await PostgresTestDatabase.freshStore(schema: first.schema.name)
        let third = try await PostgresTestDatabase.freshStore(schema: first.schema.name)
        // Another ledger in the same database has a leader of its own.
        let elsewhere = try await PostgresTestDatabase.freshStore()
        let (firstProbe, secondProbe, thirdProbe, elsewhereProbe) = (Probe(), Probe(), Probe(), Probe())
        let releaseFirst = AsyncStream<Void>.makeStream()
        let firstTask = Task { try await Self.lead(first, firstProbe, release: releaseFirst.stream) }
        for await _ in firstProbe.started.stream { break }
        let secondTask = Task { try await Self.lead(second, secondProbe, release: nil) }
        let thirdTask = Task { try await Self.lead(third, thirdProbe, release: nil) }
        let elsewhereTask = Task { try await Self.lead(elsewhere, elsewhereProbe, release: nil) }
        for await _ in elsewhereProbe.started.stream { break }
        try await Self.waitUntil { secondProbe.tries >= 3 && thirdProbe.tries >= 3 }
        #expect(firstProbe.isLeading)
        #expect(!secondProbe.isLeading && !thirdProbe.isLeading)

        // The third stops waiting: cancelled, it throws.
        thirdTask.cancel()
        await #expect(throws: CancellationError.self) { try await thirdTask.value }

        // The first gives up: the second takes over.
        releaseFirst.continuation.yield()
        try await firstTask.value
        #expect(!firstProbe.wasCancelled)
        for await _ in secondProbe.started.stream { break }
        #expect(secondProbe.isLeading)

        // Shutdown while leading: the body is cancelled, and the lock is free for the next daemon.
        secondTask.cancel()
        _ = try? await secondTask.value
        #expect(secondProbe.wasCancelled)
        let fourthProbe = Probe()
        let fourthTask = Task { try await Self.lead(third, fourthProbe, release: nil) }
        for await _ in fourthProbe.started.stream { break }
        fourthTask.cancel()
        elsewhereTask.cancel()
        _ = try? await fourthTask.value
        _ = try? await elsewhereTask.value
        for store in [first, second, third, elsewhere] { await store.close() }
    }

    /// A call on the leader's session whose task is cancelled ends at once with `CancellationError` and closes
    /// the session, instead of waiting out its deadline (here ten minutes, past the test's time limit) for a
    /// query that is still running.
    @Test(.timeLimit(.minutes(1))) func cancelledSessionCallEndsAtOnce() async throws {
        let store = try await PostgresTestDatabase.freshStore()
        let logger = Logger(label: "ledger.test.leader")
        let session = try await PostgresConnection.connect(
            configuration: try store.leaderConnectionConfiguration(),
            id: 1,
            logger: logger
        )
        let started = AsyncStream<Void>.makeStream()
        let call = Task {
            try await PostgresEventStore.onSession(session, within: .seconds(600)) { session in
                started.continuation.yield()
                return try await session.query("SELECT pg_sleep(45)", logger: logger).collect().count
            }
        }
        for await _ in started.stream { break }
        try await Task.sleep(for: .milliseconds(200))
        call.cancel()
        await #expect(throws: CancellationError.self) { _ = try await call.value }
        try await Self.waitUntil { session.isClosed }
        // Cancelled before the call: it does not start, and the session is closed.
        let second = try await PostgresConnection.connect(
            configuration: try store.leaderConnectionConfiguration(),
            id: 2,
            logger: logger
        )
        let ran = Atomic<Bool>(false)
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await PostgresEventStore.onSession(second, within: .seconds(600)) { _ in
                ran.store(true, ordering: .relaxed)
            }
        }
        await #expect(throws: CancellationError.self) { try await early.value }
        try await Self.waitUntil { second.isClosed }
        let bodyRan = ran.load(ordering: .relaxed)
        #expect(!bodyRan)
        await store.close()
    }

    /// A leader whose session the server ends (as when its host is cut off) notices within the retry interval,
    /// stops leading (its body is cancelled) and throws `LeadershipLost`; the standby takes over.
    @Test(.timeLimit(.minutes(1))) func lostSessionEndsLeadership() async throws {
        let first = try await PostgresTestDatabase.freshStore()
        let second = try await PostgresTestDatabase.freshStore(schema: first.schema.name)
        let (firstProbe, secondProbe) = (Probe(), Probe())
        let firstTask = Task { try await Self.lead(first, firstProbe, release: nil) }
        for await _ in firstProbe.started.stream { break }
        let secondTask = Task { try await Self.lead(second, secondProbe, release: nil) }
        try await Self.waitUntil { secondProbe.tries >= 2 }

        // End the leader's session from outside, found by the advisory lock it holds.
        let terminated = try await PostgresTestDatabase.withClient { client in
            try await client.withConnection { connection in
                try await connection.query(
                    """
                    SELECT count(pg_terminate_backend(pid))::int FROM pg_locks
                    WHERE locktype = 'advisory' AND granted AND objsubid = 1
                      AND ((classid::int8 << 32) | objid::int8)
                          = hashtextextended(\(first.schema.name), \(Int64(PostgresEventStore.leaderLockClass)))
                    """,
                    logger: PostgresTestDatabase.logger
                ).collect().first?.decode(Int.self) ?? 0
            }
        }
        #expect(terminated == 1)
        await #expect(throws: LeadershipLost.self) { try await firstTask.value }
        #expect(firstProbe.wasCancelled)
        #expect(!firstProbe.isLeading)
        for await _ in secondProbe.started.stream { break }
        #expect(secondProbe.isLeading)
        secondTask.cancel()
        _ = try? await secondTask.value
        await first.close()
        await second.close()
    }
}

/// The leader's lease: current within its validity after a confirmation, not after.
struct LeaderLeaseTests {
    @Test func lapsesWithoutConfirmation() async throws {
        let long = LeaderLease(validity: .seconds(60))
        #expect(!long.isCurrent)
        long.confirm()
        #expect(long.isCurrent)
        let short = LeaderLease(validity: .milliseconds(20))
        short.confirm()
        try await Task.sleep(for: .milliseconds(60))
        #expect(!short.isCurrent)
        short.confirm()
        let renewed = LeaderLease(validity: .seconds(60))
        renewed.confirm()
        #expect(renewed.isCurrent)
    }
}
