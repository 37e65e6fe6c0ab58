public import Logging

/// How the daemon writes its log (`log.*`).
public struct LogSettings: Sendable, Hashable {
    /// `log.format` (`--log-format`, `LEDGERD_LOG_FORMAT`): `text`, one line per event as swift-log's stream
    /// handler writes it, or `json`, one JSON object per line for log shippers.
    public var format: LogFormat = .text
    /// `log.level` (`--log-level`, `LEDGERD_LOG_LEVEL`): trace, debug, info, notice, warning, error, critical.
    public var level: Logger.Level = .info

    public init() {}
}

/// `log.format`.
public enum LogFormat: String, Sendable, Hashable, CaseIterable {
    case text
    case json
}

extension DaemonConfiguration {
    /// The keys of observing and fronting the daemon: `log.format`, `log.level`, `http.adminListen` and
    /// `http.trustedProxies`.
    static func readObservability(from values: ConfigValues, into configuration: inout DaemonConfiguration) throws {
        var log = LogSettings()
        if let format = values.text("log.format") {
            guard let parsed = LogFormat(rawValue: format) else {
                throw ConfigurationError(key: "log.format", message: "'\(format)' is not text or json")
            }
            log.format = parsed
        }
        if let level = values.text("log.level") {
            guard let parsed = Logger.Level(rawValue: level) else {
                let levels = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
                throw ConfigurationError(key: "log.level", message: "'\(level)' is not one of \(levels)")
            }
            log.level = parsed
        }
        configuration.log = log
        if let admin = values.text("http.adminListen") {
            let address = try Self.hostPort(admin, key: "http.adminListen")
            guard address.host != configuration.httpHost || address.port != configuration.httpPort || address.port == 0
            else {
                throw ConfigurationError(key: "http.adminListen", message: "must differ from http (\(admin))")
            }
            configuration.adminListen = address
        }
        if let proxies = values.text("http.trustedProxies") {
            do {
                configuration.trustedProxies = try TrustedProxies(parsing: proxies)
            } catch {
                throw ConfigurationError(
                    key: "http.trustedProxies",
                    message: "'\(error.entry)' is not an IPv4 or IPv6 address or a network (ADDRESS/PREFIX)"
                )
            }
        }
    }

    /// `HOST:PORT`, split at the last colon (so `[::1]:8081` keeps its brackets off the host). Read as bytes: a
    /// combining mark after the colon or a bracket must not hide it.
    static func hostPort(_ text: String, key: String) throws -> (host: String, port: Int) {
        let bytes = Array(text.utf8)
        guard let colon = bytes.lastIndex(of: UInt8(ascii: ":")), colon > 0,
            bytes[(colon + 1)...].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let port = Int(String(decoding: bytes[(colon + 1)...], as: UTF8.self)), (0...65535).contains(port)
        else {
            throw ConfigurationError(key: key, message: "'\(text)' is not HOST:PORT")
        }
        var host = bytes[..<colon]
        if host.first == UInt8(ascii: "["), host.last == UInt8(ascii: "]") { host = host.dropFirst().dropLast() }
        return (String(decoding: host, as: UTF8.self), port)
    }
}

extension LogSettings {
    /// Sets up swift-log for the process in the configured format (once per process; swift-log allows no second
    /// bootstrap) and returns a logger at the configured level. Text lines are escaped by `EscapingLogHandler`;
    /// JSON lines escape for themselves.
    public func bootstrap(label: String) -> Logger {
        let format = self.format
        LoggingSystem.bootstrap { label in
            switch format {
            case .text: return EscapingLogHandler(wrapping: StreamLogHandler.standardError(label: label))
            case .json: return JSONLogHandler(label: label)
            }
        }
        var logger = Logger(label: label)
        logger.logLevel = self.level
        return logger
    }
}
