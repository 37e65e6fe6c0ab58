import AsyncHTTPClient
import Foundation
import GatewaySimulator
import LedgerCore
import LedgerStore
import LedgerTesting
import Testing

/// `ledgerd run` as a real process forwarding to a real receiver, killed with SIGKILL mid-delivery and restarted.
struct ForwardCrashTests {
    static let secret = "forward-crash-secret-0001"

    /// A `ledgerd run` on the prepared ledger in `directory`, with the daemon tests' merchant and no polling,
    /// forwarding to `url`.
    static func daemon(directory: TemporaryDirectory, url: String) throws -> LedgerdProcess {
        let daemon = try LedgerdProcess(
            executable: try BuiltProducts.path("ledgerd"),
            directory: directory.path,
            extra: [
                "gateway": [
                    "url": "http://127.0.0.1:9", "memberId": .string(TestKeys.memberId),
                    "keyFile": .string(directory.path + "/daemon-merchant.key"),
                ]
            ]
        )
        try TemporaryDirectory.writeSecret(TestKeys.text, to: directory.path + "/daemon-merchant.key")
        daemon.arguments += ["--no-poll"]
        daemon.environment = [
            "LEDGERD_FORWARD_URL": url, "LEDGERD_FORWARD_SECRET_FILE": directory.path + "/forward.secret",
        ]
        return daemon
    }

    /// Every acknowledged payment reaches the shop at least once across a kill -9 mid-delivery and a restart, and
    /// every copy of an outcome carries the same event id, the one its ledger event gives it.
    @Test func killedMidDelivery() async throws {
        let directory = TemporaryDirectory()
        let orders = 60
        try await ShutdownTests.prepareOrders(directory.path + "/ledger", count: orders)
        _ = try TemporaryDirectory.writeSecret(Self.secret + "\n", to: directory.path + "/forward.secret")
        // A receiver slow enough that deliveries are in flight when the daemon dies.
        let receiver = ShopReceiver(secret: Array(Self.secret.utf8), logger: testLogger) { _ in
            .delayed(milliseconds: 40, status: 200)
        }
        let url = try await receiver.start()
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { shutdownLater(client) }
        let daemon = try Self.daemon(directory: directory, url: url)
        try await daemon.start()
        let port = daemon.port
        let acknowledged = Acknowledged()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for index in stride(from: worker, to: orders, by: 8) {
                        let orderId = "S\(index)"
                        let body = Notifications.body(Notifications.fields(orderId: orderId))
                        let answer = try? await post(client, "http://127.0.0.1:\(port)/notify", body: body)
                        if answer?.1 == "OK" { acknowledged.add(orderId) }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(acknowledged.ids.count == orders)
        try await eventually("some outcomes arrive before the kill") { receiver.received.count >= 8 }
        await daemon.kill9()
        let beforeRestart = receiver.received.count
        #expect(beforeRestart < orders, "the kill came after every delivery; the test proves nothing")

        try await daemon.start()
        try await eventually("every acknowledged payment arrives") {
            let arrived = Set(receiver.received.filter { $0.status == 200 }.compactMap(\.orderId))
            return Set(acknowledged.ids).isSubset(of: arrived)
        }
        await daemon.kill9()

        let store = try LMDBEventStore(path: directory.path + "/ledger")
        let received = receiver.received
        #expect(received.allSatisfy { $0.verified })
        for orderId in acknowledged.ids {
            let sequence = try #require(try await store.order(orderId)?.payment?.sequence)
            let copies = received.filter { $0.orderId == orderId }
            #expect(!copies.isEmpty, "\(orderId) was paid but never forwarded")
            #expect(Set(copies.compactMap(\.eventId)) == ["\(sequence)-order.paid"], "\(orderId)'s copies differ")
        }
        await store.close()
        await receiver.stop()
    }

    /// The fault suite's forwarding scenario: repeated SIGKILLs with deliveries outstanding, every payment forwarded,
    /// every copy with its ledger event's id.
    @Test func faultSuiteScenarioPasses() throws {
        let run = try ChildProcess.run(
            try BuiltProducts.path("ledger-faults"),
            ["run", "--seed", "2026", "--only", "forward"]
        )
        let output = run.output
        #expect(run.status == 0, "\(output)")
        #expect(output.contains("forwarding under kill -9") && output.contains("cases passed"), "\(output)")
    }
}
