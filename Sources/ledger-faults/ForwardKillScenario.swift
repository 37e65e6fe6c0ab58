import Foundation
import GatewaySimulator
import LedgerCore
import LedgerTesting
import Logging

/// Forwarding under kill -9: the daemon forwards to a slow shop receiver while notifications are acknowledged; it is
/// killed with SIGKILL at a random moment, with deliveries in flight, and restarted, again and again. In the end every
/// acknowledged payment reached the shop at least once, every copy of an outcome carries the id of the ledger event
/// it came from, and every signature verifies.
struct ForwardKillScenario {
    let binaries: Binaries
    let directory: String
    let cycles: Int
    let seed: UInt64

    /// Orders paid per cycle.
    let ordersPerCycle = 40
    static let secret = "fault-suite-forward-secret-01"

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("forwarding under kill -9")
        var logger = Logger(label: "fault-suite-shop")
        logger.logLevel = .critical
        // Slow enough that deliveries are in flight when the daemon dies.
        let shop = ShopReceiver(secret: Array(Self.secret.utf8), logger: logger) { _ in
            .delayed(milliseconds: 80, status: 200)
        }
        let hook = try await shop.start()
        try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
        let secretFile = self.directory + "/forward.secret"
        try TemporaryDirectory.writeSecret(Self.secret + "\n", to: secretFile)
        let daemon = try DaemonProcess(
            binaries: self.binaries,
            directory: self.directory,
            extra: ["forward": ["url": .string(hook), "secretFile": .string(secretFile), "writeIntervalMs": 20]]
        )
        var random = SplitMix64(seed: self.seed)
        var acknowledged: [String] = []
        var killedWithDeliveriesMissing = 0
        try await daemon.start()
        for cycle in 1...self.cycles {
            let ids = (0..<self.ordersPerCycle).map { "F\(cycle)x\($0)" }
            _ = try await daemon.createOrders(ids)
            let http = HTTP(connections: 8)
            let acks = Shared<[String]>([])
            await withTaskGroup(of: Void.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        for orderId in stride(from: worker, to: ids.count, by: 8).map({ ids[$0] }) {
                            let answer = try? await http.post(
                                daemon.baseURL + "/notify",
                                Notification.body(orderId: orderId)
                            )
                            if answer?.status == 200 && answer?.body == "OK" { acks.with { $0.append(orderId) } }
                        }
                    }
                }
            }
            acknowledged += acks.value
            await http.shutdown()
            // Killed a random moment into the deliveries.
            try await Task.sleep(for: .milliseconds(Int(random.next() % 150)))
            let arrived = Set(shop.received.compactMap(\.orderId))
            if !Set(acknowledged).isSubset(of: arrived) { killedWithDeliveriesMissing += 1 }
            await daemon.kill9()
            try await daemon.start()
            say(
                "forward: cycle \(cycle)/\(self.cycles): killed with \(arrived.count) of \(acknowledged.count) "
                    + "paid orders forwarded"
            )
        }
        // Every acknowledged payment arrives, at the latest from the last start.
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline
            && !Set(acknowledged).isSubset(of: Set(shop.received.filter { $0.status == 200 }.compactMap(\.orderId)))
        {
            try await Task.sleep(for: .milliseconds(50))
        }
        let received = shop.received
        let byOrder = Dictionary(grouping: received) { $0.orderId ?? "" }
        let missing = acknowledged.filter { byOrder[$0] == nil }
        report.check(missing.isEmpty, "acknowledged payments never forwarded: \(missing.prefix(10))")
        var mismatched: [String] = []
        let connection = try daemon.control(timeoutSeconds: 120)
        for orderId in acknowledged where byOrder[orderId] != nil {
            let order = try connection.result("order.get", ["orderId": .string(orderId)])
            let sequence = order["payment"]?["sequence"]?.numberText ?? "?"
            let ids = Set(byOrder[orderId]!.compactMap(\.eventId))
            if ids != ["\(sequence)-order.paid"] { mismatched.append("\(orderId): \(ids.sorted())") }
        }
        report.check(
            mismatched.isEmpty,
            "copies with another event id than their ledger event's: \(mismatched.prefix(10))"
        )
        report.check(received.allSatisfy(\.verified), "a forwarded request's signature did not verify")
        report.check(
            killedWithDeliveriesMissing > 0,
            "no kill came while deliveries were outstanding; the scenario proved nothing"
        )
        await daemon.stop()
        await shop.stop()
        report.figures = [
            "\(self.cycles) SIGKILLs", "\(acknowledged.count) payments", "\(received.count) deliveries",
            "\(received.count - Set(received.compactMap(\.eventId)).count) duplicates, same ids", "seed \(self.seed)",
        ]
        return report
    }
}
