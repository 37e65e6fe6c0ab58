import LedgerTesting
import Testing

@testable import LedgerCore

/// Hand-derived vectors: each canonical string was written out by hand from the document's rule (gateway-protocol.md
/// §2) and its MD5 computed by an independent implementation, never by this code.
struct SigningVectorTests {
    struct Vector: Sendable, CustomTestStringConvertible {
        enum Dialect: Sendable { case document, phpEmpty, allReceived }
        let name: String
        let kind: GatewayMessageKind
        let dialect: Dialect
        let fields: [(String, String)]
        let canonical: String
        let sign: String

        var testDescription: String { self.name }

        var signingDialect: SigningDialect {
            switch self.dialect {
            case .document: return .document
            case .phpEmpty: return SigningDialect(emptyValueRule: .phpEmpty)
            case .allReceived: return SigningDialect(notificationFieldSet: .allReceived)
            }
        }

        var formFields: [FormField] { self.fields.map { FormField($0.0, $0.1) } }
    }

    static let key = try! MerchantKey("5uTz8kQe2wR")

    static let vectors: [Vector] = [
        Vector(
            name: "document example shape",
            kind: .pay,
            dialect: .document,
            fields: [
                ("pay_memberid", "10001"), ("pay_orderid", "E20261127000001"), ("pay_applydate", "2016-12-26 18:18:18"),
                ("pay_bankcode", "940"), ("pay_notifyurl", "https://shop.example.com/notify"),
                ("pay_callbackurl", "https://shop.example.com/return"), ("pay_amount", "100"),
            ],
            canonical:
                "pay_amount=100&pay_applydate=2016-12-26 18:18:18&pay_bankcode=940&pay_callbackurl=https://shop.example.com/return&pay_memberid=10001&pay_notifyurl=https://shop.example.com/notify&pay_orderid=E20261127000001&key=***",
            sign: "0A414B2F0173E76B70AFAAEE95BEDCCA"
        ),
        Vector(
            name: "pay amount 0.01",
            kind: .pay,
            dialect: .document,
            fields: [
                ("pay_memberid", "10001"), ("pay_orderid", "A1"), ("pay_applydate", "2026-11-27 09:00:00"),
                ("pay_bankcode", "941"), ("pay_notifyurl", "http://a.b/n"), ("pay_callbackurl", "http://a.b/r"),
                ("pay_amount", "0.01"),
            ],
            canonical:
                "pay_amount=0.01&pay_applydate=2026-11-27 09:00:00&pay_bankcode=941&pay_callbackurl=http://a.b/r&pay_memberid=10001&pay_notifyurl=http://a.b/n&pay_orderid=A1&key=***",
            sign: "C879F1980E5B0A80C1A161333252BEA5"
        ),
        Vector(
            name: "pay unsigned fields ignored",
            kind: .pay,
            dialect: .document,
            fields: [
                ("pay_memberid", "10001"), ("pay_orderid", "A2"), ("pay_applydate", "2026-11-27 09:00:00"),
                ("pay_bankcode", "942"), ("pay_notifyurl", "http://a.b/n"), ("pay_callbackurl", "http://a.b/r"),
                ("pay_amount", "12.50"), ("pay_productname", "手机"), ("pay_attach", "x=1&y=2"), ("pay_md5sign", "ZZ"),
            ],
            canonical:
                "pay_amount=12.50&pay_applydate=2026-11-27 09:00:00&pay_bankcode=942&pay_callbackurl=http://a.b/r&pay_memberid=10001&pay_notifyurl=http://a.b/n&pay_orderid=A2&key=***",
            sign: "F9349694CB8EB823B0CD8A6432F4BD4B"
        ),
        Vector(
            name: "query request",
            kind: .query,
            dialect: .document,
            fields: [("pay_memberid", "10001"), ("pay_orderid", "A1")],
            canonical: "pay_memberid=10001&pay_orderid=A1&key=***",
            sign: "BF95D2D0DD62E46C8F6D67810F46B6A3"
        ),
        Vector(
            name: "query request empty order id dropped",
            kind: .query,
            dialect: .document,
            fields: [("pay_memberid", "10001"), ("pay_orderid", "")],
            canonical: "pay_memberid=10001&key=***",
            sign: "BEFC81BB8EF0F87CAF4A93008CA81356"
        ),
        Vector(
            name: "query all empty",
            kind: .query,
            dialect: .document,
            fields: [("pay_memberid", ""), ("pay_orderid", "")],
            canonical: "key=***",
            sign: "8F0413CF4177CD37734B1F9ACEC625A2"
        ),
        Vector(
            name: "notify basic",
            kind: .notify,
            dialect: .document,
            fields: [
                ("memberid", "10001"), ("orderid", "A1"), ("amount", "100.0000"), ("transaction_id", "T2026112700001"),
                ("datetime", "20261127093000"), ("returncode", "00"), ("attach", "hello"), ("sign", "x"),
            ],
            canonical:
                "amount=100.0000&datetime=20261127093000&memberid=10001&orderid=A1&returncode=00&transaction_id=T2026112700001&key=***",
            sign: "9637ED2B0C090E076D45FB2EAB1001D2"
        ),
        Vector(
            name: "notify with spaces in datetime",
            kind: .notify,
            dialect: .document,
            fields: [
                ("memberid", "10001"), ("orderid", "A1"), ("amount", "1.00"), ("transaction_id", "T1"),
                ("datetime", "2026-11-27 09:30:00"), ("returncode", "00"),
            ],
            canonical:
                "amount=1.00&datetime=2026-11-27 09:30:00&memberid=10001&orderid=A1&returncode=00&transaction_id=T1&key=***",
            sign: "127AA0C35AB67B4AD0B9433D58117A9F"
        ),
        Vector(
            name: "notify ampersand and equals in value",
            kind: .notify,
            dialect: .document,
            fields: [
                ("memberid", "10001"), ("orderid", "A1"), ("amount", "1.00"), ("transaction_id", "T&x=1"),
                ("datetime", "20261127093000"), ("returncode", "00"),
            ],
            canonical:
                "amount=1.00&datetime=20261127093000&memberid=10001&orderid=A1&returncode=00&transaction_id=T&x=1&key=***",
            sign: "7B6F74D543E205CDFF816A20C542299D"
        ),
        Vector(
            name: "notify plus and percent raw",
            kind: .notify,
            dialect: .document,
            fields: [
                ("memberid", "10001"), ("orderid", "A1"), ("amount", "1.00"), ("transaction_id", "T+1%20"),
                ("datetime", "20261127093000"), ("returncode", "00"),
            ],
            canonical:
                "amount=1.00&datetime=20261127093000&memberid=10001&orderid=A1&returncode=00&transaction_id=T+1%20&key=***",
            sign: "1FDC84401E9DF7A2B3D2633B5BDD0460"
        ),
        Vector(
            name: "notify chinese value",
            kind: .notify,
            dialect: .document,
            fields: [
                ("memberid", "10001"), ("orderid", "A1"), ("amount", "1.00"), ("transaction_id", "支付宝流水"),
                ("datetime", "20261127093000"), ("returncode", "00"),
            ],
            canonical:
                "amount=1.00&datetime=20261127093000&memberid=10001&orderid=A1&returncode=00&transaction_id=支付宝流水&key=***",
            sign: "7AE12BDB055DA7F7C1E2298917FD9500"
        ),
        Vector(
            name: "notify zero kept by document",
            kind: .notify,
            dialect: .document,
            fields: [
                ("memberid", "10001"), ("orderid", "A1"), ("amount", "1.00"), ("transaction_id", "0"),
                ("datetime", "20261127093000"), ("returncode", "00"),
            ],
            canonical:
                "amount=1.00&datetime=20261127093000&memberid=10001&orderid=A1&returncode=00&transaction_id=0&key=***",
            sign: "47A204BD839C830F61BCFB35A7E78325"
        ),
        Vector(
            name: "notify zero dropped by php-empty",
            kind: .notify,
            dialect: .phpEmpty,
            fields: [
                ("memberid", "10001"), ("orderid", "A1"), ("amount", "1.00"), ("transaction_id", "0"),
                ("datetime", "20261127093000"), ("returncode", "00"),
            ],
            canonical: "amount=1.00&datetime=20261127093000&memberid=10001&orderid=A1&returncode=00&key=***",
            sign: "74E744BE0DFE8AEB09BC6751A5F00327"
        ),
        Vector(
            name: "notify empty value dropped",
            kind: .notify,
            dialect: .document,
            fields: [
                ("memberid", "10001"), ("orderid", "A1"), ("amount", "1.00"), ("transaction_id", ""),
                ("datetime", "20261127093000"), ("returncode", "00"),
            ],
            canonical: "amount=1.00&datetime=20261127093000&memberid=10001&orderid=A1&returncode=00&key=***",
            sign: "74E744BE0DFE8AEB09BC6751A5F00327"
        ),
        Vector(
            name: "notify returncode 00 not php-empty",
            kind: .notify,
            dialect: .phpEmpty,
            fields: [
                ("memberid", "10001"), ("orderid", "A1"), ("amount", "1.00"), ("transaction_id", "T"),
                ("datetime", "20261127093000"), ("returncode", "00"),
            ],
            canonical:
                "amount=1.00&datetime=20261127093000&memberid=10001&orderid=A1&returncode=00&transaction_id=T&key=***",
            sign: "B11E233117615A4A5A6B1F273C9A86B9"
        ),
        Vector(
            name: "notify extra msg all-received",
            kind: .notify,
            dialect: .allReceived,
            fields: [
                ("memberid", "10001"), ("orderid", "A1"), ("amount", "1.00"), ("transaction_id", "T"),
                ("datetime", "20261127093000"), ("returncode", "00"), ("msg", "ok"), ("attach", "a"), ("sign", "s"),
            ],
            canonical:
                "amount=1.00&datetime=20261127093000&memberid=10001&msg=ok&orderid=A1&returncode=00&transaction_id=T&key=***",
            sign: "34108459E896DC5577825F4C605207F2"
        ),
        Vector(
            name: "notify extra msg documented ignores it",
            kind: .notify,
            dialect: .document,
            fields: [
                ("memberid", "10001"), ("orderid", "A1"), ("amount", "1.00"), ("transaction_id", "T"),
                ("datetime", "20261127093000"), ("returncode", "00"), ("msg", "ok"),
            ],
            canonical:
                "amount=1.00&datetime=20261127093000&memberid=10001&orderid=A1&returncode=00&transaction_id=T&key=***",
            sign: "B11E233117615A4A5A6B1F273C9A86B9"
        ),
        Vector(
            name: "notify amount 100",
            kind: .notify,
            dialect: .document,
            fields: [
                ("memberid", "10001"), ("orderid", "A1"), ("amount", "100"), ("transaction_id", "T"),
                ("datetime", "20261127093000"), ("returncode", "00"),
            ],
            canonical:
                "amount=100&datetime=20261127093000&memberid=10001&orderid=A1&returncode=00&transaction_id=T&key=***",
            sign: "3C7AF53C2BACD21B1224EB9A5396DD67"
        ),
        Vector(
            name: "notify value with spaces kept",
            kind: .notify,
            dialect: .document,
            fields: [
                ("memberid", "10001"), ("orderid", "A1"), ("amount", "1.00"), ("transaction_id", " T 1 "),
                ("datetime", "20261127093000"), ("returncode", "00"),
            ],
            canonical:
                "amount=1.00&datetime=20261127093000&memberid=10001&orderid=A1&returncode=00&transaction_id= T 1 &key=***",
            sign: "97DD398396304D4EBE7F9498BD6262E1"
        ),
        Vector(
            name: "query reply success",
            kind: .queryReply,
            dialect: .document,
            fields: [
                ("memberid", "10001"), ("orderid", "A1"), ("amount", "100.0000"), ("time_end", "2026-11-27 09:30:00"),
                ("transaction_id", "T1"), ("returncode", "00"), ("trade_state", "SUCCESS"), ("sign", "x"),
            ],
            canonical:
                "amount=100.0000&memberid=10001&orderid=A1&returncode=00&time_end=2026-11-27 09:30:00&trade_state=SUCCESS&transaction_id=T1&key=***",
            sign: "DE978D97B08BFB91A80345617785132F"
        ),
        Vector(
            name: "query reply notpay epoch",
            kind: .queryReply,
            dialect: .document,
            fields: [
                ("memberid", "10001"), ("orderid", "A1"), ("amount", "0.0100"), ("time_end", "1970-01-01 08:00:00"),
                ("transaction_id", ""), ("returncode", "00"), ("trade_state", "NOTPAY"),
            ],
            canonical:
                "amount=0.0100&memberid=10001&orderid=A1&returncode=00&time_end=1970-01-01 08:00:00&trade_state=NOTPAY&key=***",
            sign: "752C11CBD1E7184AEC57A3178CC7307F"
        ),
        Vector(
            name: "query reply unknown member ignored",
            kind: .queryReply,
            dialect: .document,
            fields: [
                ("memberid", "10001"), ("orderid", "A1"), ("amount", "1"), ("time_end", "x"), ("transaction_id", "T"),
                ("returncode", "01"), ("trade_state", "NOTPAY"), ("extra", "zzz"),
            ],
            canonical:
                "amount=1&memberid=10001&orderid=A1&returncode=01&time_end=x&trade_state=NOTPAY&transaction_id=T&key=***",
            sign: "5094614F0DEBCEF5A4194C6FF5CA45A1"
        ),
        Vector(
            name: "ascii order uppercase before underscore",
            kind: .notify,
            dialect: .document,
            fields: [
                ("memberid", "10001"), ("orderid", "A_b-1"), ("amount", "1.00"), ("transaction_id", "T"),
                ("datetime", "20261127093000"), ("returncode", "00"),
            ],
            canonical:
                "amount=1.00&datetime=20261127093000&memberid=10001&orderid=A_b-1&returncode=00&transaction_id=T&key=***",
            sign: "1EAE974CF5C0E2777E18F1F9441016D1"
        ),
    ]

