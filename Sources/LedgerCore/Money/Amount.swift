/// Why an amount string was refused. Each case is an ordinary outcome with a full-sentence description, never a
/// crash: amounts arrive from merchants' shop code and from the internet.
public enum AmountRejection: Error, Sendable, Hashable, CustomStringConvertible {
    case empty
    case tooLong(bytesMax: Int)
    case hasSign
    case hasSpace
    case hasExponent
    case notADecimal
    case leadingZero
    case tooManyDecimals(decimalsMax: Int)
    case notPositive
    case exceedsMaximum(maximum: String)

    public var description: String {
        switch self {
        case .empty:
            return "The amount is empty; it must be a decimal number of yuan such as 12.50."
        case .tooLong(let bytesMax):
            return "The amount is longer than \(bytesMax) characters."
        case .hasSign:
            return "The amount has a sign; it must be written without '+' or '-'."
        case .hasSpace:
            return "The amount contains white space; it must be digits and at most one '.' only."
        case .hasExponent:
            return "The amount uses an exponent; it must be written out in plain decimal digits."
        case .notADecimal:
            return "The amount is not a decimal number; it must be digits with at most one '.' between digits."
        case .leadingZero:
            return "The amount has a leading zero; write 5.00 rather than 05.00 so the signed text is canonical."
        case .tooManyDecimals(let decimalsMax):
            return "The amount has more than \(decimalsMax) decimal places."
        case .notPositive:
            return "The amount is zero; an order must be for a positive amount."
        case .exceedsMaximum(let maximum):
            return "The amount is above the configured maximum of \(maximum) yuan."
        }
    }
}

/// A decimal amount of yuan held as an exact integer count of a fixed minor unit.
///
/// Parsing never touches floating point: the digits are accumulated into an `Int64`, so `0.1 + 0.2` problems
/// cannot arise and two amounts compare exactly.
enum DecimalParser {
    struct Parsed {
        /// The amount scaled to `scale` decimal places.
        var scaled: Int64
    }

    /// Parses `text` as plain decimal digits with at most `decimalsMax` decimals and scales it to `scale` places.
    ///
    /// The grammar is `digits ["." digits]`. Everything else is refused with the most specific reason, so a
    /// merchant who writes `1e3` hears about exponents and one who writes `-1` hears about signs.
    static func parse(
        _ text: String,
        decimalsMax: Int,
        scale: Int,
        allowLeadingZeros: Bool,
        bytesMax: Int = 24
    ) -> Result<Parsed, AmountRejection> {
        precondition(decimalsMax <= scale, "a parser cannot keep more decimals than its scale")
        // One pass over the UTF-8 view, no allocation: this runs for every callback a rebuild replays.
        let utf8 = text.utf8
        if utf8.isEmpty { return .failure(.empty) }
        if utf8.count > bytesMax { return .failure(.tooLong(bytesMax: bytesMax)) }
        var integerCount = 0
        var significantIntegers = 0
        var fractionCount = 0
        var seenPoint = false
        var leadingZero = false
        var integerValue: Int64 = 0
        var fractionValue: Int64 = 0
        var shape: AmountRejection?
        // Classify the most telling fault first: sign, space, exponent, then general shape.
        var sign = false
        var space = false
        var exponent = false
        var nonASCII = false
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                let digit = Int64(byte - UInt8(ascii: "0"))
                if seenPoint {
                    fractionCount += 1
                    if fractionCount <= scale { fractionValue = fractionValue * 10 + digit }
                } else {
                    if integerCount == 0 && digit == 0 { leadingZero = true }
                    integerCount += 1
                    if significantIntegers > 0 || digit != 0 {
                        significantIntegers += 1
                        if significantIntegers <= 18 { integerValue = integerValue * 10 + digit }
                    }
                }
            case UInt8(ascii: "."):
                if seenPoint { shape = .notADecimal }
                seenPoint = true
            case UInt8(ascii: "+"), UInt8(ascii: "-"): sign = true
            case 0x20, 0x09, 0x0A, 0x0D: space = true
            case UInt8(ascii: "e"), UInt8(ascii: "E"): exponent = true
            default:
                if byte >= 0x80 { nonASCII = true }
                shape = .notADecimal
            }
        }
        if sign { return .failure(.hasSign) }
        // Bytes at or above 0x80 include non-breaking and full-width spaces; none can be part of an amount.
        if nonASCII { return .failure(.notADecimal) }
        if space { return .failure(.hasSpace) }
        if exponent { return .failure(.hasExponent) }
        if let shape { return .failure(shape) }
        if integerCount == 0 || (seenPoint && fractionCount == 0) { return .failure(.notADecimal) }
        if !allowLeadingZeros && integerCount > 1 && leadingZero { return .failure(.leadingZero) }
        if fractionCount > decimalsMax { return .failure(.tooManyDecimals(decimalsMax: decimalsMax)) }
        // More than 18 digits in all could overflow Int64; no real amount comes near, so refuse before computing.
        if max(significantIntegers, 1) + scale > 18 {
            return .failure(.exceedsMaximum(maximum: String(repeating: "9", count: 18 - scale)))
        }
        var value = integerValue
        for _ in 0..<scale { value *= 10 }
        var fraction = fractionValue
        for _ in fractionCount..<max(fractionCount, scale) { fraction *= 10 }
        return .success(Parsed(scaled: value + fraction))
    }

    /// Formats `scaled` (an integer count of 10^-scale units) with exactly `decimals` decimals.
    static func format(_ scaled: Int64, scale: Int, decimals: Int) -> String {
        precondition(decimals <= scale)
        var divisor: Int64 = 1
        for _ in 0..<scale { divisor *= 10 }
        let whole = scaled / divisor
        var fraction = scaled % divisor
        for _ in 0..<(scale - decimals) { fraction /= 10 }
        if decimals == 0 { return String(whole) }
        var fractionText = String(fraction)
        while fractionText.count < decimals { fractionText = "0" + fractionText }
        return "\(whole).\(fractionText)"
    }
}

