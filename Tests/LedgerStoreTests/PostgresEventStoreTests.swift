import Foundation
import LedgerCore
import LedgerStore
import LedgerTesting
import PostgresNIO
import Testing

@testable import LedgerPostgres

/// What only the PostgreSQL store has to show: several daemons on one ledger, schema versions, SQL-level guards.
/// The shared behaviour is in `EventStoreContractTests`. Serialized: run at once, these tests' fsyncs and schema
/// creations crowd out the end-to-end tests' timing on a two-core machine.
@Suite(.serialized) struct PostgresEventStoreTests {
    let fixture = StoreFixture()

    /// Two stores on one schema, as two daemons, append at once: one gap-free sequence, one intact chain, and each
    /// sees the other's events and projection.
    @Test func twoDaemonsShareOneChain() async throws {
        let first = try await PostgresTestDatabase.freshStore()
        let second = try await PostgresTestDatabase.freshStore(schema: first.schema.name)
        let fixture = self.fixture
        let sequences = try await withThrowingTaskGroup(of: [UInt64].self) { group in
            for index in 0..<120 {
                let store = index % 2 == 0 ? first : second
                group.addTask {
                    let request = AppendRequest([fixture.created("D\(index)"), fixture.callback("D\(index)")])
                    return try #require(try await store.append(request).events).map(\.sequence)
                }
            }
            var all: [[UInt64]] = []
            for try await sequences in group { all.append(sequences) }
            return all
        }
        for pair in sequences { #expect(pair.count == 2 && pair[1] == pair[0] + 1) }
        #expect(sequences.flatMap { $0 }.sorted() == Array(1...240))
        for store in [first, second] {
            let report = try await store.verifyChain(progress: nil)
            #expect(report.isIntact)
            #expect(report.eventsChecked == 240)
            #expect(try await store.orders(status: .paid, after: nil, limit: 1000).count == 120)
            #expect(try await store.order("D7")?.status == .paid)
        }
        #expect(try await first.head() == second.head())
        await first.close()
        await second.close()
    }

    /// The same create sent to two daemons at once is stored once; the other daemon sees its precondition fail.
    @Test func preconditionHoldsAcrossDaemons() async throws {
        let first = try await PostgresTestDatabase.freshStore()
        let second = try await PostgresTestDatabase.freshStore(schema: first.schema.name)
        let fixture = self.fixture
        for round in 0..<10 {
            let request = AppendRequest([fixture.created("X\(round)")], precondition: .orderAbsent("X\(round)"))
            async let a = first.append(request)
            async let b = second.append(request)
            let outcomes = try await [a, b]
            #expect(outcomes.filter { $0.events != nil }.count == 1)
            #expect(try await first.events(forOrder: "X\(round)").count == 1)
        }
        #expect(try await second.head().sequence == 10)
        await first.close()
        await second.close()
    }

    /// Concurrent appends in one daemon are grouped: fewer transactions than appends, every append stored.
    @Test func groupCommit() async throws {
        let store = try await PostgresTestDatabase.freshStore()
        let fixture = self.fixture
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<300 {
                group.addTask { _ = try await store.append(AppendRequest([fixture.created("G\(index)")])) }
            }
            try await group.waitForAll()
        }
        let batches = store.takeCommitBatchSizes()
        #expect(batches.reduce(0, +) == 300)
        #expect(batches.count < 300)
        #expect(try await store.head().sequence == 300)
        await store.close()
    }

