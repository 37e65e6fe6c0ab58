import Foundation

/// Runs blocking work (an LMDB scan, a backup, an fsync) on a thread of its own, never on Swift's cooperative
/// pool, which has only as many threads as cores: one blocked pool thread is half this machine's async capacity.
enum DedicatedThread {
    static func run<T: Sendable>(
        _ name: String,
        _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let thread = Thread {
                do {
                    continuation.resume(returning: try body())
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.name = name
            thread.start()
        }
    }
}
