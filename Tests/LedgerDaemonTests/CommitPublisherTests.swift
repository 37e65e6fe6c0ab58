import LedgerCore
import LedgerDaemon
import LedgerStore
import Logging
import Synchronization
import Testing

/// The publisher that hands commits to the feed and the poller in log order, and the inbox that carries order states
/// to the poller without making the appender wait.
@Suite struct CommitPublisherTests {
    static func appended(_ sequences: ClosedRange<UInt64>, orderId: String) -> Appended {
        let events = sequences.map { sequence in
            PendingEvent(
                recordedAt: Instant(millisecondsSinceEpoch: Int64(sequence)),
                orderId: orderId,
                payload: .queryResult(
                    QueryResult(
                        attempt: UInt32(sequence),
                        latencyMicroseconds: 1,
                        final: false,
                        httpStatus: nil,
                        body: [],
                        outcome: .transportError(message: "test")
                    )
                )
            )
            .sealed(sequence: sequence, previousHash: .zero)
        }
        var state = OrderState(orderId: orderId)
        state.queryAttempts = UInt32(sequences.upperBound)
        return Appended(events: events, effects: [], orders: [orderId: state])
    }

    /// Collects what the feed and the observer were given.
    final class Seen: Sendable {
        let states = Mutex<[String]>([])
        func add(_ states: [OrderState]) {
            self.states.withLock { $0 += states.map { "\($0.orderId)#\($0.queryAttempts)" } }
        }
    }

    static func published(_ stream: AsyncStream<EventFeed.Item>, count: Int) async -> [UInt64] {
        var sequences: [UInt64] = []
        for await events in stream {
            sequences += events.map(\.sequence)
            if sequences.count >= count { break }
        }
        return sequences
    }

    /// Commits that arrive out of order (two appends of one group commit resumed on different threads) reach the
    /// feed and the observer in sequence order, each once.
    @Test func deliversInLogOrder() async throws {
        let feed = EventFeed()
        let (_, stream) = feed.subscribe(queueMax: 100)
        let publisher = CommitPublisher(feed: feed, logger: Logger(label: "test"))
        let seen = Seen()
        publisher.observe { seen.add($0) }
        publisher.start(after: 10)
        publisher.committed(Self.appended(13...14, orderId: "C"), observed: true)
        publisher.committed(Self.appended(12...12, orderId: "B"), observed: true)
        #expect(seen.states.withLock { $0 }.isEmpty)
        publisher.committed(Self.appended(11...11, orderId: "A"), observed: true)
        publisher.committed(Self.appended(15...15, orderId: "D"), observed: false)
        #expect(await Self.published(stream, count: 5) == [11, 12, 13, 14, 15])
        // A query result's order is rescheduled by the poller that recorded it, so the observer does not hear of D.
        #expect(seen.states.withLock { $0 } == ["A#11", "B#12", "C#14"])
    }

    /// Commits held past the bound (an append never handed on: a bug) are delivered in order across the gap rather
    /// than stall the feed for ever.
    @Test func flushesAcrossAGapPastTheBound() async throws {
        let feed = EventFeed()
        let (_, stream) = feed.subscribe(queueMax: 100)
        let publisher = CommitPublisher(feed: feed, heldMax: 3, logger: Logger(label: "test"))
        publisher.start(after: 0)
        publisher.committed(Self.appended(1...1, orderId: "A"), observed: true)
        // Sequence 2 never comes.
        for sequence in [5, 3, 4] as [UInt64] {
            publisher.committed(Self.appended(sequence...sequence, orderId: "A"), observed: true)
        }
        publisher.committed(Self.appended(6...6, orderId: "A"), observed: true)
        publisher.committed(Self.appended(7...7, orderId: "A"), observed: true)
        #expect(await Self.published(stream, count: 6) == [1, 3, 4, 5, 6, 7])
    }

    /// A store whose queue admits more appends than the default bound (`store.queueDepthMax` up to ten million)
    /// gets a bound that covers them: that many commits waiting for one append's hop back are held and delivered in
    /// order, not flushed across a gap that does not exist.
    @Test func boundCoversADeepStoreQueue() async throws {
        let queueDepthMax = CommitPublisher.heldMaxDefault + 4_000
        let heldMax = CommitPublisher.heldMax(queueDepthMax: queueDepthMax, batchCountMax: 1024)
        #expect(heldMax == queueDepthMax + 1024)
        let publisher = CommitPublisher(feed: EventFeed(), heldMax: heldMax, logger: Logger(label: "test"))
        let seen = Seen()
        publisher.observe { seen.add($0) }
        publisher.start(after: 0)
        let last = UInt64(queueDepthMax)
        for sequence in 2...last {
            publisher.committed(Self.appended(sequence...sequence, orderId: "A"), observed: true)
        }
        // Counts and single elements only, so a failure does not print seventy thousand states.
        #expect(seen.states.withLock { $0.count } == 0)
        publisher.committed(Self.appended(1...1, orderId: "A"), observed: true)
        let states = seen.states.withLock { $0 }
        #expect(states.count == queueDepthMax)
        #expect(states.first == "A#1")
        let inLogOrder = states.elementsEqual((1...last).lazy.map { "A#\($0)" })
        #expect(inLogOrder)
    }

    /// A commit at or below what was delivered (committed before the head was read, or passed by a flush) is
    /// delivered at once rather than held for ever.
    @Test func lateCommitDeliveredAtOnce() async throws {
        let feed = EventFeed()
        let (_, stream) = feed.subscribe(queueMax: 100)
        let publisher = CommitPublisher(feed: feed, logger: Logger(label: "test"))
        let seen = Seen()
        publisher.observe { seen.add($0) }
        publisher.start(after: 5)
        publisher.committed(Self.appended(5...5, orderId: "L"), observed: true)
        publisher.committed(Self.appended(6...6, orderId: "M"), observed: true)
        #expect(await Self.published(stream, count: 2) == [5, 6])
        #expect(seen.states.withLock { $0 } == ["L#5", "M#6"])
    }

    /// The inbox gives its consumer everything added since it last looked, in order, and nil once finished and
    /// drained; adds after the end are dropped.
    @Test func inboxBatchesInOrder() async throws {
        let inbox = OrderStateInbox()
        inbox.add([OrderState(orderId: "A"), OrderState(orderId: "B")])
        inbox.add([OrderState(orderId: "C")])
        #expect(await inbox.take()?.map(\.orderId) == ["A", "B", "C"])
        let waiting = Task { await inbox.take()?.map(\.orderId) }
        try await Task.sleep(for: .milliseconds(20))
        inbox.add([OrderState(orderId: "D")])
        #expect(await waiting.value == ["D"])
        inbox.add([OrderState(orderId: "E")])
        inbox.finish()
        inbox.add([OrderState(orderId: "F")])
        #expect(await inbox.take()?.map(\.orderId) == ["E"])
        #expect(await inbox.take() == nil)
    }
}
