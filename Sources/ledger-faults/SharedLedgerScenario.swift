import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerTesting

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
    let leaderRetryMs = 500

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

    private func drive(_ simulator: SimulatorProcess, _ started: Shared<[DaemonProcess]>) async throws -> ScenarioReport
    {
        var report = ScenarioReport("shared ledger")
        // A fresh schema per run, so runs never see each other's orders.
        let schema =
            "ledger_shared_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(12)
        let extra: JSONObject = [
            "store": [
                "backend": "postgres", "postgresUrl": .string(self.postgresURL),
                "postgresSchema": .string(String(schema)),
                "postgresLeaderRetryMs": .number(String(self.leaderRetryMs)), "postgresFollowIntervalMs": 50,
                // Generous: the test suite runs this beside everything else on two cores.
                "postgresConnectTimeoutMs": 30000,
            ],
            "poll": [
                "firstDelayMs": 2500, "backoffBaseMs": 300, "backoffCapMs": 1000, "deadlineMs": 600_000,
                "attemptTimeoutMs": 2000,
            ],
        ]
        let daemons = try ["a", "b"].map {
            try DaemonProcess(
                binaries: self.binaries,
                directory: self.directory + "/" + $0,
                gatewayURL: simulator.url,
                extra: extra
            )
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
        _ = try await blocking { try subscriber.result(EventsSubscribe.self, EventsSubscribe.Params()) }
        var created: [String] = []
        for index in 0..<10 {
            let id = "SH\(index)"
            _ = try await daemons[index % 2].createOrders([id])
            created.append(id)
        }
        for (index, id) in created.enumerated() {
            let other = daemons[(index + 1) % 2]
            let state = try await other.order(id)
            report.check(state.state == .created, "\(id), created on one daemon, reads \(state.json) on the other")
        }
        let expected = created.count
        let (seen, sequences) = try await blocking { () -> (Set<String>, [Int]) in
            var seen: Set<String> = []
            var sequences: [Int] = []
            while seen.count < expected, let message = try subscriber.readMessage() {
                if let method = message.string("method"),
                    case .event(_, let event)? = try? ControlNotification(
                        method: method,
                        params: message["params"] ?? .null
                    )
                {
                    seen.insert(event.orderId)
                    sequences.append(Int(event.sequence))
                }
            }
            return (seen, sequences)
        }
        report.check(
            seen == Set(created),
            "the subscriber on b saw events for \(seen.sorted()), not every order created on both"
        )
        report.check(
            !sequences.isEmpty && sequences == Array(sequences[0]..<(sequences[0] + sequences.count)),
            "the subscriber on b got sequences \(sequences), not one gap-free run in order"
        )

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
            let histories = try await daemons.asyncMap { try await $0.history(id) }
            let entries = histories[0]
            let accepted = entries.filter { $0.effect.classification == "accepted" }.count
            let duplicates = entries.filter { $0.effect.classification == "duplicate" }.count
            report.check(
                accepted == 1 && duplicates == sent - 1,
                "\(id): \(accepted) accepted and \(duplicates) duplicates of \(sent) copies; 1 and \(sent - 1) expected"
            )
            report.check(
                histories[0] == histories[1],
                "\(id): order.history differs between the daemons"
            )
            let total = try await daemons[1].audit(id).total
            report.check(
                total.received == sent && total.duplicate == sent - 1,
                "\(id): the audit counts \(total.json)"
            )
        }

        guard let leader = leaders.first else { return report }
        let standby = daemons.first { $0 !== leader }!
        /// Creates an order on `daemon`, submits it to the gateway and has the gateway take the payment but drop
        /// the notification: only a query can find it paid.
        func createPaidSilently(_ id: String, on daemon: DaemonProcess) async throws {
            let order = try await daemon.call(
                OrderCreate.self,
                OrderCreate.Params(orderId: id, amount: "12.50", bankCode: "940", productName: "shared ledger")
            )
            let fields = order.fields.map { FormField($0.name, $0.value) }
            let submitted = try await http.post(order.gatewayUrl, FormCoding.encode(fields))
            report.check(submitted.status == 200, "\(id): the gateway refused the order: \(submitted)")
            let paid = try await http.post(simulator.url + "/sim/pay", "orderid=\(id)&drop=1")
            report.check(paid.status == 200, "\(id): the simulator did not pay: \(paid)")
        }
        /// The order's state, and the sequence of the query result that paid it.
        func paidByQuery(_ id: String, on daemon: DaemonProcess) async throws -> Int? {
            let state = try await daemon.order(id)
            guard state.state == .paid, let payment = state.payment, payment.source == "query" else { return nil }
            return Int(payment.sequence)
        }

        // Orders created on the standby with their notifications dropped: the leader hears of them through the log
        // and queries them to paid.
        let elsewhere = (0..<3).map { "SHF\($0)" }
        for id in elsewhere { try await createPaidSilently(id, on: standby) }
        let leaderQueried = try await eventuallyIgnoringErrors(seconds: 60) {
            for id in elsewhere where try await paidByQuery(id, on: standby) == nil { return false }
            return true
        }
        report.check(leaderQueried, "orders created on the standby were not queried to paid by the leader")

        // Orders whose notifications the gateway drops, created on the leader; then the leader is killed.
        let pending = (0..<5).map { "SHQ\($0)" }
        for id in pending { try await createPaidSilently(id, on: leader) }
        await leader.kill9()
        let killed = ContinuousClock.now
        let headAtKill = Int(try await standby.call(LedgerStats.self).head.sequence)
        let tookOver = try await eventuallyIgnoringErrors(seconds: 30) {
            try await standby.call(LedgerStats.self).pollLeader
        }
        let takeover = ContinuousClock.now - killed
        report.check(tookOver, "the standby did not take over polling within 30 s of the leader's SIGKILL")
        let allPaid = try await eventuallyIgnoringErrors(seconds: 60) {
            for id in pending where try await paidByQuery(id, on: standby) == nil { return false }
            return true
        }
        var paidAt: [Int] = []
        for id in pending { paidAt.append(try await paidByQuery(id, on: standby) ?? 0) }
        // Paid by query results appended after the kill: the new leader's queries, not the old one's.
        report.check(
            allPaid && paidAt.allSatisfy { $0 > headAtKill },
            "after the takeover the pending orders are paid by query results at \(paidAt), not all after the head at the kill (\(headAtKill))"
        )
        let chain = try await standby.call(LedgerVerify.self)
        report.check(chain.intact, "the chain does not verify after the kill: \(chain.json)")
        // The killed daemon comes back as a standby: still exactly one leader, the one that took over.
        try await leader.start()
        let after = try await self.leaders(daemons, within: 10)
        report.check(after.count == 1, "after the restart \(after.count) daemons lead; exactly one must")
        report.check(!self.sawTwoLeaders.value, "two daemons led the poll at the same moment")
        let history = try await leader.history(pending[0])
        let sameHistory = try await standby.history(pending[0])
        report.check(history == sameHistory, "the restarted daemon reads another history")
        // Both stop cleanly (a drain, exit 0), leader last, so the standby's wait for leadership is cancelled too.
        for daemon in [leader, standby] {
            let status = await daemon.stop()
            report.check(status == 0, "a daemon exited \(status) on SIGTERM, not 0: \(daemon.logTail())")
        }
        let milliseconds = takeover.components.seconds * 1000 + takeover.components.attoseconds / 1_000_000_000_000_000
        report.figures = [
            "\(notified.count) orders x \(sent) copies on 2 daemons", "takeover after SIGKILL \(milliseconds) ms",
            "\(elsewhere.count) orders created on the standby queried by the leader",
            "\(pending.count) orders queried by the new leader",
        ]
        return report
    }

    /// Whether two daemons ever said they lead at once, in any look by `leaders`.
    private let sawTwoLeaders = Shared(false)

    /// The daemons whose `ledger.stats` says they poll, once exactly one does (or `seconds` passed).
    private func leaders(_ daemons: [DaemonProcess], within seconds: Double) async throws -> [DaemonProcess] {
        var leading: [DaemonProcess] = []
        _ = try await eventuallyIgnoringErrors(seconds: seconds) {
            leading = []
            for daemon in daemons where daemon.isRunning {
                if try await daemon.call(LedgerStats.self).pollLeader { leading.append(daemon) }
            }
            if leading.count > 1 { self.sawTwoLeaders.with { $0 = true } }
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
