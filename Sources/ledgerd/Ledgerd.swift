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
        abstract: "The OrderLedger daemon: signs payment requests, records gateway callbacks durably, polls for missing ones.",
        subcommands: [Run.self, Demo.self, VerifyStore.self],
        defaultSubcommand: nil
    )
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

    @Option(help: "The gateway's base URL (gateway.url, LEDGERD_GATEWAY_URL). Default http://127.0.0.1:9090.")
    var gatewayURL: String?

    @Option(help: "The merchant's member id (gateway.memberId, LEDGERD_GATEWAY_MEMBER_ID). Default 10001.")
    var memberId: String?

    @Option(help: "The merchant key file (gateway.keyFile, LEDGERD_GATEWAY_KEY_FILE). Default ./merchant.key.")
    var keyFile: String?

    @Option(help: "The URL the gateway and buyers reach this daemon at (publicUrl, LEDGERD_PUBLIC_URL).")
    var publicURL: String?

    @Option(help: "Where the ledger lives: lmdb (in --data-dir) or postgres (store.backend, LEDGERD_STORE_BACKEND). Default lmdb.")
    var store: String?

    @Option(
        help: "The PostgreSQL URL with --store postgres, postgres://USER@HOST:PORT/DATABASE (store.postgresUrl, LEDGERD_STORE_POSTGRES_URL; prefer the variable when it carries a password)."
    )
    var postgresURL: String?

    @Option(
        help: "Log level: trace, debug, info, notice, warning, error, critical (log.level, LEDGERD_LOG_LEVEL); default info."
    )
    var logLevel: String?

    @Option(
        help: "Log format: text, or json for one JSON object per line (log.format, LEDGERD_LOG_FORMAT). Default text."
    )
    var logFormat: String?

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
        return flags
    }

}

extension Logger.Level: @retroactive ExpressibleByArgument {}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon until SIGTERM or SIGINT.",
        discussion: """
            Configuration comes from flags, then LEDGERD_* environment variables, then the --config JSON file, \
            then the defaults; invalid values stop the daemon at start with a message naming the key.
            """
    )

    @OptionGroup var options: DaemonOptions

    @Flag(help: "Query the gateway for nothing (poll.enabled false): to inspect a restored copy of a ledger.")
    var noPoll = false

    func run() async throws {
        let configuration: DaemonConfiguration
        var flags = self.options.flags
        if self.noPoll { flags["poll.enabled"] = "false" }
        do {
            configuration = try await DaemonConfiguration.load(flags: flags, file: self.options.config)
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
        // After the configuration, which says how to log; a configuration error is the command line's message.
        let logger = configuration.log.bootstrap(label: "ledgerd")
        let store = try await LedgerDaemon.openStore(configuration: configuration, logger: logger)
        let daemon: LedgerDaemon
        do {
            daemon = try LedgerDaemon(configuration: configuration, store: store, logger: logger)
        } catch {
            await store.close()
            throw error
        }
        let storeLocation: String
        switch configuration.storeBackend {
        case .lmdb: storeLocation = "lmdb \(configuration.dataDirectory)"
        case .postgres(let postgres): storeLocation = "postgres \(postgres.connection) schema \(postgres.schema)"
        }
        logger.info(
            "ledgerd starting",
            metadata: [
                "store": "\(storeLocation)", "http": "\(configuration.httpHost):\(configuration.httpPort)",
                "gateway.url": "\(configuration.gateway.baseURL)", "gateway.member": "\(configuration.gateway.memberId)",
                "http.admin": "\(configuration.adminListen.map { "\($0.host):\($0.port)" } ?? "on http")",
            ]
        )
        try await daemon.run()
        logger.info("ledgerd stopped")
    }
}
