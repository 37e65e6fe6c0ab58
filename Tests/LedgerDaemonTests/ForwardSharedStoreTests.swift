import AsyncHTTPClient
import Foundation
import GatewaySimulator
import LedgerControlProtocol
import LedgerCore
import LedgerDaemon
import LedgerPostgres
import LedgerStore
import LedgerTesting
import Testing

/// Forwarding with several daemons on one PostgreSQL ledger: only the poll leader forwards.
struct ForwardSharedStoreTests {
    /// Two daemons on one ledger, both configured to forward to the same receiver, payments arriving at both: each
    /// outcome reaches the shop once, sent by the one daemon that leads, while the other stands by.
    @Test(.timeLimit(.minutes(1))) func onlyTheLeaderForwards() async throws {
        let url = try requirePostgresURL()
        let secret = Array("forward-shared-secret-001".utf8)
        let receiver = ShopReceiver(secret: secret, logger: testLogger)
        let hook = try await receiver.start()
        // Each daemon has its own socket and data directory, alive for the whole test.
        let directories = [TemporaryDirectory(), TemporaryDirectory()]
        var postgres = try testPostgresSettings(url: url)
        postgres.leaderRetry = .milliseconds(200)
        func configuration(_ directory: TemporaryDirectory) throws -> DaemonConfiguration {
            var configuration = try testConfiguration(directory: directory)
            configuration.storeBackend = .postgres(postgres)
            configuration.forward.receivers = [ForwardReceiver(url: hook, secrets: [secret])]
            configuration.forward.pollInterval = .milliseconds(100)
            return configuration
        }
        let first = try configuration(directories[0])
        let second = try configuration(directories[1])
        try await withRunningDaemon(first) { a in
            try await withRunningDaemon(second) { b in
                let client = HTTPClient()
                defer { shutdownLater(client) }
                let daemons = [a, b]
                for index in 0..<6 {
                    let running = daemons[index % 2]
                    let orderId = "SH\(index)"
                    _ = try await running.daemon.ledger.createOrder(.testing(orderId: orderId))
                    let body = Notifications.body(Notifications.fields(orderId: orderId))
                    let (status, text, _) = try await post(
                        client,
                        daemons[(index + 1) % 2].baseURL + "/notify",
                        body: body
                    )
                    #expect(status == 200 && text == "OK")
                }
                try await eventually("every payment arrives") {
                    Set(receiver.received.compactMap(\.orderId)) == Set((0..<6).map { "SH\($0)" })
                }
                let active = [
                    await a.daemon.forwarder.status(limit: 0).active, await b.daemon.forwarder.status(limit: 0).active,
                ]
                #expect(active.filter { $0 }.count == 1, "\(active)")
                // A second forwarder would send each outcome again within its poll interval; give it several.
                try await Task.sleep(for: .seconds(1))
                let ids = receiver.received.compactMap(\.eventId)
                #expect(ids.count == 6 && Set(ids).count == 6, "\(ids)")
            }
        }
        await receiver.stop()
    }
}
