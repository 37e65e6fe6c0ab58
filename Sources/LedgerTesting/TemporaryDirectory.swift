import Foundation

/// A fresh directory under the system's temporary directory, owner-only (0700), removed with everything in it when
/// the value goes away. Tests, the fault suite and the benchmarks keep their ledgers, sockets and logs in one.
public final class TemporaryDirectory: @unchecked Sendable {
    // @unchecked: `path` is immutable; the directory is removed once, in deinit.
    public let path: String

    /// `permissions` other than 0700 are for tests that run a client under another uid, which must reach a
    /// socket inside.
    public init(prefix: String = "ledger", permissions: Int = 0o700) {
        self.path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(
            atPath: self.path,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: permissions]
        )
    }

    deinit { try? FileManager.default.removeItem(atPath: self.path) }
}
