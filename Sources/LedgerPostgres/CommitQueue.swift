import LedgerStore

/// The group-commit queue of one store, as a value-type state machine: it decides, the store carries out.
///
/// Appends wait here while a transaction is in flight; when it finishes, every waiting append (up to the batch
/// limits) goes into the next transaction. So each daemon commits one transaction at a time and throughput grows
/// with concurrency, while the advisory lock taken inside each transaction orders the daemons among themselves.
struct CommitQueue<Job: CommitQueueJob> {
    struct Limits: Sendable, Hashable {
        /// Appends per transaction (`store.batchCountMax`); 1 turns group commit off.
        var batchCountMax: Int
        /// Estimated bytes per transaction (`store.batchBytesMax`).
        var batchBytesMax: Int
        /// Appends waiting at once (`store.queueDepthMax`); beyond it an append fails fast as busy.
        var queueDepthMax: Int
    }

    enum State: Hashable {
        /// Nothing in flight.
        case idle
        /// One transaction in flight; `queue` waits for the next.
        case committing
        /// Closing: refuses new appends, finishes the queue, then is closed.
        case draining
        case closed
    }

    enum EnqueueAction {
        /// Start a transaction with this batch now (the queue was idle).
        case commit([Job])
        /// Queued behind the transaction in flight.
        case queued
        /// Refused: resume the append with this error.
        case reject(Job, StoreError)
    }

    enum FinishAction {
        /// Start the next transaction with this batch.
        case commit([Job])
        /// Nothing waits.
        case idle
        /// The queue drained after `close`: the store may release its connections.
        case closed
    }

    enum CloseAction: Hashable {
        /// Nothing was in flight: closed at once.
        case closed
        /// Wait for the transaction in flight and the queue to finish (`FinishAction.closed`).
        case waitForDrain
        /// Already closing or closed.
        case alreadyClosing
    }

    private(set) var state: State = .idle
    private var queue: [Job] = []
    private var queueStart = 0
    let limits: Limits

    init(limits: Limits) {
        self.limits = limits
    }

    var waiting: Int { self.queue.count - self.queueStart }

    mutating func enqueue(_ job: Job) -> EnqueueAction {
        switch self.state {
        case .draining, .closed:
            return .reject(job, StoreError(.closed, "The ledger store is closed."))
        case .idle:
            self.state = .committing
            return .commit([job])
        case .committing:
            guard self.waiting < self.limits.queueDepthMax else {
                return .reject(
                    job,
                    StoreError(
                        .busy,
                        "The ledger's write queue holds \(self.limits.queueDepthMax) appends (store.queueDepthMax); try again."
                    )
                )
            }
            self.queue.append(job)
            return .queued
        }
    }

    /// The transaction in flight finished (committed or failed; the store has answered its jobs).
    mutating func finished() -> FinishAction {
        switch self.state {
        case .idle, .closed:
            preconditionFailure("CommitQueue.finished() without a transaction in flight (state \(self.state)).")
        case .committing, .draining:
            if let batch = self.takeBatch() { return .commit(batch) }
            if self.state == .draining {
                self.state = .closed
                return .closed
            }
            self.state = .idle
            return .idle
        }
    }

    mutating func close() -> CloseAction {
        switch self.state {
        case .idle:
            self.state = .closed
            return .closed
        case .committing:
            self.state = .draining
            return .waitForDrain
        case .draining, .closed:
            return .alreadyClosing
        }
    }

    /// Takes the longest prefix of the queue within the batch limits; at least one job when any waits.
    private mutating func takeBatch() -> [Job]? {
        guard self.waiting > 0 else { return nil }
        var batch: [Job] = []
        var bytes = 0
        while self.queueStart < self.queue.count {
            let job = self.queue[self.queueStart]
            let weight = job.estimatedBytes
            if !batch.isEmpty
                && (batch.count >= self.limits.batchCountMax || bytes + weight > self.limits.batchBytesMax)
            {
                break
            }
            batch.append(job)
            bytes += weight
            self.queueStart += 1
        }
        // Compact once the consumed prefix dominates, so the array does not grow without bound under load.
        if self.queueStart == self.queue.count {
            self.queue.removeAll(keepingCapacity: true)
            self.queueStart = 0
        } else if self.queueStart > 1024 && self.queueStart * 2 > self.queue.count {
            self.queue.removeFirst(self.queueStart)
            self.queueStart = 0
        }
        return batch
    }
}

/// What the queue needs to know of a job to bound a batch by bytes.
protocol CommitQueueJob {
    var estimatedBytes: Int { get }
}