    /// There are at least twenty hand-derived vectors covering every message kind.
    @Test func vectorCoverage() {
        #expect(Self.vectors.count >= 20)
        #expect(Set(Self.vectors.map(\.kind)) == Set(GatewayMessageKind.allCases))
    }

    /// Each vector's canonical string (key masked) and signature match the hand-derived ones.
    @Test(arguments: SigningVectorTests.vectors)
    func vector(_ vector: Vector) {
        let canonical = Signer.canonical(vector.formFields, kind: vector.kind, dialect: vector.signingDialect)
        #expect(canonical.masked == vector.canonical)
        #expect(canonical.signature(key: Self.key) == vector.sign)
    }

    /// A message carrying its hand-derived signature verifies; with one signed value changed it does not.
    @Test(arguments: SigningVectorTests.vectors)
    func vectorVerifies(_ vector: Vector) {
        var fields = vector.formFields.filter { $0.name != vector.kind.signatureField }
        fields.append(FormField(vector.kind.signatureField, vector.sign))
        #expect(Signer.verify(fields, kind: vector.kind, key: Self.key, dialect: vector.signingDialect) == .valid)
        let signedIndex = fields.firstIndex { field in
            vector.kind.documentedSignedFields.contains(field.name)
                && !vector.signingDialect.emptyValueRule.isEmpty(field.value)
        }
        if let signedIndex {
            fields[signedIndex].value += "x"
            #expect(
                Signer.verify(fields, kind: vector.kind, key: Self.key, dialect: vector.signingDialect) == .mismatch
            )
        }
    }
}

