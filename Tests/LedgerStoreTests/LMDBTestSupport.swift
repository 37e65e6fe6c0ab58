import Foundation
import LedgerStore
import LedgerTesting
import Testing

/// Runs `body` with a fresh, empty directory under the system's temporary directory and removes it afterwards,
/// so every test works on real LMDB files of its own.
func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let base = FileManager.default.temporaryDirectory
        .appendingPathComponent("lmdb-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: base) }
    return try body(base.path)
}

/// Opens an environment in `directory/name` with the given options.
func openEnvironment(
    _ directory: String,
    _ name: String = "env",
    options: LMDBEnvironment.Options = LMDBEnvironment.Options(mapSize: 8 << 20, mapSizeMax: 64 << 20)
) throws -> LMDBEnvironment {
    try LMDBEnvironment(path: directory + "/" + name, options: options)
}

/// The UTF-8 bytes of a string, for readable keys and values in tests.
func bytes(_ text: String) -> [UInt8] {
    Array(text.utf8)
}

/// A copied buffer as a string, for comparing values read inside a transaction.
func string(_ buffer: UnsafeRawBufferPointer?) -> String? {
    buffer.map { String(decoding: $0, as: UTF8.self) }
}

/// Finds an executable on PATH, so that tests needing a helper program can be skipped where it is absent.
func executableOnPath(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":") {
        let candidate = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
    }
    return nil
}

/// Records an issue unless `body` throws an `LMDBError` with `code`.
func expectLMDBError(
    _ code: LMDBResultCode,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("Expected an LMDBError \(code), but nothing was thrown.", sourceLocation: sourceLocation)
    } catch let error as LMDBError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("Expected an LMDBError \(code), but got \(error).", sourceLocation: sourceLocation)
    }
}
