import Configuration
import Foundation
public import LedgerCore
public import LedgerPostgres
public import LedgerStore
import SystemPackage

/// A configuration value that is wrong, named by its key so the operator knows what to fix.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var key: String
    public var message: String

    public init(key: String, message: String) {
        self.key = key
        self.message = message
    }

    public var description: String { "Invalid configuration \(self.key): \(self.message)" }
}

/// Everything the daemon is configured with. Loaded from flags, environment variables (`LEDGERD_` and the key in
/// upper snake case, e.g. `LEDGERD_GATEWAY_MEMBER_ID`) and a JSON file (`--config`), in that order of precedence,
/// then defaults. The gateway's URL, the member id and the key have no default (`requiredSettings`).
public struct DaemonConfiguration: Sendable {
    /// `dataDir`: the LMDB data directory.
    public var dataDirectory: String = "./ledger-data"
    /// `socket`: the control socket's path.
    public var socketPath: String = "./ledgerd.sock"
    /// `socketMode`: the control socket's permissions, 0600 or 0660.
    public var socketMode: UInt32 = 0o600
    /// `http`: where the HTTP endpoints listen, `HOST:PORT`.
    public var httpHost: String = "127.0.0.1"
    public var httpPort: Int = 8080
    /// `publicUrl`: how the gateway and buyers reach this daemon; notify, return and pay-page URLs are under it.
    public var publicURL: String = "http://127.0.0.1:8080"
    public var gateway: GatewaySettings
    /// `gateway.keyFile` (or `gateway.key`, for a secret manager that sets the environment).
    public var key: MerchantKey
    /// `poll.*`: the query poller's schedule, and its bounds (`limits.poll`).
    public var poll: PollSettings = PollSettings()
    /// The HTTP endpoints' bounds (`limits.http.*`, `limits.notify.*`; `limits.http`).
    public var httpLimits: HTTPLimits = HTTPLimits()
    /// The store's bounds (`store.*`, `quarantine.*`; `limits.store`, `limits.quarantine`).
    public var store: LMDBEventStore.Options = LMDBEventStore.Options()
    /// `store.backend`: where the ledger lives, LMDB in `dataDir` (the default) or PostgreSQL.
    public var storeBackend: StoreBackend = .lmdb
    /// The control socket's bounds (`control.*`; `limits.control`) and who may connect.
    public var control: ControlSettings = ControlSettings()
    /// `log.format` and `log.level`.
    public var log: LogSettings = LogSettings()
    /// `http.adminListen`: `HOST:PORT` where `/healthz` and `/metrics` are served instead of on `http`; nil (the
    /// default) serves them on `http` with the rest.
    public var adminListen: (host: String, port: Int)?
    /// `http.trustedProxies`: the reverse proxies whose `X-Forwarded-For` names the client. None by default.
    public var trustedProxies: TrustedProxies = .none
    /// Forwarding order outcomes to the shop (`forward.*`); off when no `forward.url` is given. Its bounds are
    /// `limits.forward`.
    public var forward: ForwardSettings = ForwardSettings()

    /// Every bound of the daemon, as one `Limits` value. Each group is kept with the settings of the part that
    /// enforces it (`poll.limits`, `control.limits`, `store.limits`, …), so that each part is handed its bounds
    /// with the rest of its settings; this view gathers them for the relations between them
    /// (`Limits.contradictions`), and setting it sets every group.
    public var limits: Limits {
        get {
            Limits(
                http: self.httpLimits,
                order: self.gateway.limits,
                poll: self.poll.limits,
                control: self.control.limits,
                store: self.store.limits,
                quarantine: self.store.quarantineLimits,
                forward: self.forward.limits,
                postgres: self.storeBackend.postgresLimits ?? PostgresLimits()
            )
        }
        set {
            self.httpLimits = newValue.http
            self.gateway.limits = newValue.order
            self.poll.limits = newValue.poll
            self.control.limits = newValue.control
            self.store.limits = newValue.store
            self.store.quarantineLimits = newValue.quarantine
            self.forward.limits = newValue.forward
            // The PostgreSQL bounds are kept only with a PostgreSQL store: on LMDB they bound nothing.
            if case .postgres(var settings) = self.storeBackend {
                settings.limits = newValue.postgres
                self.storeBackend = .postgres(settings)
            }
        }
    }

