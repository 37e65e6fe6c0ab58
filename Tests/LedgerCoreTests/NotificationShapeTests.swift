import LedgerTesting
import PropertyBased
import Testing

@testable import LedgerCore

private let key = try! MerchantKey("shape-key-42")
private let dialects: [SigningDialect] = (0...7).compactMap { SigningDialect(code: UInt8($0)) }
private let allReceived = SigningDialect(notificationFieldSet: .allReceived)

/// A notification's fields signed under `dialect`, then encoded as a form.
private func signedBody(_ fields: [FormField], dialect: SigningDialect = .document) -> [UInt8] {
    let sign = Signer.sign(fields, kind: .notify, key: key, dialect: dialect)
    return Array(FormCoding.encode(fields + [FormField("sign", sign)]).utf8)
}

private func standard(_ changes: [String: String] = [:]) -> [FormField] {
    let fields = [
        FormField("memberid", "10001"), FormField("orderid", "A1"), FormField("amount", "1.0000"),
        FormField("transaction_id", "T1"), FormField("datetime", "20261127093000"), FormField("returncode", "00"),
    ]
    return fields.map { field in FormField(field.name, changes[field.name] ?? field.value) }
}

private func parse(_ body: [UInt8], _ dialect: SigningDialect, extra: [String] = []) -> Result<
    PaymentNotification, NotificationRejection
> {
    Result { () throws(NotificationRejection) in
        try PaymentNotification.parse(body, dialect: dialect, extraFields: extra)
    }
}

struct NotificationShapeTests {
    /// The reproduction: under `all-received`, the gateway's signed NOTPAY query reply re-posted with `datetime=`
    /// is a malformed notification, not a verified one that pays the order.
    @Test func queryReplyWithEmptyDatetimeIsRefused() {
        var reply = [
            FormField("memberid", "10001"), FormField("orderid", "A1"), FormField("amount", "1.0000"),
            FormField("time_end", "1970-01-01 08:00:00"), FormField("transaction_id", "T1"),
            FormField("returncode", "00"), FormField("trade_state", "NOTPAY"),
        ]
        reply.append(FormField("sign", Signer.sign(reply, kind: .queryReply, key: key, dialect: allReceived)))
        reply.append(FormField("datetime", ""))
        let body = Array(FormCoding.encode(reply).utf8)
        for dialect in dialects {
            #expect(throws: NotificationRejection.emptyField("datetime")) {
                try PaymentNotification.parse(body, dialect: dialect)
            }
        }
    }

    /// Every documented signed field must be present and non-empty under every dialect; under PHP's `empty()` rule
    /// `0` is empty too.
    @Test func documentedFieldsMustBeNonEmpty() {
        for dialect in dialects {
            for name in GatewayMessageKind.notify.documentedSignedFields {
                let body = signedBody(standard([name: ""]), dialect: dialect)
                #expect(parse(body, dialect) == .failure(.emptyField(name)))
            }
            let zero = signedBody(standard(["transaction_id": "0"]), dialect: dialect)
            let expected: NotificationRejection? =
                dialect.emptyValueRule == .phpEmpty ? .emptyField("transaction_id") : nil
            #expect(parse(zero, dialect).failure == expected, "\(dialect)")
        }
    }

    /// Under `all-received`, fields of other messages are refused, other fields only pass when configured, and a
    /// configured extra field is signed.
    @Test func allReceivedFieldRules() throws {
        for name in ["time_end", "trade_state", "pay_orderid", "pay_md5sign", "pay_anything"] {
            let body = signedBody(standard() + [FormField(name, "x")], dialect: allReceived)
            #expect(parse(body, allReceived, extra: ["msg"]) == .failure(.foreignField(name)))
            // The documented dialect does not sign them, so they do no harm there.
            #expect(parse(signedBody(standard() + [FormField(name, "x")]), .document).failure == nil)
        }
        let withMessage = signedBody(standard() + [FormField("msg", "paid")], dialect: allReceived)
        #expect(parse(withMessage, allReceived) == .failure(.unexpectedField("msg")))
        let notification = try parse(withMessage, allReceived, extra: ["msg"]).get()
        #expect(notification.verify(key: key, dialect: allReceived) == .valid)
        // `attach` is never signed and always allowed.
        let attached = signedBody(standard() + [FormField("attach", "gift")], dialect: allReceived)
        #expect(parse(attached, allReceived).failure == nil)
    }

    /// A signed value with `&` or `=` is refused under every dialect; unsigned ones (attach, extras under the
    /// documented dialect) may carry them.
    @Test func pairDelimitersInSignedValues() {
        for dialect in dialects {
            for value in ["T&1", "T=1", "a&amount=2"] {
                let body = signedBody(standard(["transaction_id": value]), dialect: dialect)
                #expect(parse(body, dialect) == .failure(.pairDelimiterInSignedValue("transaction_id")))
            }
        }
        #expect(parse(signedBody(standard() + [FormField("attach", "a=b&c")]), .document).failure == nil)
        #expect(parse(signedBody(standard() + [FormField("note", "a=b")]), .document).failure == nil)
    }

    /// `signing.notificationExtraFields` names are checked: well-formed, not documented, not another message's.
    @Test func extraFieldNamesAreChecked() {
        var settings = GatewaySettings(
            memberId: "10001",
            baseURL: "http://127.0.0.1:9",
            notifyURL: "http://127.0.0.1:8080/notify",
            callbackURL: "http://127.0.0.1:8080/return",
            notificationExtraFields: ["msg", "pay_amount", "time_end", "amount", "sign", "a b", "", "x=y"]
        )
        let problems = settings.validate().filter { $0.key == "signing.notificationExtraFields" }
        #expect(problems.count == 7, "\(problems)")
        settings.notificationExtraFields = ["msg", "bank_seq"]
        #expect(settings.validate().isEmpty)
    }
}