/// The amount of an order, as the merchant sends it to the gateway: positive yuan with at most two decimals.
///
/// `text` is the exact string that is signed and sent as `pay_amount`; `fen` is its exact value in fen
/// (hundredths of a yuan). The two never disagree because `text` is only ever the string `fen` was parsed from.
public struct OrderAmount: Sendable, Hashable, CustomStringConvertible {
    /// The exact value in fen.
    public let fen: Int64
    /// The exact text that is signed and sent to the gateway.
    public let text: String

    /// Two decimals: the gateway's order amounts are yuan with fen precision.
    public static let decimalsMax = 2

    /// Parses an order amount: positive, at most two decimals, no exponent, no sign, no spaces, no leading zero,
    /// at most `fenMax` fen.
    public static func parse(_ text: String, fenMax: Int64) -> Result<OrderAmount, AmountRejection> {
        switch DecimalParser.parse(text, decimalsMax: Self.decimalsMax, scale: 2, allowLeadingZeros: false) {
        case .failure(.exceedsMaximum):
            return .failure(.exceedsMaximum(maximum: DecimalParser.format(fenMax, scale: 2, decimals: 2)))
        case .failure(let rejection):
            return .failure(rejection)
        case .success(let parsed):
            if parsed.scaled <= 0 { return .failure(.notPositive) }
            if parsed.scaled > fenMax {
                return .failure(.exceedsMaximum(maximum: DecimalParser.format(fenMax, scale: 2, decimals: 2)))
            }
            return .success(OrderAmount(uncheckedFen: parsed.scaled, text: text))
        }
    }

    /// Creates an amount from a value already known to be valid, such as one decoded from the ledger.
    init(uncheckedFen fen: Int64, text: String) {
        self.fen = fen
        self.text = text
    }

    /// The amount as the gateway's minor unit, for exact comparison with gateway amounts.
    public var tenThousandths: Int64 { self.fen * 100 }

    public var description: String { self.text }
}

/// An amount the gateway reports in a notification or a query reply.
///
/// Deployments print the stored decimal column, so `1.00` arrives as `1.0000`: up to four decimals, compared with
/// the order as exact values (`100.0000` equals `100.00`; `100.0001` does not).
public struct GatewayAmount: Sendable, Hashable, CustomStringConvertible {
    /// The exact value in ten-thousandths of a yuan.
    public let tenThousandths: Int64
    /// The text exactly as received.
    public let text: String

    /// Four decimals: the widest that deployments print.
    public static let decimalsMax = 4

    /// Parses a gateway amount. Leading zeros and zero are accepted (they are facts to record, not ours to
    /// refuse); signs, exponents, spaces and more than four decimals are refused.
    public static func parse(_ text: String) -> Result<GatewayAmount, AmountRejection> {
        switch DecimalParser.parse(text, decimalsMax: Self.decimalsMax, scale: 4, allowLeadingZeros: true) {
        case .failure(let rejection):
            return .failure(rejection)
        case .success(let parsed):
            return .success(GatewayAmount(tenThousandths: parsed.scaled, text: text))
        }
    }

    /// Whether this amount is exactly the order's amount.
    public func equals(_ order: OrderAmount) -> Bool {
        self.tenThousandths == order.tenThousandths
    }

    /// The amount written with four decimals, whatever the received text looked like.
    public var normalized: String { DecimalParser.format(self.tenThousandths, scale: 4, decimals: 4) }

    public var description: String { self.text }
}