    public init(gateway: GatewaySettings, key: MerchantKey) {
        self.gateway = gateway
        self.key = key
    }

    /// The settings with no default, each with its flag and environment variable. A default gateway, member id or
    /// key would let a daemon whose configuration was not read (a wrong path, a variable not exported) start
    /// healthy and sign requests for the wrong merchant against the wrong gateway; without them it refuses.
    public static let requiredSettings: [(key: String, flag: String, variable: String)] = [
        ("gateway.url", "--gateway-url", "LEDGERD_GATEWAY_URL"),
        ("gateway.memberId", "--member-id", "LEDGERD_GATEWAY_MEMBER_ID"),
        ("gateway.keyFile", "--key-file", "LEDGERD_GATEWAY_KEY_FILE or LEDGERD_GATEWAY_KEY"),
    ]
}

/// Where the ledger lives (`store.backend`).
public enum StoreBackend: Sendable, Hashable {
    /// The embedded LMDB store in `dataDir`.
    case lmdb
    /// A PostgreSQL database shared by several daemons (`store.postgres*`).
    case postgres(PostgresStoreSettings)
}

extension StoreBackend {
    /// How often a daemon sharing its store reads what the others appended (unused on LMDB).
    var followInterval: Duration {
        if case .postgres(let settings) = self { return settings.followInterval }
        return .milliseconds(100)
    }

    /// How often a daemon sharing its store tries for, or confirms, poll leadership (unused on LMDB).
    var leaderRetry: Duration {
        if case .postgres(let settings) = self { return settings.leaderRetry }
        return .seconds(1)
    }

    /// The PostgreSQL store's bounds; nil on LMDB.
    var postgresLimits: PostgresLimits? {
        if case .postgres(let settings) = self { return settings.limits }
        return nil
    }
}

/// The PostgreSQL store's settings (`store.postgresUrl`, `store.postgresSchema`, `store.postgresConnectionsMax`,
/// `store.postgresConnectTimeoutMs`). The batch and queue bounds are the shared `store.*` keys; the connection
/// bounds are `limits`, read through it as if they were its own (`settings.connectionsMax`).
@dynamicMemberLookup
public struct PostgresStoreSettings: Sendable, Hashable {
    /// `store.postgresUrl` (`--postgres-url`, `LEDGERD_STORE_POSTGRES_URL`): may carry a password, so it is read as
    /// a secret and never logged; `connection` is the parsed form, safe to print.
    public var url: String
    public var connection: PostgresConnectionSettings
    /// `store.postgresSchema`: the schema holding the ledger's tables, created at start when missing.
    public var schema: String = "ledger"
    /// `store.postgresConnectionsMax` and `store.postgresConnectTimeoutMs`.
    public var limits = PostgresLimits()
    /// `store.postgresLeaderRetryMs`: how often a standby daemon tries for poll leadership, and how often the leader
    /// confirms it still holds it. A killed leader is replaced within about one interval; a leader cut off from the
    /// database stops polling within four, before the server frees its lock after five.
    public var leaderRetry: Duration = .seconds(1)
    /// `store.postgresFollowIntervalMs`: how often the daemon reads the log for events other daemons appended
    /// (for `events.subscribe`, and so the poll leader schedules orders created elsewhere).
    public var followInterval: Duration = .milliseconds(100)

    public init(url: String, connection: PostgresConnectionSettings) {
        self.url = url
        self.connection = connection
    }

    public subscript<Value>(dynamicMember path: WritableKeyPath<PostgresLimits, Value>) -> Value {
        get { self.limits[keyPath: path] }
        set { self.limits[keyPath: path] = newValue }
    }
}

