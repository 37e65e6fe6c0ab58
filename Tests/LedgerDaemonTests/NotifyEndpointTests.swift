import AsyncHTTPClient
import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerDaemon
import LedgerStore
import LedgerTesting
import NIOCore
import NIOHTTP1
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `POST /notify` and the other HTTP endpoints, over a real socket against the real daemon.
struct NotifyEndpointTests {
    /// A valid notification is answered with exactly the two bytes OK, and only after it is in the log.
    @Test func acknowledgesValidNotification() async throws {
        let directory = TemporaryDirectory()
        try await withRunningDaemon(try testConfiguration(directory: directory)) { running in
            _ = try await running.daemon.ledger.createOrder(.testing(orderId: "A1"))
            let client = HTTPClient()
            defer { shutdownLater(client) }
            let (status, body, headers) = try await post(
                client,
                running.baseURL + "/notify",
                body: Notifications.body(Notifications.fields(orderId: "A1"))
            )
            #expect(status == 200)
            #expect(body == "OK")
            #expect(headers["content-length"].first == "2")
            #expect(try await running.daemon.ledger.order("A1")?.status == .paid)
            let history = try await running.daemon.ledger.history("A1")
            guard case .callbackReceived(let callback) = history.last?.event.payload else {
                Issue.record("the callback must be recorded")
                return
            }
            #expect(callback.remoteAddress.hasPrefix("127.0.0.1:"))
            #expect(String(decoding: callback.rawBody, as: UTF8.self).hasPrefix("memberid=10001&orderid=A1"))
        }
    }

    /// Bad signatures, foreign member ids, unknown orders and malformed bodies get 4xx bodies without "ok".
    @Test func refusals() async throws {
        let directory = TemporaryDirectory()
        try await withRunningDaemon(try testConfiguration(directory: directory)) { running in
            _ = try await running.daemon.ledger.createOrder(.testing(orderId: "A1"))
            let client = HTTPClient()
            defer { shutdownLater(client) }
            var forged = Notifications.fields(orderId: "A1")
            forged[forged.count - 1].value = forged[forged.count - 1].value.lowercased()
            let foreign = Notifications.fields(orderId: "A1", memberId: "99999")
            let cases: [(String, Int)] = [
                (Notifications.body(forged), 403),
                (Notifications.body(foreign), 403),
                (Notifications.body(Notifications.fields(orderId: "ZZ9")), 404),
                ("memberid=1&orderid=A1", 400),
                ("amount=1&amount=2", 400),
                ("a=%ZZ", 400),
                (String(repeating: "a", count: 9000), 413),
            ]
            for (body, expected) in cases {
                let (status, text, _) = try await post(client, running.baseURL + "/notify", body: body)
                #expect(status == expected, "\(body.prefix(40))")
                #expect(!text.lowercased().contains("ok"), "\(text)")
            }
            // Only the validly signed one for an unknown order entered the log; the forged and the foreign one are
            // in the quarantine, with the peer's address; nothing paid the order.
            #expect(try await running.daemon.store.head().sequence == 2)
            #expect(try await running.daemon.ledger.order("A1")?.status == .created)
            let page = try await running.daemon.store.quarantined(QuarantineQuery())
            #expect(page.entries.map(\.reason) == [.foreignMember, .badSignature])
            #expect(page.entries.allSatisfy { $0.remoteAddress.hasPrefix("127.0.0.1:") && $0.source == "127.0.0.1" })
        }
    }

    /// A body announced larger than limits.notify.bodyBytesMax is refused with 413 before it is sent, and nothing is
    /// recorded. A chunked body that grows past the bound is refused the same way. Both refusals are logged, as every
    /// refused body is (rate-limited).
    @Test func announcedOversizedBodyIsRefusedAtOnce() async throws {
        let directory = TemporaryDirectory()
        let log = CapturedLog()
        try await withRunningDaemon(try testConfiguration(directory: directory), logger: log.logger) { running in
            let port = try #require(URL(string: running.baseURL)?.port)
            let answer = try await blocking {
                try rawExchange(
                    port: port,
                    "POST /notify HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\nmemberid=1"
                )
            }
            #expect(answer.hasPrefix("HTTP/1.1 413"), "\(answer)")
            #expect(answer.hasSuffix("body too large"), "\(answer)")
            let chunk = String(repeating: "a", count: 9000)
            let chunked = try await blocking {
                try rawExchange(
                    port: port,
                    "POST /notify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        + String(chunk.utf8.count, radix: 16) + "\r\n" + chunk + "\r\n0\r\n\r\n"
                )
            }
            #expect(chunked.hasPrefix("HTTP/1.1 413"), "\(chunked)")
            #expect(try await running.daemon.store.head().sequence == 0)
        }
        let refusals = log.all.filter { $0.message == "refused a body that is not a notification" }
        #expect(refusals.count == 2, "\(log.all)")
        #expect(refusals.first?.metadata["reason"]?.contains("declared body of 100000000 bytes") == true, "\(refusals)")
        #expect(refusals.last?.metadata["reason"]?.contains("over limits.notify.bodyBytesMax") == true, "\(refusals)")
    }

