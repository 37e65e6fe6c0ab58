import ArgumentParser
import Foundation
import LedgerCore
import LedgerStore

/// `ledgerd verify-store DIR`: checks a ledger directory (a backup, or a stopped daemon's data) without starting a
/// daemon: the hash chain, then the projection against a rebuild.
struct VerifyStore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-store",
        abstract: "Verify an LMDB ledger offline: the hash chain, then the projection against a rebuild.",
        discussion: """
            For a backup before it is trusted, or a data directory whose daemon is stopped (a directory a running \
            daemon holds is refused). Exit 0 when both checks pass, 1 when either finds a problem.

            Example:
              ledgerd verify-store /var/backups/ledger-2026-11-27
            """
    )

    @Argument(help: "The ledger directory (a --data-dir, or a directory ledgerctl backup wrote).")
    var directory: String

    @Option(help: "The most differing orders to list.")
    var differencesMax: Int = 20

    func run() async throws {
        guard FileManager.default.fileExists(atPath: self.directory + "/data.mdb") else {
            throw ValidationError("\(self.directory) holds no ledger (no data.mdb).")
        }
        let store = try LMDBEventStore(path: self.directory)
        let chain = try await store.verifyChain(progress: nil)
        let projection = try await store.verifyProjection(differencesMax: self.differencesMax, progress: nil)
        await store.close()
        if let firstBreak = chain.firstBreak {
            print("chain BROKEN at sequence \(firstBreak.sequence): \(firstBreak)")
        } else {
            print("chain intact: \(chain.eventsChecked) events, head \(chain.head.sequence) \(chain.head.hash.hex)")
        }
        print(
            "projection: \(projection.ordersCompared) orders compared after \(projection.eventsReplayed) events, "
                + "\(projection.differenceCount) differ"
        )
        for difference in projection.differences {
            print(
                "  \(difference.orderId): live \(difference.live?.status.rawValue ?? "absent"), "
                    + "rebuilt \(difference.rebuilt?.status.rawValue ?? "absent")"
            )
        }
        if !chain.isIntact || projection.differenceCount > 0 { throw ExitCode(1) }
    }
}