struct SignerTests {
    let key = try! MerchantKey("5uTz8kQe2wR")

    func notification(sign: String? = nil, extra: [FormField] = []) -> [FormField] {
        var fields = [
            FormField("memberid", "10001"), FormField("orderid", "A1"), FormField("amount", "1.0000"),
            FormField("transaction_id", "T1"), FormField("datetime", "20261127093000"), FormField("returncode", "00"),
        ]
        fields += extra
        fields.append(FormField("sign", sign ?? Signer.sign(fields, kind: .notify, key: self.key)))
        return fields
    }

    /// A missing or empty signature field is `.missing`, a wrong-length or non-hex one `.malformed`.
    @Test func verdictsForBadSignatures() {
        let base = self.notification().filter { $0.name != "sign" }
        #expect(Signer.verify(base, kind: .notify, key: self.key) == .missing)
        #expect(Signer.verify(base + [FormField("sign", "")], kind: .notify, key: self.key) == .missing)
        #expect(Signer.verify(base + [FormField("sign", "ABC")], kind: .notify, key: self.key) == .malformed)
        let nonHex = String(repeating: "G", count: 32)
        #expect(Signer.verify(base + [FormField("sign", nonHex)], kind: .notify, key: self.key) == .malformed)
        let wrong = String(repeating: "0", count: 32)
        #expect(Signer.verify(base + [FormField("sign", wrong)], kind: .notify, key: self.key) == .mismatch)
    }

