import Foundation
import LedgerControlClient
import LedgerControlProtocol
import LedgerCore
import LedgerStore
import LedgerTesting

#if canImport(Glibc)
    import Glibc
#endif

/// What `ledger-bench system` runs and how big.
struct SystemBenchConfig: Sendable {
    enum Part: String, CaseIterable, Sendable {
        case callbacks, forward, control, rebuild, memory
    }

    /// Orders in the ledger: the control socket, rebuild and memory figures are taken at this size.
    var orders: Int
    /// Unpaid orders set aside for each callback run, so every notification sent is a first, valid one.
    var callbackOrders: Int
    /// Seconds of load per callback run.
    var seconds: Int
    var connections: [Int]
    /// Seconds per control-socket run.
    var controlSeconds: Int
    var parts: Set<Part> = Set(Part.allCases)

    static let full = SystemBenchConfig(
        orders: 1_000_000,
        callbackOrders: 150_000,
        seconds: 8,
        connections: [1, 16, 64],
        controlSeconds: 5
    )
    static let quick = SystemBenchConfig(
        orders: 20_000,
        callbackOrders: 3_000,
        seconds: 1,
        connections: [1, 16, 64],
        controlSeconds: 1
    )

    /// One callback run per connection count, one with group commit off, and one with forwarding on when that part
    /// runs. The bare server's run repeats the first run's notifications: it stores nothing.
    var callbackRuns: Int {
        guard self.parts.contains(.callbacks) else { return 0 }
        return self.connections.count + 1 + (self.parts.contains(.forward) ? 1 : 0)
    }
}

/// The figures of one HTTP load run, as the load script reports them.
struct LoadResult: Sendable {
    var requests: Int
    var seconds: Double
    /// Responses other than 2xx, and socket errors.
    var statusErrors: Int
    var socketErrors: Int
    var p50: Double
    var p99: Double
    var p999: Double
    /// Requests sent after the script ran out of distinct notifications (must be 0 for a valid run).
    var repeated: Int
    /// CPU seconds (user + system) the load generator used.
    var loadGeneratorCPU: Double = 0
    /// Wall time of the window the CPU figures cover: the load generator's whole life, start-up included.
    var windowSeconds: Double = 0
    /// CPU seconds the server used during that window, where measured.
    var serverCPU: Double?

    var perSecond: Double { self.seconds > 0 ? Double(self.requests - self.statusErrors) / self.seconds : 0 }
}

/// One control-socket run: round trips, their latency, and the CPU the daemon and the clients used meanwhile.
struct ControlRun: Sendable {
    var perSecond: Double
    var latency: Percentiles
    var calls: Int
    var seconds: Double
    /// CPU seconds (user + system) of `ledgerd` and of this process (the client threads) during the run.
    var daemonCPU: Double?
    var clientCPU: Double?
    /// Answers parsed in full and read into the protocol's types after the run.
    var fullyChecked: Int
}

/// Runs the real daemon (release build) and measures it from outside: HTTP load from a load generator, the
/// control socket from client threads, a rebuild through `projection.rebuild`, and the daemon's resident memory.
struct SystemBenchmark {
    let config: SystemBenchConfig
    let ledgerd: String
    let benchExecutable: String
    let loadScript: String

    struct Results {
        var callbacks: [Int: LoadResult] = [:]
        var callbacksOneFsync: LoadResult?
        /// The widest run again on a daemon that forwards every outcome to a fast receiver.
        var callbacksForwarding: LoadResult?
        /// Orders that run paid: each one an `order.paid` the forwarder delivered before the run counted as done.
        var forwardedDuringRun: Int?
        /// Deliveries the forwarder made while the load ran (and the paid count settled after it).
        var forwardedUnderLoad: Int?
        /// After the load: the deliveries left, how long the forwarder took for them, and ledgerd's CPU seconds
        /// meanwhile (it does nothing else then, so the CPU is forwarding's: deriving, storing, posting).
        var forwardCatchUp: (deliveries: Int, seconds: Double, cpu: Double?)?
        var bareOK: LoadResult?
        var control: [Int: ControlRun] = [:]
        var rebuild: (seconds: Double, events: UInt64, orders: UInt64)?
        var rssAnonBytes: UInt64?
        var rssAnonIdleBytes: UInt64?
        var orders = 0
        var events: UInt64 = 0
    }

