import Foundation
import LedgerCore
import LedgerDaemon
import LedgerTesting
import Testing

/// The bounds that are not about one request: idle connections, slow subscribers, the settings themselves.
@Suite(.serialized) struct ControlLimitsTests {
    /// A connection with nothing running and no input for control.idleTimeoutMs is closed.
    @Test func idleConnectionIsClosed() async throws {
        try await withControlDaemon(configure: { $0.idleTimeout = .milliseconds(300) }) { harness in
            try await blocking {
                let socket = try ControlConnection(harness.socketPath, timeoutSeconds: 10)
                let started = Date()
                #expect(socket.readLine() == nil)
                #expect(Date().timeIntervalSince(started) < 5)
                #expect(try RPCSession(harness.socketPath).call("ledger.stats")["result"] != nil)
            }
        }
    }

    /// A subscriber that falls more than its queue behind has its stream ended rather than buffered without bound.
    @Test func slowSubscriberIsDropped() async throws {
        let feed = EventFeed()
        let (_, stream) = feed.subscribe(queueMax: 2)
        #expect(feed.subscriberCount == 1)
        for sequence in 1...5 { feed.publish([try Self.event(sequence: UInt64(sequence))]) }
        #expect(feed.subscriberCount == 0)
        var received: [UInt64] = []
        for await events in stream { received += events.map(\.sequence) }
        #expect(received == [1, 2])
    }

    /// A subscriber that keeps up receives every append, and unsubscribing ends its stream.
    @Test func subscriberThatKeepsUpGetsEverything() async throws {
        let feed = EventFeed()
        let (id, stream) = feed.subscribe(queueMax: 8)
        for sequence in 1...3 { feed.publish([try Self.event(sequence: UInt64(sequence))]) }
        feed.unsubscribe(id)
        var received: [UInt64] = []
        var iterator = stream.makeAsyncIterator()
        while received.count < 3, let events = await iterator.next() { received += events.map(\.sequence) }
        #expect(received == [1, 2, 3])
    }

    /// Settings load from `control.*` keys and from `LEDGERD_CONTROL_*`, and out-of-range values name their key.
    @Test func settingsLoadAndValidate() throws {
        let settings = try ControlSettings.load(["control.lineBytesMax": "4096", "control.allowedUids": "1000, 1001"])
        #expect(settings.lineBytesMax == 4096)
        #expect(settings.allowedUids == [1000, 1001])
        let environment = try ControlSettings.load(environment: [
            "LEDGERD_CONTROL_CONNECTIONS_MAX": "5", "LEDGERD_CONTROL_IDLE_TIMEOUT_MS": "1000",
        ])
        #expect(environment.connectionsMax == 5)
        #expect(environment.idleTimeout == .seconds(1))
        #expect(throws: ConfigurationError.self) { try ControlSettings.load(["control.jsonDepthMax": "1"]) }
        #expect(try ControlSettings.load([:]).threads == 8)
        #expect(try ControlSettings.load(environment: ["LEDGERD_CONTROL_THREADS": "2"]).threads == 2)
        for threads in ["0", "257", "two"] {
            do {
                _ = try ControlSettings.load(["control.threads": threads])
                Issue.record("control.threads \(threads) was accepted")
            } catch let error as ConfigurationError {
                #expect(error.key == "control.threads")
            }
        }
        do {
            _ = try ControlSettings.load(["control.connectionsMax": "zero"])
            Issue.record("a non-number was accepted")
        } catch let error as ConfigurationError {
            #expect(error.key == "control.connectionsMax")
        }
    }

    static func event(sequence: UInt64) throws -> Event {
        let result = QueryResult(
            attempt: 1,
            latencyMicroseconds: 1,
            final: false,
            httpStatus: nil,
            body: [],
            outcome: .transportError(message: "test")
        )
        return PendingEvent(
            recordedAt: Instant(millisecondsSinceEpoch: 0),
            orderId: "F1",
            payload: .queryResult(result)
        )
        .sealed(sequence: sequence, previousHash: .zero)
    }
}