/// The query poller's schedule (`poll.*`), in milliseconds in the configuration. Its bounds (`poll.concurrency`,
/// `poll.queriesPerSecondMax`, `poll.attemptTimeoutMs`, `poll.bodyBytesMax`) are `limits`, read through it as if
/// they were its own (`settings.concurrency`).
@dynamicMemberLookup
public struct PollSettings: Sendable, Hashable {
    /// `poll.firstDelayMs`: how long after creation an order is first queried (the notification usually comes
    /// first).
    public var firstDelay: Duration = .seconds(30)
    /// `poll.backoffBaseMs`: the base of the exponential backoff between attempts.
    public var backoffBase: Duration = .seconds(10)
    /// `poll.backoffCapMs`: the longest wait between two attempts.
    public var backoffCap: Duration = .seconds(300)
    /// `poll.deadlineMs`: after this long from creation the order is given up and expired.
    public var deadline: Duration = .seconds(1800)
    /// `poll.enabled` (`ledgerd run --no-poll` sets it false): whether the daemon queries the gateway at all. Off,
    /// a restored copy can be inspected without asking the real gateway about its orders.
    public var enabled: Bool = true
    /// The bounds on the queries.
    public var limits = PollLimits()

    public init() {}

    public subscript<Value>(dynamicMember path: WritableKeyPath<PollLimits, Value>) -> Value {
        get { self.limits[keyPath: path] }
        set { self.limits[keyPath: path] = newValue }
    }
}

extension DaemonConfiguration {
    /// Loads the configuration: `flags` (already parsed by the command line, keyed like the file) override the
    /// environment, which overrides the JSON file at `file`, which overrides the defaults. Every problem names
    /// its key.
    public static func load(
        flags: [String: String],
        environment: [String: String]? = nil,
        file: String?
    ) async throws -> DaemonConfiguration {
        try await Self.loadReporting(flags: flags, environment: environment, file: file).configuration
    }

    /// `load`, with every setting's effective value and source: the one loader behind both `ledgerd run` and
    /// `ledgerd check-config`, so what the check approves is what the daemon runs with.
    public static func loadReporting(
        flags: [String: String],
        environment: [String: String]? = nil,
        file: String?
    ) async throws -> LoadedConfiguration {
        let environment = environment ?? ProcessInfo.processInfo.environment
        var providers: [any ConfigProvider] = [
            InMemoryProvider(
                name: "flags",
                values: Dictionary(
                    uniqueKeysWithValues: flags.map {
                        (AbsoluteConfigKey(ConfigKey($0.key)), ConfigValue(.string($0.value), isSecret: false))
                    }
                )
            ),
            EnvironmentVariablesProvider(
                environmentVariables: environment,
                secretsSpecifier: .specific(["LEDGERD_GATEWAY_KEY", "LEDGERD_STORE_POSTGRES_URL"])
            ).prefixKeys(with: ["ledgerd"]),
        ]
        if let file {
            guard FileManager.default.fileExists(atPath: file) else {
                throw ConfigurationError(key: "config", message: "the configuration file \(file) does not exist")
            }
            do {
                providers.append(try await FileProvider<JSONSnapshot>(filePath: .init(file)))
            } catch {
                throw ConfigurationError(
                    key: "config",
                    message: "the configuration file \(file) is not valid JSON: \(error)"
                )
            }
        }
        let values = ConfigValues(reader: ConfigReader(providers: providers))
        let configuration = try Self.build(from: values)
        // Every key the build read is known; so are those it reads only in some cases.
        let known = values.asked.keys.union(Self.conditionalKeys)
        var given: [(key: String, source: String)] = environment.keys.sorted().compactMap { name in
            name.hasPrefix("LEDGERD_") ? (name, "the environment") : nil
        }
        var fileKeys: [String] = []
        if let file {
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            fileKeys = (try? JSONParser.parse(text)).map { Self.flattenedKeys($0) } ?? []
            given += fileKeys.map { ($0, "the configuration file \(file)") }
        }
        for (key, source) in given {
            let isEnvironment = key.hasPrefix("LEDGERD_")
            let spelled = isEnvironment ? known.map(ControlSettings.environmentName) : Array(known)
            guard !spelled.contains(key) else { continue }
            var message = "\(key) in \(source) is not a setting ledgerd knows"
            if let nearest = Self.nearestKey(to: key, among: known) {
                let name = isEnvironment ? ControlSettings.environmentName(nearest) : nearest
                message += "; did you mean \(name)?"
            }
            throw ConfigurationError(key: key, message: message)
        }
        let settings = Self.effectiveSettings(
            configuration,
            values: values,
            flags: flags,
            environment: environment,
            file: file,
            fileKeys: Set(fileKeys)
        )
        return LoadedConfiguration(configuration: configuration, settings: settings)
    }

