import AsyncHTTPClient
import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerDaemon
import LedgerTesting
import Logging
import Synchronization
import Testing

/// Whether `text` holds `needle` as bytes. `String.contains` compares `Character`s, so it would miss a `<img` whose
/// `<` is joined to the prepend character before it: exactly the markup these tests look for.
private func containsBytes(_ text: String, _ needle: String) -> Bool {
    Array(text.utf8).firstRange(of: Array(needle.utf8)) != nil
}

/// The value of a header in a raw HTTP response, by case-insensitive name.
private func header(_ response: String, _ name: String) -> String? {
    let head = response.components(separatedBy: "\r\n\r\n").first ?? ""
    for line in head.components(separatedBy: "\r\n") {
        let parts = line.split(separator: ":", maxSplits: 1)
        if parts.count == 2, parts[0].lowercased() == name.lowercased() {
            return parts[1].trimmingCharacters(in: .whitespaces)
        }
    }
    return nil
}

/// A text stream that keeps what a `StreamLogHandler` writes, to read the log lines the daemon really produces.
private final class CapturedStream: TextOutputStream, Sendable {
    private let text = Mutex("")
    func write(_ string: String) { self.text.withLock { $0 += string } }
    var contents: String { self.text.withLock { $0 } }
}

/// Hostile text from the open Internet against the real daemon's HTTP server.
struct HostileTextTests {
    static let markup = "%D8%80%3Cimg%20src%3Dx%20onerror%3Dalert(document.domain)%3E%CC%81"

