/// Why a signature did not verify, in terms a merchant can act on.
///
/// Signature mismatches nobody can explain are the most common integration problem with this gateway: deployments
/// differ in which values count as empty, which fields are signed, how pairs are joined and the case of the hex.
/// The diagnosis recomputes the signature under every known variant and reports which would have matched.
///
/// The expected signature is part of the diagnosis because `ledgerctl sign --verify` is the merchant's own tool
/// with the merchant's own key; the daemon must never send it to a peer or log it, as it would hand a forger an
/// oracle.
public struct SignatureDiagnosis: Sendable, Hashable {
    /// One variant under which the received signature verifies.
    public struct Match: Sendable, Hashable {
        public let recipe: SigningRecipe
        /// The canonical string under that variant, key masked.
        public let canonicalMasked: String
        /// The received signature was lowercase hex.
        public let lowercase: Bool
        /// What differs from the dialect in force, one full sentence each, with the setting that accepts it.
        public let differences: [String]
    }

    public let kind: GatewayMessageKind
    public let dialect: SigningDialect
    public let verdict: SignatureVerdict
    /// The canonical string under the dialect in force, with the key masked.
    public let canonicalMasked: String
    /// The signature the dialect in force expects.
    public let expected: String
    /// The signature that was received, if any.
    public let received: String?
    /// Variants that would have verified, simplest explanation first. Empty when none does.
    public let matches: [Match]
    /// Further observations about the fields when nothing matched.
    public let hints: [String]

    /// A multi-line report for people.
    public var report: String {
        var lines: [String] = []
        lines.append("message: \(self.kind.rawValue)")
        lines.append("dialect: \(self.dialect)")
        lines.append("canonical: \(self.canonicalMasked)")
        lines.append("expected: \(self.expected)")
        lines.append("received: \(self.received ?? "(none)")")
        lines.append("verdict: \(self.verdict.rawValue)")
        if self.verdict == .valid { return lines.joined(separator: "\n") }
        if self.matches.isEmpty {
            lines.append("No known variant of the algorithm matches the received signature.")
            lines.append(contentsOf: self.hints)
        } else {
            for (index, match) in self.matches.enumerated() {
                lines.append("variant \(index + 1) matches (\(match.recipe)):")
                lines.append("  canonical: \(match.canonicalMasked)")
                for difference in match.differences { lines.append("  - \(difference)") }
            }
        }
        return lines.joined(separator: "\n")
    }
}

