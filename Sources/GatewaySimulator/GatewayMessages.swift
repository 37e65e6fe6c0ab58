import LedgerCore

/// The gateway's outgoing messages, built as the deployments build them. Pure: the time and the faults come in as
/// values, so every byte the simulator sends can be checked without a socket.
enum GatewayMessages {
    /// `time_end` of an unpaid order: deployments format a zero timestamp in China time (gateway-protocol.md §4).
    static let unpaidTimeEnd = "1970-01-01 08:00:00"

    /// An order amount as deployments print it from their decimal column: four decimals (`12.5` → `12.5000`).
    static func fourDecimals(fen: Int64) -> String {
        let whole = fen / 100
        let cents = fen % 100
        return "\(whole)." + (cents < 10 ? "0" : "") + "\(cents)" + "00"
    }

    /// `pay_amount` text as four decimals; the text was validated on submission, so a failure here is a bug.
    static func fourDecimals(amountText: String) -> String {
        switch OrderAmount.parse(amountText, fenMax: Int64.max / 100) {
        case .success(let amount): return Self.fourDecimals(fen: amount.fen)
        case .failure: return amountText
        }
    }

    /// The amount a tampering middleman substitutes: one fen, the classic "pay 0.01 for anything" forgery (or two
    /// fen when the order really is one fen, so the tamper is always a change).
    static func tamperedAmount(of amountText: String) -> String {
        Self.fourDecimals(amountText: amountText) == "0.0100" ? "0.0200" : "0.0100"
    }

    /// A signature with one character changed, still 32 uppercase hex digits: a mismatch, not a malformed value.
    static func broken(signature: String) -> String {
        guard let first = signature.first else { return "0" }
        return (first == "0" ? "1" : "0") + signature.dropFirst()
    }

    /// The 14-digit `datetime` deployments send (`YYYYMMDDHHMMSS`, China time).
    static func compactDateTime(_ instant: Instant) -> String {
        String(GatewayTimeZone.shanghai.applyDate(for: instant).filter(\.isNumber))
    }

    /// The notification body, built the way deployments build it: `name=value` pairs joined with `&`, with no
    /// URL-encoding at all, so reserved characters in `attach` arrive mangled (gateway-protocol.md §3).
    static func notificationBody(
        order: SimulatedOrder,
        memberId: String,
        dateTime: String,
        faults: NotifyFaults,
        key: MerchantKey,
        dialect: SigningDialect
    ) -> String {
        var fields = [
            FormField("memberid", memberId),
            FormField("orderid", order.orderId),
            FormField("amount", Self.fourDecimals(amountText: order.amount)),
            FormField("transaction_id", order.transactionId ?? ""),
            FormField("datetime", dateTime),
            FormField("returncode", "00"),
        ]
        if let attach = order.attach { fields.append(FormField("attach", attach)) }
        var sign = Signer.sign(fields, kind: .notify, key: key, dialect: dialect)
        // Faults apply after signing: the signature covers the faithful fields.
        if faults.tamperAmount { fields[2].value = Self.tamperedAmount(of: order.amount) }
        if faults.breakSignature { sign = Self.broken(signature: sign) }
        fields.append(FormField("sign", sign))
        return fields.map { $0.name + "=" + $0.value }.joined(separator: "&")
    }

    /// The query reply object: the documented members in the deployments' order, signed with kind `.queryReply`.
    static func queryReplyObject(
        order: SimulatedOrder,
        memberId: String,
        reportPaid: Bool,
        breakSignature: Bool,
        key: MerchantKey,
        dialect: SigningDialect
    ) -> JSONObject {
        let fields = [
            FormField("memberid", memberId),
            FormField("orderid", order.orderId),
            FormField("amount", Self.fourDecimals(amountText: order.amount)),
            FormField("time_end", reportPaid ? (order.paidAt ?? Self.unpaidTimeEnd) : Self.unpaidTimeEnd),
            FormField("transaction_id", order.transactionId ?? ""),
            // Deployments send 00 for unpaid orders too; trade_state is the field that decides.
            FormField("returncode", "00"),
            FormField("trade_state", reportPaid ? "SUCCESS" : "NOTPAY"),
        ]
        var sign = Signer.sign(fields, kind: .queryReply, key: key, dialect: dialect)
        if breakSignature { sign = Self.broken(signature: sign) }
        var members: [(String, JSONValue)] = fields.map { ($0.name, JSONValue.string($0.value)) }
        members.append(("sign", .string(sign)))
        return JSONObject(members)
    }

    /// The reply object at top level, or wrapped in the success envelope.
    static func queryReplyBody(_ object: JSONObject, enveloped: Bool) -> String {
        guard enveloped else { return JSONWriter.write(.object(object)) }
        return JSONWriter.write(.object(["status": "success", "msg": "查询成功", "data": .object(object)]))
    }

    /// The error envelope, `{"status":"error","msg":…}`.
    static func errorEnvelope(_ message: String) -> String {
        JSONWriter.write(.object(["status": "error", "msg": .string(message)]))
    }

    /// The ThinkPHP-style error page a deployment shows on an exception.
    static let htmlErrorPage =
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>系统发生错误</title></head>"
        + "<body><div class=\"error\"><h1>:(</h1><p>系统发生错误</p></div></body></html>"

    /// A short HTML page with a title and a message; the text is escaped byte by byte, as in the daemon's pages.
    static func page(title: String, message: String) -> String {
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>\(HTMLText.escape(title))</title></head>"
            + "<body><h1>\(HTMLText.escape(title))</h1><p>\(HTMLText.escape(message))</p></body></html>\n"
    }

    /// The "cashier" page the buyer sees after a successful submission.
    static func cashierPage(order: SimulatedOrder) -> String {
        Self.page(
            title: "收银台 (simulated cashier)",
            message: "Order \(order.orderId), amount \(order.amount) yuan, product \(order.bankCode), "
                + "gateway number \(order.transactionId ?? ""). Awaiting payment."
        )
    }

    /// The simulator's view of orders for `GET /sim/orders`.
    static func ordersJSON(_ orders: [SimulatedOrder]) -> String {
        let values: [JSONValue] = orders.map { order in
            var members: [(String, JSONValue)] = [
                ("orderid", .string(order.orderId)), ("amount", .string(order.amount)),
                ("bankcode", .string(order.bankCode)), ("notifyurl", .string(order.notifyURL)),
                ("callbackurl", .string(order.callbackURL)), ("applydate", .string(order.applyDate)),
                ("paid", .bool(order.paid)),
                ("transaction_id", order.transactionId.map { .string($0) } ?? .null),
                ("paid_at", order.paidAt.map { .string($0) } ?? .null),
                ("notifications_sent", .number(String(order.notificationsSent))),
                ("notifications_acknowledged", .number(String(order.notificationsAcknowledged))),
                ("queries", .number(String(order.queries))),
            ]
            if let attach = order.attach { members.append(("attach", .string(attach))) }
            return .object(JSONObject(members))
        }
        return JSONWriter.write(.array(values))
    }
}