    /// `/return` and `/pay/{id}` with markup joined to prepend and combining characters answer "No such order."
    /// without echoing the id, with the security headers.
    @Test func invalidOrderIdsAreNotReflected() async throws {
        let directory = TemporaryDirectory()
        try await withRunningDaemon(try testConfiguration(directory: directory)) { running in
            let port = try #require(URL(string: running.baseURL)?.port)
            for target in ["/return?orderid=\(Self.markup)", "/pay/\(Self.markup)"] {
                let response = try await blocking {
                    try rawExchange(port: port, "GET \(target) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                }
                #expect(response.hasPrefix("HTTP/1.1 404"), "\(response)")
                #expect(containsBytes(response, "<p>No such order.</p>"), "\(response)")
                #expect(!containsBytes(response, "<img"), "\(response)")
                #expect(!containsBytes(response, "onerror"), "\(response)")
                #expect(header(response, "Content-Security-Policy")?.contains("default-src 'none'") == true)
                #expect(header(response, "Content-Security-Policy")?.contains("frame-ancestors 'none'") == true)
                #expect(header(response, "X-Content-Type-Options") == "nosniff")
                #expect(header(response, "Referrer-Policy") == "no-referrer")
            }
            // A well-formed id that is no order is shown, escaped.
            let known = try await blocking {
                try rawExchange(
                    port: port,
                    "GET /return?orderid=NO_SUCH-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
            }
            #expect(containsBytes(known, "No such order: NO_SUCH-1"), "\(known)")
        }
    }

    /// A product name with quotes and angle brackets joined to combining and prepend characters is escaped on
    /// `/pay/{id}`, and the page's policy allows only its own submit script and a form post to the gateway.
    @Test func storedMarkupIsEscapedOnPayPage() async throws {
        let directory = TemporaryDirectory()
        try await withRunningDaemon(try testConfiguration(directory: directory)) { running in
            let product = "Widget\"\u{0301}>\u{0301}\u{0600}<img src=x onerror=alert(document.cookie)>\u{0301}"
            _ = try await running.daemon.ledger.createOrder(
                CreateOrderRequest(orderId: "X1", amount: "1.00", bankCode: "940", productName: product)
            )
            let port = try #require(URL(string: running.baseURL)?.port)
            let response = try await blocking {
                try rawExchange(port: port, "GET /pay/X1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            }
            #expect(response.hasPrefix("HTTP/1.1 200"), "\(response)")
            #expect(!containsBytes(response, "<img"), "\(response)")
            #expect(
                containsBytes(response, "value=\"Widget&quot;\u{0301}&gt;\u{0301}\u{0600}&lt;img src=x"),
                "\(response)"
            )
            let policy = try #require(header(response, "Content-Security-Policy"))
            #expect(policy.contains("default-src 'none'"))
            #expect(policy.contains("form-action http://127.0.0.1:9;"), "\(policy)")
            #expect(policy.contains("frame-ancestors 'none'"))
            #expect(policy.contains("base-uri 'none'"))
            // The page's one script is the one the policy's hash names.
            let script = try #require(
                response.components(separatedBy: "<script>").dropFirst().first?.components(separatedBy: "</script>")
                    .first
            )
            #expect(response.components(separatedBy: "<script").count == 2, "exactly one script element")
            #expect(policy.contains("script-src \(HTMLText.scriptHashSource(script));"), "\(policy)")
            #expect(!containsBytes(response, "onload="))
        }
    }

    /// Under `all-received`, the gateway's signed NOTPAY query reply re-posted to `/notify` with an empty
    /// `datetime` is refused as malformed (400) and does not pay the order.
    @Test func queryReplyIsNotANotification() async throws {
        let directory = TemporaryDirectory()
        var configuration = try testConfiguration(directory: directory)
        configuration.gateway.dialect.notificationFieldSet = .allReceived
        let dialect = configuration.gateway.dialect
        try await withRunningDaemon(configuration) { running in
            _ = try await running.daemon.ledger.createOrder(.testing(orderId: "A1"))
            var reply = [
                FormField("memberid", TestKeys.memberId), FormField("orderid", "A1"), FormField("amount", "12.5000"),
                FormField("time_end", "1970-01-01 08:00:00"), FormField("transaction_id", "T1"),
                FormField("returncode", "00"), FormField("trade_state", "NOTPAY"),
            ]
            reply.append(FormField("sign", Signer.sign(reply, kind: .queryReply, key: TestKeys.key, dialect: dialect)))
            let client = HTTPClient()
            defer { shutdownLater(client) }
            let (status, body, _) = try await post(
                client,
                running.baseURL + "/notify",
                body: Notifications.body(reply + [FormField("datetime", "")])
            )
            #expect(status == 400)
            #expect(body == "malformed notification")
            #expect(try await running.daemon.ledger.order("A1")?.status == .created)
            // A genuine notification still pays it.
            var fields = Notifications.fields(orderId: "A1").filter { $0.name != "sign" }
            fields.append(FormField("sign", Signer.sign(fields, kind: .notify, key: TestKeys.key, dialect: dialect)))
            let (okStatus, okBody, _) = try await post(
                client,
                running.baseURL + "/notify",
                body: Notifications.body(fields)
            )
            #expect(okStatus == 200 && okBody == "OK")
            #expect(try await running.daemon.ledger.order("A1")?.status == .paid)
        }
    }

    /// A repeated field whose name carries `%0A` and a fake log line cannot start a line of its own: the daemon's
    /// logger escapes control characters in every message and metadata value, whatever handler the caller gave it.
    @Test func logLinesCannotBeForged() async throws {
        let captured = CapturedLog()
        let stream = CapturedStream()
        var streamLogger = Logger(label: "ledgerd") { label in StreamLogHandler(label: label, stream: stream) }
        streamLogger.logLevel = .warning
        let fake = "2026-01-01T00:00:00+0000 info ledgerd: order.id=A1 order paid by callback"
        let repeated = FormCoding.encode([FormField("x\n" + fake, "1"), FormField("x\n" + fake, "2")])
        let body = Notifications.body(Notifications.fields(orderId: "A1")) + "&" + repeated
        for logger in [captured.logger, streamLogger] {
            let directory = TemporaryDirectory()
            try await withRunningDaemon(try testConfiguration(directory: directory), logger: logger) { running in
                let client = HTTPClient()
                defer { shutdownLater(client) }
                let (status, _, _) = try await post(client, running.baseURL + "/notify", body: body)
                #expect(status == 400)
            }
        }
        // The capturing handler sees the escaped text, readable: the newline as `\n`.
        let refusal = try #require(captured.all.first { $0.message == "refused a body that is not a notification" })
        let reason = try #require(refusal.metadata["reason"])
        #expect(!reason.utf8.contains(0x0A), "\(reason)")
        #expect(reason.contains("repeats the field 'x\\n2026-01-01T00:00:00+0000 info ledgerd"), "\(reason)")
        // And the stream handler writes one line per event: none begins with the fake one.
        let lines = stream.contents.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.contains { containsBytes(String($0), "refused a body that is not a notification") })
        #expect(!lines.contains { $0.utf8.starts(with: fake.utf8) }, "\(stream.contents)")
    }

    /// A table cell with a newline or an escape sequence (a gateway's error message) stays on its row.
    @Test func tableCellsEscapeControlCharacters() {
        let table = TextTable.render(["order", "note"], [["A1", "gateway error\nA2  paid\u{1B}[2J"]])
        let lines = table.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 3, "\(table)")
        #expect(lines.last == "A1     gateway error\\nA2  paid\\u{1B}[2J", "\(table)")
    }
}
