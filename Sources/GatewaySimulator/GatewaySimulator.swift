import AsyncHTTPClient
import Hummingbird
import LedgerCore
// A faithful fake of the aggregated-payment gateway, for tests, benchmarks and the demo.
public import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Synchronization

/// A fake of the aggregated-payment gateway on loopback: `Pay_Index.html` and `Pay_Trade_query.html` as real
/// deployments answer them, notifications sent the way deployments send them, and fault injection for both.
///
/// Start it with ``run()`` from a task (cancel the task to stop it), wait for ``waitUntilListening()``, then drive
/// it: submit orders through its `Pay_Index.html`, ``pay(_:faults:)`` them, inspect ``orders()``. Every notification
/// is delivered by a task inside ``run()``, so nothing the simulator starts outlives it.
public final class GatewaySimulator: Sendable {
    public let configuration: SimulatorConfiguration
    let logger: Logger
    let state: SimulatorState
    /// The HTTP client of the current run, for ``postRawNotification(to:body:)``; nil unless running.
    let client = Mutex<HTTPClient?>(nil)
    /// Set when run() is cancelled, so a query held by the timeout fault lets go and graceful shutdown is prompt.
    let shuttingDown = Mutex(false)

    public init(configuration: SimulatorConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.state = SimulatorState(seed: configuration.seed, faultRates: configuration.faultRates)
    }

