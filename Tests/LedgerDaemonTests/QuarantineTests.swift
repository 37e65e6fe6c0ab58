import AsyncHTTPClient
import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerDaemon
import LedgerStore
import LedgerTesting
import Testing

/// Issue 14 §1, end to end: notifications the gateway did not vouch for never enter the hash-chained log.
@Suite(.serialized) struct QuarantineTests {
    /// A forged notification of about 7.4 KB: four padding fields under the field bound, a signature of zeros.
    static func forged(_ orderId: String, transactionId: String = "T1") -> String {
        var fields = Notifications.fields(orderId: orderId, transactionId: transactionId)
        fields.removeLast()
        for name in ["attach", "x1", "x2", "x3"] {
            fields.append(FormField(name, String(repeating: "x", count: 1_800)))
        }
        fields.append(FormField("sign", String(repeating: "0", count: 32)))
        return Notifications.body(fields)
    }

    /// The reproduction: 150 forged POSTs with random order ids were all stored and made 150 orders in state
    /// `unknown`. Now each is answered 403 and kept in the bounded quarantine: the log does not grow, no order is
    /// made, the oldest entries are dropped past `quarantine.entriesMax`, and the counts stay exact.
    @Test func forgedFloodFillsOnlyTheBoundedQuarantine() async throws {
        let directory = TemporaryDirectory()
        var configuration = try testConfiguration(directory: directory)
        configuration.store.quarantineLimits.entriesMax = 100
        try await withRunningDaemon(configuration) { running in
            _ = try await running.daemon.ledger.createOrder(.testing(orderId: "A1"))
            let client = HTTPClient()
            defer { shutdownLater(client) }
            var generator = SystemRandomNumberGenerator()
            for index in 0..<150 {
                let orderId = "R" + String(UInt64.random(in: 0...UInt64.max, using: &generator), radix: 36).uppercased()
                let (status, text, _) = try await post(client, running.baseURL + "/notify", body: Self.forged(orderId))
                #expect(status == 403, "request \(index)")
                #expect(text == "bad signature")
            }
            let store = running.daemon.store
            #expect(try await store.head().sequence == 1)
            let statistics = try await store.statistics()
            #expect(statistics.ordersByStatus[.unknown] == 0)
            #expect(statistics.eventsByType[.callbackReceived] == 0)
            let status = try await store.quarantineStatus()
            #expect(status.entries == 100)
            #expect(status.dropped == 50)
            #expect(status.total.badSignature == 150)
            #expect(status.unknownOrders.badSignature == 150)
            // The newest are kept; each with its body (cut to the bound), its peer and its order id.
            let page = try await store.quarantined(QuarantineQuery(limit: 1))
            #expect(page.entries.first?.id == 150)
            #expect(page.entries.first?.bodyBytes ?? 0 > 7_300)
            #expect(page.entries.first?.body.count == QuarantineLimits.default.bodyBytesMax)
            #expect(page.entries.first?.orderId?.hasPrefix("R") == true)
            let (_, metrics) = try await get(client, running.baseURL + "/metrics")
            #expect(metrics.contains("ledger_quarantine_entries 100"), "\(metrics)")
            #expect(metrics.contains("ledger_quarantine_dropped 50"))
            #expect(metrics.contains(#"ledger_quarantined_total{reason="bad-signature"} 150"#))
            #expect(metrics.contains("ledger_quarantine_drops_total 50"))
            // And the real gateway is still heard.
            let valid = Notifications.body(Notifications.fields(orderId: "A1"))
            let (okStatus, ok, _) = try await post(client, running.baseURL + "/notify", body: valid)
            #expect(okStatus == 200 && ok == "OK")
        }
    }

