import Glibc

/// Counts the transactions this process has open on one environment and lets the map be resized only when that
/// count is zero.
///
/// lmdb.h, mdb_env_set_mapsize: "It may be called at later times if no transactions are active in this process.
/// Note that the library does not check for this condition, the caller must ensure it explicitly." This gate is
/// that explicit check. Every transaction (and every `mdb_env_copy2`, which holds a read transaction) enters the
/// gate before `mdb_txn_begin` and leaves it after the commit or abort. A resize closes the gate to newcomers,
/// waits for the open transactions to drain, then runs with the gate shut.
///
/// It is built on a pthread mutex and condition variable (not `Synchronization.Mutex`) because waiting for the
/// count to drain needs a condition variable with a timeout. Entering and leaving cost one uncontended lock each,
/// which is small next to `mdb_txn_begin`.
final class LMDBTransactionGate: @unchecked Sendable {
    // The mutex and condition are heap allocated so that their addresses never move, as pthreads requires; every
    // stored property below is read and written only with `mutex` held, which is why the class is sound as
    // `@unchecked Sendable`.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var active = 0
    private var exclusive = false
    private var closed = false

    init() {
        self.mutex = .allocate(capacity: 1)
        self.condition = .allocate(capacity: 1)
        pthread_mutex_init(self.mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        // Timeouts are measured on the monotonic clock so that a wall-clock step cannot stretch or cut them.
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(self.condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(self.condition)
        pthread_mutex_destroy(self.mutex)
        self.condition.deallocate()
        self.mutex.deallocate()
    }

    /// The number of transactions open right now.
    var activeCount: Int {
        pthread_mutex_lock(self.mutex)
        defer { pthread_mutex_unlock(self.mutex) }
        return self.active
    }

    /// Registers one more open transaction, waiting while a resize runs; throws once the environment is closed.
    func enter(_ operation: @autoclosure () -> String) throws(LMDBError) {
        pthread_mutex_lock(self.mutex)
        defer { pthread_mutex_unlock(self.mutex) }
        while self.exclusive && !self.closed {
            pthread_cond_wait(self.condition, self.mutex)
        }
        if self.closed {
            throw LMDBError.environmentClosed(
                operation: operation(),
                detail: "The LMDB environment has been closed, so no transaction may begin."
            )
        }
        self.active += 1
    }

    /// Unregisters a transaction that `enter` registered, waking a resize that waits for the count to drain.
    func leave() {
        pthread_mutex_lock(self.mutex)
        self.active -= 1
        let wake = self.active == 0 && self.exclusive
        pthread_mutex_unlock(self.mutex)
        if wake {
            pthread_cond_broadcast(self.condition)
        }
    }

    /// Runs `body` with no transaction open in this process and none able to begin until it returns.
    ///
    /// Waits at most `timeout` for the open transactions to finish (nil waits for ever). A thread that calls this
    /// from inside one of its own transactions would wait for itself, so the timeout is what turns that mistake
    /// into an error instead of a hang.
    func exclusively<T>(
        timeout: Duration?,
        operation: String,
        _ body: () throws(LMDBError) -> T
    ) throws(LMDBError) -> T {
        pthread_mutex_lock(self.mutex)
        defer { pthread_mutex_unlock(self.mutex) }
        // Only one resize (or close) at a time; a second waits for the first like a transaction would.
        while self.exclusive && !self.closed {
            pthread_cond_wait(self.condition, self.mutex)
        }
        if self.closed {
            throw LMDBError.environmentClosed(operation: operation, detail: "The LMDB environment has been closed.")
        }
        self.exclusive = true
        defer {
            self.exclusive = false
            pthread_cond_broadcast(self.condition)
        }
        let deadline = timeout.map { Self.monotonicDeadline(after: $0) }
        while self.active > 0 {
            if var deadline {
                if pthread_cond_timedwait(self.condition, self.mutex, &deadline) == ETIMEDOUT && self.active > 0 {
                    throw LMDBError(
                        code: .busy,
                        operation: operation,
                        detail: """
                            \(self.active) transaction(s) of this process stayed open for longer than \(timeout!), \
                            and LMDB allows the map to be resized only when none is open; a long read, a backup, \
                            or a resize requested from inside a transaction holds them.
                            """
                    )
                }
            } else {
                pthread_cond_wait(self.condition, self.mutex)
            }
        }
        return try body()
    }

    /// Waits for the open transactions to finish and refuses every later one.
    ///
    /// Returns false if the gate was already closed, so that closing twice is harmless.
    func close() -> Bool {
        pthread_mutex_lock(self.mutex)
        defer { pthread_mutex_unlock(self.mutex) }
        while self.exclusive && !self.closed {
            pthread_cond_wait(self.condition, self.mutex)
        }
        if self.closed { return false }
        self.exclusive = true
        while self.active > 0 {
            pthread_cond_wait(self.condition, self.mutex)
        }
        self.closed = true
        self.exclusive = false
        pthread_cond_broadcast(self.condition)
        return true
    }

    private static func monotonicDeadline(after duration: Duration) -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let (seconds, attoseconds) = duration.components
        var nanoseconds = Int(now.tv_nsec) + Int(attoseconds / 1_000_000_000)
        var wholeSeconds = Int(now.tv_sec) + Int(seconds)
        if nanoseconds >= 1_000_000_000 {
            nanoseconds -= 1_000_000_000
            wholeSeconds += 1
        }
        return timespec(tv_sec: wholeSeconds, tv_nsec: nanoseconds)
    }
}
