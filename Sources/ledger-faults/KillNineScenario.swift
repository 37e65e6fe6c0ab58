import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerTesting

/// kill -9 under load: concurrent senders post valid, distinct, signed notifications for created orders and record
/// every `OK`; the daemon is killed with SIGKILL at a random moment and restarted; after every restart every
/// acknowledged callback is in the log, none was applied twice, the projection equals a rebuild and the chain
/// verifies. Notifications not answered `OK` are sent again in the next cycle, as the gateway retries.
struct KillNineScenario {
    let binaries: Binaries
    let directory: String
    let cycles: Int
    let workers: Int
    let maxRunMilliseconds: Int
    let seed: UInt64

    /// Orders waiting for their notification at the start of each cycle; each cycle creates what is missing, and
    /// orders not acknowledged before the kill wait for the next cycle.
    let ordersWaiting = 300

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("kill -9 under load")
        let daemon = try DaemonProcess(binaries: self.binaries, directory: self.directory)
        let ackFile = try AckFile(path: self.directory + "/acknowledged.txt")
        let checker = AckChecker()
        var random = SplitMix64(seed: self.seed)
        // Orders created and not yet acknowledged, and every order's send count.
        var pending: [String] = []
        var sends: [String: Int] = [:]
        var acknowledged = 0
        var kills = 0
        var nextOrder = 0
        try await daemon.start()
        for cycle in 1...self.cycles {
            var ids: [String] = []
            for _ in 0..<max(0, self.ordersWaiting - pending.count) {
                ids.append("K\(nextOrder)")
                nextOrder += 1
            }
            pending += try await daemon.createOrders(ids)
            let http = HTTP(connections: self.workers)
            let queue = Shared(pending)
            let cycleAcks = Shared<[Acknowledgement]>([])
            let cycleSends = Shared<[String: Int]>([:])
            let wrongAnswers = Shared<[String]>([])
            let stopped = Shared(false)
            let url = daemon.baseURL + "/notify"
            let runFor = 20 + Int(random.next() % UInt64(max(1, self.maxRunMilliseconds - 19)))
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<self.workers {
                    group.addTask {
                        while !stopped.value {
                            guard let orderId = queue.with({ $0.isEmpty ? nil : $0.removeFirst() }) else { return }
                            cycleSends.with { $0[orderId, default: 0] += 1 }
                            do {
                                let answer = try await http.post(url, Notification.body(orderId: orderId))
                                if answer.status == 200 && answer.body == "OK" {
                                    let ack = Acknowledgement(orderId: orderId, transactionId: "T" + orderId)
                                    // Recorded only after the answer arrived: exactly what the gateway would know.
                                    ackFile.record(ack)
                                    cycleAcks.with { $0.append(ack) }
                                    continue
                                }
                                // A valid notification for a created order may only be refused as unavailable.
                                if answer.status != 503 {
                                    wrongAnswers.with { $0.append("\(orderId): \(answer.status ?? 0) \(answer.body)") }
                                }
                            } catch {
                                // The connection died with the daemon: not acknowledged, sent again next cycle.
                            }
                            queue.with { $0.append(orderId) }
                        }
                    }
                }
                try? await Task.sleep(for: .milliseconds(runFor))
                await daemon.kill9()
                stopped.with { $0 = true }
                // Requests still in flight are abandoned, as a gateway's would be: the client would otherwise keep
                // retrying its connection until the connect timeout.
                group.cancelAll()
                await group.waitForAll()
            }
            await http.shutdown()
            if daemon.isRunning { await daemon.kill9() }
            kills += 1
            let acks = cycleAcks.value
            acknowledged += acks.count
            let acked = Set(acks.map(\.orderId))
            pending = queue.value.filter { !acked.contains($0) }
            for (orderId, count) in cycleSends.value { sends[orderId, default: 0] += count }
            let touched = Dictionary(uniqueKeysWithValues: cycleSends.value.keys.map { ($0, sends[$0]!) })
            for wrong in wrongAnswers.value { report.fail("cycle \(cycle): a valid notification got \(wrong)") }

            try await daemon.start()
            let failures = try await blocking { [daemon] in
                try checker.check(try daemon.control(timeoutSeconds: 300), acks: acks, touched: touched)
            }
            report.check(failures.isEmpty, "cycle \(cycle): " + failures.prefix(10).joined(separator: "; "))
            say(
                "kill-9: cycle \(cycle)/\(self.cycles): killed after \(runFor) ms, \(acks.count) acknowledged this cycle (\(acknowledged) in all), "
                    + (failures.isEmpty
                        ? "all in the log, none applied twice, projection equals rebuild, chain intact"
                        : "\(failures.count) violations")
            )
        }
        // The end: every acknowledgement of every cycle, once more against the projection that a rebuild matched.
        let all = try AckFile.read(self.directory + "/acknowledged.txt")
        let final = try await blocking { [daemon] in
            try AckChecker().check(try daemon.control(timeoutSeconds: 600), acks: all, touched: [:])
        }
        report.check(final.isEmpty, "final check: " + final.prefix(10).joined(separator: "; "))
        report.check(
            all.count == acknowledged,
            "the acknowledgement file holds \(all.count) lines, the senders counted \(acknowledged)"
        )
        await daemon.stop()
        report.figures = [
            "\(kills) SIGKILLs", "\(acknowledged) acknowledged callbacks checked", "\(checker.eventsRead) events read",
            "\(self.workers) senders", "seed \(self.seed)",
        ]
        return report
    }
}
