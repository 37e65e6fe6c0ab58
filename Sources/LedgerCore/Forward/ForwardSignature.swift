import Crypto

/// The `Ledger-Signature` header of a forwarded notification: `t=UNIX_SECONDS,v1=HEX` with one `v1=` per active
/// secret, where HEX is the lowercase hex of HMAC-SHA256(secret, t + "." + body). This is the scheme Stripe signs its
/// webhooks with, so shop developers know it; the timestamp inside the signed text lets the receiver refuse an old
/// request replayed to it, and two `v1=` during a rotation let it verify with either secret.
public enum ForwardSignature {
    /// The header's name.
    public static let headerName = "Ledger-Signature"
    /// The name of the header carrying the event id the shop deduplicates on.
    public static let eventIdHeaderName = "Ledger-Event-Id"
    /// Secrets per receiver at once: the current one and, during a rotation, the next.
    public static let secretsMax = 2

    /// The signature of `body` sent at `timestamp` (seconds since the epoch) under one secret.
    public static func signature(body: [UInt8], timestamp: Int64, secret: [UInt8]) -> String {
        var signed = Array(String(timestamp).utf8)
        signed.append(UInt8(ascii: "."))
        signed.append(contentsOf: body)
        let code = HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: secret))
        return Hex.lower(code)
    }

    /// The whole header value for `body` at `timestamp` under every secret given.
    public static func header(body: [UInt8], timestamp: Int64, secrets: [[UInt8]]) -> String {
        var parts = ["t=" + String(timestamp)]
        for secret in secrets { parts.append("v1=" + Self.signature(body: body, timestamp: timestamp, secret: secret)) }
        return parts.joined(separator: ",")
    }

    /// Why a receiver refuses a request.
    public enum Rejection: Error, Sendable, Hashable, CustomStringConvertible {
        case malformedHeader
        case outsideTolerance
        case noMatchingSignature

        public var description: String {
            switch self {
            case .malformedHeader: return "The Ledger-Signature header is not t=SECONDS,v1=HEX[,v1=HEX]."
            case .outsideTolerance: return "The signature's timestamp is outside the tolerance; it may be a replay."
            case .noMatchingSignature: return "No v1 signature matches the body under the secret."
            }
        }
    }

    /// Verifies a request as a receiver should: the header parses, its timestamp is within `toleranceSeconds` of
    /// `now`, and one of its `v1` signatures is the body's under `secret`, compared in constant time.
    public static func verify(
        header: String,
        body: [UInt8],
        secret: [UInt8],
        now: Int64,
        toleranceSeconds: Int64
    ) -> Result<Void, Rejection> {
        var timestamp: Int64?
        var signatures: [[UInt8]] = []
        for part in header.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            if part.starts(with: "t=".utf8) {
                let digits = String(decoding: part.dropFirst(2), as: UTF8.self)
                guard timestamp == nil, let value = Int64(digits) else { return .failure(.malformedHeader) }
                timestamp = value
            } else if part.starts(with: "v1=".utf8) {
                guard let bytes = Hex.decode(String(decoding: part.dropFirst(3), as: UTF8.self)), bytes.count == 32
                else { return .failure(.malformedHeader) }
                signatures.append(bytes)
            }
        }
        guard let timestamp, !signatures.isEmpty else { return .failure(.malformedHeader) }
        let (age, overflow) = now.subtractingReportingOverflow(timestamp)
        guard !overflow, age.magnitude <= toleranceSeconds.magnitude else { return .failure(.outsideTolerance) }
        var signed = Array(String(timestamp).utf8)
        signed.append(UInt8(ascii: "."))
        signed.append(contentsOf: body)
        let key = SymmetricKey(data: secret)
        for signature in signatures
        where HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signed, using: key) {
            return .success(())
        }
        return .failure(.noMatchingSignature)
    }
}
