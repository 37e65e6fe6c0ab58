import Foundation
import Hummingbird
public import LedgerCore
public import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A shop's endpoint for forwarded order outcomes, for the tests and `ledgerd demo`: it verifies each request's
/// signature, keeps what arrived, and answers as it is told (a status, or a status after a delay), so a test can
/// play a receiver that fails, stalls, redirects and recovers.
public final class ShopReceiver: Sendable {
    /// One request as it arrived.
    public struct Received: Sendable {
        public var eventId: String?
        public var signature: String?
        public var body: [UInt8]
        /// The body's JSON, when it parses.
        public var json: JSONValue?
        /// Whether the signature verified with the receiver's secret (within five minutes).
        public var verified: Bool
        /// The status it was answered with.
        public var status: Int

        public var orderId: String? { self.json?["orderId"]?.stringValue }
        public var type: String? { self.json?["type"]?.stringValue }
    }

    /// How to answer a request.
    public enum Answer: Sendable, Hashable {
        case status(Int)
        /// Waits, then answers: past the forwarder's timeout, this is a receiver too slow to count.
        case delayed(milliseconds: Int64, status: Int)
    }

    public typealias Policy = @Sendable (_ received: Received) -> Answer

    private struct State {
        var received: [Received] = []
        var policy: Policy
        var group: ServiceGroup?
        var task: Task<Void, any Error>?
    }

    private let secret: [UInt8]
    private let logger: Logger
    private let state: Mutex<State>
    /// Called with each request after it is answered (the demo prints it).
    private let onReceived: @Sendable (Received) -> Void
    /// Seconds since the epoch, for the signature's tolerance: the wall clock unless a test drives the ledger's time.
    private let now: @Sendable () -> Int64

    public static let toleranceSeconds: Int64 = 300

    public init(
        secret: [UInt8],
        logger: Logger,
        policy: @escaping Policy = { _ in .status(200) },
        now: (@Sendable () -> Int64)? = nil,
        onReceived: @escaping @Sendable (Received) -> Void = { _ in }
    ) {
        self.now = now ?? { Int64(Date().timeIntervalSince1970) }
        self.secret = secret
        self.logger = logger
        self.state = Mutex(State(policy: policy))
        self.onReceived = onReceived
    }

    /// Every request received so far, in arrival order.
    public var received: [Received] { self.state.withLock { $0.received } }

    /// Changes how later requests are answered.
    public func answer(with policy: @escaping Policy) { self.state.withLock { $0.policy = policy } }

    /// Starts listening on `port` of the loopback (0 for a free one) and returns the URL to configure.
    public func start(port: Int = 0) async throws -> String {
        let router = Router()
        router.post("hook") { request, _ -> Response in
            var request = request
            let body = Array(buffer: try await request.collectBody(upTo: 1 << 20))
            func header(_ name: String) -> String? {
                request.headers.first { $0.name.canonicalName == name.lowercased() }?.value
            }
            let eventId = header(ForwardSignature.eventIdHeaderName)
            let signature = header(ForwardSignature.headerName)
            let now = self.now()
            let verified =
                signature.map {
                    (try? ForwardSignature.verify(
                        header: $0,
                        body: body,
                        secret: self.secret,
                        now: now,
                        toleranceSeconds: Self.toleranceSeconds
                    ).get()) != nil
                } ?? false
            var received = Received(
                eventId: eventId,
                signature: signature,
                body: body,
                json: try? JSONParser.parse(String(decoding: body, as: UTF8.self)),
                verified: verified,
                status: 0
            )
            let policy = self.state.withLock { $0.policy }
            let answer = policy(received)
            switch answer {
            case .status(let status):
                received.status = status
            case .delayed(let milliseconds, let status):
                received.status = status
                try? await Task.sleep(for: .milliseconds(milliseconds))
            }
            self.state.withLock { $0.received.append(received) }
            self.onReceived(received)
            var headers = HTTPFields()
            if (300..<400).contains(received.status) { headers[.location] = "http://127.0.0.1:9/elsewhere" }
            return Response(
                status: HTTPResponse.Status(code: received.status),
                headers: headers,
                body: ResponseBody(byteBuffer: ByteBuffer(string: received.status < 300 ? "ok" : "no"))
            )
        }
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let application = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "shop-receiver"),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            },
            logger: self.logger
        )
        // A service group shut down gracefully: cancelling a Hummingbird server mid-accept trips NIO's checks.
        let group = ServiceGroup(configuration: .init(services: [application], logger: self.logger))
        let task = Task {
            defer { continuation.finish() }
            try await group.run()
        }
        self.state.withLock {
            $0.group = group
            $0.task = task
        }
        var iterator = ports.makeAsyncIterator()
        guard let bound = await iterator.next() else {
            _ = try await task.value
            throw ShopReceiverError(description: "the shop receiver did not start on port \(port)")
        }
        return "http://127.0.0.1:\(bound)/hook"
    }

    /// Stops listening; requests in flight are answered first.
    public func stop() async {
        let (group, task) = self.state.withLock { state in
            defer {
                state.group = nil
                state.task = nil
            }
            return (state.group, state.task)
        }
        await group?.triggerGracefulShutdown()
        _ = try? await task?.value
    }
}

public struct ShopReceiverError: Error, Sendable, CustomStringConvertible {
    public var description: String
}
