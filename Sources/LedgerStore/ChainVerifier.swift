public import LedgerCore

/// The checks of `verifyChain`, the same on every store: fed the stored events in log order, it checks sequence
/// continuity, that each event decodes and is the one stored under its sequence, each event's hash and the chain
/// of previous-hashes, and at the end the recorded head. A store only reads its events and hands them over, so a
/// break means the same thing, with the same words, whichever store holds the log.
public struct ChainVerifier {
    /// The sequence the next event must have.
    public private(set) var expected: UInt64 = 1
    /// The first break found; once set, the walk stops.
    public private(set) var firstBreak: ChainReport.Break?
    private var previous = Digest32.zero
    private var reporter: ProgressReporter
    private let recorded: LogHead
    private let started = ContinuousClock.now

    /// A walk of a log whose metadata records `recorded` as its head.
    public init(recorded: LogHead, progress: ProgressHandler?) {
        self.recorded = recorded
        self.reporter = ProgressReporter(phase: "verify", total: recorded.sequence, handler: progress)
    }

    /// Checks the event stored under `sequence`, which `decode` reads from its stored bytes (a `StoreError` it
    /// throws is a corrupted event, with its message as the reason). False when the chain breaks here: the walk
    /// stops, and `firstBreak` says where and why.
    public mutating func check(sequence: UInt64, decode: () throws -> Event) -> Bool {
        guard sequence == self.expected else {
            return self.stop(.sequenceGap(expected: self.expected, found: sequence))
        }
        let event: Event
        do {
            event = try decode()
        } catch let error as StoreError {
            return self.stop(.corrupted(sequence: sequence, reason: error.message))
        } catch {
            return self.stop(.corrupted(sequence: sequence, reason: "\(error)"))
        }
        guard event.sequence == sequence else {
            return self.stop(.corrupted(sequence: sequence, reason: "it says it is event \(event.sequence)"))
        }
        guard event.hashIsValid else { return self.stop(.hashMismatch(sequence: sequence)) }
        guard event.previousHash == self.previous else { return self.stop(.chainMismatch(sequence: sequence)) }
        self.previous = event.hash
        self.expected += 1
        self.reporter.advance(to: sequence)
        return true
    }

    /// Records a break the store found before it had an event to check (a key that is not a sequence number).
    /// Always false, so a store can `return verifier.stop(…)` as it returns from `check`.
    @discardableResult
    public mutating func stop(_ chainBreak: ChainReport.Break) -> Bool {
        self.firstBreak = chainBreak
        return false
    }

    /// The report once the walk has ended: the head the events checked make, and the recorded head compared with
    /// it when nothing broke before.
    public mutating func finish() -> ChainReport {
        let last = LogHead(sequence: self.expected - 1, hash: self.previous)
        if self.firstBreak == nil && last != self.recorded {
            self.firstBreak = .headMismatch(recorded: self.recorded.sequence, last: last.sequence)
        }
        self.reporter.finish()
        return ChainReport(
            eventsChecked: self.expected - 1,
            head: last,
            firstBreak: self.firstBreak,
            seconds: (ContinuousClock.now - self.started).seconds
        )
    }
}
