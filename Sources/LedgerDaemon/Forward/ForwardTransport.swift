public import AsyncHTTPClient
public import LedgerCore
import NIOCore
import NIOHTTP1

/// What one POST to a receiver came to.
public enum ForwardAttemptResult: Sendable, Hashable {
    /// A 2xx answer within `forward.timeoutMs`.
    case delivered(status: Int)
    /// Anything else, in a sentence for `lastError`: a timeout, a refused connection, a redirect, a 4xx or 5xx.
    case failed(reason: String)
}

/// POSTs one signed outcome to a receiver.
public protocol ForwardPosting: Sendable {
    func post(_ event: ForwardEvent, to receiver: ForwardReceiver, at now: Instant) async -> ForwardAttemptResult
}

/// The HTTP transport: one JSON object per POST, signed with every active secret, redirects not followed (the
/// daemon's client disallows them, so a 301 is a failure the operator sees, not a silent hop elsewhere).
public struct HTTPForwardTransport: ForwardPosting {
    let httpClient: OutboundHTTPClient
    let timeout: Duration
    /// Made once, not for every request.
    static let userAgent = "ledgerd/\(BuildInfo.version)"

    public init(httpClient: OutboundHTTPClient, timeout: Duration) {
        self.httpClient = httpClient
        self.timeout = timeout
    }

    /// A transport on `httpClient`, which its caller shuts down.
    public init(httpClient: HTTPClient, timeout: Duration) {
        self.init(httpClient: OutboundHTTPClient(client: httpClient), timeout: timeout)
    }

    public func post(_ event: ForwardEvent, to receiver: ForwardReceiver, at now: Instant) async -> ForwardAttemptResult
    {
        let body = event.body
        let seconds = now.millisecondsSinceEpoch / 1000
        var request = HTTPClientRequest(url: receiver.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: Self.userAgent)
        request.headers.add(name: ForwardSignature.eventIdHeaderName, value: event.id)
        request.headers.add(
            name: ForwardSignature.headerName,
            value: ForwardSignature.header(body: body, timestamp: seconds, secrets: receiver.secrets)
        )
        request.body = .bytes(ByteBuffer(bytes: body))
        let milliseconds = PollSchedule.milliseconds(self.timeout)
        do {
            let response = try await self.httpClient.client().execute(
                request,
                timeout: .milliseconds(milliseconds)
            )
            let code = Int(response.status.code)
            // The body matters only as a hint in `lastError`; the first bytes are kept and the rest dropped.
            var hint: [UInt8] = []
            for try await chunk in response.body {
                hint.append(contentsOf: chunk.readableBytesView.prefix(ForwardLimits.errorBodyBytesMax - hint.count))
                if hint.count >= ForwardLimits.errorBodyBytesMax { break }
            }
            if (200..<300).contains(code) { return .delivered(status: code) }
            var reason = "HTTP \(code)"
            if (300..<400).contains(code) { reason += " (redirects are not followed; configure the final URL)" }
            // Control bytes (line breaks above all) become spaces, so the hint stays one line in logs and tables.
            let text = String(decoding: hint.map { $0 < 0x20 || $0 == 0x7F ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
            if !text.isEmpty { reason += ": " + text }
            return .failed(reason: reason)
        } catch {
            if let clientError = error as? HTTPClientError,
                clientError == .deadlineExceeded || clientError == .readTimeout || clientError == .connectTimeout
            {
                return .failed(reason: "no answer within \(milliseconds) ms (forward.timeoutMs)")
            }
            return .failed(reason: "\(error)")
        }
    }
}
