import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerTesting

/// Gateway faults through the simulator, both as real processes: dropped, duplicated, delayed, tampered and
/// badly signed notifications; 5xx, HTML, timed-out, error-envelope and badly signed query replies; SUCCESS then
/// NOTPAY; an order never paid. The ledger converges to the simulator's truth and no paid order ever goes back.
///
/// The same faults run in-process in `EndToEndTests`; here they cross real process boundaries, the daemon reads its
/// configuration file, and the simulator is driven through its `/sim` routes.
struct GatewayFaultsScenario {
    let binaries: Binaries
    let directory: String

    /// An order, what the simulator does to it, and what the ledger must end with.
    struct Case {
        var orderId: String
        var name: String
        var payFields: String?
        var queryFault: String?
        var state: String
        var source: String?
        var firstQueryOutcome: String?
    }

    static let cases: [Case] = [
        Case(orderId: "G01", name: "notification delivered", payFields: "", state: "paid", source: "callback"),
        Case(orderId: "G02", name: "notification dropped", payFields: "&drop=1", state: "paid", source: "query"),
        Case(
            orderId: "G03",
            name: "notification sent 5 times at once",
            payFields: "&copies=5",
            state: "paid",
            source: "callback"
        ),
        Case(
            orderId: "G04",
            name: "notification delayed past the first query",
            payFields: "&delayms=6000",
            state: "paid",
            source: "query"
        ),
        Case(
            orderId: "G05",
            name: "notification amount tampered",
            payFields: "&tamper=1",
            state: "paid",
            source: "query"
        ),
        Case(
            orderId: "G06",
            name: "notification signature broken",
            payFields: "&breaksign=1",
            state: "paid",
            source: "query"
        ),
        Case(
            orderId: "G07",
            name: "query answered 502",
            payFields: "&drop=1",
            queryFault: "server-error",
            state: "paid",
            source: "query",
            firstQueryOutcome: "unreadable"
        ),
        Case(
            orderId: "G08",
            name: "query answered with HTML",
            payFields: "&drop=1",
            queryFault: "html",
            state: "paid",
            source: "query",
            firstQueryOutcome: "unreadable"
        ),
        Case(
            orderId: "G09",
            name: "query times out",
            payFields: "&drop=1",
            queryFault: "timeout",
            state: "paid",
            source: "query",
            firstQueryOutcome: "transport-error"
        ),
        Case(
            orderId: "G10",
            name: "query reply badly signed",
            payFields: "&drop=1",
            queryFault: "bad-signature",
            state: "paid",
            source: "query",
            firstQueryOutcome: "bad-signature"
        ),
        Case(
            orderId: "G11",
            name: "query answered with an error envelope",
            payFields: "&drop=1",
            queryFault: "error-envelope",
            state: "paid",
            source: "query",
            firstQueryOutcome: "gateway-error"
        ),
        Case(
            orderId: "G12",
            name: "SUCCESS, then the gateway says NOTPAY",
            payFields: "",
            state: "paid",
            source: "callback"
        ),
        Case(orderId: "G13", name: "never paid", payFields: nil, state: "expired"),
    ]

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("gateway faults")
        let simulator = try SimulatorProcess(binaries: self.binaries, directory: self.directory)
        try await simulator.start()
        defer { Task { [simulator] in await simulator.stop() } }
        let daemon = try DaemonProcess(
            binaries: self.binaries,
            directory: self.directory,
            gatewayURL: simulator.url,
            extra: [
                "poll": [
                    "firstDelayMs": 2000, "backoffBaseMs": 200, "backoffCapMs": 600, "deadlineMs": 15000,
                    "attemptTimeoutMs": 1000,
                ]
            ]
        )
        try await daemon.start()
        let http = HTTP()
        defer { Task { await http.shutdown() } }
        for gatewayCase in Self.cases {
            let created = try await daemon.call(
                OrderCreate.self,
                OrderCreate.Params(
                    orderId: gatewayCase.orderId,
                    amount: "12.50",
                    bankCode: "940",
                    productName: "fault suite"
                )
            )
            // The buyer's browser submits the signed form to the gateway.
            let fields = created.fields.map { FormField($0.name, $0.value) }
            let submitted = try await http.post(created.gatewayUrl, FormCoding.encode(fields))
            guard submitted.status == 200 else {
                report.fail("\(gatewayCase.orderId): the gateway refused the order: \(submitted)")
                continue
            }
            if let fault = gatewayCase.queryFault {
                _ = try await http.post(
                    simulator.url + "/sim/query-fault",
                    "orderid=\(gatewayCase.orderId)&fault=\(fault)&count=1"
                )
            }
            if let pay = gatewayCase.payFields {
                let paid = try await http.post(simulator.url + "/sim/pay", "orderid=\(gatewayCase.orderId)" + pay)
                if paid.status != 200 { report.fail("\(gatewayCase.orderId): the simulator did not pay: \(paid)") }
            }
        }
        // SUCCESS then NOTPAY: once G12 is paid, the gateway's queries say NOTPAY; the ledger asks at once.
        let g12Paid = try await eventuallyIgnoringErrors {
            try await daemon.order("G12").state == .paid
        }
        _ = try await http.post(simulator.url + "/sim/query-fault", "orderid=G12&fault=unpaid")
        let requery = try? await daemon.call(OrderQueryNow.self, OrderIdParams(orderId: "G12"))
        report.check(
            g12Paid && requery != nil,
            "G12: paid \(g12Paid), queryNow answered \(requery?.json ?? .null)"
        )

