public import LedgerStore

/// Why the ledger refused an operation, in stable codes the control protocol maps to its error codes.
public enum LedgerErrorCode: String, Sendable, Hashable {
    case invalidOrder = "invalid-order"
    case orderConflict = "order-conflict"
    case orderNotFound = "order-not-found"
    /// The daemon runs with polling off (`poll.enabled` false, `ledgerd run --no-poll`).
    case pollingOff = "polling-off"
}

/// A refusal of the ledger's: a code the control protocol maps to its answers, a message, the error that caused it
/// (if another did), and where it was raised.
public typealias LedgerError = LocatedError<LedgerErrorCode>
