public import LedgerControlProtocol
public import LedgerCore

/// The gateway's payment notification as it posts it, signed with a merchant key: the fields concatenated without
/// URL encoding (gateway-protocol.md §3). The one builder the tests, the fault suite, the benchmarks and the crash
/// test use; the gateway simulator builds its own, with its faults, the same way.
public enum SignedNotification {
    /// The six documented fields in the gateway's order, then `sign`.
    public static func fields(
        orderId: String,
        amount: String = "12.5000",
        transactionId: String,
        dateTime: String = "20261127093000",
        returnCode: String = "00",
        memberId: String,
        key: MerchantKey
    ) -> [FormField] {
        var fields = [
            FormField("memberid", memberId), FormField("orderid", orderId), FormField("amount", amount),
            FormField("transaction_id", transactionId), FormField("datetime", dateTime),
            FormField("returncode", returnCode),
        ]
        fields.append(FormField("sign", Signer.sign(fields, kind: .notify, key: key)))
        return fields
    }

    /// The form body: `name=value` pairs joined with `&`, unencoded.
    public static func body(_ fields: [FormField]) -> String {
        fields.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
    }
}

extension GatewaySettings {
    /// Settings for a gateway at `baseURL` and a daemon reachable at `publicURL`, with the document's bank codes.
    public static func testing(
        memberId: String = "10001",
        baseURL: String = "http://127.0.0.1:9",
        publicURL: String = "http://127.0.0.1:8080"
    ) -> GatewaySettings {
        var settings = GatewaySettings(
            memberId: memberId,
            baseURL: baseURL,
            notifyURL: publicURL + "/notify",
            callbackURL: publicURL + "/return"
        )
        settings.bankCodes = GatewaySettings.defaultBankCodes
        return settings
    }

    /// The `LEDGERD_*` variables that configure a daemon for the `testing()` gateway and member, with the key
    /// `k-1` inline, plus `extra`: where a configuration test starts, since these settings have no default.
    public static func testingEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        let testing = Self.testing()
        let required = [
            "LEDGERD_GATEWAY_URL": testing.baseURL, "LEDGERD_GATEWAY_MEMBER_ID": testing.memberId,
            "LEDGERD_GATEWAY_KEY": "k-1",
        ]
        return required.merging(extra) { _, given in given }
    }
}

extension SignedNotification {
    /// A forged copy of `fields`: the signature replaced with `filler` repeated to 32 digits.
    public static func forged(_ fields: [FormField], filler: Character = "0") -> [FormField] {
        var fields = fields
        fields[fields.count - 1] = FormField("sign", String(repeating: filler, count: 32))
        return fields
    }

    /// The callback event a daemon of an earlier build (or a test of the store) records for `fields` as received,
    /// with the verdict they earn under `key`.
    public static func event(
        _ fields: [FormField],
        key: MerchantKey,
        at instant: Instant,
        remoteAddress: String = "127.0.0.1:40000"
    ) -> PendingEvent {
        let notification = try! PaymentNotification.parse(Array(Self.body(fields).utf8))
        return PendingEvent(
            recordedAt: instant,
            orderId: notification.orderId,
            payload: .callbackReceived(
                CallbackReceived(
                    notification,
                    remoteAddress: remoteAddress,
                    verdict: notification.verify(key: key),
                    dialect: .document
                )
            )
        )
    }
}

extension OrderCreate.Params {
    /// An order as the tests create one: 12.50 of product `p`, paid through bank code 940.
    public static func testing(orderId: String, amount: String = "12.50") -> Self {
        Self(orderId: orderId, amount: amount, bankCode: "940", productName: "p")
    }
}
