import Foundation
import LedgerStore
import LedgerTesting
import Testing

/// Where a backup may go, judged on the path's bytes.
struct BackupDestinationTests {
    /// A '/' joined to a combining mark is still a separator: the parent of `…/missing/\u{301}` is `…/missing`.
    @Test func separatorsAreBytes() throws {
        let directory = TemporaryDirectory()
        let missingParent = directory.path + "/missing/\u{301}"
        #expect(BackupDestination.problem(missingParent)?.contains("the parent must exist") == true)
        #expect(BackupDestination.problem(directory.path + "/\u{301}/") == nil)
        #expect(BackupDestination.problem(directory.path)?.contains("already exists") == true)
        #expect(BackupDestination.problem("relative/x") == "it is not an absolute path")
        #expect(BackupDestination.problem(directory.path + "/..")?.contains("new directory") == true)
    }
}
