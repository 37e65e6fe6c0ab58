import Foundation
import LedgerTesting
import Testing

@testable import LedgerCore

/// Real encoder output for every event kind, validated by `tools/check-schemas` (Python's jsonschema) against
/// `schemas/events/*.json`.
struct EventSchemaTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// One event of every kind and every query outcome, built through the real builders and parsers.
    static func sampleEvents() throws -> [Event] {
        let key = try MerchantKey("schema-key")
        let settings = GatewaySettings.testing(baseURL: "http://127.0.0.1:9090")
        let now = Instant(millisecondsSinceEpoch: 1_795_741_323_456)
        var request = OrderRequest(orderId: "S1", amount: "100.00", bankCode: "942", productName: "年卡")
        request.attach = "会员"
        request.productDesc = "desc"
        let pay = try PayRequest.build(request, settings: settings, key: key, appliedAt: now).get()
        let fields = SignedNotification.fields(
            orderId: "S1",
            amount: "100.0000",
            transactionId: "T1",
            memberId: "10001",
            key: key
        )
        let body = Array(SignedNotification.body(fields).utf8)
        let notification = try PaymentNotification.parse(body)
        let replyBody = Array("{\"status\":\"error\",\"msg\":\"订单不存在\"}".utf8)
        let payloads: [EventPayload] = [
            .orderCreated(OrderCreated(request: pay, gatewayURL: settings.payURL, dialect: settings.dialect)),
            .callbackReceived(
                CallbackReceived(
                    notification,
                    remoteAddress: "127.0.0.1:50000",
                    verdict: notification.verify(key: key),
                    dialect: .document
                )
            ),
            .queryResult(
                QueryResult(
                    attempt: 1,
                    latencyMicroseconds: 1500,
                    final: false,
                    httpStatus: 200,
                    body: Array("{}".utf8),
                    outcome: .reply(fields: fields, enveloped: true, verdict: .valid, dialect: .document)
                )
            ),
            .queryResult(
                QueryResult(
                    attempt: 2,
                    latencyMicroseconds: 9,
                    final: false,
                    httpStatus: 200,
                    body: replyBody,
                    outcome: .gatewayError(message: "订单不存在")
                )
            ),
            .queryResult(
                QueryResult(
                    attempt: 3,
                    latencyMicroseconds: 9,
                    final: false,
                    httpStatus: 502,
                    body: [0xFF, 0x3C],
                    outcome: .unreadable(reason: "an HTML page")
                )
            ),
            .queryResult(
                QueryResult(
                    attempt: 4,
                    latencyMicroseconds: 5_000_000,
                    final: true,
                    httpStatus: nil,
                    body: [],
                    outcome: .transportError(message: "timed out")
                )
            ),
        ]
        var previous = Digest32.zero
        var events: [Event] = []
        for (index, payload) in payloads.enumerated() {
            let event = PendingEvent(
                recordedAt: now.adding(milliseconds: Int64(index)),
                orderId: "S1",
                payload: payload
            )
            .sealed(sequence: UInt64(index + 1), previousHash: previous)
            previous = event.hash
            events.append(event)
        }
        return events
    }

    static func runChecker(_ lines: [String]) throws -> (status: Int32, output: String) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("events-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: file) }
        try (lines.joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)
        let run = try ChildProcess.run(
            "/usr/bin/env",
            ["python3", Self.packageRoot.appendingPathComponent("tools/check-schemas").path, file.path]
        )
        return (run.status, run.output)
    }

    /// Every event kind's JSON form, as the encoder writes it, is valid against its schema.
    @Test func realOutputMatchesSchemas() throws {
        let events = try Self.sampleEvents()
        #expect(Set(events.map(\.type)) == Set(EventType.allCases))
        let result = try Self.runChecker(events.map(\.jsonText))
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("\(events.count) documents checked, 0 problems"))
    }

    /// The checker is not a rubber stamp: an event with a missing field and a malformed hash is refused.
    @Test func checkerRefusesBrokenEvents() throws {
        let event = try Self.sampleEvents()[0]
        guard case .object(var object) = event.json else {
            Issue.record("an event's JSON form is an object")
            return
        }
        object["hash"] = "not-a-hash"
        let text = JSONWriter.write(.object(object), options: .sortedKeys)
        let result = try Self.runChecker([text])
        #expect(result.status == 1)
        #expect(result.output.contains("/hash"))
    }
}