    /// Keys the build reads only in some cases: the key file when no inline key is given, and the PostgreSQL
    /// store's keys when `store.backend` is `postgres`.
    static let conditionalKeys: Set<String> = [
        "gateway.keyFile", "store.postgresUrl", "store.postgresSchema", "store.postgresConnectionsMax",
        "store.postgresConnectTimeoutMs",
        "store.postgresLeaderRetryMs", "store.postgresFollowIntervalMs",
    ]

    /// The dotted keys of a configuration file's JSON: nested objects are levels, anything else a value.
    static func flattenedKeys(_ value: JSONValue, prefix: String = "") -> [String] {
        guard let object = value.objectValue else { return prefix.isEmpty ? [] : [prefix] }
        return object.flatMap { member in
            Self.flattenedKeys(member.value, prefix: prefix.isEmpty ? member.key : prefix + "." + member.key)
        }
    }

    /// The known key closest to `key` (compared without case and separators, whole or by its last part), when
    /// one is close enough to be a likely misspelling.
    static func nearestKey(to key: String, among known: Set<String>) -> String? {
        func folded(_ text: some StringProtocol) -> [UInt8] {
            text.utf8.compactMap { byte in
                switch byte {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): return byte + 32
                case UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"): return nil
                default: return byte
                }
            }
        }
        var wanted = folded(key)
        if key.hasPrefix("LEDGERD_") { wanted.removeFirst(7) }
        var best: (key: String, distance: Int)?
        for candidate in known.sorted() {
            let whole = folded(candidate)
            let last = folded(candidate.split(separator: ".").last ?? "")
            let distance = min(Self.editDistance(wanted, whole), Self.editDistance(wanted, last))
            if distance < (best?.distance ?? Int.max) { best = (candidate, distance) }
        }
        guard let best, best.distance <= max(2, wanted.count / 3) else { return nil }
        return best.key
    }

    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1] + Array(repeating: 0, count: b.count)
            for (j, y) in b.enumerated() {
                current[j + 1] = min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    static func build(from values: ConfigValues) throws -> DaemonConfiguration {
        let inlineKey = values.text("gateway.key", secret: true)
        let keyFile = values.text("gateway.keyFile")
        let gatewayURL = values.text("gateway.url")
        let memberId = values.text("gateway.memberId")
        let required: (gatewayURL: String, memberId: String, keyText: String)
        switch (gatewayURL, memberId, inlineKey, keyFile) {
        case (let url?, let member?, let inline?, _):
            required = (url, member, inline)
        case (let url?, let member?, nil, let path?):
            required = (url, member, try Self.readKeyFile(path))
        case (_, _, _, _):
            let present = [
                "gateway.url": gatewayURL != nil, "gateway.memberId": memberId != nil,
                "gateway.keyFile": inlineKey != nil || keyFile != nil,
            ]
            let named = Self.requiredSettings.filter { present[$0.key] == false }.map {
                "\($0.key) (\($0.flag), \($0.variable))"
            }
            throw ConfigurationError(
                key: Self.requiredSettings.first { present[$0.key] == false }?.key ?? "gateway.url",
                message: "ledgerd has no default gateway, member id or key; set "
                    + named.joined(separator: "; ") + " in the --config file, the environment or a flag"
            )
        }
        let key: MerchantKey
        do {
            key = try MerchantKey(required.keyText)
        } catch {
            throw ConfigurationError(key: "gateway.keyFile", message: error.description)
        }

        let publicURL = values.text("publicUrl") ?? "http://127.0.0.1:8080"
        if let problem = GatewayValidation.urlProblem(publicURL) {
            throw ConfigurationError(key: "publicUrl", message: problem)
        }
        let base = publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL
        var gateway = GatewaySettings(
            memberId: required.memberId,
            baseURL: required.gatewayURL,
            notifyURL: base + "/notify",
            callbackURL: base + "/return"
        )
        if let codes = values.text("gateway.bankCodes") {
            gateway.bankCodes = codes.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        }
        if let zone = values.text("gateway.timeZone") {
            guard let resolved = GatewayTimeZone(identifier: zone) else {
                throw ConfigurationError(key: "gateway.timeZone", message: "'\(zone)' is not a tz database time zone")
            }
            gateway.timeZone = resolved
        }
        gateway.allowReservedCharacters = try values.bool("gateway.allowReservedCharacters") ?? false
        if let rule = values.text("signing.emptyValueRule") {
            guard let parsed = EmptyValueRule(rawValue: rule) else {
                throw ConfigurationError(key: "signing.emptyValueRule", message: "must be empty-string or php-empty")
            }
            gateway.dialect.emptyValueRule = parsed
        }
        if let set = values.text("signing.notificationFieldSet") {
            guard let parsed = NotificationFieldSet(rawValue: set) else {
                throw ConfigurationError(
                    key: "signing.notificationFieldSet",
                    message: "must be documented or all-received"
                )
            }
            gateway.dialect.notificationFieldSet = parsed
        }
        gateway.dialect.acceptLowercaseHex = try values.bool("signing.acceptLowercaseHex") ?? false
        // Each name is checked by `gateway.validate()` below.
        if let names = values.text("signing.notificationExtraFields") {
            gateway.notificationExtraFields = names.split(separator: ",").map {
                String($0).trimmingCharacters(in: .whitespaces)
            }
        }
        if let amountMax = try values.int("limits.order.amountFenMax") {
            gateway.limits.amountFenMax = Int64(amountMax)
        }
        // Their ranges are checked by `gateway.validate()` below: each at most the form field limit.
        gateway.limits.textBytesMax = try values.int("limits.order.textBytesMax") ?? gateway.limits.textBytesMax
        gateway.limits.attachBytesMax = try values.int("limits.order.attachBytesMax") ?? gateway.limits.attachBytesMax
        gateway.limits.urlBytesMax = try values.int("limits.order.urlBytesMax") ?? gateway.limits.urlBytesMax
        for problem in gateway.validate() {
            throw ConfigurationError(key: problem.key, message: problem.message)
        }

        var configuration = DaemonConfiguration(gateway: gateway, key: key)
        configuration.publicURL = base
        configuration.dataDirectory = values.text("dataDir") ?? configuration.dataDirectory
        configuration.socketPath = values.text("socket") ?? configuration.socketPath
        if let mode = values.text("socketMode") {
            guard let parsed = UInt32(mode, radix: 8), parsed == 0o600 || parsed == 0o660 else {
                throw ConfigurationError(key: "socketMode", message: "must be 0600 or 0660")
            }
            configuration.socketMode = parsed
        }
        if let http = values.text("http") {
            (configuration.httpHost, configuration.httpPort) = try Self.hostPort(http, key: "http")
        }
        try Self.readObservability(from: values, into: &configuration)

        var poll = PollSettings()
        poll.firstDelay = try values.milliseconds("poll.firstDelayMs", range: 0...86_400_000) ?? poll.firstDelay
        poll.backoffBase = try values.milliseconds("poll.backoffBaseMs", range: 1...86_400_000) ?? poll.backoffBase
        poll.backoffCap = try values.milliseconds("poll.backoffCapMs", range: 1...86_400_000) ?? poll.backoffCap
        poll.deadline = try values.milliseconds("poll.deadlineMs", range: 1...(30 * 86_400_000)) ?? poll.deadline
        poll.enabled = try values.bool("poll.enabled") ?? poll.enabled
        guard poll.backoffCap >= poll.backoffBase else {
            throw ConfigurationError(key: "poll.backoffCapMs", message: "must be at least poll.backoffBaseMs")
        }
        guard poll.deadline > poll.firstDelay else {
            throw ConfigurationError(key: "poll.deadlineMs", message: "must be longer than poll.firstDelayMs")
        }
        configuration.poll = poll
        configuration.storeBackend = try Self.storeBackend(from: values)
        configuration.forward = try Self.forwardSettings(from: values)
        // The control socket's keys go through the same providers (file, environment, flags).
        var control: [String: String] = [:]
        for key in ControlSettings.keys { control[key] = values.text(key) }
        configuration.control = try ControlSettings.load(control)

        var limits = configuration.limits
        try Self.readLimits(from: values, into: &limits)
        // Every bound is read: now the relations between them, each refusal naming every key involved.
        if let contradiction = limits.contradictions.first {
            throw ConfigurationError(key: contradiction.key, message: contradiction.message)
        }
        configuration.limits = limits
        return configuration
    }

    /// Reads every bound's key into `limits` (whose groups already hold what `ControlSettings.load` and the
    /// gateway's checks read), each within its range; the relations between them are checked by the caller.
    static func readLimits(from values: ConfigValues, into limits: inout Limits) throws {
        limits.poll.attemptTimeout =
            try values.milliseconds("poll.attemptTimeoutMs", range: 1...600_000) ?? limits.poll.attemptTimeout
        limits.poll.concurrency = try values.int("poll.concurrency", range: 1...256) ?? limits.poll.concurrency
        limits.poll.queriesPerSecondMax =
            try values.int("poll.queriesPerSecondMax", range: 1...10_000) ?? limits.poll.queriesPerSecondMax
        limits.poll.bodyBytesMax =
            try values.int("poll.bodyBytesMax", range: 256...(1 << 20)) ?? limits.poll.bodyBytesMax

        var form = limits.http.form
        form.bodyBytesMax = try values.int("limits.notify.bodyBytesMax", range: 256...(1 << 20)) ?? form.bodyBytesMax
        form.fieldsMax = try values.int("limits.notify.fieldsMax", range: 8...1024) ?? form.fieldsMax
        form.fieldBytesMax = try values.int("limits.notify.fieldBytesMax", range: 64...(1 << 20)) ?? form.fieldBytesMax
        limits.http.form = form
        limits.http.idleTimeout =
            try values.milliseconds("limits.http.idleTimeoutMs", range: 100...600_000) ?? limits.http.idleTimeout
        limits.http.connectionsMax =
            try values.int("limits.http.connectionsMax", range: 1...100_000) ?? limits.http.connectionsMax
        limits.http.requestTimeout =
            try values.milliseconds("limits.http.requestTimeoutMs", range: 100...600_000) ?? limits.http.requestTimeout
        // Not given, the per-address bound is the default or connectionsMax, whichever is lower; given, it may not
        // exceed connectionsMax (a relation the caller checks).
        limits.http.connectionsPerAddressMax =
            try values.int("limits.http.connectionsPerAddressMax", range: 1...100_000)
            ?? min(limits.http.connectionsPerAddressMax, limits.http.connectionsMax)
        limits.http.rejectLogPerMinute =
            try values.int("limits.http.rejectLogPerMinute", range: 0...100_000) ?? limits.http.rejectLogPerMinute

        var store = limits.store
        store.mapSizeMax = try values.int("store.mapSizeMax", range: (1 << 20)...(1 << 44)) ?? store.mapSizeMax
        store.batchCountMax = try values.int("store.batchCountMax", range: 1...100_000) ?? store.batchCountMax
        store.queueDepthMax = try values.int("store.queueDepthMax", range: 1...10_000_000) ?? store.queueDepthMax
        // A batch's estimated bytes; one append larger than this still commits, alone.
        store.batchBytesMax =
            try values.int("store.batchBytesMax", range: (64 << 10)...(1 << 30)) ?? store.batchBytesMax
        // Each chunk holds the writer (and, on PostgreSQL, the append lock) for one transaction.
        store.rebuildChunkEvents =
            try values.int("store.rebuildChunkEvents", range: 256...1_000_000) ?? store.rebuildChunkEvents
        // The initial map: small maps grow by doubling (MDB_MAP_FULL), so a tiny one only costs a few growths. Not
        // given, it is the default or store.mapSizeMax, whichever is lower.
        store.mapSize =
            try values.int("store.mapSize", range: (1 << 16)...(1 << 44)) ?? min(store.mapSize, store.mapSizeMax)
        limits.store = store

        // The quarantine of notifications the gateway did not vouch for: bounded, and in the same store.
        var quarantine = limits.quarantine
        quarantine.entriesMax = try values.int("quarantine.entriesMax", range: 1...10_000_000) ?? quarantine.entriesMax
        quarantine.bytesMax =
            try values.int("quarantine.bytesMax", range: (64 << 10)...(1 << 40)) ?? quarantine.bytesMax
        quarantine.bodyBytesMax =
            try values.int("quarantine.bodyBytesMax", range: 64...(1 << 20)) ?? quarantine.bodyBytesMax
        limits.quarantine = quarantine

        limits.forward.timeout =
            try values.milliseconds("forward.timeoutMs", range: 100...120_000) ?? limits.forward.timeout
        limits.forward.concurrency = try values.int("forward.concurrency", range: 1...256) ?? limits.forward.concurrency
        limits.forward.outboxMax =
            try values.int("forward.outboxMax", range: 100...10_000_000) ?? limits.forward.outboxMax
        limits.forward.concurrencyUnderLoad =
            try values.int("forward.concurrencyUnderLoad", range: 1...256) ?? limits.forward.concurrencyUnderLoad
        limits.forward.yieldMax =
            try values.milliseconds("forward.yieldMaxMs", range: 0...600_000) ?? limits.forward.yieldMax
    }
}

