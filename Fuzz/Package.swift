// swift-tools-version:6.2
import PackageDescription

/// The libFuzzer targets, a package of their own so that the main package's `swift build --build-tests` never sees
/// them: each target's entry point is `LLVMFuzzerTestOneInput` and its `main` comes from libFuzzer's runtime, so it
/// links only in a fuzzer build. `tools/fuzz` builds them with
/// `swift build -c release --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address --scratch-path .build-fuzz`.
///
/// `--sanitize=fuzzer` makes the package manager link libFuzzer's `main` instead of renaming a Swift one; the
/// `-Xswiftc` flag is what actually instruments the Swift code, because the compiler driver keeps only the last of
/// several `-sanitize=` flags and `--sanitize=fuzzer --sanitize=address` would lose the coverage instrumentation.
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// One fuzz target: an executable whose only source file defines `LLVMFuzzerTestOneInput`.
func fuzzTarget(_ name: String) -> Target {
    .executableTarget(
        name: name,
        dependencies: ["FuzzSupport", .product(name: "LedgerCore", package: "OrderLedger")],
        swiftSettings: strictSettings
    )
}

let package = Package(
    name: "OrderLedgerFuzz",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "fuzz-form", targets: ["fuzz-form"]),
        .executable(name: "fuzz-notify", targets: ["fuzz-notify"]),
        .executable(name: "fuzz-control", targets: ["fuzz-control"]),
        .executable(name: "fuzz-event", targets: ["fuzz-event"]),
    ],
    dependencies: [
        .package(name: "OrderLedger", path: "..")
    ],
    targets: [
        // What the targets share: reading the input, and failing loudly with the reason when an oracle disagrees.
        .target(name: "FuzzSupport", swiftSettings: strictSettings),
        fuzzTarget("fuzz-form"),
        fuzzTarget("fuzz-notify"),
        fuzzTarget("fuzz-control"),
        fuzzTarget("fuzz-event"),
    ]
)