    /// Reopening finds the head and the projection where they were, and the schema at version 3.
    @Test func reopen() async throws {
        let store = try await PostgresTestDatabase.freshStore()
        let schema = store.schema.name
        _ = try await store.append(AppendRequest([self.fixture.created("R1")]))
        let head = try await store.append(AppendRequest([self.fixture.callback("R1")])).events!.last!
        await store.close()
        let reopened = try await PostgresTestDatabase.freshStore(schema: schema)
        #expect(try await reopened.head() == LogHead(sequence: 2, hash: head.hash))
        #expect(try await reopened.order("R1")?.status == .paid)
        let versions = try await PostgresTestDatabase.withClient { client in
            try await client.query(PostgresQuery(unsafeSQL: "SELECT version FROM \"\(schema)\".ledger_schema_version"))
                .collect().map { try $0.decode(Int.self) }
        }
        #expect(versions == [1, 2, 3])
        await reopened.close()
    }

    /// A schema at version 2 (written before forwarding existed) is migrated to version 3 when opened: its log stays
    /// as it was, and forwarding starts at position 0 with an empty outbox that takes deliveries.
    @Test func migratesVersionTwoToThree() async throws {
        let store = try await PostgresTestDatabase.freshStore()
        let schema = store.schema.name
        _ = try await store.append(AppendRequest([self.fixture.created("F1")]))
        let head = try await store.head()
        await store.close()
        try await PostgresTestDatabase.withClient { client in
            for statement in [
                "DROP TABLE \"\(schema)\".ledger_forward_outbox", "DROP TABLE \"\(schema)\".ledger_forward_position",
                "DELETE FROM \"\(schema)\".ledger_schema_version WHERE version = 3",
            ] {
                _ = try await client.query(PostgresQuery(unsafeSQL: statement)).collect()
            }
        }
        let reopened = try await PostgresTestDatabase.freshStore(schema: schema)
        #expect(try await reopened.head() == head)
        #expect(try await reopened.forwardPosition() == 0)
        #expect(try await reopened.forwardOutbox(after: nil, limit: 10).isEmpty)
        try await reopened.forwardWrite(ForwardWrite(position: 1))
        #expect(try await reopened.forwardPosition() == 1)
        await reopened.close()
    }

    /// A schema at version 1 (written before the quarantine existed) is migrated to version 2 when opened: its
    /// log and projection stay as they were, and the quarantine starts empty.
    @Test func migratesVersionOneToTwo() async throws {
        let store = try await PostgresTestDatabase.freshStore()
        let schema = store.schema.name
        _ = try await store.append(AppendRequest([self.fixture.created("M1")]))
        let head = try await store.head()
        await store.close()
        try await PostgresTestDatabase.withClient { client in
            for statement in [
                "DROP TABLE \"\(schema)\".ledger_quarantine", "DROP TABLE \"\(schema)\".ledger_quarantine_sources",
                "DROP TABLE \"\(schema)\".ledger_quarantine_counts",
                "DROP TABLE \"\(schema)\".ledger_quarantine_status",
                "DROP TABLE \"\(schema)\".ledger_forward_outbox", "DROP TABLE \"\(schema)\".ledger_forward_position",
                "DELETE FROM \"\(schema)\".ledger_schema_version WHERE version >= 2",
            ] {
                _ = try await client.query(PostgresQuery(unsafeSQL: statement)).collect()
            }
        }
        let reopened = try await PostgresTestDatabase.freshStore(schema: schema)
        #expect(try await reopened.head() == head)
        #expect(try await reopened.quarantineStatus() == QuarantineStatus())
        let receipt = try await reopened.quarantine(
            QuarantineEntry(
                receivedAt: self.fixture.start,
                remoteAddress: "192.0.2.1:1",
                reason: .badSignature,
                detail: "test",
                orderId: "M1",
                body: [1, 2, 3],
                limits: .default
            )
        )
        #expect(receipt == QuarantineReceipt(id: 1, dropped: 0, orderKnown: true))
        #expect(try await reopened.verifyChain(progress: nil).isIntact)
        await reopened.close()
    }