extension DaemonConfiguration {
    /// The merchant key file's contents. The key signs every payment request and vouches for every notification:
    /// a copy others can read is a key others can use, so such a file is refused before it is read, and the daemon
    /// never holds a key it should refuse.
    static func readKeyFile(_ path: String) throws -> String {
        if let mode = Self.permissions(ofFile: path), mode & 0o077 != 0 {
            throw ConfigurationError(
                key: "gateway.keyFile",
                message: "the merchant key file \(path) is readable by group or others (mode "
                    + "\(String(mode & 0o777, radix: 8))); run chmod 600 \(path)"
            )
        }
        guard let contents = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigurationError(
                key: "gateway.keyFile",
                message: "cannot read the merchant key file \(path); write the key the platform assigned into it "
                    + "(chmod 600), or set LEDGERD_GATEWAY_KEY"
            )
        }
        return contents
    }

    /// A file's permission bits, or nil when it cannot be examined.
    static func permissions(ofFile path: String) -> UInt16? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
        return (attributes[.posixPermissions] as? NSNumber)?.uint16Value
    }
}

extension DaemonConfiguration {
    /// `store.backend` and, for PostgreSQL, its keys; the URL is parsed here so a bad one stops the start with
    /// its key named, before anything is opened.
    static func storeBackend(from values: ConfigValues) throws -> StoreBackend {
        let backend = values.text("store.backend") ?? "lmdb"
        switch backend {
        case "lmdb":
            return .lmdb
        case "postgres":
            guard let url = values.text("store.postgresUrl", secret: true), !url.isEmpty else {
                throw ConfigurationError(
                    key: "store.postgresUrl",
                    message:
                        "store.backend is postgres but no URL is set; give --postgres-url or LEDGERD_STORE_POSTGRES_URL (postgres://USER@HOST:PORT/DATABASE)"
                )
            }
            let connection: PostgresConnectionSettings
            do {
                connection = try PostgresConnectionSettings(url: url)
            } catch {
                throw ConfigurationError(key: "store.postgresUrl", message: error.message)
            }
            var settings = PostgresStoreSettings(url: url, connection: connection)
            settings.schema = values.text("store.postgresSchema") ?? settings.schema
            settings.limits.connectionsMax =
                try values.int("store.postgresConnectionsMax", range: 3...1000) ?? settings.limits.connectionsMax
            settings.limits.connectTimeout =
                try values.milliseconds("store.postgresConnectTimeoutMs", range: 100...600_000)
                ?? settings.limits.connectTimeout
            // At most 2 s: a standby reports its poller alive on every try, and /healthz wants a beat every 3 s.
            settings.leaderRetry =
                try values.milliseconds("store.postgresLeaderRetryMs", range: 100...2000) ?? settings.leaderRetry
            settings.followInterval =
                try values.milliseconds("store.postgresFollowIntervalMs", range: 10...10_000) ?? settings.followInterval
            return .postgres(settings)
        default:
            throw ConfigurationError(key: "store.backend", message: "'\(backend)' is not lmdb or postgres")
        }
    }
}