    /// Lowercase hex is refused by default and accepted only with the setting.
    @Test func lowercaseHexIsASetting() {
        let fields = self.notification()
        let lower = fields.map { $0.name == "sign" ? FormField("sign", $0.value.lowercased()) : $0 }
        #expect(Signer.verify(lower, kind: .notify, key: self.key) == .malformed)
        #expect(
            Signer.verify(lower, kind: .notify, key: self.key, dialect: SigningDialect(acceptLowercaseHex: true))
                == .valid
        )
    }

    /// Another key gives another signature, and a message signed with it does not verify.
    @Test func otherKeyDoesNotVerify() throws {
        let other = try MerchantKey("another-key")
        let fields = self.notification()
        #expect(Signer.verify(fields, kind: .notify, key: other) == .mismatch)
    }

    /// Attach is not signed: changing it leaves the signature valid under the document's rule.
    @Test func attachIsNotSigned() {
        var fields = self.notification(extra: [FormField("attach", "a")])
        let index = fields.firstIndex { $0.name == "attach" }!
        fields[index].value = "changed"
        #expect(Signer.verify(fields, kind: .notify, key: self.key) == .valid)
    }

    /// The constant-time comparison agrees with `==` on equal, different and different-length inputs.
    @Test func constantTimeEquals() {
        #expect(Signer.constantTimeEquals(Array("ABC".utf8), Array("ABC".utf8)))
        #expect(!Signer.constantTimeEquals(Array("ABC".utf8), Array("ABD".utf8)))
        #expect(!Signer.constantTimeEquals(Array("ABC".utf8), Array("AB".utf8)))
        #expect(Signer.constantTimeEquals([], []))
    }

    /// The masked canonical string never contains the key.
    @Test func maskedCanonicalHidesKey() {
        let canonical = Signer.canonical(self.notification(), kind: .notify)
        #expect(!canonical.masked.contains("5uTz8kQe2wR"))
        #expect(canonical.masked.hasSuffix("&key=***"))
        #expect(!String(describing: self.key).contains("5uTz8kQe2wR"))
    }

    /// A key with inner white space is refused; one trailing newline from a key file is dropped.
    @Test func merchantKeyRules() throws {
        #expect(throws: MerchantKey.Rejection.empty) { try MerchantKey("") }
        #expect(throws: MerchantKey.Rejection.hasWhitespaceOrControl) { try MerchantKey("a b") }
        #expect(throws: MerchantKey.Rejection.tooLong(bytesMax: 256)) {
            try MerchantKey(String(repeating: "k", count: 257))
        }
        let withNewline = try MerchantKey("abc\n")
        let plain = try MerchantKey("abc")
        #expect(withNewline == plain)
    }

    /// The dialect's text form round-trips and unknown text is refused.
    @Test func dialectTextForm() {
        let dialect = SigningDialect(
            emptyValueRule: .phpEmpty,
            notificationFieldSet: .allReceived,
            acceptLowercaseHex: true
        )
        #expect(SigningDialect(dialect.description) == dialect)
        #expect(SigningDialect.document.description == "empty-string/documented/upper")
        #expect(SigningDialect("nonsense") == nil)
    }
}