    /// A schema written by a newer build is refused, with a message that says to upgrade.
    @Test func newerSchemaRefused() async throws {
        let store = try await PostgresTestDatabase.freshStore()
        let schema = store.schema.name
        await store.close()
        _ = try await PostgresTestDatabase.withClient { client in
            try await client.query(
                PostgresQuery(unsafeSQL: "INSERT INTO \"\(schema)\".ledger_schema_version (version) VALUES (99)")
            )
        }
        await #expect {
            try await PostgresTestDatabase.freshStore(schema: schema)
        } throws: { error in
            (error as? StoreError)?.message.contains("version 99") == true
        }
    }

    /// The log is append-only in SQL too; an event altered behind the triggers' back is found by the chain walk.
    @Test func tamperingIsRefusedAndFound() async throws {
        let store = try await PostgresTestDatabase.freshStore()
        let schema = store.schema.name
        for index in 0..<5 { _ = try await store.append(AppendRequest([self.fixture.created("T\(index)")])) }
        let table = "\"\(schema)\".ledger_events"
        await #expect(throws: (any Error).self) {
            try await PostgresTestDatabase.withClient { client in
                try await client.query(PostgresQuery(unsafeSQL: "DELETE FROM \(table) WHERE sequence = 3"))
            }
        }
        #expect(try await store.verifyChain(progress: nil).isIntact)
        // Flip one bit of event 3's previous-hash field, with the trigger disabled, as someone with table rights
        // could: the event still decodes, but its hash no longer matches its content.
        try await PostgresTestDatabase.withClient { client in
            try await client.withTransaction(logger: PostgresTestDatabase.logger) { connection in
                try await connection.query(
                    PostgresQuery(unsafeSQL: "ALTER TABLE \(table) DISABLE TRIGGER ledger_events_append_only"),
                    logger: PostgresTestDatabase.logger
                )
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL:
                            "UPDATE \(table) SET event = set_byte(event, 30, get_byte(event, 30) # 1) WHERE sequence = 3"
                    ),
                    logger: PostgresTestDatabase.logger
                )
                try await connection.query(
                    PostgresQuery(unsafeSQL: "ALTER TABLE \(table) ENABLE TRIGGER ledger_events_append_only"),
                    logger: PostgresTestDatabase.logger
                )
            }
        }
        let report = try await store.verifyChain(progress: nil)
        #expect(report.firstBreak == .hashMismatch(sequence: 3))
        #expect(report.eventsChecked == 2)
        await #expect(throws: StoreError.self) { try await store.readEvents(from: 1, limit: 10) }
        await store.close()
    }

    /// A backup is refused with directions to pg_dump, and nothing is written.
    @Test func backupPointsToPgDump() async throws {
        let store = try await PostgresTestDatabase.freshStore()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-backup-\(UUID().uuidString)")
            .path
        await #expect {
            try await store.backup(to: path)
        } throws: { error in
            (error as? StoreError)?.message.contains("pg_dump") == true
        }
        #expect(!FileManager.default.fileExists(atPath: path))
        await store.close()
    }

    /// Two verifications at once: the second is told to wait rather than corrupt the first's scratch space.
    @Test func oneLongOperationAtATime() async throws {
        let store = try await PostgresTestDatabase.freshStore()
        let other = try await PostgresTestDatabase.freshStore(schema: store.schema.name)
        for index in 0..<20 { _ = try await store.append(AppendRequest([self.fixture.created("L\(index)")])) }
        let started = AsyncStream<Void>.makeStream()
        let release = AsyncStream<Void>.makeStream()
        // Hold the cross-daemon lock through the first store's long-operation path while the second tries.
        async let holding: Void = store.withLongOperation("the test") {
            started.continuation.yield()
            for await _ in release.stream { break }
        }
        for await _ in started.stream { break }
        await #expect {
            try await other.verifyProjection(differencesMax: 1, progress: nil)
        } throws: { error in
            (error as? StoreError)?.code == .busy
        }
        release.continuation.yield()
        try await holding
        #expect(try await other.verifyProjection(differencesMax: 1, progress: nil).differenceCount == 0)
        await store.close()
        await other.close()
    }

    /// With every connection busy, a read fails after the connect timeout with the reason, instead of waiting
    /// without end; once a connection is free again it works.
    @Test(.timeLimit(.minutes(1))) func leaseDeadline() async throws {
        var options = PostgresEventStore.Options()
        // Long enough for the open on a loaded machine; the read below must fail within it, not hang.
        options.connectTimeout = .seconds(5)
        let store = try await PostgresTestDatabase.freshStore(options: options)
        let held = AsyncStream<Void>.makeStream()
        let release = AsyncStream<Void>.makeStream()
        let holders = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<store.options.connectionsMax {
                    group.addTask {
                        try await store.client.withConnection { _ in
                            held.continuation.yield()
                            for await _ in release.stream { break }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        var count = 0
        for await _ in held.stream {
            count += 1
            if count == store.options.connectionsMax { break }
        }
        let started = ContinuousClock.now
        await #expect {
            try await store.head()
        } throws: { error in
            guard let error = error as? StoreError else { return false }
            return error.code == .io && error.message.contains("store.postgresConnectTimeoutMs")
        }
        #expect(ContinuousClock.now - started < .seconds(15))
        release.continuation.finish()
        try await holders.value
        #expect(try await store.head() == .empty)
        await store.close()
    }

    /// An unreachable server fails the open with an error that names it, and never shows the password.
    @Test(.timeLimit(.minutes(1))) func unreachableServer() async throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("no-postgres-\(UUID().uuidString)")
            .path
        var options = PostgresEventStore.Options()
        options.connectTimeout = .seconds(2)
        let started = ContinuousClock.now
        await #expect {
            try await PostgresEventStore.open(
                url: "postgres://nobody:s3cret-pw@/nothing?host=\(missing)",
                options: options,
                logger: PostgresTestDatabase.logger
            )
        } throws: { error in
            guard let error = error as? StoreError else { return false }
            // Neither the message nor the full form for the log (cause and location) carries the password.
            let full = String(reflecting: error)
            return error.code == .io && error.message.contains(missing) && !full.contains("s3cret-pw")
                && full.contains("[at ") && full.hasPrefix("io: ")
        }
        #expect(ContinuousClock.now - started < .seconds(10))
    }
}

