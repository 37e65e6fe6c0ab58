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
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        // Debian's liblmdb-dev, found through pkg-config (lmdb.pc).
        .systemLibrary(
            name: "CLMDB",
            path: "Sources/CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        // Pure logic: no I/O, no clock, no hidden randomness.
        .target(
            name: "LedgerCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictSettings
        ),
        // The only code that imports CLMDB.
        .target(
            name: "LedgerStore",
            dependencies: ["CLMDB", "LedgerCore"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ledgerd",
            dependencies: [
                "LedgerCore",
                "LedgerStore",
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
        // `tools/bench`: the store benchmark against SQLite and raw LMDB.
        .executableTarget(
            name: "ledger-bench",
            dependencies: [
                "LedgerCore",
                "LedgerStore",
                "CSQLite",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        // `tools/crash-test`: kill -9 under concurrent appends, then check every acknowledged event.
        .executableTarget(
            name: "ledger-crash",
            dependencies: [
                "LedgerCore",
                "LedgerStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ledgerctl",
            dependencies: [
                "LedgerCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LedgerCoreTests",
            dependencies: [
                "LedgerCore",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LedgerStoreTests",
            dependencies: ["LedgerStore", "LedgerCore"],
            swiftSettings: strictSettings
        ),
    ]
)
