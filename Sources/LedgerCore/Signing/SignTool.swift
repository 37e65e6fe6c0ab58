/// The behaviour of `ledgerctl sign`, kept out of the executable so it is tested without spawning a process.
public enum SignTool {
    public struct Options: Sendable {
        public var kind: GatewayMessageKind
        public var key: MerchantKey
        public var dialect: SigningDialect
        public var json: Bool
        public var verify: Bool

        public init(kind: GatewayMessageKind, key: MerchantKey, dialect: SigningDialect, json: Bool, verify: Bool) {
            self.kind = kind
            self.key = key
            self.dialect = dialect
            self.json = json
            self.verify = verify
        }
    }

    public struct Output: Sendable, Equatable {
        public var text: String
        /// 0 signed, or verified; 1 did not verify.
        public var exitCode: Int32
    }

    /// Why command-line fields were refused.
    public enum FieldError: Error, Sendable, Equatable, CustomStringConvertible {
        case noEquals(String)
        case emptyName(String)
        case repeated(String)

        public var description: String {
            switch self {
            case .noEquals(let argument): return "'\(argument)' is not FIELD=VALUE."
            case .emptyName(let argument): return "'\(argument)' has an empty field name."
            case .repeated(let name): return "The field \(name) is given twice."
            }
        }
    }

    /// Splits `FIELD=VALUE` arguments at the first `=`, keeping values exactly as given: spaces, `&`, `=` and
    /// Chinese text included.
    public static func parseFields(_ arguments: [String]) throws(FieldError) -> [FormField] {
        var fields: [FormField] = []
        for argument in arguments {
            // The first `=` byte, not the first `=` `Character`: pasted values come from outside, and an `=`
            // joined to a combining mark or a prepend character is still where the gateway's pair splits.
            let bytes = argument.utf8
            guard let equals = bytes.firstIndex(of: UInt8(ascii: "=")) else { throw .noEquals(argument) }
            let name = String(decoding: bytes[..<equals], as: UTF8.self)
            guard !name.isEmpty else { throw .emptyName(argument) }
            guard !fields.contains(where: { $0.name.hasSameBytes(as: name) }) else { throw .repeated(name) }
            fields.append(FormField(name, String(decoding: bytes[bytes.index(after: equals)...], as: UTF8.self)))
        }
        return fields
    }

    public static func run(fields: [FormField], options: Options) -> Output {
        let kind = options.kind
        let canonical = Signer.canonical(fields, kind: kind, dialect: options.dialect)
        let signature = canonical.signature(key: options.key)
        guard options.verify else {
            if options.json {
                let object: JSONValue = .object(["canonical": .string(canonical.masked), "sign": .string(signature)])
                return Output(text: JSONWriter.write(object), exitCode: 0)
            }
            return Output(text: "canonical: \(canonical.masked)\nsign: \(signature)", exitCode: 0)
        }
        let diagnosis = Signer.diagnose(fields, kind: kind, key: options.key, dialect: options.dialect)
        let verified = diagnosis.verdict == .valid
        if options.json {
            let matches: [JSONValue] = diagnosis.matches.map { match in
                .object([
                    "canonical": .string(match.canonicalMasked),
                    "fieldSelection": .string(match.recipe.selection.rawValue),
                    "emptyValueRule": .string(match.recipe.emptyValueRule.rawValue),
                    "joiner": .string(match.recipe.joiner.rawValue),
                    "lowercase": .bool(match.lowercase),
                    "differences": .array(match.differences.map { .string($0) }),
                ])
            }
            let object: JSONValue = .object([
                "canonical": .string(canonical.masked),
                "sign": .string(signature),
                "received": diagnosis.received.map { .string($0) } ?? .null,
                "verdict": .string(diagnosis.verdict.rawValue),
                "verified": .bool(verified),
                "matches": .array(matches),
                "hints": .array(diagnosis.hints.map { .string($0) }),
            ])
            return Output(text: JSONWriter.write(object), exitCode: verified ? 0 : 1)
        }
        return Output(text: diagnosis.report, exitCode: verified ? 0 : 1)
    }
}