        for gatewayCase in Self.cases {
            let converged = try await eventuallyIgnoringErrors(seconds: 60) {
                try await daemon.order(gatewayCase.orderId).state.rawValue == gatewayCase.state
            }
            let state = try await daemon.order(gatewayCase.orderId)
            let history = try await daemon.history(gatewayCase.orderId)
            var problems: [String] = []
            if !converged { problems.append("is \(state.state.rawValue), the truth is \(gatewayCase.state)") }
            if let source = gatewayCase.source, state.payment?.source != source {
                problems.append("paid by \(state.payment?.source ?? "nothing"), expected by \(source)")
            }
            if state.payment.map({ $0.amount == "12.5000" || $0.amount == "12.50" }) == false {
                problems.append("paid amount \(state.payment?.amount ?? "")")
            }
            // No paid order ever goes back.
            var wasPaid = false
            for entry in history {
                let after = entry.stateAfter
                if wasPaid && after != "paid" { problems.append("went back from paid to \(after)") }
                if after == "paid" { wasPaid = true }
            }
            if let expected = gatewayCase.firstQueryOutcome {
                let first = history.compactMap { entry -> String? in
                    guard entry.event.type == "query.result.v1",
                        let outcome = entry.event.event["data"]?["outcome"]
                    else { return nil }
                    if outcome.string("kind") == "reply" {
                        return outcome.string("verdict") == "valid" ? "reply" : "bad-signature"
                    }
                    return outcome.string("kind")
                }.first
                if first != expected {
                    problems.append("first query recorded as \(first ?? "none"), expected \(expected)")
                }
            }
            problems += try await self.specifics(
                gatewayCase,
                state: state,
                daemon: daemon,
                simulator: simulator,
                http: http
            )
            report.check(
                problems.isEmpty,
                "\(gatewayCase.orderId) (\(gatewayCase.name)): " + problems.joined(separator: "; ")
            )
        }
        // The ledger agrees with the gateway about every order.
        let truth = try await http.get(simulator.url + "/sim/orders")
        let simOrders =
            (try? JSONParser.parse(truth.body))?["orders"]?.arrayValue ?? (try? JSONParser.parse(truth.body))?
            .arrayValue ?? []
        var disagreements: [String] = []
        for order in simOrders {
            guard let orderId = order.string("orderid") ?? order.string("orderId") else { continue }
            let paidAtGateway = order["paid"] == .bool(true)
            let ledgerState = try await daemon.order(orderId).state
            if paidAtGateway != (ledgerState == .paid) {
                disagreements.append("\(orderId): gateway paid \(paidAtGateway), ledger \(ledgerState.rawValue)")
            }
        }
        report.check(
            simOrders.count == Self.cases.count && disagreements.isEmpty,
            "the ledger disagrees with the gateway (\(simOrders.count) orders): \(disagreements)"
        )
        let verification = try await blocking { [daemon] in try AckChecker.verify(try daemon.control()) }
        report.check(verification.isEmpty, verification.joined(separator: "; "))
        await daemon.stop()
        await simulator.stop()
        report.figures = ["\(Self.cases.count) orders", "\(simOrders.count) gateway orders agree with the ledger"]
        return report
    }

    /// Checks particular to one case.
    func specifics(
        _ gatewayCase: Case,
        state: OrderView,
        daemon: DaemonProcess,
        simulator: SimulatorProcess,
        http: HTTP
    ) async throws -> [String] {
        var problems: [String] = []
        let flags = state.flags
        let callbacks = state.callbacks
        switch gatewayCase.orderId {
        case "G03":
            let done = try await eventuallyIgnoringErrors {
                try await self.callbackCount(gatewayCase.orderId, simulator: simulator, http: http) == 5
            }
            if !done { problems.append("the gateway's 5 copies were not all acknowledged") }
            if callbacks.accepted != 1 {
                problems.append("accepted \(callbacks.accepted) callbacks, exactly one may change the state")
            }
        case "G04":
            // The delayed notification arrives after the query paid the order: a duplicate, acknowledged.
            let done = try await eventuallyIgnoringErrors(seconds: 60) {
                try await self.callbackCount(gatewayCase.orderId, simulator: simulator, http: http) >= 1
            }
            if !done { problems.append("the delayed notification was never acknowledged") }
        case "G05", "G06":
            // The forged copies are in the quarantine, not the log: the audit counts them for the order.
            let audit = try await daemon.audit(gatewayCase.orderId)
            if audit.total.badSignature < 1 { problems.append("no bad-signature callback in the audit") }
            if state.callbacks.badSignature != 0 {
                problems.append("a bad-signature callback entered the log")
            }
            if !flags.isEmpty { problems.append("flags \(flags)") }
        case "G12":
            if !flags.contains("notpay-after-paid") { problems.append("no notpay-after-paid flag: \(flags)") }
        default:
            break
        }
        return problems
    }

    /// Notifications of one order the simulator saw acknowledged with `OK`.
    func callbackCount(_ orderId: String, simulator: SimulatorProcess, http: HTTP) async throws -> Int {
        let answer = try await http.get(simulator.url + "/sim/orders")
        let parsed = try JSONParser.parse(answer.body)
        let orders = parsed["orders"]?.arrayValue ?? parsed.arrayValue ?? []
        let order = orders.first { ($0.string("orderid") ?? $0.string("orderId")) == orderId }
        return order?.int("notificationsAcknowledged") ?? order?.int("notifications_acknowledged") ?? 0
    }
}