extension Signer {
    /// Diagnoses the signature carried in `fields`.
    public static func diagnose(
        _ fields: some Collection<FormField>,
        kind: GatewayMessageKind,
        key: MerchantKey,
        dialect: SigningDialect = .document
    ) -> SignatureDiagnosis {
        let inForce = SigningRecipe(dialect, for: kind)
        let canonical = Self.canonical(fields, kind: kind, recipe: inForce)
        let expected = canonical.signature(key: key)
        let received = fields.first(where: { $0.name == kind.signatureField })?.value
        let verdict = Self.verify(fields, kind: kind, key: key, dialect: dialect)

        var matches: [SignatureDiagnosis.Match] = []
        var hints: [String] = []
        if verdict != .valid, let received, let normalized = Self.normalizedSignature(received, acceptLowercase: true) {
            let lowercase = received.utf8.contains(where: { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "f") })
            for selection in SignedFieldSelection.allCases {
                for rule in EmptyValueRule.allCases {
                    for joiner in PairJoiner.allCases {
                        let recipe = SigningRecipe(selection: selection, emptyValueRule: rule, joiner: joiner)
                        let candidateCanonical = Self.canonical(fields, kind: kind, recipe: recipe)
                        let candidate = candidateCanonical.signature(key: key)
                        guard Self.constantTimeEquals(Array(candidate.utf8), normalized) else { continue }
                        let differences = Self.differences(
                            recipe,
                            from: inForce,
                            lowercase: lowercase && !dialect.acceptLowercaseHex,
                            kind: kind
                        )
                        if differences.isEmpty { continue }
                        matches.append(
                            .init(
                                recipe: recipe,
                                canonicalMasked: candidateCanonical.masked,
                                lowercase: lowercase,
                                differences: differences
                            )
                        )
                    }
                }
            }
            // Two variants can match at once when they select the same pairs (no "0" values, no attach): the one
            // with the fewest changes is the likeliest explanation.
            // Variants that build the same string are one explanation: keep the simplest of each.
            matches.sort { $0.differences.count < $1.differences.count }
            var seen = Set<String>()
            matches = matches.filter { seen.insert($0.canonicalMasked).inserted }
        }
        if verdict != .valid && matches.isEmpty {
            hints = Self.hints(fields, kind: kind, received: received)
        }
        return SignatureDiagnosis(
            kind: kind,
            dialect: dialect,
            verdict: verdict,
            canonicalMasked: canonical.masked,
            expected: expected,
            received: received,
            matches: matches,
            hints: hints
        )
    }

    private static func differences(
        _ recipe: SigningRecipe,
        from inForce: SigningRecipe,
        lowercase: Bool,
        kind: GatewayMessageKind
    ) -> [String] {
        var out: [String] = []
        if recipe.emptyValueRule != inForce.emptyValueRule {
            switch recipe.emptyValueRule {
            case .phpEmpty:
                out.append(
                    "The sender leaves out values that are \"0\" as PHP's empty() does; set signing.emptyValueRule = php-empty."
                )
            case .emptyString:
                out.append(
                    "The sender keeps values that are \"0\" (only empty strings are left out); set signing.emptyValueRule = empty-string."
                )
            }
        }
        if recipe.selection != inForce.selection {
            let settable = kind == .notify
            switch recipe.selection {
            case .documented:
                out.append(
                    "The sender signs only the documented fields"
                        + (settable ? "; set signing.notificationFieldSet = documented." : ".")
                )
            case .documentedWithAttach:
                out.append(
                    "The sender signs the attach field too, which the document says is not signed; no setting accepts this, ask the platform to follow the document."
                )
            case .allReceived:
                out.append(
                    "The sender signs every non-empty field it sends except sign and attach"
                        + (settable
                            ? "; set signing.notificationFieldSet = all-received."
                            : ", which the document does not do for this message; no setting accepts this.")
                )
            case .allReceivedWithAttach:
                out.append(
                    "The sender signs every non-empty field it sends, attach included; no setting accepts this, ask the platform to follow the document."
                )
            }
        }
        if recipe.joiner != inForce.joiner {
            out.append(
                "The sender joins names and values with '=>' instead of '=' (a known bug in cloned PHP deployments); no setting accepts this, ask the platform to fix it."
            )
        }
        if lowercase {
            out.append("The signature is lowercase hexadecimal; set signing.acceptLowercaseHex = true to accept it.")
        }
        return out
    }

    private static func hints(
        _ fields: some Collection<FormField>,
        kind: GatewayMessageKind,
        received: String?
    ) -> [String] {
        var hints: [String] = []
        guard let received, !received.isEmpty else {
            return ["The message carries no \(kind.signatureField) field."]
        }
        if received.utf8.count != 32 {
            hints.append(
                "The signature has \(received.utf8.count) characters; an MD5 signature has 32 hexadecimal digits."
            )
        } else if Self.normalizedSignature(received, acceptLowercase: true) == nil {
            hints.append("The signature contains characters that are not hexadecimal digits.")
        }
        let present = Set(fields.map(\.name))
        let missing = kind.documentedSignedFields.filter { !present.contains($0) }
        if !missing.isEmpty {
            hints.append("Signed fields are missing: \(missing.joined(separator: ", ")).")
        }
        for field in fields where field.name != kind.signatureField {
            if GatewayValidation.reservedCharacter(in: field.value) != nil {
                hints.append(
                    "The value of \(field.name) contains '&', '=', '%' or '+', which the gateway does not URL-encode; it may have been changed on the way."
                )
            }
            if field.value.utf8.first == 0x20 || field.value.utf8.last == 0x20 {
                hints.append(
                    "The value of \(field.name) begins or ends with a space: a '+' sent without URL encoding arrives as a space."
                )
            }
        }
        hints.append("Otherwise the key is most likely not the one the sender used, or a signed value was altered.")
        return hints
    }
}

extension SignatureDiagnosis {
    /// The diagnosis in one line, for the daemon's log: the settings under which the received signature verifies
    /// ("matches under signing.emptyValueRule=php-empty"), or that no known variant does. It never carries the
    /// expected signature or a canonical string, which would hand whoever can read the log a signing oracle.
    public var summary: String {
        if self.verdict == .valid { return "verifies under the dialect in force" }
        guard let match = self.matches.first else { return "matches no known dialect" }
        let inForce = SigningRecipe(self.dialect, for: self.kind)
        var settings: [String] = []
        if match.recipe.emptyValueRule != inForce.emptyValueRule {
            settings.append("signing.emptyValueRule=\(match.recipe.emptyValueRule.rawValue)")
        }
        if match.recipe.selection != inForce.selection {
            switch match.recipe.selection {
            case .documented where self.kind == .notify:
                settings.append("signing.notificationFieldSet=\(NotificationFieldSet.documented.rawValue)")
            case .allReceived where self.kind == .notify:
                settings.append("signing.notificationFieldSet=\(NotificationFieldSet.allReceived.rawValue)")
            case .documented, .documentedWithAttach, .allReceived, .allReceivedWithAttach:
                settings.append("signed fields \(match.recipe.selection.rawValue) (no setting accepts it)")
            }
        }
        if match.recipe.joiner != inForce.joiner {
            settings.append("pairs joined with '\(match.recipe.joiner.rawValue)' (no setting accepts it)")
        }
        if match.lowercase && !self.dialect.acceptLowercaseHex { settings.append("signing.acceptLowercaseHex=true") }
        return "matches under " + settings.joined(separator: ", ")
    }

    /// The sentences behind `summary`: what differs from the dialect in force, or the hints when nothing matches.
    public var explanation: String {
        (self.matches.first?.differences ?? self.hints).joined(separator: " ")
    }
}
