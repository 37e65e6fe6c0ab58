import LedgerTesting
import PropertyBased
import Testing

@testable import LedgerCore

/// Prepend characters (Grapheme_Cluster_Break=Prepend): each joins the character after it into one `Character`.
private let prepends: [Unicode.Scalar] = [
    "\u{0600}", "\u{0601}", "\u{0602}", "\u{0603}", "\u{0604}", "\u{0605}", "\u{06DD}", "\u{070F}", "\u{0890}",
    "\u{08E2}", "\u{0D4E}", "\u{110BD}", "\u{110CD}", "\u{111C2}",
]
/// Extending characters: combining marks, a zero-width joiner, a variation selector, a spacing mark.
private let marks: [Unicode.Scalar] = [
    "\u{0301}", "\u{0300}", "\u{0327}", "\u{036F}", "\u{20D0}", "\u{FE20}", "\u{200D}", "\u{FE0F}", "\u{0903}",
    "\u{1F3FB}",
]
/// Every ASCII character that is not a letter or a digit: the special ones some rule looks for.
private let specials: [Unicode.Scalar] = (0...0x7F).compactMap { value in
    let scalar = Unicode.Scalar(UInt8(value))
    let isAlphanumeric = (0x30...0x39).contains(value) || (0x41...0x5A).contains(value) || (0x61...0x7A).contains(value)
    return isAlphanumeric ? nil : scalar
}
private let plain: [Character] = ["a", "Z", "0", "中", "é", " "]

/// `special` preceded by the given prepend characters and followed by the given marks, inside plain text.
private func disguised(_ special: Unicode.Scalar, before: [Int], after: [Int], around: String) -> String {
    var scalars = String.UnicodeScalarView()
    scalars.append(contentsOf: around.unicodeScalars)
    scalars.append(contentsOf: before.map { prepends[$0] })
    scalars.append(special)
    scalars.append(contentsOf: after.map { marks[$0] })
    scalars.append(contentsOf: around.unicodeScalars)
    return String(scalars)
}

private let prependIndexes = Gen.int(in: 0...(prepends.count - 1)).array(of: 0...3)
private let markIndexes = Gen.int(in: 0...(marks.count - 1)).array(of: 1...3)
private let aroundGen = Gen<Character?>.element(of: plain).map { $0! }.string(of: 0...4)

/// The input bytes back from `HTMLText.escape`'s output, or nil when it holds a raw special or an unknown reference.
private func unescapeHTML(_ text: String) -> [UInt8]? {
    let bytes = Array(text.utf8)
    let references: [(String, UInt8)] = [
        ("&amp;", 0x26), ("&lt;", 0x3C), ("&gt;", 0x3E), ("&quot;", 0x22), ("&#39;", 0x27),
    ]
    var out: [UInt8] = []
    var index = 0
    outer: while index < bytes.count {
        switch bytes[index] {
        case 0x3C, 0x3E, 0x22, 0x27: return nil
        case 0x26:
            for (reference, byte) in references where bytes[index...].starts(with: reference.utf8) {
                out.append(byte)
                index += reference.utf8.count
                continue outer
            }
            return nil
        default:
            out.append(bytes[index])
            index += 1
        }
    }
    return out
}

struct UntrustedTextProperties {
    /// Every special ASCII character is found by each rule that looks for it, whatever prepend characters come
    /// before it and whatever combining marks after it: HTML escaping, reserved characters, order ids, log escaping,
    /// the sign tool's `=` and the acknowledgement test.
    @Test func specialsAreFoundInsideGraphemeClusters() async {
        await propertyCheck(input: prependIndexes, markIndexes, aroundGen) { before, after, around in
            for special in specials {
                let text = disguised(special, before: before, after: after, around: around)

                // HTML: no raw special survives, and the escaping is lossless.
                let escaped = HTMLText.escape(text)
                #expect(unescapeHTML(escaped) == Array(text.utf8), "\(text.unicodeScalars.map(\.value))")

                // Reserved characters: `&`, `=`, `%` and `+` are reported as themselves.
                let reserved: Set<Unicode.Scalar> = ["&", "=", "%", "+"]
                #expect(GatewayValidation.reservedCharacter(in: text) == (reserved.contains(special) ? special : nil))
                #expect(GatewayValidation.hasPairDelimiter(text) == (special == "&" || special == "="))

                // Order ids: never valid with anything outside `[A-Za-z0-9_-]`, let alone marks.
                #expect(!GatewayValidation.isOrderId(text))

                // Log text: no control character survives escaping.
                let logged = LogText.escape(text)
                #expect(!logged.unicodeScalars.contains(where: LogText.needsEscape))
                #expect(!logged.utf8.contains(0x0A) && !logged.utf8.contains(0x0D))

                // The sign tool splits at the first `=` byte.
                if special == "=" {
                    let fields = try? SignTool.parseFields(["name\(text)"])
                    let expectedName = "name" + String(decoding: Array(text.utf8).prefix { $0 != 0x3D }, as: UTF8.self)
                    #expect(fields?.first.map { Array($0.name.utf8) } == Array(expectedName.utf8))
                }
            }
            // "ok" with marks after the `k` still reads as an acknowledgement to a byte-searching gateway.
            let ok = disguised("k", before: [], after: after, around: "o")
            #expect(GatewayAcknowledgement.readsAsAcknowledgement(ok))
        }
    }

