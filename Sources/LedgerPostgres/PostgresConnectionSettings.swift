import LedgerCore
import PostgresNIO

/// Where and how to reach PostgreSQL, parsed from a libpq-style connection URL:
///
/// - `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE]` (also `postgresql://`), over TCP;
/// - `postgres://USER@/DATABASE?host=/run/postgresql` or `postgres://USER@%2Frun%2Fpostgresql/DATABASE`, over the
///   Unix socket `.s.PGSQL.PORT` in that directory, as libpq reads a host that starts with `/`.
///
/// `sslmode` follows libpq's meaning (https://www.postgresql.org/docs/15/libpq-ssl.html): `disable`; `prefer` (the
/// default over TCP) and `require` encrypt without checking the server's certificate; `verify-full` checks it and
/// the host name. Over a Unix socket there is no TLS.
public struct PostgresConnectionSettings: Sendable, Hashable, CustomStringConvertible {
    public enum Endpoint: Sendable, Hashable {
        case tcp(host: String, port: Int)
        /// The socket file itself (`DIRECTORY/.s.PGSQL.PORT`).
        case unixSocket(path: String)
    }

    public enum TLSMode: String, Sendable, Hashable, CaseIterable {
        case disable
        case prefer
        case require
        case verifyFull = "verify-full"
    }

    public var endpoint: Endpoint
    public var user: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    public init(endpoint: Endpoint, user: String, password: String?, database: String, tls: TLSMode) {
        self.endpoint = endpoint
        self.user = user
        self.password = password
        self.database = database
        self.tls = tls
    }

    /// The URL without its password, for logs and error messages.
    public var description: String {
        let credentials = self.password == nil ? self.user : "\(self.user):***"
        switch self.endpoint {
        case .tcp(let host, let port):
            let shown = host.contains(":") ? "[\(host)]" : host
            return "postgres://\(credentials)@\(shown):\(port)/\(self.database)?sslmode=\(self.tls.rawValue)"
        case .unixSocket(let path):
            return "postgres://\(credentials)@/\(self.database) (socket \(path))"
        }
    }

    /// Why a connection URL was refused, in a sentence that says what to write instead.
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public var message: String
        public var description: String { self.message }
    }

    public static let defaultPort = 5432

    /// Parses a connection URL (see the type's documentation).
    public init(url: String) throws(ParseError) {
        func fail(_ why: String) -> ParseError {
            ParseError(
                message:
                    "The PostgreSQL URL is not usable: \(why) Expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE."
            )
        }
        var rest = Substring(url)
        guard let schemeEnd = rest.firstRange(of: "://") else { throw fail("it has no scheme.") }
        let scheme = rest[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw fail("the scheme is \(scheme), not postgres or postgresql.")
        }
        rest = rest[schemeEnd.upperBound...]

        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var user: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                user = try Self.percentDecoded(userInfo[..<colon], what: "user", fail: fail)
                password = try Self.percentDecoded(
                    userInfo[userInfo.index(after: colon)...],
                    what: "password",
                    fail: fail
                )
            } else {
                user = try Self.percentDecoded(userInfo, what: "user", fail: fail)
            }
        }
        var host: String?
        var port: Int?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw fail("an IPv6 host lacks its closing bracket.") }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw fail("unexpected text after the IPv6 host.") }
                port = try Self.port(after.dropFirst(), fail: fail)
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = try Self.percentDecoded(rest[..<colon], what: "host", fail: fail)
            port = try Self.port(rest[rest.index(after: colon)...], fail: fail)
        } else if !rest.isEmpty {
            host = try Self.percentDecoded(rest, what: "host", fail: fail)
        }
        var database = path.isEmpty ? nil : try Self.percentDecoded(path, what: "database", fail: fail)
        var tls: TLSMode?

        for parameter in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0])
            let value = try Self.percentDecoded(parts.count > 1 ? parts[1] : "", what: name, fail: fail)
            switch name {
            case "host": host = value
            case "port": port = try Self.port(Substring(value), fail: fail)
            case "user": user = value
            case "password": password = value
            case "dbname": database = value
            case "sslmode":
                guard let mode = TLSMode(rawValue: value) else {
                    let known = TLSMode.allCases.map(\.rawValue).joined(separator: ", ")
                    throw fail("sslmode=\(value) is not one of \(known).")
                }
                tls = mode
            default:
                throw fail("the parameter \(name) is not supported (host, port, user, password, dbname, sslmode are).")
            }
        }

        guard let user, !user.isEmpty else { throw fail("it names no user.") }
        let resolvedPort = port ?? Self.defaultPort
        let endpoint: Endpoint
        if let host, host.hasPrefix("/") {
            // libpq: a host that is an absolute path is the directory of the server's socket.
            guard tls == nil || tls == .disable else {
                throw fail("sslmode=\(tls!.rawValue) asks for TLS, which a Unix socket does not use; drop it.")
            }
            let directory = host.hasSuffix("/") ? String(host.dropLast()) : host
            endpoint = .unixSocket(path: "\(directory)/.s.PGSQL.\(resolvedPort)")
            tls = .disable
        } else {
            guard let host, !host.isEmpty else {
                throw fail("it names no host (for a Unix socket, give its directory: ?host=/run/postgresql).")
            }
            endpoint = .tcp(host: host, port: resolvedPort)
        }
        self.init(endpoint: endpoint, user: user, password: password, database: database ?? user, tls: tls ?? .prefer)
    }

    private static func port(_ text: Substring, fail: (String) -> ParseError) throws(ParseError) -> Int {
        guard let port = Int(text), (1...65_535).contains(port) else {
            throw fail("the port \(text) is not 1 to 65535.")
        }
        return port
    }

    /// Decodes `%XX` escapes (RFC 3986, section 2.1); the result must be UTF-8.
    private static func percentDecoded(
        _ text: Substring,
        what: String,
        fail: (String) -> ParseError
    ) throws(ParseError) -> String {
        var bytes: [UInt8] = []
        var utf8 = text.utf8.makeIterator()
        while let byte = utf8.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = utf8.next().flatMap(Hex.digitValue), let low = utf8.next().flatMap(Hex.digitValue) else {
                throw fail("the \(what) has a % that is not followed by two hex digits.")
            }
            bytes.append(high << 4 | low)
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw fail("the \(what) is not UTF-8 once decoded.")
        }
        return decoded
    }
}

extension PostgresConnectionSettings.TLSMode {
    /// libpq's sslmode as NIOSSL sees it: the configuration (nil: no TLS) and whether TLS is required. prefer and
    /// require encrypt without verifying the server, as libpq does; verify-full verifies.
    var clientTLS: (configuration: TLSConfiguration, required: Bool)? {
        var unverified = TLSConfiguration.makeClientConfiguration()
        unverified.certificateVerification = .none
        switch self {
        case .disable: return nil
        case .prefer: return (unverified, false)
        case .require: return (unverified, true)
        case .verifyFull: return (.makeClientConfiguration(), true)
        }
    }
}
