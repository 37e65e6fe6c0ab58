import LedgerControlProtocol
import LedgerCore
import LedgerTesting

/// Hostile text from the open Internet: markup joined to combining and prepend characters, signed texts of other
/// messages passed off as notifications, and control characters meant for the log. Orders `C31`…`C35` are theirs.
extension BadInputCorpus {
    /// A valid notification for `orderId` with `name` set to `value` and signed again with the merchant's key, so
    /// only the value's shape can be wrong. Encoded as a form, so `&` and `=` arrive inside the value.
    static func resigned(_ orderId: String, _ name: String, _ value: String) -> [UInt8] {
        var fields = Notification.fields(orderId: orderId).filter { $0.name != "sign" }
        if let index = fields.firstIndex(where: { $0.name == name }) { fields[index].value = value }
        fields.append(FormField("sign", Signer.sign(fields, kind: .notify, key: TestMerchant.key)))
        return Self.bytes(FormCoding.encode(fields))
    }

    /// The gateway's signed query reply for an unpaid order, posted to `/notify` with an empty `datetime` added:
    /// an empty value drops out of the signed text, so once it signed the same text as a notification.
    static func queryReplyAsNotification(_ orderId: String) -> [UInt8] {
        var fields = [
            FormField("memberid", TestMerchant.memberId), FormField("orderid", orderId), FormField("amount", "12.5000"),
            FormField("time_end", "1970-01-01 08:00:00"), FormField("transaction_id", "T" + orderId),
            FormField("returncode", "00"), FormField("trade_state", "NOTPAY"),
        ]
        fields.append(FormField("sign", Signer.sign(fields, kind: .queryReply, key: TestMerchant.key)))
        fields.append(FormField("datetime", ""))
        return Self.bytes(FormCoding.encode(fields))
    }

    /// A GET of `target` on a fresh connection.
    static func get(_ target: String) -> Probe {
        .http(Self.bytes("GET \(target) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    }

    /// The page for an order id that is not one: it names no id at all.
    static let noSuchOrder = Expected.http(
        404,
        #"<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><p>No such order.</p></body></html>"#
    )

    static let hostileTextCases: [CorpusCase] = [
        .malformedNotification("empty datetime, validly signed", "C31") { Self.resigned($0, "datetime", "") },
        .malformedNotification("empty transaction_id, validly signed", "C32") {
            Self.resigned($0, "transaction_id", "")
        },
        .malformedNotification("signed NOTPAY query reply re-posted with an empty datetime", "C33") {
            Self.queryReplyAsNotification($0)
        },
        .malformedNotification("'=' in a signed value, validly signed", "C34") {
            Self.resigned($0, "transaction_id", "T=34")
        },
        .malformedNotification("'&' in a signed value, validly signed", "C35") {
            Self.resigned($0, "transaction_id", "T&amount=34")
        },
        CorpusCase(
            "repeated field whose name carries a newline and a fake log line",
            .notify(
                Self.body("C35")
                    + Self.bytes("&x%0A2026-01-01T00:00:00+0000 info ledgerd: order.id=C35 order paid by callback=1")
                    + Self.bytes("&x%0A2026-01-01T00:00:00+0000 info ledgerd: order.id=C35 order paid by callback=2")
            ),
            Self.malformed,
            appends: 0
        ),
        CorpusCase(
            "/return reflecting markup joined to prepend and combining characters",
            Self.get("/return?orderid=%D8%80%3Cimg%20src%3Dx%20onerror%3Dalert(document.domain)%3E%CC%81"),
            Self.noSuchOrder,
            appends: 0
        ),
        CorpusCase(
            "/pay/{id} reflecting markup joined to prepend and combining characters",
            Self.get("/pay/%D8%80%3Cimg%20src%3Dx%20onerror%3Dalert(document.domain)%3E%CC%81"),
            Self.noSuchOrder,
            appends: 0
        ),
    ]
}
