import Foundation
import LedgerCore

/// Two daemons on one PostgreSQL ledger, as real processes behind no load balancer but each taking traffic:
/// - exactly one polls at a time;
/// - orders created on either are seen by both, and `events.subscribe` on one sees the other's appends;
/// - the same notification sent to both at once gives one state change and an exact duplicate count, and the
///   order's history is the same from either daemon;
/// - after the polling daemon is killed with SIGKILL, the other takes over polling within a bound and the pending
///   orders (whose notifications the gateway dropped) are still queried to paid.
struct SharedLedgerScenario {
    let binaries: Binaries
    let directory: String
    let postgresURL: String
    /// Copies of each notification sent to each daemon at once.
    let copies = 3
    let leaderRetryMs = 300

    /// Runs the scenario; every process it started is stopped when it returns or throws.
    func run() async throws -> ScenarioReport {
        let simulator = try SimulatorProcess(binaries: self.binaries, directory: self.directory + "/sim")
        let daemons = Shared<[DaemonProcess]>([])
        let report: ScenarioReport
        do {
            try await simulator.start()
            report = try await self.drive(simulator, daemons)
        } catch {
            for daemon in daemons.value { await daemon.stop() }
            await simulator.stop()
            throw error
        }
        for daemon in daemons.value { await daemon.stop() }
        await simulator.stop()
        return report
    }

