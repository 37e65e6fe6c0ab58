public import ArgumentParser
import Foundation
import LedgerCore
import LedgerDaemon
import LedgerStore
public import Logging

@main
struct Ledgerd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledgerd",
        abstract:
            "The OrderLedger daemon: signs payment requests, records gateway callbacks durably, polls for missing ones.",
        discussion: """
            Exit status: 0 on success, 1 on a failure while running (or a check that found a problem), 64 on a \
            usage error (an unknown option, a missing argument), 78 on a configuration error (an unknown key, a \
            missing or invalid setting, a key file others can read).
            """,
        version: BuildInfo.versionLine,
        subcommands: [Run.self, CheckConfig.self, Demo.self, VerifyStore.self],
        defaultSubcommand: nil
    )
}

/// The exit status of a configuration error (EX_CONFIG in sysexits.h), apart from a usage error's 64, so a service
/// manager can tell "fix the configuration" from "the daemon failed" and not restart into the same refusal.
let configurationErrorExitCode = ExitCode(78)

/// Writes a configuration error to standard error and returns the exit code to throw.
func configurationFailure(_ error: ConfigurationError) -> ExitCode {
    FileHandle.standardError.write(Data("ledgerd: \(error.description)\n".utf8))
    return configurationErrorExitCode
}

/// Flags shared by `run` and `demo`; each is also a configuration key (file) and an environment variable.
struct DaemonOptions: ParsableArguments {
    @Option(help: "A JSON configuration file (keys as in the README: dataDir, gateway.url, poll.deadlineMs, ...).")
    var config: String?

    @Option(help: "The LMDB data directory (dataDir, LEDGERD_DATA_DIR). Default ./ledger-data.")
    var dataDir: String?

    @Option(help: "The control socket path (socket, LEDGERD_SOCKET). Default ./ledgerd.sock.")
    var socket: String?

    @Option(help: "HOST:PORT of the HTTP endpoints (http, LEDGERD_HTTP). Default 127.0.0.1:8080.")
    var http: String?

    @Option(help: "The gateway's base URL (gateway.url, LEDGERD_GATEWAY_URL). Required.")
    var gatewayURL: String?

    @Option(help: "The merchant's member id (gateway.memberId, LEDGERD_GATEWAY_MEMBER_ID). Required.")
    var memberId: String?

    @Option(
        help: """
            The merchant key file, owner-only (gateway.keyFile, LEDGERD_GATEWAY_KEY_FILE; or the key in \
            LEDGERD_GATEWAY_KEY). Required.
            """
    )
    var keyFile: String?

    @Option(help: "The URL the gateway and buyers reach this daemon at (publicUrl, LEDGERD_PUBLIC_URL).")
    var publicURL: String?

    @Option(
        help:
            "Where the ledger lives: lmdb (in --data-dir) or postgres (store.backend, LEDGERD_STORE_BACKEND). Default lmdb."
    )
    var store: String?

    @Option(
        help:
            "The PostgreSQL URL with --store postgres, postgres://USER@HOST:PORT/DATABASE (store.postgresUrl, LEDGERD_STORE_POSTGRES_URL; prefer the variable when it carries a password)."
    )
    var postgresURL: String?

    @Option(
        help:
            "Log level: trace, debug, info, notice, warning, error, critical (log.level, LEDGERD_LOG_LEVEL); default info."
    )
    var logLevel: String?

    @Option(
        help: "Log format: text, or json for one JSON object per line (log.format, LEDGERD_LOG_FORMAT). Default text."
    )
    var logFormat: String?

    @Flag(help: "Query the gateway for nothing (poll.enabled false): to inspect a restored copy of a ledger.")
    var noPoll = false