    func run() async throws -> Results {
        var results = Results()
        let directory = try ScratchDirectory("system")
        defer { directory.remove() }
        let dataDir = directory.path + "/ledger"
        let now = Instant(millisecondsSinceEpoch: Int64(Date().timeIntervalSince1970 * 1000))
        let workload = try Workload(prefix: "S", start: now)

        // Orders [0, reserved) stay unpaid for the callback runs; the rest are seeded paid.
        let runs = self.config.callbackRuns
        let reserved = runs * self.config.callbackOrders
        let total = max(self.config.orders, reserved)
        try await self.seed(workload, orders: total, unpaid: reserved, into: dataDir)
        results.orders = total

        var bodyFiles: [String] = []
        for run in 0..<runs {
            let path = directory.path + "/bodies-\(run).txt"
            try self.writeBodies(
                workload,
                orders: (run * self.config.callbackOrders)..<((run + 1) * self.config.callbackOrders),
                to: path
            )
            bodyFiles.append(path)
        }

        // The forwarding run comes first, while no order is paid: a forwarder enabled later delivers the whole
        // history first, which the run would have to wait for.
        if self.config.parts.contains(.callbacks), self.config.parts.contains(.forward),
            let connections = self.config.connections.last
        {
            try whileRunning(BareServerProcess.start(self.benchExecutable)) { receiver in
                try self.forwardingRun(
                    directory.path + "/ledgerd-forward",
                    dataDir: dataDir,
                    receiverPort: receiver.port,
                    connections: connections,
                    bodies: bodyFiles[self.config.connections.count + 1],
                    into: &results
                )
            }
        }

        // Every child is stopped on every path out, errors included, before the scratch directory is removed.
        try whileRunning(self.startDaemon(directory.path + "/ledgerd", dataDir: dataDir, batchCountMax: nil)) {
            daemon in
            try Self.waitUntilSettled(daemon)
            results.rssAnonIdleBytes = daemon.rssAnon()
            Progress.say(
                "ledgerd is up on port \(daemon.port) with \(total) orders; RssAnon \(Self.megabytes(results.rssAnonIdleBytes))"
            )
            if self.config.parts.contains(.callbacks) {
                for (index, connections) in self.config.connections.enumerated() {
                    results.callbacks[connections] = try self.callbackRun(
                        daemon,
                        connections: connections,
                        bodies: bodyFiles[index],
                        label: "ledgerd, \(connections) connections"
                    )
                }
            }
            if self.config.parts.contains(.control) {
                for clients in [1, 8] {
                    // Paid orders (three events' history) when there are any, else the unpaid ones.
                    let historyOrders = reserved < total ? reserved..<total : 0..<total
                    results.control[clients] = try self.controlRun(daemon, clients: clients, orders: historyOrders)
                }
            }
            if self.config.parts.contains(.memory) || self.config.parts.contains(.control) {
                results.rssAnonBytes = daemon.rssAnon()
            }
            if self.config.parts.contains(.rebuild) {
                results.rebuild = try self.rebuildRun(daemon)
            }
            results.events = try ControlClient(path: daemon.socketPath).call(LedgerStats.self, NoParams()).head.sequence
        }

        if self.config.parts.contains(.callbacks), let connections = self.config.connections.last {
            // The same daemon with group commit off: one transaction and one fsync per callback.
            try whileRunning(
                self.startDaemon(directory.path + "/ledgerd-one-fsync", dataDir: dataDir, batchCountMax: 1)
            ) { daemon in
                try Self.waitUntilSettled(daemon)
                results.callbacksOneFsync = try self.callbackRun(
                    daemon,
                    connections: connections,
                    bodies: bodyFiles[self.config.connections.count],
                    label: "ledgerd with store.batchCountMax=1, \(connections) connections"
                )
            }
            // The ceiling: the same HTTP stack answering a bare OK, with no parsing, signing or storage. It is also
            // the forwarding run's receiver: a shop endpoint that answers at once.
            try whileRunning(BareServerProcess.start(self.benchExecutable)) { bare in
                let bareBefore = bare.cpuSeconds()
                results.bareOK = try self.load(
                    port: bare.port,
                    connections: connections,
                    bodies: bodyFiles[0],
                    label: "bare OK, \(connections) connections",
                    distinct: false
                )
                if let bareBefore, let bareAfter = bare.cpuSeconds() {
                    results.bareOK?.serverCPU = bareAfter - bareBefore
                }
            }
        }
        return results
    }