    /// The reproduction: 250 forged callbacks for one real order made its history 4 MB. Now its history holds only
    /// its own facts, its pay page is unaffected, and the audit still counts every forgery exactly.
    @Test func forgeriesForARealOrderStayOutOfItsHistory() async throws {
        let directory = TemporaryDirectory()
        try await withRunningDaemon(try testConfiguration(directory: directory)) { running in
            _ = try await running.daemon.ledger.createOrder(.testing(orderId: "A1"))
            let client = HTTPClient()
            defer { shutdownLater(client) }
            for index in 0..<250 {
                let (status, _, _) = try await post(
                    client,
                    running.baseURL + "/notify",
                    body: Self.forged("A1", transactionId: "F\(index)")
                )
                #expect(status == 403)
            }
            let foreign = Notifications.body(Notifications.fields(orderId: "A1", memberId: "99999"))
            let (foreignStatus, foreignText, _) = try await post(client, running.baseURL + "/notify", body: foreign)
            #expect(foreignStatus == 403 && foreignText == "foreign member id")
            let history = try await running.daemon.ledger.history("A1")
            #expect(history.map(\.event.type) == [.orderCreated])
            let audit = try await CallbackAudit.build(store: running.daemon.store, orderId: "A1")
            #expect(audit.rows.first?.counts.badSignature == 250)
            #expect(audit.rows.first?.counts.memberMismatch == 1)
            #expect(audit.rows.first?.counts.received == 251)
            #expect(audit.total.received == 251)
            let (payStatus, page) = try await get(client, running.baseURL + "/pay/A1")
            #expect(payStatus == 200 && page.contains("pay_md5sign"))
            let filtered = try await running.daemon.store.quarantined(QuarantineQuery(reason: .foreignMember))
            #expect(filtered.entries.count == 1)
            #expect(filtered.entries.first?.detail.contains("99999") == true)
        }
    }

    /// A ledger written by an earlier build holds bad-signature callbacks in its chain: it opens, verifies and
    /// rebuilds as before, and the audit counts those together with the quarantine's.
    @Test func earlierBuildsBadSignatureEventsStillCount() async throws {
        let directory = TemporaryDirectory()
        let configuration = try testConfiguration(directory: directory)
        let body = Self.forged("A1")
        do {
            // What an earlier build appended for a forged notification: the callback, with its verdict.
            let store = try LMDBEventStore(path: configuration.dataDirectory, options: configuration.store)
            let ledger = Ledger(
                store: store,
                settings: configuration.gateway,
                key: configuration.key,
                publicURL: configuration.publicURL,
                logger: testLogger
            )
            _ = try await ledger.createOrder(.testing(orderId: "A1"))
            let notification = try PaymentNotification.parse(Array(body.utf8))
            let legacy = PendingEvent(
                recordedAt: Instant(millisecondsSinceEpoch: 1_795_741_323_000),
                orderId: "A1",
                payload: .callbackReceived(
                    CallbackReceived(notification, remoteAddress: "192.0.2.1:1", verdict: .mismatch, dialect: .document)
                )
            )
            _ = try await store.append(AppendRequest([legacy]))
            await store.close()
        }
        try await withRunningDaemon(configuration) { running in
            let client = HTTPClient()
            defer { shutdownLater(client) }
            let (status, _, _) = try await post(client, running.baseURL + "/notify", body: body)
            #expect(status == 403)
            let store = running.daemon.store
            #expect(try await store.head().sequence == 2)
            let audit = try await CallbackAudit.build(store: store)
            #expect(audit.rows.map(\.orderId) == ["A1"])
            #expect(audit.rows.first?.counts.badSignature == 2)
            #expect(audit.total.badSignature == 2)
            #expect(try await store.verifyChain(progress: nil).isIntact)
            let rebuilt = try await store.rebuildProjection(progress: nil)
            #expect(rebuilt.eventsReplayed == 2)
            #expect(try await store.verifyProjection(differencesMax: 10, progress: nil).differenceCount == 0)
            let history = try await running.daemon.ledger.history("A1")
            #expect(history.last?.effect == .callback(.badSignature))
        }
    }
}
