import LedgerCore

/// X-Forwarded-For from a peer that is no trusted proxy (the fault suite's daemon trusts none): the header is
/// ignored, whatever it holds, and the notification is answered as it would be without it. The address the ledger
/// records for such a request is checked in the daemon's tests (`ObservabilityTests`), where it can be read.
extension BadInputCorpus {
    static let observeCases: [CorpusCase] = [
        CorpusCase(
            "valid notification with a spoofed X-Forwarded-For",
            .notifyWithHeaders(
                Self.body("C29"),
                ["Content-Type: application/x-www-form-urlencoded", "X-Forwarded-For: 203.0.113.9, 10.0.0.1"]
            ),
            Self.ok,
            appends: 1,
            after: Aftermath(orderId: "C29", state: "paid")
        ),
        CorpusCase(
            "forged signature with an X-Forwarded-For that is no address list",
            .notifyWithHeaders(
                Self.signed("C30") { _ in String(repeating: "0", count: 32) },
                [
                    "Content-Type: application/x-www-form-urlencoded",
                    "X-Forwarded-For: " + String(repeating: "not-an-address, , [::1]:80, ", count: 100),
                    "X-Forwarded-For: 127.0.0.1",
                ]
            ),
            Self.badSignature,
            appends: 0,
            quarantined: 1,
            after: Aftermath(orderId: "C30", state: "created")
        ),
    ]
}
