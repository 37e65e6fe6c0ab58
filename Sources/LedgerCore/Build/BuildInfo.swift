import LedgerBuildCommit

/// What this build is: the release it belongs to and the commit it was built from, for `--version` on every
/// executable and for the `ledger_build_info` metric. One place, so the three executables and the metrics never
/// disagree.
public enum BuildInfo {
    /// The release version (semantic versioning).
    public static let version = "0.7.0"

    /// The commit the binaries were built from (12 hex digits), or `unknown` when the build did not record one
    /// (built from a source archive, or without git). `buildCommit` is generated before each build by the
    /// BuildCommit plugin, outside the source tree; computed here so that LedgerCore's interface stays the same
    /// from one commit to the next.
    public static var commit: String { buildCommit }

    /// The line `--version` prints: `0.7.0 (commit abc1234)`.
    public static var versionLine: String {
        "\(Self.version) (commit \(Self.commit))"
    }
}
