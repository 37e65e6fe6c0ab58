import Foundation
public import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// An IPv4 or IPv6 address as bytes in network order. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, how a
/// dual-stack listener sees IPv4 peers) is its IPv4 address, so one rule covers both spellings.
struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    let bytes: [UInt8]

    private init(unmapping bytes: [UInt8]) {
        let mapped: [UInt8] = Array(repeating: 0, count: 10) + [0xff, 0xff]
        self.bytes = bytes.count == 16 && Array(bytes[..<12]) == mapped ? Array(bytes[12...]) : bytes
    }

    /// An address in its text form (inet_pton(3)): dotted IPv4, or IPv6 with or without brackets. Anything else,
    /// a port or a zone included, is not an address.
    init?(_ text: some StringProtocol) {
        var text = String(text)
        if text.utf8.first == UInt8(ascii: "["), text.utf8.last == UInt8(ascii: "]") {
            text = String(text.dropFirst().dropLast())
        }
        // inet_pton reads a C string: a NUL inside would end it early and pass what precedes it.
        guard !text.isEmpty, !text.utf8.contains(0) else { return nil }
        for (family, length) in [(AF_INET, 4), (AF_INET6, 16)] {
            var bytes = [UInt8](repeating: 0, count: length)
            if bytes.withUnsafeMutableBytes({ inet_pton(family, text, $0.baseAddress) }) == 1 {
                self.init(unmapping: bytes)
                return
            }
        }
        return nil
    }

    /// The address of a TCP peer; nil for a Unix-domain socket or none.
    init?(_ address: SocketAddress?) {
        switch address {
        case .v4, .v6:
            guard let text = address?.ipAddress else { return nil }
            self.init(text)
        case .unixDomainSocket, nil:
            return nil
        }
    }

    /// The canonical text form (inet_ntop(3)), without brackets or port.
    var description: String {
        let family = self.bytes.count == 4 ? AF_INET : AF_INET6
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let written = self.bytes.withUnsafeBytes { source in
            inet_ntop(family, source.baseAddress, &text, socklen_t(text.count))
        }
        guard written != nil else { return "unknown" }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// `http.trustedProxies`: the addresses and networks (`10.0.0.0/8`, `2001:db8::/32`, `127.0.0.1`) of the reverse
/// proxies in front of the daemon. Only a request whose TCP peer is one of them has its client address taken from
/// `X-Forwarded-For`; from anyone else the header is ignored, since anyone can send it.
public struct TrustedProxies: Sendable, Hashable {
    struct Network: Hashable, Sendable {
        let address: IPAddress
        let prefixLength: Int

        func contains(_ other: IPAddress) -> Bool {
            guard other.bytes.count == self.address.bytes.count else { return false }
            var remaining = self.prefixLength
            for (mine, theirs) in zip(self.address.bytes, other.bytes) where remaining > 0 {
                let bits = min(8, remaining)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                guard mine & mask == theirs & mask else { return false }
                remaining -= bits
            }
            return true
        }
    }

    let networks: [Network]

    /// None: `X-Forwarded-For` is ignored everywhere (the default).
    public static let none = TrustedProxies(networks: [])

    init(networks: [Network]) {
        self.networks = networks
    }

    public var isEmpty: Bool { self.networks.isEmpty }

    /// Parses a comma-separated list of addresses and CIDR networks; the error names the entry that is neither.
    public init(parsing list: String) throws(TrustedProxiesError) {
        var networks: [Network] = []
        for entry in list.split(separator: ",") {
            let item = entry.trimmingCharacters(in: .whitespaces)
            guard !item.isEmpty else { continue }
            let parts = item.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let address = IPAddress(parts[0]) else { throw TrustedProxiesError(entry: item) }
            let bits = address.bytes.count * 8
            var prefixLength = bits
            if parts.count == 2 {
                guard let length = Int(parts[1]), (0...bits).contains(length),
                    parts[1].utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
                else { throw TrustedProxiesError(entry: item) }
                prefixLength = length
            }
            networks.append(Network(address: address, prefixLength: prefixLength))
        }
        self.networks = networks
    }

    func contains(_ address: IPAddress) -> Bool { self.networks.contains { $0.contains(address) } }

    /// What the daemon records as a request's client: the TCP peer, unless the peer is a trusted proxy and the
    /// request carries `X-Forwarded-For`.
    enum Client: Equatable {
        /// The TCP peer (no proxy, an untrusted peer, or no header).
        case peer
        /// The address a trusted proxy forwarded.
        case forwarded(IPAddress)
        /// A trusted proxy's header that does not parse where it matters: the peer is used, and it is counted.
        case malformed
    }

    /// The client of a request from `peer` carrying the `X-Forwarded-For` values `forwardedFor`, in the order the
    /// headers arrived. Each proxy appends the address it received the request from, so the list is read from the
    /// right: the first address that is not itself a trusted proxy is the client. Entries to the left of it were
    /// written by the client and are never believed.
    func client(peer: SocketAddress?, forwardedFor: [String]) -> Client {
        guard !self.networks.isEmpty, let peer = IPAddress(peer), self.contains(peer), !forwardedFor.isEmpty else {
            return .peer
        }
        let entries = forwardedFor.joined(separator: ",").split(separator: ",", omittingEmptySubsequences: false)
        var leftmost: IPAddress?
        for entry in entries.reversed() {
            guard let address = IPAddress(entry.trimmingCharacters(in: .whitespaces)) else { return .malformed }
            guard self.contains(address) else { return .forwarded(address) }
            leftmost = address
        }
        // Every hop is a trusted proxy: the first of them is as close to the client as the chain knows.
        return leftmost.map { .forwarded($0) } ?? .malformed
    }
}

extension TrustedProxies {
    /// The client address the daemon records for a request from `peer` (`described` is the peer's text): the
    /// forwarded one behind a trusted proxy, else the peer's. A trusted proxy's malformed header is counted.
    func clientAddress(peer: SocketAddress?, described: String, forwardedFor: [String], metrics: LedgerMetrics)
        -> String
    {
        switch self.client(peer: peer, forwardedFor: forwardedFor) {
        case .peer:
            return described
        case .forwarded(let address):
            return address.description
        case .malformed:
            metrics.forwardedForMalformed()
            return described
        }
    }
}

/// An entry of `http.trustedProxies` that is neither an address nor a network.
public struct TrustedProxiesError: Error, Sendable {
    public let entry: String
}
