import LedgerTesting
import Testing

@testable import LedgerCore

struct MoneyTests {
    static let fenMax: Int64 = 100_000_000

    /// Valid order amounts parse to exact fen and keep their text.
    @Test(
        arguments: [
            ("0.01", 1), ("1", 100), ("100", 10_000), ("12.5", 1250), ("12.50", 1250), ("0.10", 10),
            ("999999.99", 99_999_999), ("1000000", 100_000_000),
        ] as [(String, Int64)]
    )
    func orderAmountParses(_ text: String, _ fen: Int64) throws {
        let amount = try OrderAmount.parse(text, fenMax: Self.fenMax).get()
        #expect(amount.fen == fen)
        #expect(amount.text == text)
    }

    /// Invalid order amounts are refused with the specific named reason.
    @Test(
        arguments: [
            ("", AmountRejection.empty), ("-1", .hasSign), ("+1", .hasSign), (" 1", .hasSpace), ("1 ", .hasSpace),
            ("1e3", .hasExponent), ("1E3", .hasExponent), ("0.001", .tooManyDecimals(decimalsMax: 2)),
            ("0", .notPositive), ("0.00", .notPositive), ("01.00", .leadingZero), ("1.", .notADecimal),
            (".5", .notADecimal), ("1.2.3", .notADecimal), ("1,00", .notADecimal), ("abc", .notADecimal),
            ("１", .notADecimal), ("1000000.01", .exceedsMaximum(maximum: "1000000.00")),
            (String(repeating: "9", count: 25), .tooLong(bytesMax: 24)),
            ("9999999999999999", .exceedsMaximum(maximum: "1000000.00")),
            ("99999999999999999999", .exceedsMaximum(maximum: "1000000.00")),
            ("NaN", .notADecimal), ("0x10", .notADecimal),
        ] as [(String, AmountRejection)]
    )
    func orderAmountRefused(_ text: String, _ rejection: AmountRejection) {
        #expect(OrderAmount.parse(text, fenMax: Self.fenMax) == .failure(rejection))
    }

    /// Every rejection has a full-sentence message.
    @Test func rejectionMessages() {
        let all: [AmountRejection] = [
            .empty, .tooLong(bytesMax: 24), .hasSign, .hasSpace, .hasExponent, .notADecimal, .leadingZero,
            .tooManyDecimals(decimalsMax: 2), .notPositive, .exceedsMaximum(maximum: "1.00"),
        ]
        for rejection in all {
            #expect(rejection.description.hasPrefix("The amount"))
            #expect(rejection.description.hasSuffix("."))
        }
    }

    /// Gateway amounts compare with orders as exact values: 100.0000 equals 100.00, 100.0001 does not.
    @Test func gatewayAmountsCompareExactly() throws {
        let order = try OrderAmount.parse("100.00", fenMax: Self.fenMax).get()
        #expect(try GatewayAmount.parse("100.0000").get().equals(order))
        #expect(try GatewayAmount.parse("100").get().equals(order))
        #expect(try GatewayAmount.parse("100.0").get().equals(order))
        #expect(try GatewayAmount.parse("0100.00").get().equals(order))
        #expect(!(try GatewayAmount.parse("100.0001").get().equals(order)))
        #expect(!(try GatewayAmount.parse("99.9999").get().equals(order)))
        let cent = try OrderAmount.parse("0.01", fenMax: Self.fenMax).get()
        #expect(try GatewayAmount.parse("0.0100").get().equals(cent))
        #expect(!(try GatewayAmount.parse("0.1").get().equals(cent)))
    }

    /// Gateway amounts refuse signs, exponents and a fifth decimal, and normalize to four decimals.
    @Test func gatewayAmountRules() throws {
        #expect(GatewayAmount.parse("1e3") == .failure(.hasExponent))
        #expect(GatewayAmount.parse("-1") == .failure(.hasSign))
        #expect(GatewayAmount.parse("1.00001") == .failure(.tooManyDecimals(decimalsMax: 4)))
        #expect(GatewayAmount.parse("") == .failure(.empty))
        #expect(GatewayAmount.parse("999999999999999") == .failure(.exceedsMaximum(maximum: "99999999999999")))
        #expect(try GatewayAmount.parse("99999999999999").get().tenThousandths == 999_999_999_999_990_000)
        #expect(try GatewayAmount.parse("0").get().tenThousandths == 0)
        #expect(try GatewayAmount.parse("1.5").get().normalized == "1.5000")
        #expect(try GatewayAmount.parse("12.3456").get().tenThousandths == 123_456)
    }

    /// Formatting fen back to text with two decimals inverts parsing.
    @Test func formatInvertsParse() throws {
        for fen in [1, 9, 10, 99, 100, 101, 12_345, 100_000_000] as [Int64] {
            let text = DecimalParser.format(fen, scale: 2, decimals: 2)
            #expect(try OrderAmount.parse(text, fenMax: Self.fenMax).get().fen == fen)
        }
    }
}