    /// A `/` joined to a combining mark still ends a URL's host: a URL with no host is refused.
    @Test func urlHostEndsAtSlashInsideCluster() {
        for mark in marks {
            #expect(GatewayValidation.urlProblem("http:///\(mark)evil.example") == "must name a host")
            #expect(GatewayValidation.urlProblem("http://shop.example/\(mark)x") == nil)
        }
    }
}

struct UntrustedTextTests {
    let key = try! MerchantKey("5uTz8kQe2wR")

    /// The issue's payloads: markup behind U+0600 and before U+0301 is escaped.
    @Test func htmlEscapesIssuePayloads() {
        let product = "Widget\"\u{0301}>\u{0301}\u{0600}<img src=x onerror=alert(document.cookie)>\u{0301}"
        let escaped = HTMLText.escape(product)
        #expect(!Array(escaped.utf8).contains(UInt8(ascii: "<")))
        #expect(!Array(escaped.utf8).contains(UInt8(ascii: "\"")))
        #expect(
            escaped
                == "Widget&quot;\u{0301}&gt;\u{0301}\u{0600}&lt;img src=x onerror=alert(document.cookie)&gt;\u{0301}"
        )
    }

    /// `ledgerctl create --attach $'a\u0600&returncode'` is refused: the `&` is found behind the prepend character.
    @Test func attachWithPrependedAmpersandIsRefused() {
        let settings = GatewaySettings.testing(baseURL: "http://127.0.0.1:9090", publicURL: "http://shop.example.com")
        let order = OrderRequest(
            orderId: "A1",
            amount: "1.00",
            bankCode: "940",
            productName: "p",
            attach: "a\u{0600}&returncode"
        )
        let built = PayRequest.build(
            order,
            settings: settings,
            key: self.key,
            appliedAt: Instant(millisecondsSinceEpoch: 0)
        )
        #expect(built == .failure(.reservedCharacter(field: "pay_attach", character: "&")))
    }

    /// Control characters in log text become visible escapes and backslashes are doubled; printable text and
    /// Chinese stay as they are.
    @Test func logEscaping() {
        #expect(LogText.escape("a\nb\r\tc") == "a\\nb\\r\\tc")
        // Text that spells an escape stays distinguishable from one the escaping wrote.
        #expect(LogText.escape(#"a\nb"#) == #"a\\nb"#)
        #expect(LogText.escape(#"a\nb"#) != LogText.escape("a\nb"))
        #expect(LogText.escape("\u{1B}[2J\u{7F}\u{85}\u{2028}\u{202E}") == "\\u{1B}[2J\\u{7F}\\u{85}\\u{2028}\\u{202E}")
        #expect(LogText.escape("订单 \\n é\u{0301}") == "订单 \\\\n é\u{0301}")
        #expect(LogText.escape("订单 é\u{0301}") == "订单 é\u{0301}")
    }

    /// Only the letters "ok" together, in any case, read as an acknowledgement.
    @Test func acknowledgementReading() {
        for body in ["OK", "ok", "Ok", "oK", "not ok", "bo\u{0301}ok"] {
            #expect(GatewayAcknowledgement.readsAsAcknowledgement(body), "\(body)")
        }
        for body in ["", "o", "k", "o k", "o\u{0301}k", "malformed notification", "bad signature"] {
            #expect(!GatewayAcknowledgement.readsAsAcknowledgement(body), "\(body)")
        }
    }

    /// A policy source is the URL's scheme and authority, without user information; anything else is no origin.
    @Test func origins() {
        #expect(
            GatewayValidation.origin(of: "https://Pay.Example.com:8443/Pay_Index.html")
                == "https://pay.example.com:8443"
        )
        #expect(GatewayValidation.origin(of: "http://user:pw@127.0.0.1:9/x") == "http://127.0.0.1:9")
        #expect(GatewayValidation.origin(of: "http://[::1]:9/") == "http://[::1]:9")
        #expect(GatewayValidation.origin(of: "http://a.example;script-src *") == nil)
        #expect(GatewayValidation.origin(of: "ftp://a.example/") == nil)
    }

    /// Field names are compared as bytes: U+212A KELVIN SIGN is canonically equivalent to `K` but is another name.
    @Test func formNamesCompareAsBytes() throws {
        let fields = try FormCoding.decode(Array("K=1&%E2%84%AA=2".utf8))
        #expect(fields.count == 2)
        #expect(fields["K"] == "1")
        #expect(fields["\u{212A}"] == "2")
    }
}