    var flags: [String: String] {
        var flags: [String: String] = [:]
        flags["dataDir"] = self.dataDir
        flags["socket"] = self.socket
        flags["http"] = self.http
        flags["gateway.url"] = self.gatewayURL
        flags["gateway.memberId"] = self.memberId
        flags["gateway.keyFile"] = self.keyFile
        flags["publicUrl"] = self.publicURL
        flags["store.backend"] = self.store
        flags["store.postgresUrl"] = self.postgresURL
        flags["log.level"] = self.logLevel
        flags["log.format"] = self.logFormat
        if self.noPoll { flags["poll.enabled"] = "false" }
        return flags
    }

    /// The configuration from the flags, the environment and the `--config` file: the one load `run` and
    /// `check-config` share. A configuration error is reported and becomes exit status 78.
    func load() async throws -> LoadedConfiguration {
        do {
            return try await DaemonConfiguration.loadReporting(flags: self.flags, file: self.config)
        } catch let error as ConfigurationError {
            throw configurationFailure(error)
        }
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon until SIGTERM or SIGINT.",
        discussion: """
            Configuration comes from flags, then LEDGERD_* environment variables, then the --config JSON file, \
            then the defaults. The gateway URL, the member id and the key have no default: without them, and on \
            an unknown key or an invalid value, the daemon does not start and names the key (exit status 78). \
            `ledgerd check-config` shows what run would use.
            """
    )

    @OptionGroup var options: DaemonOptions

    func run() async throws {
        let configuration = try await self.options.load().configuration
        // After the configuration, which says how to log.
        let logger = configuration.log.bootstrap(label: "ledgerd")
        // The store opens when the daemon runs; a store that cannot open stops it with the store's error before any
        // socket is bound.
        let daemon = LedgerDaemon(configuration: configuration, logger: logger)
        let storeLocation: String
        switch configuration.storeBackend {
        case .lmdb: storeLocation = "lmdb \(configuration.dataDirectory)"
        case .postgres(let postgres): storeLocation = "postgres \(postgres.connection) schema \(postgres.schema)"
        }
        logger.info(
            "ledgerd starting",
            metadata: [
                "store": "\(storeLocation)", "http": "\(configuration.httpHost):\(configuration.httpPort)",
                "gateway.url": "\(configuration.gateway.baseURL)",
                "gateway.member": "\(configuration.gateway.memberId)",
                "http.admin": "\(configuration.adminListen.map { "\($0.host):\($0.port)" } ?? "on http")",
            ]
        )
        try await daemon.run(notifier: ServiceManagerNotifier(environment: ProcessInfo.processInfo.environment))
        logger.info("ledgerd stopped")
    }
}

/// `ledgerd check-config`: the configuration `run` would use, loaded by the same code, with each setting's value and
/// source; exit 0 when `run` would accept it, 78 (with the problem on standard error) when it would refuse it.
struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Check the configuration run would use and print each setting with where it came from.",
        discussion: """
            Takes the same --config file, flags and LEDGERD_* variables as run and loads them the same way. Prints \
            every effective setting with its source (default, file, environment, flag); the merchant key is \
            never printed (the key file is named with its permissions) and a PostgreSQL URL is shown without its \
            password. Exit 0 when run would accept the configuration, 78 when it would refuse it, with the key \
            and the reason on standard error. Nothing is opened: no store, socket or port.

            Example:
              ledgerd check-config --config /etc/ledgerd/ledgerd.json
            """
    )

    @OptionGroup var options: DaemonOptions

    @Flag(help: "Print one JSON object: {\"ok\": true, \"settings\": [{key, value, source, origin}]}, or the error.")
    var json = false

    func run() async throws {
        do {
            let loaded = try await DaemonConfiguration.loadReporting(
                flags: self.options.flags,
                file: self.options.config
            )
            print(self.json ? JSONWriter.write(loaded.json) : loaded.text + "\nconfiguration ok")
        } catch let error as ConfigurationError {
            if self.json {
                let object: JSONObject = [
                    "ok": .bool(false), "error": ["key": .string(error.key), "message": .string(error.message)],
                ]
                print(JSONWriter.write(.object(object)))
                throw configurationErrorExitCode
            }
            throw configurationFailure(error)
        }
    }
}