extension DaemonConfiguration {
    /// `forward.*`: receivers (each `forward.url` with the `forward.secretFile` at the same place in its list; one of
    /// each from `LEDGERD_FORWARD_URL` and `LEDGERD_FORWARD_SECRET_FILE` is enough), the retry schedule and the
    /// intervals; the bounds are read with the others (`readLimits`). Every key is read even with forwarding off, so
    /// each is known to the checks.
    static func forwardSettings(from values: ConfigValues) throws -> ForwardSettings {
        func list(_ key: String) -> [String] {
            guard let text = values.text(key) else { return [] }
            return text.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }
        }
        let urls = list("forward.url")
        let secretFiles = list("forward.secretFile")
        var settings = ForwardSettings()
        settings.pollInterval =
            try values.milliseconds("forward.pollIntervalMs", range: 10...60_000) ?? settings.pollInterval
        settings.writeInterval =
            try values.milliseconds("forward.writeIntervalMs", range: 0...10_000) ?? settings.writeInterval
        if let schedule = values.text("forward.schedule") {
            do {
                settings.schedule = try ForwardSettings.parseSchedule(schedule)
            } catch {
                throw ConfigurationError(key: "forward.schedule", message: error.description)
            }
        }
        guard urls.count == secretFiles.count else {
            throw ConfigurationError(
                key: urls.count > secretFiles.count ? "forward.secretFile" : "forward.url",
                message: "each forward.url needs its forward.secretFile, in the same order "
                    + "(\(urls.count) URLs, \(secretFiles.count) secret files)"
            )
        }
        guard Set(urls).count == urls.count else {
            throw ConfigurationError(key: "forward.url", message: "a receiver URL is given twice")
        }
        for (url, file) in zip(urls, secretFiles) {
            if let problem = GatewayValidation.urlProblem(url) {
                throw ConfigurationError(key: "forward.url", message: "\(url) \(problem)")
            }
            guard url.utf8.count <= ForwardLimits.urlBytesMax else {
                throw ConfigurationError(
                    key: "forward.url",
                    message: "a receiver URL is longer than \(ForwardLimits.urlBytesMax) bytes"
                )
            }
            do {
                let secrets = try ForwardSettings.readSecrets(path: file)
                settings.receivers.append(ForwardReceiver(url: url, secrets: secrets))
            } catch {
                throw ConfigurationError(key: "forward.secretFile", message: error.description)
            }
        }
        return settings
    }
}