    /// 100 concurrent copies of one notification: one state change, 99 duplicates, every copy answered OK.
    @Test func duplicateStorm() async throws {
        let directory = TemporaryDirectory()
        try await withRunningDaemon(try testConfiguration(directory: directory)) { running in
            _ = try await running.daemon.ledger.createOrder(.testing(orderId: "A1"))
            let client = HTTPClient(
                configuration: .init(
                    connectionPool: .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 100)
                )
            )
            defer { shutdownLater(client) }
            let body = Notifications.body(Notifications.fields(orderId: "A1"))
            let url = running.baseURL + "/notify"
            let answers = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<100 { group.addTask { try await post(client, url, body: body).1 } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(answers.count == 100)
            #expect(answers.allSatisfy { $0 == "OK" })
            let state = try #require(try await running.daemon.ledger.order("A1"))
            #expect(state.status == .paid)
            #expect(state.callbacks.accepted == 1)
            #expect(state.callbacks.duplicate == 99)
        }
    }

    /// The pay page auto-submits the signed fields, HTML-escaped; the return page shows state and changes nothing.
    @Test func payAndReturnPages() async throws {
        let directory = TemporaryDirectory()
        try await withRunningDaemon(try testConfiguration(directory: directory)) { running in
            _ = try await running.daemon.ledger.createOrder(
                CreateOrderRequest(orderId: "A1", amount: "12.50", bankCode: "940", productName: "<b>\"壳\"</b>")
            )
            let client = HTTPClient()
            defer { shutdownLater(client) }
            let (status, page) = try await get(client, running.baseURL + "/pay/A1")
            #expect(status == 200)
            #expect(page.contains("action=\"http://127.0.0.1:9/Pay_Index.html\""))
            #expect(page.contains("name=\"pay_md5sign\""))
            #expect(page.contains("&lt;b&gt;&quot;壳&quot;&lt;/b&gt;"))
            #expect(!page.contains("<b>"))
            #expect(page.contains("document.forms[0].submit()"))
            #expect(try await get(client, running.baseURL + "/pay/NOPE").0 == 404)
            // The browser copy of a notification, POSTed to /return, never changes state.
            let (returnStatus, returnPage, _) = try await post(
                client,
                running.baseURL + "/return",
                body: Notifications.body(Notifications.fields(orderId: "A1"))
            )
            #expect(returnStatus == 200)
            #expect(returnPage.contains("waiting"))
            #expect(try await running.daemon.ledger.order("A1")?.status == .created)
            #expect(try await get(client, running.baseURL + "/return?orderid=A1").1.contains("waiting"))
        }
    }

    /// Health and metrics answer; metrics count callbacks by verdict.
    @Test func healthAndMetrics() async throws {
        let directory = TemporaryDirectory()
        try await withRunningDaemon(try testConfiguration(directory: directory)) { running in
            _ = try await running.daemon.ledger.createOrder(.testing(orderId: "A1"))
            let client = HTTPClient()
            defer { shutdownLater(client) }
            _ = try await post(
                client,
                running.baseURL + "/notify",
                body: Notifications.body(Notifications.fields(orderId: "A1"))
            )
            // The poller beats within a second of starting.
            try await Task.sleep(for: .milliseconds(1200))
            let (healthStatus, health) = try await get(client, running.baseURL + "/healthz")
            #expect(healthStatus == 200, "\(health)")
            let checks = try JSONParser.parse(health)
            #expect(checks["status"] == "healthy")
            #expect(checks["checks"] == ["http": "ok", "store": "ok", "poller": "ok"])
            let (metricsStatus, metrics) = try await get(client, running.baseURL + "/metrics")
            #expect(metricsStatus == 200)
            #expect(metrics.contains("ledger_callbacks_total{verdict=\"accepted\"} 1"))
            #expect(metrics.contains("ledger_events_appended_total"))
        }
    }
}

/// Sends raw bytes to a loopback port and reads one response (head and a Content-Length body), or what arrived
/// before the peer closed or 20 seconds passed.
func rawExchange(port: Int, _ request: String) throws -> String {
    let descriptor = try connectLoopbackSocket(port: port, receiveTimeoutSeconds: 20)
    defer { close(descriptor) }
    let bytes = Array(request.utf8)
    _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    var received: [UInt8] = []
    while true {
        var chunk = [UInt8](repeating: 0, count: 4096)
        let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { break }
        received += chunk[..<count]
        let text = String(decoding: received, as: UTF8.self)
        if let end = text.range(of: "\r\n\r\n"),
            let lengthLine = text[..<end.lowerBound].split(separator: "\r\n").first(where: {
                $0.lowercased().hasPrefix("content-length:")
            }),
            let length = Int(lengthLine.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)),
            text.utf8.count - text[..<end.upperBound].utf8.count >= length
        {
            break
        }
    }
    return String(decoding: received, as: UTF8.self)
}
