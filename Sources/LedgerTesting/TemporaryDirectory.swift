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

extension TemporaryDirectory {
    /// Writes `contents` to the file at `path`, owner-only (0600), as a merchant key file must be: the daemon
    /// refuses a key file that group or others can read.
    @discardableResult
    public static func writeSecret(_ contents: String, to path: String) throws -> String {
        let created = FileManager.default.createFile(
            atPath: path,
            contents: Data(contents.utf8),
            attributes: [.posixPermissions: 0o600]
        )
        guard created else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
        // createFile keeps an existing file's mode; set it in every case.
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        return path
    }
}
