import Foundation
import LedgerCore

#if canImport(Glibc)
    import Glibc
#endif

/// Runs the corpus against a real daemon: each case gets its specified answer, appends exactly the events it
/// should, leaves the ledger in the state it should, and the daemon keeps serving after it. At the end the daemon is
/// killed with SIGKILL and restarted, and every acknowledged case is still in the ledger.
struct BadInputScenario {
    let binaries: Binaries
    let directory: String

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("bad input corpus")
        let daemon = try DaemonProcess(binaries: self.binaries, directory: self.directory)
        try await daemon.start()
        _ = try await daemon.createOrders((1...40).map { String(format: "C%02d", $0) })
        var finalStates: [String: Aftermath] = [:]
        var acknowledged = 0
        for corpusCase in BadInputCorpus.cases {
            let before = try await Self.head(daemon)
            let observed = try await blocking { [daemon] in Self.observe(corpusCase.probe, daemon: daemon) }
            var problems: [String] = []
            if observed != corpusCase.expected {
                problems.append("answered \(observed), specified \(corpusCase.expected)")
            }
            if case .http(let status, let body) = observed, !(status == 200 && body == "OK"),
                GatewayAcknowledgement.readsAsAcknowledgement(body)
            {
                problems.append("the refusal body \"\(body)\" contains \"ok\"")
            }
            if case .http(200, "OK") = observed { acknowledged += 1 }
            // The daemon keeps serving: it is alive, answers HTTP and the control socket.
            guard daemon.isRunning else {
                report.check(false, "\(corpusCase.name): the daemon died: \(daemon.logTail())")
                return report
            }
            let after = try await Self.head(daemon)
            let health = try? await blocking { [port = daemon.port] in
                try RawHTTP.exchange(
                    port: port,
                    Array("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)
                )
            }
            if health?.status == nil { problems.append("GET /healthz got no answer afterwards") }
            if let appends = corpusCase.appends, after - before != appends {
                problems.append("appended \(after - before) events, specified \(appends)")
            }
            if let aftermath = corpusCase.after {
                problems += try await Self.check(aftermath, daemon: daemon)
                finalStates[aftermath.orderId] = aftermath
            }
            report.check(problems.isEmpty, "\(corpusCase.name): " + problems.joined(separator: "; "))
        }
        // Nothing acknowledged is lost: kill -9, restart, and every order is as the corpus left it.
        await daemon.kill9()
        try await daemon.start()
        var lost: [String] = []
        for aftermath in finalStates.values.sorted(by: { $0.orderId < $1.orderId }) {
            lost += try await Self.check(aftermath, daemon: daemon)
        }
        let verification = try await blocking { [daemon] in try AckChecker.verify(try daemon.control()) }
        report.check(
            lost.isEmpty && verification.isEmpty,
            "after kill -9 and restart: " + (lost + verification).joined(separator: "; ")
        )
        // And it still takes a valid notification.
        let http = HTTP()
        let last = try await http.post(daemon.baseURL + "/notify", Notification.body(orderId: "C40"))
        await http.shutdown()
        report.check(last == HTTPAnswer(status: 200, body: "OK"), "a valid notification after the corpus got \(last)")
        await daemon.stop()
        let notify = BadInputCorpus.notifyCases.count
        report.figures = [
            "\(notify) /notify inputs", "\(BadInputCorpus.controlCases.count) control inputs",
            "\(acknowledged) acknowledged, all kept across kill -9",
        ]
        return report
    }

    static func head(_ daemon: DaemonProcess) async throws -> Int {
        try await daemon.call("ledger.stats")["head"]?.int("sequence") ?? -1
    }

    static func check(_ aftermath: Aftermath, daemon: DaemonProcess) async throws -> [String] {
        let state = try await daemon.call("order.get", ["orderId": .string(aftermath.orderId)])
        var problems: [String] = []
        if state.string("state") != aftermath.state {
            problems.append(
                "order \(aftermath.orderId) is \(state.string("state") ?? "?"), specified \(aftermath.state)"
            )
        }
        if let flag = aftermath.flag, !(state["flags"]?.arrayValue ?? []).contains(.string(flag)) {
            problems.append("order \(aftermath.orderId) lacks the flag \(flag): \(state["flags"] ?? .null)")
        }
        if let received = aftermath.callbacksReceived, state["callbacks"]?.int("received") != received {
            problems.append(
                "order \(aftermath.orderId) received \(state["callbacks"]?.int("received") ?? -1) callbacks, specified \(received)"
            )
        }
        return problems
    }