/// Connection URLs, parsed as libpq reads them.
struct PostgresConnectionSettingsTests {
    /// A TCP URL with every part.
    @Test func tcp() throws {
        let settings = try PostgresConnectionSettings(
            url: "postgres://ledger:s%40cret@db.example:6543/books?sslmode=verify-full"
        )
        #expect(settings.endpoint == .tcp(host: "db.example", port: 6543))
        #expect(settings.user == "ledger")
        #expect(settings.password == "s@cret")
        #expect(settings.database == "books")
        #expect(settings.tls == .verifyFull)
        #expect(!settings.description.contains("cret"))
    }

    /// Defaults: port 5432, the database named after the user, TLS preferred.
    @Test func defaults() throws {
        let settings = try PostgresConnectionSettings(url: "postgresql://ledger@127.0.0.1")
        #expect(settings.endpoint == .tcp(host: "127.0.0.1", port: 5432))
        #expect(settings.database == "ledger")
        #expect(settings.tls == .prefer)
        #expect(
            try PostgresConnectionSettings(url: "postgres://u@[::1]:7000/d").endpoint == .tcp(host: "::1", port: 7000)
        )
    }

    /// A host that is a directory means the Unix socket in it, in either spelling.
    @Test func unixSocket() throws {
        let query = try PostgresConnectionSettings(url: "postgres://ledger@/books?host=/run/postgresql&port=5433")
        #expect(query.endpoint == .unixSocket(path: "/run/postgresql/.s.PGSQL.5433"))
        #expect(query.tls == .disable)
        let encoded = try PostgresConnectionSettings(url: "postgres://ledger@%2Ftmp%2Fpg/books")
        #expect(encoded.endpoint == .unixSocket(path: "/tmp/pg/.s.PGSQL.5432"))
    }

    /// Unusable URLs are refused with a reason.
    @Test(arguments: [
        "mysql://u@h/d", "postgres://h/d", "postgres://u@h:0/d", "postgres://u@h/d?sslmode=maybe",
        "postgres://u@h/d?color=blue", "postgres://u@/d", "postgres://u@h/d%zz",
        "postgres://u@/d?host=/tmp&sslmode=require",
    ])
    func refused(_ url: String) {
        #expect(throws: PostgresConnectionSettings.ParseError.self) { try PostgresConnectionSettings(url: url) }
    }
}

