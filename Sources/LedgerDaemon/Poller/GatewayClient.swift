public import AsyncHTTPClient
import Foundation
public import LedgerCore
import NIOCore
import NIOHTTP1

/// Asks the gateway about one order. A protocol so the poller can be tested against a scripted gateway.
public protocol GatewayQuerying: Sendable {
    /// One attempt: never throws; every outcome, transport errors included, is a fact to record.
    func query(orderId: String, attempt: UInt32, final: Bool) async -> QueryResult
}

/// `POST Pay_Trade_query.html` through AsyncHTTPClient.
public struct GatewayClient: GatewayQuerying {
    let settings: GatewaySettings
    let key: MerchantKey
    let httpClient: OutboundHTTPClient
    let timeout: Duration
    let bodyBytesMax: Int
    // Only the daemon builds one, so Swift's own (internal) memberwise initializer serves.

    public func query(orderId: String, attempt: UInt32, final: Bool) async -> QueryResult {
        let started = ContinuousClock.now
        func latency() -> UInt64 {
            let elapsed = ContinuousClock.now - started
            return UInt64(elapsed.components.seconds) * 1_000_000
                + UInt64(elapsed.components.attoseconds / 1_000_000_000_000)
        }
        let query = QueryRequest(
            memberId: self.settings.memberId,
            orderId: orderId,
            key: self.key,
            dialect: self.settings.dialect
        )
        var request = HTTPClientRequest(url: self.settings.queryURL)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.body = .bytes(ByteBuffer(string: query.body))
        let deadline = TimeAmount.nanoseconds(
            Int64(self.timeout.components.seconds) * 1_000_000_000 + self.timeout.components.attoseconds / 1_000_000_000
        )
        do {
            let response = try await self.httpClient.client().execute(request, timeout: deadline)
            var body = ByteBuffer()
            var truncated = false
            for try await var chunk in response.body {
                let room = self.bodyBytesMax - body.readableBytes
                if chunk.readableBytes > room {
                    truncated = true
                    if room > 0, let slice = chunk.readSlice(length: room) { body.writeImmutableBuffer(slice) }
                    break
                }
                body.writeBuffer(&chunk)
            }
            let bytes = Array(buffer: body)
            let status = UInt16(response.status.code)
            let outcome: QueryResult.Outcome
            if truncated {
                outcome = .unreadable(reason: "the reply is longer than \(self.bodyBytesMax) bytes (poll.bodyBytesMax)")
            } else if !(200..<300).contains(response.status.code) {
                outcome = .unreadable(reason: "HTTP status \(response.status.code)")
            } else {
                switch QueryReplyParse.parse(bytes, key: self.key, dialect: self.settings.dialect) {
                case .reply(let reply, let verdict):
                    outcome = .reply(
                        fields: reply.fields,
                        enveloped: reply.enveloped,
                        verdict: verdict,
                        dialect: self.settings.dialect
                    )
                case .gatewayError(let message):
                    outcome = .gatewayError(message: message)
                case .unreadable(let reason):
                    outcome = .unreadable(reason: reason)
                }
            }
            return QueryResult(
                attempt: attempt,
                latencyMicroseconds: latency(),
                final: final,
                httpStatus: status,
                body: bytes,
                outcome: outcome
            )
        } catch {
            return QueryResult(
                attempt: attempt,
                latencyMicroseconds: latency(),
                final: final,
                httpStatus: nil,
                body: [],
                outcome: .transportError(message: Self.describe(error))
            )
        }
    }

    static func describe(_ error: any Error) -> String {
        if let clientError = error as? HTTPClientError {
            switch clientError {
            case .deadlineExceeded, .readTimeout, .connectTimeout: return "timed out"
            default: return "\(clientError)"
            }
        }
        return "\(error)"
    }
}