    /// Sends a probe and describes the answer in the terms of `Expected`.
    static func observe(_ probe: Probe, daemon: DaemonProcess) -> Expected {
        do {
            switch probe {
            case .notify(let body):
                return Self.answer(try RawHTTP.exchange(port: daemon.port, RawHTTP.notify(body)))
            case .notifyWithHeaders(let body, let headers):
                return Self.answer(try RawHTTP.exchange(port: daemon.port, RawHTTP.notify(body, headers: headers)))
            case .http(let request):
                return Self.answer(try RawHTTP.exchange(port: daemon.port, request))
            case .slowHeaders:
                return try Self.slowHeaders(port: daemon.port)
            case .stalledBody:
                let fd = try RawHTTP.connect(port: daemon.port, timeoutSeconds: 30)
                defer { close(fd) }
                let body = BadInputCorpus.body("C17")
                _ = RawHTTP.send(
                    fd,
                    Array("POST /notify HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n".utf8)
                        + body.prefix(body.count / 2)
                )
                return Self.answer(RawHTTP.readResponse(fd))
            case .manyConnections(let count, let orderId):
                var idle: [Int32] = []
                defer { for fd in idle { close(fd) } }
                for _ in 0..<count { idle.append(try RawHTTP.connect(port: daemon.port, timeoutSeconds: 30)) }
                return Self.answer(
                    try RawHTTP.exchange(port: daemon.port, RawHTTP.notify(BadInputCorpus.body(orderId)))
                )
            case .control(let bytes):
                let connection = try ControlConnection(daemon.socketPath, timeoutSeconds: 15)
                connection.send(bytes)
                return try Self.rpcAnswer(connection)
            case .controlHalfClose(let bytes):
                let connection = try ControlConnection(daemon.socketPath, timeoutSeconds: 15)
                connection.send(bytes)
                shutdown(connection.fd, Int32(SHUT_WR))
                return try Self.rpcAnswer(connection)
            case .controlConnectionFlood:
                let limit = daemon.configuration["control"]?.int("connectionsMax") ?? 16
                // Connections of earlier cases count until the daemon sees them close: wait until the first of ours
                // is the only one open. Each held connection is used once, so it is surely accepted and counted
                // before the next is opened (accepts run on several event loops).
                let first = try ControlConnection(daemon.socketPath, timeoutSeconds: 15)
                for _ in 0..<200 where try first.result("ledger.stats").int("connections") != 1 { usleep(20_000) }
                var held = [first]
                for _ in 1..<limit {
                    let connection = try ControlConnection(daemon.socketPath, timeoutSeconds: 15)
                    _ = try connection.result("ledger.stats")
                    held.append(connection)
                }
                let extra = try ControlConnection(daemon.socketPath, timeoutSeconds: 15)
                let answer = try Self.rpcAnswer(extra)
                held.removeAll()
                // The slots free up as the daemon notices the closes; wait for a connection to be served again.
                for _ in 0..<100 {
                    if (try? ControlConnection(daemon.socketPath, timeoutSeconds: 5).result("ledger.stats")) != nil {
                        break
                    }
                    usleep(50_000)
                }
                return answer
            }
        } catch {
            return .http(-1, "probe failed: \(error)")
        }
    }

    static func answer(_ answer: HTTPAnswer) -> Expected {
        guard let status = answer.status else {
            return answer.body.isEmpty ? .closedWithoutAnswer : .http(-1, "unparsed: " + answer.body)
        }
        return .http(status, answer.body)
    }

    static func answer(_ read: (HTTPAnswer, closed: Bool)) -> Expected {
        guard read.0.status != nil || read.closed else { return .http(-1, "no answer and still open") }
        return Self.answer(read.0)
    }

    /// The first answer on a control connection: an error (and whether the connection was then closed) or a result
    /// for id 1. Anything answered for a request without an id is a violation.
    static func rpcAnswer(_ connection: ControlConnection) throws -> Expected {
        guard let message = try connection.readMessage() else { return .closedWithoutAnswer }
        if let error = message["error"] {
            let code = error.int("code") ?? 0
            if code == -32010 || code == -32011 {
                return connection.closedByPeer() ? .rpcErrorThenClose(code) : .rpcError(code)
            }
            return .rpcError(code)
        }
        if message["result"] != nil, message["id"] == .number("1") { return .rpcResult }
        return .http(-1, "unexpected control message \(message)")
    }

    /// Sends a request line and one header, then one more header line every 200 ms without ever ending the head.
    /// The daemon must close the connection (limits.http.idleTimeoutMs) without answering.
    static func slowHeaders(port: Int) throws -> Expected {
        let fd = try RawHTTP.connect(port: port, timeoutSeconds: 1)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = RawHTTP.send(fd, Array("POST /notify HTTP/1.1\r\nHost: x\r\n".utf8))
        for index in 0..<150 {
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 || (count < 0 && errno == ECONNRESET) { return .closedWithoutAnswer }
            if count > 0 {
                return .http(
                    -1,
                    "answered a request whose head never ended: " + String(decoding: chunk[..<count], as: UTF8.self)
                )
            }
            if !RawHTTP.send(fd, Array("X-Slow-\(index): 1\r\n".utf8)) { return .closedWithoutAnswer }
        }
        return .http(-1, "still open after 30 s of dribbled headers")
    }
}