/// Typed reads over the configuration reader, each failing with the key's name.
struct ConfigValues {
    let reader: ConfigReader
    /// Every key asked for: what the build knows, so that anything else given is reported as unknown.
    let asked = AskedKeys()

    final class AskedKeys: @unchecked Sendable {
        // @unchecked: written and read by the one thread that builds the configuration.
        var keys: Set<String> = []
        /// The text given for each key that is not a secret, for `check-config` to show a key it has no
        /// rendering of.
        var given: [String: String] = [:]
    }

    /// The non-secret text given for `key` by any source, as read.
    var given: [String: String] { self.asked.given }

    /// A value as text, whether the source holds a string, a number, a boolean or a list (a JSON array in the
    /// file, joined with commas as the environment and flags spell a list), so that a list in the file is not
    /// passed over as absent.
    func text(_ key: String, secret: Bool = false) -> String? {
        self.asked.keys.insert(key)
        let value = self.read(key, secret: secret)
        if secret {
            if value != nil { self.asked.given[key] = "(secret)" }
        } else {
            self.asked.given[key] = value
        }
        return value
    }

    private func read(_ key: String, secret: Bool) -> String? {
        let configKey = ConfigKey(key)
        if let value = self.reader.string(forKey: configKey, isSecret: secret) { return value }
        if let value = self.reader.int(forKey: configKey) { return String(value) }
        if let value = self.reader.bool(forKey: configKey) { return String(value) }
        if let values = self.reader.stringArray(forKey: configKey, isSecret: secret) {
            return values.joined(separator: ",")
        }
        if let values = self.reader.intArray(forKey: configKey) {
            return values.map(String.init).joined(separator: ",")
        }
        return nil
    }

    func int(_ key: String, range: ClosedRange<Int>? = nil) throws -> Int? {
        guard let text = self.text(key) else { return nil }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
            throw ConfigurationError(key: key, message: "'\(text)' is not a whole number")
        }
        if let range, !range.contains(value) {
            throw ConfigurationError(key: key, message: "\(value) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    func milliseconds(_ key: String, range: ClosedRange<Int>) throws -> Duration? {
        try self.int(key, range: range).map { .milliseconds($0) }
    }

    func bool(_ key: String) throws -> Bool? {
        guard let text = self.text(key) else { return nil }
        switch text.lowercased() {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: throw ConfigurationError(key: key, message: "'\(text)' is not true or false")
        }
    }
}
