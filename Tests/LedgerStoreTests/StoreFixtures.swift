import Foundation
import LedgerCore
import LedgerStore

/// Builds realistic events through the real core: signed orders, signed notifications, query results.
struct StoreFixture: Sendable {
    let key = try! MerchantKey("store-fixture-key")
    let settings = GatewaySettings(
        memberId: "10001",
        baseURL: "http://127.0.0.1:9090",
        notifyURL: "http://127.0.0.1:8080/notify",
        callbackURL: "http://127.0.0.1:8080/return"
    )
    let start = Instant(millisecondsSinceEpoch: 1_795_741_323_000)

    func created(_ orderId: String, amount: String = "12.50", at offset: Int64 = 0) -> PendingEvent {
        let request = OrderRequest(orderId: orderId, amount: amount, bankCode: "940", productName: "fixture product")
        let pay = try! PayRequest.build(request, settings: self.settings, key: self.key, appliedAt: self.start).get()
        return PendingEvent(
            recordedAt: self.start.adding(milliseconds: offset),
            orderId: orderId,
            payload: .orderCreated(OrderCreated(request: pay, gatewayURL: self.settings.payURL, dialect: .document))
        )
    }

    func callback(
        _ orderId: String,
        amount: String = "12.5000",
        transactionId: String? = nil,
        returnCode: String = "00",
        forged: Bool = false,
        at offset: Int64 = 1
    ) -> PendingEvent {
        var fields = [
            FormField("memberid", "10001"), FormField("orderid", orderId), FormField("amount", amount),
            FormField("transaction_id", transactionId ?? "T-\(orderId)"), FormField("datetime", "20261127093000"),
            FormField("returncode", returnCode),
        ]
        let sign = forged ? String(repeating: "A", count: 32) : Signer.sign(fields, kind: .notify, key: self.key)
        fields.append(FormField("sign", sign))
        let body = Array(fields.map { "\($0.name)=\($0.value)" }.joined(separator: "&").utf8)
        let notification = try! PaymentNotification.parse(body)
        return PendingEvent(
            recordedAt: self.start.adding(milliseconds: offset),
            orderId: orderId,
            payload: .callbackReceived(
                CallbackReceived(notification, remoteAddress: "127.0.0.1:40000", verdict: notification.verify(key: self.key), dialect: .document)
            )
        )
    }

    func queryFailure(_ orderId: String, attempt: UInt32 = 1, final: Bool = false) -> PendingEvent {
        PendingEvent(
            recordedAt: self.start.adding(milliseconds: 2),
            orderId: orderId,
            payload: .queryResult(
                QueryResult(attempt: attempt, latencyMicroseconds: 100, final: final, httpStatus: 502, body: Array("<html>".utf8), outcome: .unreadable(reason: "an HTML page"))
            )
        )
    }
}

