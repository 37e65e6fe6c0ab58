import LedgerTesting
import PropertyBased
import Testing

@testable import LedgerCore

/// Characters that stress the signing and form rules: the reserved ones, spaces, digits (for "0"), Chinese.
private let valueCharacters: [Character] = [
    "a", "Z", "0", "1", "9", "&", "=", "+", "%", " ", "中", "文", "_", "-", ".", "~", "é",
]
private let valueGen = Gen<Character?>.element(of: valueCharacters).map { $0! }.string(of: 0...12)
private let nonEmptyValueGen = Gen<Character?>.element(of: valueCharacters).map { $0! }.string(of: 1...12)
private let notifyNames = GatewayMessageKind.notify.documentedSignedFields
private let key = try! MerchantKey("prop-key-7")

/// A deterministic shuffle driven by a generated seed, so a failing case reproduces from its seed.
private func shuffled<T>(_ items: [T], seed: UInt64) -> [T] {
    var state = seed
    var out = items
    if out.count < 2 { return out }
    for index in stride(from: out.count - 1, to: 0, by: -1) {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let other = Int((state >> 33) % UInt64(index + 1))
        out.swapAt(index, other)
    }
    return out
}

struct CanonicalStringProperties {
    /// Field order never matters: any permutation of a message gives the same canonical string and signature.
    @Test func orderNeverMatters() async {
        await propertyCheck(input: valueGen.array(of: 6), Gen.uint64()) { values, seed in
            let fields = zip(notifyNames, values).map { FormField($0, $1) } + [FormField("attach", "x")]
            let permuted = shuffled(fields, seed: seed)
            let a = Signer.canonical(fields, kind: .notify)
            let b = Signer.canonical(permuted, kind: .notify)
            #expect(a == b)
            #expect(a.signature(key: key) == b.signature(key: key))
        }
    }

    /// Under the document's rule an empty field and an absent field sign the same.
    @Test func emptyFieldsNeverMatter() async {
        await propertyCheck(input: valueGen.array(of: 6), Gen.int(in: 0...5)) { values, dropped in
            var values = values
            values[dropped] = ""
            let full = zip(notifyNames, values).map { FormField($0, $1) }
            let without = full.filter { $0.name != notifyNames[dropped] }
            #expect(Signer.sign(full, kind: .notify, key: key) == Signer.sign(without, kind: .notify, key: key))
            // Under PHP's empty() rule, "0" is dropped too.
            var zeroed = full
            zeroed[dropped].value = "0"
            let php = SigningDialect(emptyValueRule: .phpEmpty)
            #expect(
                Signer.sign(zeroed, kind: .notify, key: key, dialect: php)
                    == Signer.sign(without, kind: .notify, key: key, dialect: php)
            )
        }
    }

    /// Any change to a signed value changes the signature and breaks verification.
    @Test func anyChangeChangesSignature() async {
        await propertyCheck(input: nonEmptyValueGen.array(of: 6), Gen.int(in: 0...5), nonEmptyValueGen) {
            values,
            index,
            suffix in
            let fields = zip(notifyNames, values).map { FormField($0, $1) }
            var changed = fields
            changed[index].value += suffix
            #expect(Signer.sign(fields, kind: .notify, key: key) != Signer.sign(changed, kind: .notify, key: key))
            let signed = fields + [FormField("sign", Signer.sign(fields, kind: .notify, key: key))]
            var tampered = signed
            tampered[index].value =
                String(tampered[index].value.dropLast()) + (tampered[index].value.last == "a" ? "b" : "a")
            #expect(Signer.verify(signed, kind: .notify, key: key) == .valid)
            #expect(Signer.verify(tampered, kind: .notify, key: key) == .mismatch)
        }
    }
}

struct RoundTripProperties {
    /// Every fen amount formats to text that parses back to the same fen.
    @Test func orderAmountRoundTrip() async {
        await propertyCheck(count: 500, input: Gen.int64(in: 1...100_000_000)) { fen in
            let text = DecimalParser.format(fen, scale: 2, decimals: 2)
            #expect((try? OrderAmount.parse(text, fenMax: 100_000_000).get())?.fen == fen)
            let gateway = DecimalParser.format(fen * 100, scale: 4, decimals: 4)
            let order = try? OrderAmount.parse(text, fenMax: 100_000_000).get()
            #expect(order.flatMap { (try? GatewayAmount.parse(gateway).get())?.equals($0) } == true)
        }
    }

    /// Gateway amounts in ten-thousandths round-trip through their four-decimal text.
    @Test func gatewayAmountRoundTrip() async {
        await propertyCheck(count: 500, input: Gen.int64(in: 0...99_999_999_999)) { units in
            let text = DecimalParser.format(units, scale: 4, decimals: 4)
            #expect((try? GatewayAmount.parse(text).get())?.tenThousandths == units)
        }
    }

    /// Any fields with distinct names encode to a body that decodes to the same fields.
    @Test func formRoundTrip() async {
        await propertyCheck(input: nonEmptyValueGen.array(of: 0...8), valueGen.array(of: 8)) { names, values in
            var seen = Set<String>()
            let unique = names.filter { seen.insert($0).inserted }
            let fields = zip(unique, values).map { FormField($0, $1) }
            let body = FormCoding.encode(fields)
            #expect((try? FormCoding.decode(Array(body.utf8)))?.fields == fields)
        }
    }
}
