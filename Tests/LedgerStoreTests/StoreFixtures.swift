import Foundation
import LedgerCore
import LedgerStore
import LedgerTesting

/// Builds realistic events through the real core: signed orders, signed notifications, query results.
struct StoreFixture: Sendable {
    let key = try! MerchantKey("store-fixture-key")
    let settings = GatewaySettings.testing(baseURL: "http://127.0.0.1:9090")
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
        let fields = SignedNotification.fields(
            orderId: orderId,
            amount: amount,
            transactionId: transactionId ?? "T-\(orderId)",
            returnCode: returnCode,
            memberId: "10001",
            key: self.key
        )
        return SignedNotification.event(
            forged ? SignedNotification.forged(fields, filler: "A") : fields,
            key: self.key,
            at: self.start.adding(milliseconds: offset)
        )
    }

    func queryFailure(_ orderId: String, attempt: UInt32 = 1, final: Bool = false) -> PendingEvent {
        PendingEvent(
            recordedAt: self.start.adding(milliseconds: 2),
            orderId: orderId,
            payload: .queryResult(
                QueryResult(
                    attempt: attempt,
                    latencyMicroseconds: 100,
                    final: final,
                    httpStatus: 502,
                    body: Array("<html>".utf8),
                    outcome: .unreadable(reason: "an HTML page")
                )
            )
        )
    }
}
