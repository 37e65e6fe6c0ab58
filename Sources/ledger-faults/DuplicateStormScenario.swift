import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerTesting

/// The duplicate storm: N concurrent copies of one valid notification. Exactly one changes the order's state,
/// N-1 are duplicates in the audit, and every copy is answered `OK` (each copy is durably recorded).
struct DuplicateStormScenario {
    let binaries: Binaries
    let directory: String
    let copies: Int

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("duplicate storm")
        // The default idle timeout: with a thousand connections opened at once on two cores, a connection may wait
        // longer than the suite's short one-second timeout before its request is read.
        let daemon = try DaemonProcess(
            binaries: self.binaries,
            directory: self.directory,
            // The copies come from one address here, as they would not from a real gateway; 512 at once need
            // their own per-address bound.
            extra: ["limits": ["http": ["idleTimeoutMs": 10000, "connectionsPerAddressMax": 1024]]]
        )
        try await daemon.start()
        defer { Task { [daemon] in await daemon.stop() } }
        _ = try await daemon.createOrders(["STORM1"])
        // One connection per copy, up to 512 at once: the copies really are concurrent at the daemon.
        let http = HTTP(connections: min(self.copies, 512), connectTimeout: .seconds(120))
        let body = Notification.body(orderId: "STORM1")
        let url = daemon.baseURL + "/notify"
        let answers = await withTaskGroup(of: HTTPAnswer.self) { group in
            for _ in 0..<self.copies {
                group.addTask {
                    do {
                        return try await http.post(url, body)
                    } catch {
                        return HTTPAnswer(status: nil, body: "no answer: \(error)")
                    }
                }
            }
            return await group.reduce(into: [HTTPAnswer]()) { $0.append($1) }
        }
        await http.shutdown()
        let okCount = answers.filter { $0 == HTTPAnswer(status: 200, body: "OK") }.count
        report.check(
            okCount == self.copies,
            "\(self.copies - okCount) copies were not answered OK: \(Array(Set(answers.map { "\($0.status ?? 0) \($0.body)" })).prefix(5))"
        )
        let connection = try await blocking { [daemon] in try daemon.control() }
        let (state, entries, audit) = try await blocking {
            (
                try connection.result(OrderGet.self, OrderIdParams(orderId: "STORM1")),
                try connection.history("STORM1"),
                try connection.result(CallbacksAudit.self, CallbacksAudit.Params(orderId: "STORM1"))
            )
        }
        let accepted = entries.filter { $0.effect.classification == "accepted" }.count
        let duplicates = entries.filter { $0.effect.classification == "duplicate" }.count
        // A state change is an entry whose state after differs from the state before it.
        var changes = 0
        var previous = "unknown"
        for entry in entries {
            let after = entry.stateAfter
            if after != previous && entry.effect.kind == "callback" { changes += 1 }
            previous = after
        }
        report.check(state.state == .paid, "the order is \(state.state.rawValue), not paid")
        report.check(
            accepted == 1 && changes == 1,
            "\(accepted) callbacks accepted and \(changes) state changes; exactly one of each"
        )
        report.check(
            duplicates == self.copies - 1,
            "\(duplicates) duplicates in the history, \(self.copies - 1) expected"
        )
        let total = audit.total
        report.check(
            total.received == self.copies && total.accepted == 1 && total.duplicate == self.copies - 1,
            "the audit counts \(total.json)"
        )
        let failures = try await blocking { try AckChecker.verify(connection) }
        report.check(failures.isEmpty, failures.joined(separator: "; "))
        report.figures = ["\(self.copies) copies", "\(okCount) OK", "1 accepted", "\(duplicates) duplicates"]
        await daemon.stop()
        return report
    }
}