    /// Binds and serves until the calling task is cancelled, which shuts the server down gracefully and stops every
    /// notification still being delivered. A simulator runs once. Throws when the configuration is invalid or the
    /// address cannot be bound (``waitUntilListening()`` then throws too).
    public func run() async throws {
        let problems = self.configuration.validate()
        if !problems.isEmpty {
            await self.state.didStop(reason: "invalid configuration")
            throw SimulatorError.invalidConfiguration(problems)
        }
        let (jobs, jobsContinuation) = AsyncStream.makeStream(of: NotificationJob.self)
        try await self.state.start(jobs: jobsContinuation)

        // Our own client: deployments post with curl, which neither follows redirects nor keeps cookies.
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
        self.client.withLock { $0 = client }
        let application = self.makeApplication()

        // The server runs in its own service group, shut down gracefully when run() is cancelled: cancelling a
        // Hummingbird server while a connection is being accepted trips a precondition in NIO's async channel
        // ("Deinited NIOAsyncWriter without calling finish()"), and a graceful shutdown also lets replies in flight
        // finish. The group's task is unstructured only so that run()'s cancellation does not reach it directly;
        // run() always awaits it, so it never outlives run().
        let serviceGroup = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: [application], logger: self.logger)
        )
        let serverTask = Task { try await serviceGroup.run() }
        var failure: (any Error)?
        do {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask {
                    // Cancelled with run(): notifications still waiting or retrying stop at once.
                    await withDiscardingTaskGroup { deliveries in
                        for await job in jobs {
                            deliveries.addTask { await self.deliver(job, client: client) }
                        }
                    }
                }
                // When the server ends, no new notifications are taken; those under way finish.
                defer { jobsContinuation.finish() }
                try await withTaskCancellationHandler {
                    try await serverTask.value
                } onCancel: {
                    self.shuttingDown.withLock { $0 = true }
                    Task { await serviceGroup.triggerGracefulShutdown() }
                }
            }
        } catch {
            failure = error
        }
        let reason = failure.map { "the server failed: \($0)" } ?? "the simulator was stopped"
        await self.state.didStop(reason: reason)
        self.client.withLock { $0 = nil }
        do {
            try await client.shutdown()
        } catch {
            self.logger.warning(
                "The simulator's HTTP client did not shut down cleanly",
                metadata: ["error": "\(error)"]
            )
        }
        if let failure, !(failure is CancellationError), !Task.isCancelled { throw failure }
    }

    /// Waits until the server is listening and returns its base URL, e.g. `http://127.0.0.1:41234`. Throws
    /// ``SimulatorError/stopped(reason:)`` when the run ended (or failed to bind) first.
    public func waitUntilListening() async throws -> String {
        try await self.state.waitUntilListening()
    }

    /// Every order submitted to `Pay_Index.html`, in submission order.
    public func orders() async -> [SimulatedOrder] {
        await self.state.orders()
    }

    /// One submitted order, or nil.
    public func order(_ orderId: String) async -> SimulatedOrder? {
        await self.state.order(orderId)
    }

    /// Marks an order paid (it must have been submitted to `Pay_Index.html` and not be paid yet) and sends its
    /// notification with `faults` plus any random faults from the configuration. Returns at once with the
    /// transaction id; delivery and retries happen in the background inside ``run()``.
    @discardableResult
    public func pay(_ orderId: String, faults: NotifyFaults = .none) async throws -> String {
        let paidAt = GatewayTimeZone.shanghai.applyDate(for: self.configuration.clock())
        let (order, faults) = try await self.state.markPaid(orderId, paidAt: paidAt, faults: faults)
        self.logger.info("Simulated payment", metadata: ["order.id": "\(orderId)", "faults": "\(faults)"])
        try await self.send(order, faults: faults)
        return order.transactionId ?? ""
    }

    /// Sends one extra notification for a paid order now (duplicates on demand), with `faults`.
    public func renotify(_ orderId: String, faults: NotifyFaults = .none) async throws {
        let (order, faults) = try await self.state.paidOrder(orderId, faults: faults)
        try await self.send(order, faults: faults)
    }

    /// Faults for one order's next queries, one query each, in this order (after any queued before). Once they are
    /// used up, the order's `setQueryFault` fault, if any, applies.
    public func queueQueryFaults(_ orderId: String, _ faults: [QueryFault]) async {
        await self.state.queueQueryFaults(orderId, faults)
    }

    /// Query faults for one order: the next `count` queries (nil: all of them) get `fault`; a nil fault clears it.
    public func setQueryFault(_ orderId: String, _ fault: QueryFault?, count: Int? = nil) async {
        await self.state.setQueryFault(orderId, fault, count: count)
    }

    /// Makes query replies report a paid order as unpaid (`NOTPAY`), to simulate the SUCCESS-then-NOTPAY
    /// inconsistency some deployments show; `false` restores the truth.
    public func setQueryReportsUnpaid(_ orderId: String, _ unpaid: Bool) async {
        await self.state.setReportsUnpaid(orderId, unpaid)
    }

    /// POSTs a raw body to a notify URL as the gateway would (form content type, no encoding applied, no retry), for
    /// tests of hostile input. Returns the status and the body of the reply. Needs a running simulator.
    public func postRawNotification(to url: String, body: String) async throws -> (status: Int, body: String) {
        guard let client = self.client.withLock({ $0 }) else { throw SimulatorError.notRunning }
        guard GatewayValidation.urlProblem(url) == nil else { throw SimulatorError.invalidURL(url) }
        return try await self.post(body, to: url, client: client)
    }

    // MARK: Notifications

    /// Builds the notification body for a paid order and hands it to run()'s delivery group.
    private func send(_ order: SimulatedOrder, faults: NotifyFaults) async throws {
        if faults.drop {
            // The gateway's notify queue lost it: nothing is sent, the merchant must find out by querying.
            self.logger.info("Dropping the notification", metadata: ["order.id": "\(order.orderId)"])
            return
        }
        let body = GatewayMessages.notificationBody(
            order: order,
            memberId: self.configuration.memberId,
            dateTime: GatewayMessages.compactDateTime(self.configuration.clock()),
            faults: faults,
            key: self.configuration.key,
            dialect: self.configuration.dialect
        )
        let job = NotificationJob(
            orderId: order.orderId,
            url: order.notifyURL,
            body: body,
            copies: max(1, faults.copies),
            delay: faults.delay
        )
        try await self.state.enqueue(job)
    }

    /// Delivers one job: waits out its delay, then sends its copies concurrently, each with its own retries.
    private func deliver(_ job: NotificationJob, client: HTTPClient) async {
        if job.delay > .zero {
            do { try await Task.sleep(for: job.delay) } catch { return }
        }
        await withDiscardingTaskGroup { group in
            for copy in 1...job.copies {
                group.addTask { await self.deliverCopy(job, copy: copy, client: client) }
            }
        }
    }

    /// Sends one copy until the reply contains "ok" in any case (deployments test the body with a case-insensitive
    /// search, not for exactly `OK`), retrying after `notifyRetryDelay` up to `notifyAttemptsMax` sends.
    private func deliverCopy(_ job: NotificationJob, copy: Int, client: HTTPClient) async {
        var logger = self.logger
        logger[metadataKey: "order.id"] = "\(job.orderId)"
        logger[metadataKey: "notify.copy"] = "\(copy)"
        for attempt in 1...self.configuration.notifyAttemptsMax {
            if attempt > 1 {
                do { try await Task.sleep(for: self.configuration.notifyRetryDelay) } catch { return }
            }
            if Task.isCancelled { return }
            await self.state.recordSent(job.orderId)
            do {
                let reply = try await self.post(job.body, to: job.url, client: client)
                if GatewayAcknowledgement.readsAsAcknowledgement(reply.body) {
                    await self.state.recordAcknowledged(job.orderId)
                    logger.debug("Notification acknowledged", metadata: ["notify.attempt": "\(attempt)"])
                    return
                }
                logger.info(
                    "Notification not acknowledged",
                    metadata: ["notify.attempt": "\(attempt)", "http.status": "\(reply.status)"]
                )
            } catch {
                if Task.isCancelled { return }
                logger.info("Notification failed", metadata: ["notify.attempt": "\(attempt)", "error": "\(error)"])
            }
        }
        logger.info("Notification given up", metadata: ["notify.attempts": "\(self.configuration.notifyAttemptsMax)"])
    }

    /// One form POST, as the gateway's curl call makes it; the reply body is read up to `replyBytesMax`.
    private func post(_ body: String, to url: String, client: HTTPClient) async throws -> (status: Int, body: String) {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "User-Agent", value: "GatewaySimulator")
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await client.execute(request, timeout: Self.timeAmount(self.configuration.notifyTimeout))
        let buffer = try await response.body.collect(upTo: self.configuration.replyBytesMax)
        return (Int(response.status.code), String(buffer: buffer))
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
