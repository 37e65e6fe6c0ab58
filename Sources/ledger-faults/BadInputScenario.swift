import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerTesting

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
        // A request deadline longer than the idle timeout, so a head or body that stops is still cut off by the
        // idle timeout, and one that drips by the deadline; a per-address bound the flood case can fill.
        let daemon = try DaemonProcess(
            binaries: self.binaries,
            directory: self.directory,
            extra: [
                "limits": ["http": ["idleTimeoutMs": 1000, "requestTimeoutMs": 3000, "connectionsPerAddressMax": 64]]
            ]
        )
        try await daemon.start()
        _ = try await daemon.createOrders((1...40).map { String(format: "C%02d", $0) })
        var finalStates: [String: Aftermath] = [:]
        var acknowledged = 0
        for corpusCase in BadInputCorpus.cases {
            let before = try await Self.head(daemon)
            let quarantinedBefore = try await Self.quarantined(daemon)
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
            let quarantinedAfter = try await Self.quarantined(daemon)
            if let quarantined = corpusCase.quarantined, quarantinedAfter - quarantinedBefore != quarantined {
                problems.append(
                    "quarantined \(quarantinedAfter - quarantinedBefore) notifications, specified \(quarantined)"
                )
            }
            if let aftermath = corpusCase.after {
                problems += try await Self.check(aftermath, daemon: daemon)
                finalStates[aftermath.orderId] = aftermath
            }
            report.check(problems.isEmpty, "\(corpusCase.name): " + problems.joined(separator: "; "))
        }
        // Nothing acknowledged is lost: kill -9, restart, and every order is as the corpus left it, with the
        // quarantine's counts as they were.
        let quarantinedBeforeKill = try await Self.quarantined(daemon)
        await daemon.kill9()
        try await daemon.start()
        var lost: [String] = []
        let quarantinedAfterKill = try await Self.quarantined(daemon)
        if quarantinedAfterKill != quarantinedBeforeKill {
            lost.append(
                "the quarantine counted \(quarantinedBeforeKill), then \(quarantinedAfterKill) after the restart"
            )
        }
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
        Int(try await daemon.call(LedgerStats.self).head.sequence)
    }

    /// Every notification the quarantine has counted (its exact counters, not the entries it still holds).
    static func quarantined(_ daemon: DaemonProcess) async throws -> Int {
        let status = try await daemon.call(QuarantineRead.self, QuarantineRead.Params(limit: 1)).quarantine
        return Int(status.badSignature + status.foreignMember)
    }

    static func check(_ aftermath: Aftermath, daemon: DaemonProcess) async throws -> [String] {
        let state = try await daemon.order(aftermath.orderId)
        var problems: [String] = []
        if state.state.rawValue != aftermath.state {
            problems.append("order \(aftermath.orderId) is \(state.state.rawValue), specified \(aftermath.state)")
        }
        if let flag = aftermath.flag, !state.flags.contains(flag) {
            problems.append("order \(aftermath.orderId) lacks the flag \(flag): \(state.flags)")
        }
        if let received = aftermath.callbacksReceived {
            let counted = Int(try await daemon.audit(aftermath.orderId).total.received)
            if counted != received {
                problems.append(
                    "the audit counts \(counted) callbacks for order \(aftermath.orderId), specified \(received)"
                )
            }
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
                // From several addresses, each within limits.http.connectionsPerAddressMax: many clients.
                for index in 0..<count {
                    let source = "127.0.1.\(1 + index / 50)"
                    idle.append(try RawHTTP.connect(port: daemon.port, timeoutSeconds: 30, from: source))
                }
                return Self.answer(
                    try RawHTTP.exchange(port: daemon.port, RawHTTP.notify(BadInputCorpus.body(orderId)))
                )
            case .drippedBody(let orderId):
                return try Self.drippedBody(port: daemon.port, orderId: orderId)
            case .addressFlood(let orderId):
                let limit = daemon.configuration["limits"]?["http"]?.int("connectionsPerAddressMax") ?? 128
                return try Self.addressFlood(port: daemon.port, limit: limit, orderId: orderId)
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
                for _ in 0..<200 where try first.result(LedgerStats.self, NoParams()).connections != 1 {
                    usleep(20_000)
                }
                var held = [first]
                for _ in 1..<limit {
                    let connection = try ControlConnection(daemon.socketPath, timeoutSeconds: 15)
                    _ = try connection.result(LedgerStats.self, NoParams())
                    held.append(connection)
                }
                let extra = try ControlConnection(daemon.socketPath, timeoutSeconds: 15)
                let answer = try Self.rpcAnswer(extra)
                held.removeAll()
                // The slots free up as the daemon notices the closes; wait for a connection to be served again.
                for _ in 0..<100 {
                    if (try? ControlConnection(daemon.socketPath, timeoutSeconds: 5).result(
                        LedgerStats.self,
                        NoParams()
                    )) != nil {
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

    /// Sends a valid notification's head, then its body one byte every 200 ms; the daemon must answer 408 and
    /// close once limits.http.requestTimeoutMs has passed.
    static func drippedBody(port: Int, orderId: String) throws -> Expected {
        let fd = try RawHTTP.connect(port: port, timeoutSeconds: 1)
        defer { close(fd) }
        let body = BadInputCorpus.body(orderId)
        let head =
            "POST /notify HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            + "Content-Length: \(body.count)\r\n\r\n"
        _ = RawHTTP.send(fd, Array(head.utf8))
        for byte in body {
            var peek: UInt8 = 0
            let ready = recv(fd, &peek, 1, Int32(MSG_DONTWAIT | MSG_PEEK))
            if ready >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK) { return Self.answer(RawHTTP.readResponse(fd)) }
            if !RawHTTP.send(fd, [byte]) { break }
            usleep(200_000)
        }
        return Self.answer(RawHTTP.readResponse(fd))
    }

    /// Holds `limit` connections from 127.0.2.1 (each answered once, so surely accepted and counted), opens one
    /// more from there, which must be closed without an answer, then sends a valid notification from the usual
    /// address and returns its answer.
    static func addressFlood(port: Int, limit: Int, orderId: String) throws -> Expected {
        var held: [Int32] = []
        defer { for fd in held { close(fd) } }
        for _ in 0..<limit {
            let fd = try RawHTTP.connect(port: port, timeoutSeconds: 15, from: "127.0.2.1")
            held.append(fd)
            _ = RawHTTP.send(fd, Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            guard RawHTTP.readResponse(fd).0.status != nil else { return .http(-1, "a held connection was not served") }
        }
        let extra = try RawHTTP.connect(port: port, timeoutSeconds: 15, from: "127.0.2.1")
        defer { close(extra) }
        _ = RawHTTP.send(extra, Array("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        let over = Self.answer(RawHTTP.readResponse(extra))
        guard over == .closedWithoutAnswer else { return .http(-1, "the connection over the bound got \(over)") }
        return Self.answer(try RawHTTP.exchange(port: port, RawHTTP.notify(BadInputCorpus.body(orderId))))
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
