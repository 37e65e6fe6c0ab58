import AsyncHTTPClient
import Foundation
import LedgerCore
import LedgerDaemon
import LedgerStore
import LedgerTesting
import NIOCore
import Synchronization
import Testing

/// `ledgerd run` as a real process: SIGTERM with callbacks in flight loses no acknowledged callback.
struct ShutdownTests {
    /// Creates orders in the store directly (the daemon is not running yet), as `order.create` would have.
    static func prepareOrders(_ path: String, count: Int) async throws {
        let store = try LMDBEventStore(path: path)
        let settings = GatewaySettings.testing(publicURL: "http://127.0.0.1:1")
        for index in 0..<count {
            let orderId = "S\(index)"
            let pay = try PayRequest.build(
                OrderRequest(orderId: orderId, amount: "12.50", bankCode: "940", productName: "p"),
                settings: settings,
                key: TestKeys.key,
                appliedAt: Instant(millisecondsSinceEpoch: 1_795_741_323_000)
            ).get()
            _ = try await store.append(
                AppendRequest([
                    PendingEvent(
                        recordedAt: Instant(millisecondsSinceEpoch: 1_795_741_323_000),
                        orderId: orderId,
                        payload: .orderCreated(
                            OrderCreated(request: pay, gatewayURL: settings.payURL, dialect: .document)
                        )
                    )
                ])
            )
        }
        await store.close()
    }

    /// Every notification answered OK before or during a SIGTERM is in the log afterwards, and the exit is clean.
    @Test func sigtermWithCallbacksInFlight() async throws {
        let directory = TemporaryDirectory()
        let dataDir = directory.path + "/ledger"
        let orders = 300
        try await Self.prepareOrders(dataDir, count: orders)
        try TemporaryDirectory.writeSecret(TestKeys.text, to: directory.path + "/merchant.key")
        let port = freeTCPPort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try BuiltProducts.path("ledgerd"))
        process.arguments = [
            "run", "--data-dir", dataDir, "--socket", directory.path + "/ledgerd.sock", "--http", "127.0.0.1:\(port)",
            "--key-file", directory.path + "/merchant.key", "--member-id", TestKeys.memberId,
            "--gateway-url", GatewaySettings.testing().baseURL,
            "--public-url", "http://127.0.0.1:\(port)", "--log-level", "warning",
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let client = HTTPClient(
            configuration: .init(
                connectionPool: .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 32)
            )
        )
        defer { shutdownLater(client) }
        let base = "http://127.0.0.1:\(port)"
        #expect(
            try await eventually(seconds: 30) { (try? await get(client, base + "/healthz"))?.0 != nil }
        )

        let acknowledged = Acknowledged()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<16 {
                group.addTask {
                    var index = worker
                    while index < orders {
                        let orderId = "S\(index)"
                        let body = Notifications.body(Notifications.fields(orderId: orderId))
                        guard let (_, text, _) = try? await post(client, base + "/notify", body: body) else { return }
                        if text == "OK" { acknowledged.add(orderId) }
                        index += 16
                    }
                }
            }
            // Let some callbacks land, then stop the daemon while others are in flight.
            while acknowledged.ids.count < 40 { try await Task.sleep(for: .milliseconds(5)) }
            kill(process.processIdentifier, SIGTERM)
            try await group.waitForAll()
        }
        process.waitUntilExit()
        let log = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationReason == .exit && process.terminationStatus == 0, "\(log)")

        let store = try LMDBEventStore(path: dataDir)
        let okIds = acknowledged.ids
        #expect(okIds.count >= 40)
        for orderId in okIds {
            #expect(
                try await store.order(orderId)?.status == .paid,
                "\(orderId) was acknowledged but is not in the ledger"
            )
        }
        #expect(try await store.verifyChain(progress: nil).isIntact)
        #expect(try await store.verifyProjection(differencesMax: 3, progress: nil).differenceCount == 0)
        await store.close()
    }
}

/// Order ids whose notification was answered OK, shared by the sending tasks.
final class Acknowledged: Sendable {
    private let state = Mutex<[String]>([])
    func add(_ id: String) { self.state.withLock { $0.append(id) } }
    var ids: [String] { self.state.withLock { $0 } }
}
