import FuzzSupport
import LedgerCore

/// The gateway's payment notification as the daemon receives it: `PaymentNotification.parse` on an arbitrary body,
/// then verification with a fixed merchant key under every signing dialect, then the callback event the daemon
/// would store.
///
/// Oracles: a parsed notification re-encodes to a body that parses to the same fields with the same verdicts; once
/// re-signed with the key it verifies as valid under that dialect, and as a mismatch under another key; its
/// callback event encodes and decodes (hash checked) to the same event. And the input's fields, signed with the
/// key as a query reply or as a pay request, never verify as a notification under any dialect, whatever fields are
/// added unsigned (an empty `datetime` included).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNotification(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let body = fuzzInput(data, size)
    NotificationOracle.check(body)
    NotificationOracle.checkOtherMessages(body)
    return 0
}

enum NotificationOracle {
    static let key = Self.makeKey("fuzz-merchant-key-7Qx2")
    static let otherKey = Self.makeKey("someone-else-key-0000")
    /// Every dialect a deployment can configure: the three bits of `SigningDialect.code`.
    static let dialects: [SigningDialect] = (0...7).compactMap { SigningDialect(code: UInt8($0)) }
    static let unlimited = FormLimits(bodyBytesMax: .max, fieldsMax: .max, fieldBytesMax: .max)

    static func makeKey(_ text: String) -> MerchantKey {
        do {
            return try MerchantKey(text)
        } catch {
            fatalError("the fuzz target's key was refused: \(error)")
        }
    }

    static func parse(_ body: [UInt8], _ limits: FormLimits = .default) -> Result<
        PaymentNotification, NotificationRejection
    > {
        Result { () throws(NotificationRejection) in try PaymentNotification.parse(body, limits: limits) }
    }

    /// The extra fields configured for the "every received field" dialect in the cross-message check.
    static let extraFields = ["msg", "status"]

    /// Signs the input's fields as a query reply and as a pay request, re-posts each as a notification with the
    /// notification's missing fields added unsigned, and checks that none verifies as one.
    static func checkOtherMessages(_ body: [UInt8]) {
        guard let decoded = try? FormCoding.decode(body, limits: Self.unlimited) else { return }
        // The gateway joins values unencoded, so it never signs one with `&` or `=`: such values are left out, as
        // are the signature fields, which the re-posted message replaces.
        let fields = decoded.fields.filter { field in
            !GatewayValidation.hasPairDelimiter(field.value)
                && !["sign", "pay_md5sign"].contains { $0.utf8.elementsEqual(field.name.utf8) }
        }
        for dialect in Self.dialects {
            for kind in [GatewayMessageKind.queryReply, .pay] {
                let sign = Signer.sign(fields, kind: kind, key: Self.key, dialect: dialect)
                for fill in ["", "1"] {
                    var posted = fields
                    for name in GatewayMessageKind.notify.documentedSignedFields
                    where !posted.contains(where: { $0.name.utf8.elementsEqual(name.utf8) }) {
                        posted.append(FormField(name, name == "orderid" ? "A1" : fill))
                    }
                    posted.append(FormField("sign", sign))
                    let encoded = Array(FormCoding.encode(posted).utf8)
                    for extra in [[], Self.extraFields] {
                        let parsed = Result { () throws(NotificationRejection) in
                            try PaymentNotification.parse(
                                encoded,
                                limits: Self.unlimited,
                                dialect: dialect,
                                extraFields: extra
                            )
                        }
                        guard case .success(let notification) = parsed else { continue }
                        let verdict = notification.verify(key: Self.key, dialect: dialect)
                        fuzzCheck(verdict != .valid, "a signed \(kind) verified as a notification under \(dialect)")
                    }
                }
            }
        }
    }

    static func check(_ body: [UInt8]) {
        let notification: PaymentNotification
        switch Self.parse(body) {
        case .success(let parsed): notification = parsed
        case .failure(let rejection):
            fuzzCheck(!rejection.description.isEmpty, "an empty rejection message")
            return
        }
        fuzzCheck(GatewayValidation.isOrderId(notification.orderId), "an accepted notification without an order id")
        // The typed views parse on demand and must not trap, whatever the text.
        _ = notification.amount
        _ = notification.dateTime
        _ = notification.isSuccess
        let verdicts = Self.dialects.map { notification.verify(key: Self.key, dialect: $0) }

        // The same fields, re-encoded, are the same notification with the same verdicts.
        let reencoded = Array(FormCoding.encode(notification.fields).utf8)
        switch Self.parse(reencoded, Self.unlimited) {
        case .success(let again):
            fuzzCheck(
                again.fields.fields.map { [utf8Bytes($0.name), utf8Bytes($0.value)] }
                    == notification.fields.fields.map { [utf8Bytes($0.name), utf8Bytes($0.value)] },
                "the re-encoded notification has other fields"
            )
            fuzzCheck(
                Self.dialects.map { again.verify(key: Self.key, dialect: $0) } == verdicts,
                "the re-encoded notification verifies differently"
            )
        case .failure(let rejection):
            fuzzCheck(false, "the re-encoded notification is refused: \(rejection)")
        }

        // Signing and verification agree on every field value the decoder lets through.
        for dialect in Self.dialects {
            let signature = Signer.sign(notification.fields, kind: .notify, key: Self.key, dialect: dialect)
            let fields = notification.fields.fields.map { field in
                field.name == "sign" ? FormField("sign", signature) : field
            }
            let signedBody = Array(FormCoding.encode(fields).utf8)
            guard case .success(let signed) = Self.parse(signedBody, Self.unlimited) else {
                fuzzCheck(false, "the re-signed notification is refused")
                return
            }
            let verdict = signed.verify(key: Self.key, dialect: dialect)
            fuzzCheck(verdict == .valid, "a notification signed under \(dialect) verifies as \(verdict)")
            let forged = signed.verify(key: Self.otherKey, dialect: dialect)
            fuzzCheck(forged == .mismatch, "a notification verified under another key as \(forged)")
        }

        // What the daemon stores for this body comes back from the log exactly.
        let callback = CallbackReceived(
            notification,
            remoteAddress: "127.0.0.1:40000",
            verdict: verdicts[0],
            dialect: .document
        )
        var event = Event(
            sequence: 1,
            recordedAt: Instant(millisecondsSinceEpoch: 1_795_744_800_000),
            orderId: notification.orderId,
            previousHash: .zero,
            hash: .zero,
            payload: .callbackReceived(callback)
        )
        event.hash = EventCodec.computeHash(of: event)
        let encoded = EventCodec.encode(event)
        switch Result(catching: { () throws(EventDecodingError) in try EventCodec.decode(encoded, verifyHash: true) }) {
        case .success(let decoded):
            fuzzCheck(decoded == event, "the stored callback event decodes to another event")
            fuzzCheck(EventCodec.encode(decoded) == encoded, "the stored callback event re-encodes differently")
        case .failure(let error):
            fuzzCheck(false, "the stored callback event does not decode: \(error)")
        }
    }
}