    // MARK: Setup

    /// Appends `orders` order-created events, and a paid callback for every order from `unpaid` on, straight into
    /// the store in large batches (setup, not measured).
    private func seed(_ workload: Workload, orders: Int, unpaid: Int, into dataDir: String) async throws {
        Progress.say("seeding \(orders) orders (\(orders - unpaid) paid) into a fresh ledger")
        let store = try LMDBEventStore(path: dataDir)
        let chunk = 20_000
        var low = 0
        while low < orders {
            let high = min(orders, low + chunk)
            let base = low
            let events = try Self.build(count: high - low) { offset in
                let order = base + offset
                return order < unpaid
                    ? [try workload.created(order)] : [try workload.created(order), try workload.callback(order)]
            }
            for batch in batches(events, size: 10_000) { _ = try await store.append(AppendRequest(batch)) }
            low = high
            if low % 200_000 == 0 || low == orders { Progress.say("  \(low) orders seeded") }
        }
        await store.close()
    }

    /// Builds the events of `count` orders on every core, in order.
    private static func build(count: Int, _ events: @Sendable @escaping (Int) throws -> [PendingEvent]) throws
        -> [PendingEvent]
    {
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 8))
        let slice = (count + workers - 1) / workers
        let parts = PartBox<[PendingEvent]>(count: workers)
        let failure = PartBox<any Error>(count: 1)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            do {
                var built: [PendingEvent] = []
                for offset in min(count, worker * slice)..<min(count, (worker + 1) * slice) {
                    built += try events(offset)
                }
                parts.set(worker, built)
            } catch {
                failure.set(0, error)
            }
        }
        if let error = failure.get(0) { throw error }
        return (0..<workers).flatMap { parts.get($0) ?? [] }
    }

    /// One signed notification body per line, for the load script.
    private func writeBodies(_ workload: Workload, orders: Range<Int>, to path: String) throws {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(orders.count * 200)
        for order in orders {
            bytes += workload.notificationBody(order)
            bytes.append(UInt8(ascii: "\n"))
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    // MARK: Runs

    /// A load run against the daemon, checked against the ledger: every answered `OK` must be a paid order.
    private func callbackRun(_ daemon: LedgerdProcess, connections: Int, bodies: String, label: String) throws
        -> LoadResult
    {
        let before = try Self.settledPaidOrders(daemon)
        let cpuBefore = daemon.cpuSeconds()
        var result = try self.load(port: daemon.port, connections: connections, bodies: bodies, label: label)
        if let cpuBefore, let cpuAfter = daemon.cpuSeconds() { result.serverCPU = cpuAfter - cpuBefore }
        let after = try Self.settledPaidOrders(daemon)
        guard result.statusErrors == 0, result.socketErrors == 0 else {
            throw BenchError(
                "\(label): \(result.statusErrors) error answers and \(result.socketErrors) socket errors; every notification was valid."
            )
        }
        let ok = result.requests - result.statusErrors
        // Requests in flight when the load stopped may have been stored without their answer being counted.
        guard after - before >= ok, after - before <= ok + connections else {
            throw BenchError(
                "\(label): \(ok) notifications were answered OK but the ledger paid \(after - before) orders."
            )
        }
        return result
    }

    /// At start the poller loads every pending order from the ledger; measuring during that load would charge
    /// its work to the first run. Waits until it tracks every created order.
    private static func waitUntilSettled(_ daemon: LedgerdProcess) throws {
        let client = try ControlClient(path: daemon.socketPath)
        let deadline = Date().addingTimeInterval(600)
        var last: Int64 = -1
        var unchanged = 0
        while true {
            let stats = try client.call(LedgerStats.self, NoParams())
            let pending = Int64(stats.pollerPending)
            let created = stats.ordersByState.first { $0.state == "created" }.map { Int64($0.count) } ?? -2
            if pending == created { break }
            // The poller may decline an order (one past its deadline, say): a count that stopped moving will do.
            unchanged = pending == last ? unchanged + 1 : 0
            last = pending
            if unchanged >= 10 { break }
            guard Date() < deadline else {
                throw BenchError(
                    "The daemon's poller tracks \(pending) orders after 10 minutes; the ledger holds \(created) created ones."
                )
            }
            usleep(200_000)
        }
        Progress.say("the poller tracks every pending order; measuring")
    }

    private static func paidOrders(_ daemon: LedgerdProcess) throws -> Int {
        let stats = try ControlClient(path: daemon.socketPath).call(LedgerStats.self, NoParams())
        return stats.ordersByState.first { $0.state == "paid" }.map { Int($0.count) } ?? -1
    }

    /// The paid count once the requests still in flight when the load generator stopped have finished: the same
    /// count twice, 200 ms apart (for at most 5 s). Read right away, one run's late requests would count in the
    /// next run's difference and push it past its allowance for requests in flight.
    private static func settledPaidOrders(_ daemon: LedgerdProcess) throws -> Int {
        var count = try Self.paidOrders(daemon)
        for _ in 0..<25 {
            usleep(200_000)
            let again = try Self.paidOrders(daemon)
            if again == count { return count }
            count = again
        }
        return count
    }

    /// Runs the load generator for the configured time and parses the line its script prints.
    /// With `distinct`, running out of distinct notifications fails the run (the bare server stores nothing, so
    /// repeats cost it nothing and are allowed).
    private func load(port: Int, connections: Int, bodies: String, label: String, distinct: Bool = true) throws
        -> LoadResult
    {
        let threads = min(2, connections)
        Progress.say("load: \(label) for \(self.config.seconds) s")
        let childCPUBefore = childrenCPUSeconds()
        let window = ContinuousClock.now
        let output = try runToEnd(
            "/usr/bin/env",
            [
                "wrk", "-t", "\(threads)", "-c", "\(connections)", "-d", "\(self.config.seconds)s", "--timeout", "10s",
                "-s", self.loadScript, "http://127.0.0.1:\(port)/notify", "--", bodies, "\(threads)",
            ]
        )
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("RESULT ") }) else {
            throw BenchError("The load generator printed no result:\n\(output)")
        }
        var fields: [String: Double] = [:]
        for pair in line.dropFirst(7).split(separator: " ") {
            let parts = pair.split(separator: "=")
            if parts.count == 2, let value = Double(parts[1]) { fields[String(parts[0])] = value }
        }
        let result = LoadResult(
            requests: Int(fields["requests"] ?? 0),
            seconds: (fields["duration_us"] ?? 0) / 1e6,
            statusErrors: Int(fields["status"] ?? 0),
            socketErrors: Int(
                (fields["connect"] ?? 0) + (fields["read"] ?? 0) + (fields["write"] ?? 0) + (fields["timeout"] ?? 0)
            ),
            p50: (fields["p50_us"] ?? 0) / 1e6,
            p99: (fields["p99_us"] ?? 0) / 1e6,
            p999: (fields["p999_us"] ?? 0) / 1e6,
            repeated: Int(fields["repeated"] ?? 0),
            loadGeneratorCPU: childrenCPUSeconds() - childCPUBefore,
            windowSeconds: (ContinuousClock.now - window).seconds
        )
        guard result.repeated == 0 || !distinct else {
            throw BenchError(
                "\(label): the run needed more than \(self.config.callbackOrders) distinct notifications; raise --callback-orders."
            )
        }
        Progress.say(
            String(
                format: "  %.0f/s, p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms",
                result.perSecond,
                result.p50 * 1e3,
                result.p99 * 1e3,
                result.p999 * 1e3
            )
        )
        return result
    }

    /// The widest callback run on a daemon that forwards every outcome to `receiverPort` (the bare server, a
    /// receiver that answers at once). It runs before the others, on a ledger with no outcome yet, so the outbox
    /// starts empty; after it the forwarder must deliver every new outcome, or the run fails.
    private func forwardingRun(
        _ directory: String,
        dataDir: String,
        receiverPort: Int,
        connections: Int,
        bodies: String,
        into results: inout Results
    ) throws {
        let secretFile = try TemporaryDirectory.writeSecret("bench-forward-secret-2026\n", to: directory + ".secret")
        let forward: JSONObject = [
            "url": .array([.string("http://127.0.0.1:\(receiverPort)/notify")]),
            "secretFile": .array([.string(secretFile)]),
        ]
        try whileRunning(
            self.startDaemon(directory, dataDir: dataDir, batchCountMax: nil, extra: ["forward": .object(forward)])
        ) { daemon in
            try Self.waitUntilSettled(daemon)
            try Self.waitUntilForwarded(daemon, label: "the ledger's earlier outcomes")
            let paidBefore = try Self.settledPaidOrders(daemon)
            let deliveredBefore = try Self.deliveredCount(daemon)
            results.callbacksForwarding = try self.callbackRun(
                daemon,
                connections: connections,
                bodies: bodies,
                label: "ledgerd forwarding to a fast receiver, \(connections) connections"
            )
            let deliveredAfterLoad = try Self.deliveredCount(daemon)
            let cpuAfterLoad = daemon.cpuSeconds()
            let catchUpStart = ContinuousClock.now
            try Self.waitUntilForwarded(daemon, label: "the run's outcomes")
            let catchUpSeconds = (ContinuousClock.now - catchUpStart).seconds
            let cpuAfterCatchUp = daemon.cpuSeconds()
            let deliveredAtEnd = try Self.deliveredCount(daemon)
            results.forwardedUnderLoad = deliveredAfterLoad - deliveredBefore
            results.forwardCatchUp = (
                deliveries: deliveredAtEnd - deliveredAfterLoad,
                seconds: catchUpSeconds,
                cpu: cpuAfterLoad.flatMap { before in cpuAfterCatchUp.map { $0 - before } }
            )
            Progress.say(
                "  \(deliveredAfterLoad - deliveredBefore) delivered under load, "
                    + "\(deliveredAtEnd - deliveredAfterLoad) after it in \(String(format: "%.1f", catchUpSeconds)) s"
            )
            results.forwardedDuringRun = try Self.settledPaidOrders(daemon) - paidBefore
        }
    }

    /// The deliveries the forwarder counted as delivered so far (`ledger_forward_deliveries_total`), read from the
    /// daemon's `/metrics`.
    private static func deliveredCount(_ daemon: LedgerdProcess) throws -> Int {
        let descriptor = try connectLoopbackSocket(port: daemon.port, receiveTimeoutSeconds: 10)
        defer { close(descriptor) }
        let request = Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        let sent = request.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == request.count else { throw BenchError("could not ask the daemon for /metrics") }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let received = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            guard received > 0 else { break }
            answer += buffer[0..<received]
        }
        let series = #"ledger_forward_deliveries_total{outcome="delivered"} "#
        for line in String(decoding: answer, as: UTF8.self).split(separator: "\n") where line.hasPrefix(series) {
            if let value = Double(line.dropFirst(series.count)) { return Int(value) }
        }
        throw BenchError("The daemon's /metrics has no \(series)series.")
    }

    /// Waits until the forwarder has read the whole log and holds nothing pending or dead, and returns its position
    /// (the log's head then): every outcome logged so far was delivered. A delivery that died fails the run: the
    /// receiver answers every request.
    @discardableResult
    private static func waitUntilForwarded(_ daemon: LedgerdProcess, label: String) throws -> UInt64 {
        let client = try ControlClient(path: daemon.socketPath)
        let deadline = Date().addingTimeInterval(600)
        while true {
            let status = try client.call(ForwardStatus.self, ForwardStatus.Params(limit: 1))
            guard status.dead == 0 else {
                throw BenchError(
                    "Forwarding \(label): \(status.dead) deliveries died against a receiver that answers 200."
                )
            }
            if status.active, status.pending == 0, status.position == status.head {
                Progress.say("the forwarder delivered \(label) (position \(status.position))")
                return status.position
            }
            guard Date() < deadline else {
                throw BenchError(
                    "Forwarding \(label): \(status.pending) deliveries pending, position \(status.position) of \(status.head), after 10 minutes."
                )
            }
            usleep(200_000)
        }
    }

    /// `clients` threads, each a control-socket connection calling `order.history` for random orders.
    ///
    /// The clients share the daemon's cores, so their own work is kept small and counted: in the timed loop each
    /// answer is checked in its bytes only (the response to this request's id, for this order, a complete line
    /// ending its object); one answer in `fullCheckEvery` is kept and, after the run, parsed in full and read into
    /// the protocol's types. The daemon's CPU per call (from /proc) is the figure of its own work; the clients'
    /// CPU is reported beside it.
    private func controlRun(_ daemon: LedgerdProcess, clients: Int, orders: Range<Int>) throws -> ControlRun {
        Progress.say("control socket: order.history from \(clients) client(s) for \(self.config.controlSeconds) s")
        let fullCheckEvery = 64
        let workload = try Workload(prefix: "S")
        let samples = PartBox<[Double]>(count: clients)
        let kept = PartBox<[(orderId: String, line: [UInt8])]>(count: clients)
        let failure = PartBox<String>(count: 1)
        let seconds = Double(self.config.controlSeconds)
        let done = DispatchGroup()
        let start = DispatchSemaphore(value: 0)
        let socket = daemon.socketPath
        for client in 0..<clients {
            done.enter()
            let thread = Thread {
                defer { done.leave() }
                var generator = SystemRandomNumberGenerator()
                var latencies: [Double] = []
                var lines: [(orderId: String, line: [UInt8])] = []
                do {
                    let connection = try LineSocket(path: socket)
                    start.wait()
                    let clock = ContinuousClock()
                    let end = clock.now + .milliseconds(Int(seconds * 1000))
                    var id = 0
                    while clock.now < end {
                        id += 1
                        let orderId = workload.orderId(Int.random(in: orders, using: &generator))
                        // Workload order ids are letters and digits: nothing in them needs escaping.
                        let request =
                            #"{"jsonrpc":"2.0","id":\#(id),"method":"order.history","#
                            + #""params":{"orderId":""# + orderId + "\"}}\n"
                        let sent = clock.now
                        try connection.send(Array(request.utf8))
                        guard let line = connection.readLine() else {
                            failure.set(0, "client \(client): the daemon closed the connection")
                            return
                        }
                        latencies.append((clock.now - sent).seconds)
                        let head = #"{"jsonrpc":"2.0","id":\#(id),"result":{"orderId":""# + orderId + #"","entries":["#
                        guard line.starts(with: head.utf8), line.last == UInt8(ascii: "}") else {
                            let text = String(decoding: line.prefix(200), as: UTF8.self)
                            failure.set(0, "order.history \(id) for \(orderId) answered something else: \(text)")
                            return
                        }
                        if id % fullCheckEvery == 0 { lines.append((orderId, line)) }
                    }
                } catch {
                    failure.set(0, "client \(client): \(error)")
                }
                samples.set(client, latencies)
                kept.set(client, lines)
            }
            thread.start()
        }
        let clock = ContinuousClock()
        let daemonBefore = daemon.cpuSeconds()
        let clientsBefore = processCPUSeconds(getpid())
        let started = clock.now
        for _ in 0..<clients { start.signal() }
        done.wait()
        let elapsed = (clock.now - started).seconds
        let daemonCPU = daemonBefore.flatMap { before in daemon.cpuSeconds().map { $0 - before } }
        let clientCPU = clientsBefore.flatMap { before in processCPUSeconds(getpid()).map { $0 - before } }
        if let message = failure.get(0) { throw BenchError("The control benchmark failed: \(message)") }
        // The kept answers, read as a client of the protocol reads them, now that the clock has stopped.
        let checked = (0..<clients).flatMap { kept.get($0) ?? [] }
        for (orderId, line) in checked {
            let message = try JSONParser.parse(
                line,
                limits: JSONLimits(bytesMax: 1 << 30, depthMax: 64, stringBytesMax: 1 << 30, membersMax: 1 << 24)
            )
            let result = try OrderHistory.Result(json: message["result"], context: OrderHistory.name.rawValue)
            guard result.orderId == orderId, !result.entries.isEmpty,
                result.entries.allSatisfy({ $0.event.orderId == orderId })
            else {
                throw BenchError("The control benchmark failed: order.history for \(orderId) answered another order.")
            }
        }
        let all = (0..<clients).flatMap { samples.get($0) ?? [] }
        let run = ControlRun(
            perSecond: Double(all.count) / elapsed,
            latency: Percentiles(all),
            calls: all.count,
            seconds: elapsed,
            daemonCPU: daemonCPU,
            clientCPU: clientCPU,
            fullyChecked: checked.count
        )
        Progress.say(
            String(
                format: "  %.0f round trips/s, p50 %.3f ms, p99 %.3f ms; ledgerd %.1f µs of CPU per call, %.2f cores; "
                    + "clients %.2f cores",
                run.perSecond,
                run.latency.p50 * 1e3,
                run.latency.p99 * 1e3,
                (run.daemonCPU ?? 0) / Double(max(1, run.calls)) * 1e6,
                (run.daemonCPU ?? 0) / elapsed,
                (run.clientCPU ?? 0) / elapsed
            )
        )
        return run
    }

    /// `projection.rebuild` through the control socket, timed from the client.
    private func rebuildRun(_ daemon: LedgerdProcess) throws -> (seconds: Double, events: UInt64, orders: UInt64) {
        Progress.say("projection.rebuild through the control socket")
        let client = try ControlClient(path: daemon.socketPath)
        let clock = ContinuousClock()
        let started = clock.now
        let result = try client.call(ProjectionRebuild.self, NoParams())
        let seconds = (clock.now - started).seconds
        let events = result.eventsReplayed
        let orders = result.orders
        Progress.say(String(format: "  %.2f s for %llu events of %llu orders", seconds, events, orders))
        return (seconds, events, orders)
    }

    static func megabytes(_ bytes: UInt64?) -> String {
        bytes.map { String(format: "%.1f MB", Double($0) / 1e6) } ?? "unknown"
    }
}