/// The diagnosis names the deployment variant that explains a signature mismatch.
struct SignatureDiagnosisTests {
    let key = try! MerchantKey("5uTz8kQe2wR")

    func fields(_ pairs: [(String, String)]) -> [FormField] { pairs.map { FormField($0.0, $0.1) } }

    var base: [FormField] {
        self.fields([
            ("memberid", "10001"), ("orderid", "A1"), ("amount", "1.0000"), ("transaction_id", "0"),
            ("datetime", "20261127093000"), ("returncode", "00"), ("attach", "gift"), ("msg", "paid"),
        ])
    }

    func signed(with recipe: SigningRecipe, lowercase: Bool = false) -> [FormField] {
        var sign = Signer.canonical(self.base, kind: .notify, recipe: recipe).signature(key: self.key)
        if lowercase { sign = sign.lowercased() }
        return self.base + [FormField("sign", sign)]
    }

    /// A PHP empty() signer (dropping "0") is diagnosed with the setting to change.
    @Test func phpEmpty() {
        let message = self.signed(with: SigningRecipe(selection: .documented, emptyValueRule: .phpEmpty))
        let diagnosis = Signer.diagnose(message, kind: .notify, key: self.key)
        #expect(diagnosis.verdict == .mismatch)
        #expect(diagnosis.matches.first?.recipe.emptyValueRule == .phpEmpty)
        #expect(
            diagnosis.matches.first?.differences.contains { $0.contains("signing.emptyValueRule = php-empty") } == true
        )
        #expect(diagnosis.report.contains("php-empty"))
    }

    /// A signer over every received field (here `msg` too) is diagnosed as the all-received field set.
    @Test func allReceived() {
        let message = self.signed(with: SigningRecipe(selection: .allReceived, emptyValueRule: .emptyString))
        let diagnosis = Signer.diagnose(message, kind: .notify, key: self.key)
        #expect(diagnosis.matches.first?.recipe.selection == .allReceived)
        #expect(diagnosis.matches.first?.differences.count == 1)
    }

    /// A signer that signs attach is diagnosed as such.
    @Test func attachSigned() {
        let message = self.signed(with: SigningRecipe(selection: .documentedWithAttach, emptyValueRule: .emptyString))
        let diagnosis = Signer.diagnose(message, kind: .notify, key: self.key)
        #expect(diagnosis.matches.first?.recipe.selection == .documentedWithAttach)
    }

    /// A signer joining pairs with `=>` is diagnosed.
    @Test func arrowJoiner() {
        let message = self.signed(
            with: SigningRecipe(selection: .documented, emptyValueRule: .emptyString, joiner: .arrow)
        )
        let diagnosis = Signer.diagnose(message, kind: .notify, key: self.key)
        #expect(diagnosis.matches.first?.recipe.joiner == .arrow)
        #expect(diagnosis.matches.first?.canonicalMasked.contains("amount=>1.0000&") == true)
    }

    /// A lowercase signature under the document's recipe is diagnosed as a case problem only.
    @Test func lowercase() {
        let message = self.signed(
            with: SigningRecipe(selection: .documented, emptyValueRule: .emptyString),
            lowercase: true
        )
        let diagnosis = Signer.diagnose(message, kind: .notify, key: self.key)
        #expect(diagnosis.verdict == .malformed)
        #expect(diagnosis.matches.count == 1)
        #expect(diagnosis.matches.first?.lowercase == true)
        #expect(diagnosis.matches.first?.differences.count == 1)
    }

    /// The one-line summary the daemon logs names the settings that would accept the signature, or that no
    /// variant does, and never the expected signature.
    @Test(arguments: [
        (
            SigningRecipe(selection: .documented, emptyValueRule: .phpEmpty), false,
            "matches under signing.emptyValueRule=php-empty"
        ),
        (
            SigningRecipe(selection: .allReceived, emptyValueRule: .emptyString), false,
            "matches under signing.notificationFieldSet=all-received"
        ),
        (
            SigningRecipe(selection: .documented, emptyValueRule: .emptyString), true,
            "matches under signing.acceptLowercaseHex=true"
        ),
        (
            SigningRecipe(selection: .documented, emptyValueRule: .emptyString, joiner: .arrow), false,
            "matches under pairs joined with '=>' (no setting accepts it)"
        ),
        (
            SigningRecipe(selection: .documentedWithAttach, emptyValueRule: .emptyString), false,
            "matches under signed fields documented+attach (no setting accepts it)"
        ),
    ])
    func summary(_ recipe: SigningRecipe, _ lowercase: Bool, _ expected: String) {
        let diagnosis = Signer.diagnose(self.signed(with: recipe, lowercase: lowercase), kind: .notify, key: self.key)
        #expect(diagnosis.summary == expected)
        #expect(!diagnosis.explanation.isEmpty)
        #expect(!diagnosis.summary.contains(diagnosis.expected) && !diagnosis.explanation.contains(diagnosis.expected))
    }

    /// With no variant matching, the summary says so and the explanation carries the hints.
    @Test func summaryWhenNothingMatches() {
        var message = self.signed(with: SigningRecipe(selection: .documented, emptyValueRule: .emptyString))
        message[0].value = "10002"
        let diagnosis = Signer.diagnose(message, kind: .notify, key: self.key)
        #expect(diagnosis.summary == "matches no known dialect")
        #expect(diagnosis.explanation.contains("key"))
        let document = SigningRecipe(selection: .documented, emptyValueRule: .emptyString)
        let valid = Signer.diagnose(self.signed(with: document), kind: .notify, key: self.key)
        #expect(valid.summary == "verifies under the dialect in force")
    }

    /// When no variant matches, the diagnosis says so and points at the key or altered values.
    @Test func noVariantMatches() {
        var message = self.signed(with: SigningRecipe(selection: .documented, emptyValueRule: .emptyString))
        message[0].value = "10002"
        let diagnosis = Signer.diagnose(message, kind: .notify, key: self.key)
        #expect(diagnosis.matches.isEmpty)
        #expect(diagnosis.hints.last?.contains("key") == true)
        #expect(diagnosis.report.contains("No known variant"))
    }

    /// A valid message is reported valid with no variants.
    @Test func validMessage() {
        let message = self.signed(with: SigningRecipe(selection: .documented, emptyValueRule: .emptyString))
        let diagnosis = Signer.diagnose(message, kind: .notify, key: self.key)
        #expect(diagnosis.verdict == .valid)
        #expect(diagnosis.matches.isEmpty)
    }
}
