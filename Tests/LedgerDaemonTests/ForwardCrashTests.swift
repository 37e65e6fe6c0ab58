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

    /// Starts `ledgerd run` forwarding to `url`, and waits until it answers.
    static func startDaemon(directory: TemporaryDirectory, port: Int, url: String, client: HTTPClient) async throws
        -> Process
    {
        let process = Process()
        process.executableURL = try DemoTests.executable("ledgerd")
        process.arguments = [
            "run", "--data-dir", directory.path + "/ledger", "--socket", directory.path + "/ledgerd.sock",
            "--http", "127.0.0.1:\(port)", "--key-file", directory.path + "/merchant.key",
            "--member-id", TestKeys.memberId, "--public-url", "http://127.0.0.1:\(port)", "--log-level", "warning",
            "--no-poll",
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["LEDGERD_FORWARD_URL"] = url
        environment["LEDGERD_FORWARD_SECRET_FILE"] = directory.path + "/forward.secret"
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let base = "http://127.0.0.1:\(port)"
        guard try await EndToEndTests.eventually(seconds: 30, { (try? await get(client, base + "/healthz"))?.0 != nil })
        else {
            kill(process.processIdentifier, SIGKILL)
            throw TestFailure("ledgerd did not start")
        }
        return process
    }

    /// Every acknowledged payment reaches the shop at least once across a kill -9 mid-delivery and a restart, and
    /// every copy of an outcome carries the same event id, the one its ledger event gives it.
    @Test func killedMidDelivery() async throws {
        let directory = TemporaryDirectory()
        let orders = 60
        try await ShutdownTests.prepareOrders(directory.path + "/ledger", count: orders)
        _ = try TemporaryDirectory.writeSecret(TestKeys.text, to: directory.path + "/merchant.key")
        _ = try TemporaryDirectory.writeSecret(Self.secret + "\n", to: directory.path + "/forward.secret")
        // A receiver slow enough that deliveries are in flight when the daemon dies.
        let receiver = ShopReceiver(secret: Array(Self.secret.utf8), logger: testLogger) { _ in
            .delayed(milliseconds: 40, status: 200)
        }
        let url = try await receiver.start()
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { shutdownLater(client) }
        let port = try freeTCPPort()
        let first = try await Self.startDaemon(directory: directory, port: port, url: url, client: client)
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
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let beforeRestart = receiver.received.count
        #expect(beforeRestart < orders, "the kill came after every delivery; the test proves nothing")

        let second = try await Self.startDaemon(directory: directory, port: port, url: url, client: client)
        defer { kill(second.processIdentifier, SIGKILL) }
        try await eventually("every acknowledged payment arrives") {
            let arrived = Set(receiver.received.filter { $0.status == 200 }.compactMap(\.orderId))
            return Set(acknowledged.ids).isSubset(of: arrived)
        }
        kill(second.processIdentifier, SIGKILL)
        second.waitUntilExit()

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
        let (status, output) = try FaultSuiteTests.run(["run", "--seed", "2026", "--only", "forward"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("forwarding under kill -9") && output.contains("cases passed"), "\(output)")
    }
}