// MARK: Processes

/// Runs a command to its end and returns what it printed (stdout and stderr); a failure is an error.
func runToEnd(_ executable: String, _ arguments: [String]) throws -> String {
    let output = try ChildProcess.run(executable, arguments)
    guard output.status == 0 else {
        throw BenchError("\(arguments.first ?? executable) exited with status \(output.status):\n\(output.output)")
    }
    return output.output
}

/// CPU seconds (user + system) of this process's terminated and waited-for children.
func childrenCPUSeconds() -> Double {
    var usage = rusage()
    guard getrusage(RUSAGE_CHILDREN.rawValue, &usage) == 0 else { return 0 }
    func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

extension SystemBenchmark {
    /// The benchmark's daemon: the kit's harness on the seeded data, with the bounds the load generator needs
    /// (its connections all come from one address).
    func startDaemon(_ directory: String, dataDir: String, batchCountMax: Int?, extra more: JSONObject = [:]) throws
        -> LedgerdProcess
    {
        var extra: JSONObject = [
            "limits": ["http": ["connectionsMax": 4096, "connectionsPerAddressMax": 4096]]
        ]
        for (key, value) in more { extra[key] = value }
        if let batchCountMax { extra["store"] = ["batchCountMax": .number(String(batchCountMax))] }
        let daemon = try LedgerdProcess(executable: self.ledgerd, directory: directory, extra: extra)
        daemon.dataDir = dataDir
        try daemon.startBlocking()
        return daemon
    }
}

/// `ledger-bench bare-ok` as a child process: the same HTTP stack answering a bare OK.
final class BareServerProcess {
    let process = Process()
    let port = freeTCPPort()

    static func start(_ executable: String) throws -> BareServerProcess {
        let server = BareServerProcess()
        server.process.executableURL = URL(fileURLWithPath: executable)
        server.process.arguments = ["bare-ok", "--port", String(server.port)]
        server.process.standardOutput = FileHandle.nullDevice
        try server.process.run()
        let deadline = Date().addingTimeInterval(30)
        while !portAccepts(server.port) {
            guard server.process.isRunning, Date() < deadline else {
                server.stopBlocking()
                throw BenchError("the bare OK server did not start within 30 s")
            }
            usleep(50_000)
        }
        return server
    }

    func cpuSeconds() -> Double? { processCPUSeconds(self.process.processIdentifier) }

    func stopBlocking() { ChildProcess.stop(self.process) }
}

/// A child process the benchmark starts and must stop.
protocol BenchChild {
    func stopBlocking()
}

extension LedgerdProcess: BenchChild {}

extension BareServerProcess: BenchChild {}

/// Runs `body` with a started child and stops the child however `body` ends.
func whileRunning<Child: BenchChild, T>(_ child: Child, _ body: (Child) throws -> T) rethrows -> T {
    defer { child.stopBlocking() }
    return try body(child)
}