/// The group-commit queue's decisions, without a database.
struct CommitQueueTests {
    struct Job: CommitQueueJob, Equatable {
        var id: Int
        var estimatedBytes: Int = 10
    }

    func queue(count: Int = 3, bytes: Int = 100, depth: Int = 5) -> CommitQueue<Job> {
        CommitQueue(limits: .init(batchCountMax: count, batchBytesMax: bytes, queueDepthMax: depth))
    }

    func batch(_ action: CommitQueue<Job>.FinishAction) -> [Int]? {
        if case .commit(let jobs) = action { return jobs.map(\.id) }
        return nil
    }

    /// An idle queue commits the first append at once; later ones wait and go together into the next batch.
    @Test func groupsWaitingAppends() {
        var queue = self.queue()
        guard case .commit(let first) = queue.enqueue(Job(id: 0)) else {
            Issue.record("an idle queue commits at once")
            return
        }
        #expect(first.map(\.id) == [0])
        for id in 1...4 {
            guard case .queued = queue.enqueue(Job(id: id)) else {
                Issue.record("appends wait while a commit is in flight")
                return
            }
        }
        #expect(self.batch(queue.finished()) == [1, 2, 3])
        #expect(self.batch(queue.finished()) == [4])
        guard case .idle = queue.finished() else {
            Issue.record("an empty queue goes idle")
            return
        }
        #expect(queue.state == .idle)
    }

    /// A batch stops before the byte limit, but always takes at least one append.
    @Test func byteLimit() {
        var queue = self.queue(count: 10, bytes: 25)
        _ = queue.enqueue(Job(id: 0))
        _ = queue.enqueue(Job(id: 1, estimatedBytes: 40))
        _ = queue.enqueue(Job(id: 2))
        _ = queue.enqueue(Job(id: 3))
        #expect(self.batch(queue.finished()) == [1])
        #expect(self.batch(queue.finished()) == [2, 3])
    }

    /// Beyond the queue depth an append is refused as busy, not queued forever.
    @Test func depthLimit() {
        var queue = self.queue(depth: 2)
        _ = queue.enqueue(Job(id: 0))
        _ = queue.enqueue(Job(id: 1))
        _ = queue.enqueue(Job(id: 2))
        guard case .reject(_, let error) = queue.enqueue(Job(id: 3)) else {
            Issue.record("a full queue refuses")
            return
        }
        #expect(error.code == .busy)
    }

    /// Closing refuses new appends, drains the queued ones, then reports closed.
    @Test func closeDrains() {
        var queue = self.queue()
        _ = queue.enqueue(Job(id: 0))
        _ = queue.enqueue(Job(id: 1))
        #expect(queue.close() == .waitForDrain)
        guard case .reject(_, let error) = queue.enqueue(Job(id: 2)) else {
            Issue.record("a closing queue refuses")
            return
        }
        #expect(error.code == .closed)
        #expect(self.batch(queue.finished()) == [1])
        guard case .closed = queue.finished() else {
            Issue.record("a drained closing queue is closed")
            return
        }
        #expect(queue.close() == .alreadyClosing)
        var idle = self.queue()
        #expect(idle.close() == .closed)
    }
}
