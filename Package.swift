// swift-tools-version:6.2
import PackageDescription

/// Strict settings for every target of ours: Swift 6 language mode is the default with tools 6.2; the upcoming
/// features below are the ones Hummingbird turns on, so the code is ready for the next language mode.
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "OrderLedger",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ledgerd", targets: ["ledgerd"]),
        .executable(name: "ledgerctl", targets: ["ledgerctl"]),
        .library(name: "LedgerCore", targets: ["LedgerCore"]),
        .library(name: "LedgerStore", targets: ["LedgerStore"]),
        .library(name: "LedgerPostgres", targets: ["LedgerPostgres"]),
        .library(name: "LedgerDaemon", targets: ["LedgerDaemon"]),
        .library(name: "GatewaySimulator", targets: ["GatewaySimulator"]),
        .executable(name: "gateway-sim", targets: ["gateway-sim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // Debian's liblmdb-dev, found through pkg-config (lmdb.pc).
        .systemLibrary(
            name: "CLMDB",
            path: "Sources/CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        // CRC-32C in C, for the CPU's CRC32 instruction (Swift has no portable way to reach it).
        .target(name: "CCRC32C", path: "Sources/CCRC32C"),
        // Pure logic: no I/O, no clock, no hidden randomness.
        .target(
            name: "LedgerCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictSettings
        ),
        // The only code that imports CLMDB.
        .target(
            name: "LedgerStore",
            dependencies: ["CLMDB", "CCRC32C", "LedgerCore"],
            swiftSettings: strictSettings
        ),
        // The PostgreSQL event store, for several daemons on one ledger. A target of its own so the embedded LMDB
        // path builds without PostgresNIO and LedgerStore stays the only importer of CLMDB.
        .target(
            name: "LedgerPostgres",
            dependencies: [
                "LedgerCore",
                "LedgerStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // The daemon: the Ledger actor, HTTP endpoints, the query poller, the control socket, configuration.
        .target(
            name: "LedgerDaemon",
            dependencies: [
                "LedgerCore",
                "LedgerControlProtocol",
                "LedgerStore",
                "LedgerPostgres",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "HeapModule", package: "swift-collections"),
            ],
            swiftSettings: strictSettings
        ),
        // The testing kit: temporary directories, the manual clock, the in-memory store, signed fixtures. For the
        // tests and the test tools (fault suite, benchmarks, crash test); no production target depends on it.
        .target(
            name: "LedgerTesting",
            dependencies: ["LedgerCore", "LedgerStore", "LedgerControlProtocol", "LedgerControlClient"],
            swiftSettings: strictSettings
        ),
        // A faithful fake of the gateway, with fault injection, for tests, benchmarks and the demo.
        .target(
            name: "GatewaySimulator",
            dependencies: [
                "LedgerCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ledgerd",
            dependencies: [
                "LedgerCore",
                "LedgerStore",
                "LedgerDaemon",
                "LedgerControlProtocol",
                "GatewaySimulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // The control protocol: one type per method's params and result, the error codes, the notifications, the
        // envelopes and the text tables, encoded and decoded here only. The daemon, ledgerctl, the fault suite and
        // the tests all use it; it needs nothing but the core.
        .target(
            name: "LedgerControlProtocol",
            dependencies: ["LedgerCore"],
            swiftSettings: strictSettings
        ),
        // A blocking JSON-RPC client of the control socket, used by `ledgerctl` and the system benchmark; the fault
        // suite and the tests share the line socket under it.
        .target(
            name: "LedgerControlClient",
            dependencies: ["LedgerCore", "LedgerControlProtocol"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "gateway-sim",
            dependencies: [
                "GatewaySimulator",
                "LedgerCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        // SQLite, only as the benchmark's baseline (Debian's libsqlite3-dev).
        .systemLibrary(
            name: "CSQLite",
            path: "Sources/CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        // `tools/bench`: the store benchmark against SQLite and raw LMDB, and (`--backend postgres`) PostgreSQL.
        .executableTarget(
            name: "ledger-bench",
            dependencies: [
                "LedgerCore",
                "LedgerTesting",
                "LedgerStore",
                "LedgerPostgres",
                "LedgerControlProtocol",
                "LedgerControlClient",
                "CSQLite",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // `tools/crash-test`: kill -9 under concurrent appends, then check every acknowledged event.
        .executableTarget(
            name: "ledger-crash",
            dependencies: [
                "LedgerCore",
                "LedgerTesting",
                "LedgerStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        // `tools/fault-suite`: the real daemon and gateway simulator under kill -9, duplicate storms, hostile input,
        // storage and gateway faults.
        .executableTarget(
            name: "ledger-faults",
            dependencies: [
                "LedgerCore",
                "LedgerTesting",
                "LedgerControlProtocol",
                "LedgerControlClient",
                // The shop receiver of the forwarding scenario.
                "GatewaySimulator",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ledgerctl",
            // The protocol and the client only: none of the daemon's server libraries.
            dependencies: [
                "LedgerCore",
                "LedgerControlProtocol",
                "LedgerControlClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LedgerCoreTests",
            dependencies: [
                "LedgerTesting",
                "LedgerCore",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LedgerStoreTests",
            dependencies: [
                "LedgerTesting",
                "LedgerStore",
                "LedgerCore",
                "LedgerPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The gateway simulator, on its own.
        .testTarget(
            name: "GatewaySimulatorTests",
            dependencies: [
                "LedgerTesting",
                "GatewaySimulator",
                "LedgerCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // The tools as real processes: the demo, the fault suite and the benchmarks.
        .testTarget(
            name: "ToolTests",
            dependencies: [
                "LedgerTesting",
                "LedgerCore",
                "LedgerControlProtocol",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                "LedgerStore",
                "LedgerPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LedgerDaemonTests",
            dependencies: [
                "LedgerTesting",
                "LedgerDaemon",
                "LedgerControlProtocol",
                "LedgerControlClient",
                "GatewaySimulator",
                "LedgerStore",
                "LedgerPostgres",
                "LedgerCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)