    private func drive(_ simulator: SimulatorProcess, _ started: Shared<[DaemonProcess]>) async throws -> ScenarioReport {
        var report = ScenarioReport("shared ledger")
        // A fresh schema per run, so runs never see each other's orders.
        let schema = "ledger_shared_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(12)
        let extra: JSONObject = [
            "store": [
                "backend": "postgres", "postgresUrl": .string(self.postgresURL), "postgresSchema": .string(String(schema)),
                "postgresLeaderRetryMs": .number(String(self.leaderRetryMs)), "postgresFollowIntervalMs": 50,
            ],
            "poll": [
                "firstDelayMs": 2500, "backoffBaseMs": 300, "backoffCapMs": 1000, "deadlineMs": 600_000,
                "attemptTimeoutMs": 2000,
            ],
        ]
        let daemons = try ["a", "b"].map {
            try DaemonProcess(binaries: self.binaries, directory: self.directory + "/" + $0, gatewayURL: simulator.url, extra: extra)
        }
        started.with { $0 = daemons }
        for daemon in daemons { try await daemon.start() }
        let http = HTTP()
        defer { Task { await http.shutdown() } }

        // Exactly one leader.
        let leaders = try await self.leaders(daemons, within: 10)
        report.check(leaders.count == 1, "\(leaders.count) daemons lead the poll at start; exactly one must")

        // Orders created on either daemon, read from the other; a subscriber on b sees a's appends.
        let subscriber = try await blocking { [b = daemons[1]] in try b.control() }
        _ = try await blocking { try subscriber.result("events.subscribe") }
        var created: [String] = []
        for index in 0..<10 {
            let id = "SH\(index)"
            _ = try await daemons[index % 2].createOrders([id])
            created.append(id)
        }
        for (index, id) in created.enumerated() {
            let other = daemons[(index + 1) % 2]
            let state = try await other.call("order.get", ["orderId": .string(id)])
            report.check(state.string("state") == "created", "\(id), created on one daemon, reads \(state) on the other")
        }
        let expected = created.count
        let seen = try await blocking { () -> Set<String> in
            var seen: Set<String> = []
            while seen.count < expected, let message = try subscriber.readMessage() {
                if message.string("method") == "events.event", let id = message["params"]?["event"]?.string("orderId") {
                    seen.insert(id)
                }
            }
            return seen
        }
        report.check(seen == Set(created), "the subscriber on b saw events for \(seen.sorted()), not every order created on both")

        // The same notification to both daemons at once, several copies each.
        let notified = created.prefix(6)
        await withTaskGroup(of: (String, HTTPAnswer).self) { group in
            for id in notified {
                let body = Notification.body(orderId: id)
                for daemon in daemons {
                    for _ in 0..<self.copies {
                        group.addTask {
                            do {
                                return (id, try await http.post(daemon.baseURL + "/notify", body))
                            } catch {
                                return (id, HTTPAnswer(status: nil, body: "no answer: \(error)"))
                            }
                        }
                    }
                }
            }
            for await (id, answer) in group {
                report.check(answer == HTTPAnswer(status: 200, body: "OK"), "\(id): a copy was answered \(answer)")
            }
        }
        let sent = self.copies * daemons.count
        for id in notified {
            let histories = try await daemons.asyncMap { try await $0.call("order.history", ["orderId": .string(id)]) }
            let entries = histories[0]["entries"]?.arrayValue ?? []
            let accepted = entries.filter { $0["effect"]?.string("classification") == "accepted" }.count
            let duplicates = entries.filter { $0["effect"]?.string("classification") == "duplicate" }.count
            report.check(
                accepted == 1 && duplicates == sent - 1,
                "\(id): \(accepted) accepted and \(duplicates) duplicates of \(sent) copies; 1 and \(sent - 1) expected"
            )
            report.check(
                JSONWriter.write(histories[0]) == JSONWriter.write(histories[1]),
                "\(id): order.history differs between the daemons"
            )
            let audit = try await daemons[1].call("callbacks.audit", ["orderId": .string(id)])
            report.check(
                audit["total"]?.int("received") == sent && audit["total"]?.int("duplicate") == sent - 1,
                "\(id): the audit counts \(audit["total"] ?? .null)"
            )
        }

        // Orders whose notifications the gateway drops, created on the leader; then the leader is killed.
        guard let leader = leaders.first else { return report }
        let standby = daemons.first { $0 !== leader }!
        let pending = (0..<5).map { "SHQ\($0)" }
        for id in pending {
            let order = try await leader.call(
                "order.create",
                ["orderId": .string(id), "amount": "12.50", "bankCode": "940", "productName": "shared ledger"]
            )
            let fields = (order["fields"]?.objectValue.map { Array($0) } ?? []).map { FormField($0.0, $0.1.stringValue ?? "") }
            let submitted = try await http.post(order.string("gatewayUrl") ?? "", FormCoding.encode(fields))
            report.check(submitted.status == 200, "\(id): the gateway refused the order: \(submitted)")
            let paid = try await http.post(simulator.url + "/sim/pay", "orderid=\(id)&drop=1")
            report.check(paid.status == 200, "\(id): the simulator did not pay: \(paid)")
        }
        await leader.kill9()
        let killed = ContinuousClock.now
        let tookOver = try await eventually(seconds: 30) {
            try await standby.call("ledger.stats")["pollLeader"] == .bool(true)
        }
        let takeover = ContinuousClock.now - killed
        report.check(tookOver, "the standby did not take over polling within 30 s of the leader's SIGKILL")
        let allPaid = try await eventually(seconds: 60) {
            for id in pending where try await standby.call("order.get", ["orderId": .string(id)]).string("state") != "paid" {
                return false
            }
            return true
        }
        var sources: [String] = []
        for id in pending {
            let state = try await standby.call("order.get", ["orderId": .string(id)])
            sources.append(state["payment"]?.string("source") ?? state.string("state") ?? "?")
        }
        report.check(allPaid && Set(sources) == ["query"], "after the takeover the pending orders are \(sources), not all paid by query")
        let head = try await standby.call("ledger.verify")
        report.check(head["intact"] == .bool(true), "the chain does not verify after the kill: \(head)")
        // The killed daemon comes back as a standby: still exactly one leader, the one that took over.
        try await leader.start()
        let after = try await self.leaders(daemons, within: 10)
        report.check(after.count == 1 && after.first === standby, "after the restart \(after.count) daemons lead; the new leader alone must")
        let history = try await leader.call("order.history", ["orderId": .string(pending[0])])
        let sameHistory = try await standby.call("order.history", ["orderId": .string(pending[0])])
        report.check(JSONWriter.write(history) == JSONWriter.write(sameHistory), "the restarted daemon reads another history")
        // Both stop cleanly (a drain, exit 0), leader last, so the standby's wait for leadership is cancelled too.
        for daemon in [leader, standby] {
            let status = await daemon.stop()
            report.check(status == 0, "a daemon exited \(status) on SIGTERM, not 0: \(daemon.logTail())")
        }
        let milliseconds = takeover.components.seconds * 1000 + takeover.components.attoseconds / 1_000_000_000_000_000
        report.figures = [
            "\(notified.count) orders x \(sent) copies on 2 daemons", "takeover after SIGKILL \(milliseconds) ms",
            "\(pending.count) orders queried by the new leader",
        ]
        return report
    }

    /// The daemons whose `ledger.stats` says they poll, once exactly one does (or `seconds` passed).
    private func leaders(_ daemons: [DaemonProcess], within seconds: Double) async throws -> [DaemonProcess] {
        var leading: [DaemonProcess] = []
        _ = try await eventually(seconds: seconds) {
            leading = []
            for daemon in daemons where try await daemon.call("ledger.stats")["pollLeader"] == .bool(true) {
                leading.append(daemon)
            }
            return leading.count == 1
        }
        return leading
    }
}

extension Array where Element: Sendable {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