/// The fields a gateway could sign in a query reply or pay request: values without `&` and `=`, which it concatenates
/// unencoded and so never sends (gateway-protocol.md §2).
private let safeValue = Gen<Character?>.element(of: ["a", "Z", "0", "1", "9", "0", " ", "-", ":", ".", "中", "%", "+"])
    .map { $0! }.string(of: 0...8)
private let replyNames: [String] = {
    var names: [String] = []
    for name in GatewayMessageKind.queryReply.documentedSignedFields + GatewayMessageKind.notify.documentedSignedFields
        + ["attach", "msg", "status"] where !names.contains(name)
    {
        names.append(name)
    }
    return names
}()
private let payNames = GatewayMessageKind.pay.documentedSignedFields + ["pay_attach", "pay_productname", "datetime"]

struct SignedTextCollisionProperties {
    /// No query reply and no pay request signed with the key verifies as a notification, under any dialect, even
    /// with any fields added unsigned (`datetime=` included) and the order id made valid.
    @Test func otherMessagesNeverVerifyAsNotifications() async {
        await propertyCheck(
            count: 300,
            input: safeValue.array(of: replyNames.count),
            Gen.bool.array(of: replyNames.count),
            Gen.bool(0.3).array(of: replyNames.count),
            Gen<String?>.element(of: ["", "1", "中"]).map { $0! }.array(of: 3),
            Gen.int(in: 0...7)
        ) { values, present, blank, added, dialectCode in
            let dialect = SigningDialect(code: UInt8(dialectCode))!
            for kind in [GatewayMessageKind.queryReply, .pay] {
                let names = kind == .queryReply ? replyNames : payNames
                var fields: [FormField] = []
                for (index, name) in names.enumerated() where present[index] {
                    // Empty values often: an empty value drops out of a signed text, where collisions hide.
                    let value = blank[index] ? "" : values[index]
                    fields.append(FormField(name, name.hasSuffix("orderid") ? "A1" : value))
                }
                // What the gateway signed…
                let sign = Signer.sign(fields, kind: kind, key: key, dialect: dialect)
                // …re-posted as a notification, with the notification's fields the message lacks added unsigned.
                var posted = fields
                for (offset, name) in GatewayMessageKind.notify.documentedSignedFields.enumerated()
                where !posted.contains(where: { $0.name == name }) {
                    posted.append(FormField(name, name == "orderid" ? "A1" : added[offset % added.count]))
                }
                posted.append(FormField("sign", sign))
                let body = Array(FormCoding.encode(posted).utf8)
                for extra in [[], ["msg", "status", "attach_x"]] {
                    guard case .success(let notification) = parse(body, dialect, extra: extra) else { continue }
                    #expect(
                        notification.verify(key: key, dialect: dialect) != .valid,
                        "a \(kind) verified as a notification under \(dialect): \(posted)"
                    )
                }
            }
        }
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
