public import AsyncHTTPClient
import ServiceLifecycle
import Synchronization

/// The daemon's outbound HTTP client (gateway queries, forwarded outcomes) as its parts hold it: made when its
/// service runs and shut down when that stops. Before and after, a request fails with `OutboundHTTPUnavailable`,
/// which the poller and the forwarder record as the transport failure it is.
public final class OutboundHTTPClient: Sendable {
    private enum State {
        case unstarted
        case running(HTTPClient)
        case stopped
    }

    private let state: Mutex<State>

    /// A client not made yet: its service makes it.
    init() {
        self.state = Mutex(.unstarted)
    }

    /// One that always uses `client`, which its caller shuts down (tests).
    public init(client: HTTPClient) {
        self.state = Mutex(.running(client))
    }

    /// The client while it runs, or the error that says why there is none.
    func client() throws -> HTTPClient {
        try self.state.withLock { state in
            switch state {
            case .unstarted: throw OutboundHTTPUnavailable(reason: "the daemon's HTTP client is not started yet")
            case .running(let client): return client
            case .stopped: throw OutboundHTTPUnavailable(reason: "the daemon's HTTP client is stopped")
            }
        }
    }

    /// Hands out `client` until `stop()`; false when it was stopped first, and `client` must be shut down unused.
    func start(_ client: HTTPClient) -> Bool {
        self.state.withLock { state in
            guard case .unstarted = state else { return false }
            state = .running(client)
            return true
        }
    }

    /// Hands out no client from now on.
    func stop() {
        self.state.withLock { $0 = .stopped }
    }
}

/// A request made while the daemon's HTTP client does not run (before the daemon started it, or once it stopped).
public struct OutboundHTTPUnavailable: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { "No HTTP request was sent: \(self.reason)." }
}

/// Owns the outbound HTTP client: makes it when it runs, then starts the parts that use it, and shuts it down when
/// it stops, after them (they are added to the group after it, so a graceful shutdown reaches them first).
struct OutboundHTTPService: Service {
    let client: OutboundHTTPClient
    /// Starts the parts that use the client, in dependency order (none once the group is shutting down).
    let startDependents: @Sendable () async -> Void

    func run() async throws {
        // Redirects are not followed: a 301 from the gateway or a receiver is a failure the operator sees, not a
        // silent hop elsewhere.
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        // No tracing: the daemon installs no tracer, and the client's default (the global no-op one) still built a
        // span and its attributes for every request, 1.4% of a forwarding daemon's CPU.
        configuration.tracing.tracer = nil
        let made = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        if self.client.start(made) {
            await self.startDependents()
            try? await gracefulShutdown()
            self.client.stop()
        }
        try await made.shutdown()
    }
}
