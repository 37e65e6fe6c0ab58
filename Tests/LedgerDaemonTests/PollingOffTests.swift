import AsyncHTTPClient
import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerDaemon
import LedgerStore
import LedgerTesting
import Testing

/// `ledgerd run --no-poll` (`poll.enabled` false): a daemon that asks the gateway nothing.
struct PollingOffTests {
    /// With polling off (`ledgerd run --no-poll`) nothing is queried: /healthz reports the poller off and stays
    /// healthy, and `order.queryNow` is refused with why.
    @Test func pollingOff() async throws {
        let directory = TemporaryDirectory()
        var configuration = try testConfiguration(directory: directory)
        configuration.poll.enabled = false
        try await withRunningDaemon(configuration) { running in
            _ = try await running.daemon.ledger.createOrder(.testing(orderId: "A1"))
            let client = HTTPClient()
            defer { shutdownLater(client) }
            try await Task.sleep(for: .milliseconds(1200))
            let (status, health) = try await get(client, running.baseURL + "/healthz")
            #expect(status == 200, "\(health)")
            #expect(try JSONParser.parse(health)["checks"]?["poller"] == "off")
            await #expect {
                _ = try await running.daemon.poller.queryNow("A1")
            } throws: { error in
                (error as? LedgerError)?.code == .pollingOff
            }
            #expect(await running.daemon.poller.pendingCount == 0)
        }
    }
}
