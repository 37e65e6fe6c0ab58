import ArgumentParser
import Foundation
import LedgerCore
import LedgerStore
import LedgerTesting

/// The crash test: a child appends under concurrency and records every acknowledged event on a side channel only
/// after its append returned; the parent kills it with SIGKILL at random moments, reopens the store and checks
/// that nothing acknowledged was lost or changed, the hash chain verifies and the projection equals a rebuild.
@main
struct LedgerCrash: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger-crash",
        abstract: "kill -9 the ledger under load, then prove that every acknowledged event survived.",
        subcommands: [Run.self, Check.self, Child.self],
        defaultSubcommand: Run.self
    )
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run CYCLES crash cycles: start a writer, SIGKILL it at a random moment, check the store."
    )

    @Option(help: "Number of kill-and-check cycles.")
    var cycles = 20

    @Option(help: "Concurrent appenders in the child.")
    var workers = 16

    @Option(help: "Seed for the kill times, so a failing run can be repeated.")
    var seed: UInt64 = UInt64(Date().timeIntervalSince1970)

    @Option(help: "Longest time in milliseconds the child runs before it is killed.")
    var maxRunMilliseconds = 600

    @Option(help: "Keep the data here instead of a temporary directory (kept afterwards).")
    var dataDir: String?

    mutating func run() async throws {
        guard self.cycles >= 1, self.workers >= 1, self.maxRunMilliseconds >= 20 else {
            throw ValidationError("--cycles and --workers must be at least 1, --max-run-milliseconds at least 20.")
        }
        let temporary = self.dataDir == nil
        let base =
            self.dataDir
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("ledger-crash-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { if temporary { try? FileManager.default.removeItem(atPath: base) } }
        let storePath = base + "/ledger"
        let ackPath = base + "/acknowledged.log"
        FileManager.default.createFile(atPath: ackPath, contents: nil)
        var random = SplitMix64(seed: self.seed)
        print("crash-test: \(self.cycles) cycles, \(self.workers) appenders, seed \(self.seed), data \(base)")
        var totalAcknowledged = 0
        for cycle in 1...self.cycles {
            let child = Process()
            child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
                .resolvingSymlinksInPath()
            if !FileManager.default.isExecutableFile(atPath: child.executableURL!.path) {
                child.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            }
            child.arguments = [
                "child", "--data-dir", storePath, "--ack-file", ackPath, "--workers", String(self.workers),
                "--prefix", "c\(cycle)",
            ]
            child.standardOutput = FileHandle.nullDevice
            let errors = Pipe()
            child.standardError = errors
            try child.run()
            let runFor = 20 + Int(random.next() % UInt64(self.maxRunMilliseconds - 19))
            try await Task.sleep(for: .milliseconds(runFor))
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            guard child.terminationReason == .uncaughtSignal else {
                let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                print(
                    "crash-test: cycle \(cycle): the child exited by itself (status \(child.terminationStatus)) before the kill: \(message)"
                )
                throw ExitCode.failure
            }
            let result = try await Self.check(storePath: storePath, ackPath: ackPath)
            totalAcknowledged = result.acknowledged
            print(
                "crash-test: cycle \(cycle)/\(self.cycles): killed after \(runFor) ms; \(result.acknowledged) acknowledged events all present, log head \(result.head), chain intact, projection equals rebuild"
            )
        }
        print(
            "crash-test: \(self.cycles) cycles passed, \(totalAcknowledged) acknowledged events checked (seed \(self.seed))"
        )
    }

    struct CheckResult {
        var acknowledged: Int
        var head: UInt64
    }

    /// Opens the store after a kill and checks it against the side channel.
    static func check(storePath: String, ackPath: String) async throws -> CheckResult {
        let store = try LMDBEventStore(path: storePath)
        defer { Task { await store.close() } }
        let acknowledged = try Acknowledgements.read(ackPath)
        let head = try await store.head()
        var failures: [String] = []
        // Read the whole log once and index it by sequence.
        var events: [UInt64: Event] = [:]
        var next: UInt64 = 1
        while next <= head.sequence {
            let page = try await store.readEvents(from: next, limit: 5000)
            guard let last = page.last else { break }
            for event in page { events[event.sequence] = event }
            next = last.sequence + 1
        }
        for ack in acknowledged {
            guard let event = events[ack.sequence] else {
                failures.append(
                    "acknowledged event \(ack.sequence) (order \(ack.orderId)) is missing; the head is \(head.sequence)"
                )
                continue
            }
            if event.hash.hex != ack.hash || event.orderId != ack.orderId {
                failures.append(
                    "acknowledged event \(ack.sequence) changed: stored \(event.orderId) \(event.hash.hex), acknowledged \(ack.orderId) \(ack.hash)"
                )
            }
        }
        let chain = try await store.verifyChain(progress: nil)
        if let chainBreak = chain.firstBreak { failures.append("the hash chain breaks: \(chainBreak)") }
        let projection = try await store.verifyProjection(differencesMax: 3, progress: nil)
        if projection.differenceCount > 0 {
            failures.append(
                "the projection differs from a rebuild for \(projection.differenceCount) orders, e.g. \(projection.differences.map(\.orderId))"
            )
        }
        await store.close()
        if !failures.isEmpty {
            for failure in failures.prefix(20) { print("crash-test: FAILED: \(failure)") }
            throw ExitCode.failure
        }
        return CheckResult(acknowledged: acknowledged.count, head: head.sequence)
    }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a store against an acknowledgement file without running a writer."
    )

    @Option(help: "The store's data directory.")
    var dataDir: String

    @Option(help: "The acknowledgement file: lines of `sequence hash orderId`.")
    var ackFile: String

    mutating func run() async throws {
        let result = try await Run.check(storePath: self.dataDir, ackPath: self.ackFile)
        print(
            "crash-test: \(result.acknowledged) acknowledged events all present, log head \(result.head), chain intact, projection equals rebuild"
        )
    }
}

struct Child: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The writer the crash test kills: appends until killed, recording acknowledgements.",
        shouldDisplay: false
    )

    @Option var dataDir: String
    @Option var ackFile: String
    @Option var workers = 16
    @Option var prefix = "c"

    mutating func run() async throws {
        let store = try LMDBEventStore(path: self.dataDir, options: .init(limits: StoreLimits(mapSize: 1 << 20)))
        let acknowledgements = try Acknowledgements(path: self.ackFile)
        let events = CrashEvents()
        let prefix = self.prefix
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<self.workers {
                group.addTask {
                    var index = 0
                    while true {
                        let orderId = "\(prefix)w\(worker)n\(index)"
                        index += 1
                        var requests = [AppendRequest([events.created(orderId)], precondition: .orderAbsent(orderId))]
                        requests.append(AppendRequest([events.callback(orderId)]))
                        if index % 3 == 0 { requests.append(AppendRequest([events.callback(orderId)])) }
                        if index % 5 == 0 {
                            requests.append(
                                AppendRequest([events.queryFailure(orderId), events.callback(orderId, forged: true)])
                            )
                        }
                        for request in requests {
                            let outcome = try await store.append(request)
                            // Only now, after the commit returned, is the event acknowledged.
                            for event in outcome.events ?? [] { acknowledgements.record(event) }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}

/// Realistic events for the crash test, built through the real core.
struct CrashEvents: Sendable {
    let key = try! MerchantKey("crash-test-key")
    let settings = GatewaySettings.testing(baseURL: "http://127.0.0.1:9090")

    var now: Instant { Instant(millisecondsSinceEpoch: Int64(Date().timeIntervalSince1970 * 1000)) }

    func created(_ orderId: String) -> PendingEvent {
        let request = OrderRequest(orderId: orderId, amount: "12.50", bankCode: "940", productName: "crash test")
        let pay = try! PayRequest.build(request, settings: self.settings, key: self.key, appliedAt: self.now).get()
        return PendingEvent(
            recordedAt: self.now,
            orderId: orderId,
            payload: .orderCreated(OrderCreated(request: pay, gatewayURL: self.settings.payURL, dialect: .document))
        )
    }

    func callback(_ orderId: String, forged: Bool = false) -> PendingEvent {
        let fields = SignedNotification.fields(
            orderId: orderId,
            transactionId: "T\(orderId)",
            memberId: "10001",
            key: self.key
        )
        return SignedNotification.event(
            forged ? SignedNotification.forged(fields) : fields,
            key: self.key,
            at: self.now,
            remoteAddress: "127.0.0.1:1"
        )
    }

    func queryFailure(_ orderId: String) -> PendingEvent {
        PendingEvent(
            recordedAt: self.now,
            orderId: orderId,
            payload: .queryResult(
                QueryResult(
                    attempt: 1,
                    latencyMicroseconds: 10,
                    final: false,
                    httpStatus: nil,
                    body: [],
                    outcome: .transportError(message: "timed out")
                )
            )
        )
    }
}

/// The side channel: one line per acknowledged event, `sequence hash orderId`, written with O_APPEND in a single
/// write(2) so a kill never leaves half a line followed by another line.
final class Acknowledgements: @unchecked Sendable {
    struct Entry {
        var sequence: UInt64
        var hash: String
        var orderId: String
    }

    private let descriptor: Int32
    private let lock = NSLock()

    init(path: String) throws {
        self.descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o600)
        guard self.descriptor >= 0 else { throw ValidationError("Cannot open the acknowledgement file \(path).") }
    }

    func record(_ event: Event) {
        let line = Array("\(event.sequence) \(event.hash.hex) \(event.orderId)\n".utf8)
        self.lock.lock()
        _ = line.withUnsafeBytes { write(self.descriptor, $0.baseAddress, $0.count) }
        self.lock.unlock()
    }

    /// Reads the complete lines; a last line without its newline was cut by the kill and is ignored.
    static func read(_ path: String) throws -> [Entry] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if !text.hasSuffix("\n") { lines.removeLast() }
        return lines.compactMap { line in
            let parts = line.split(separator: " ")
            guard parts.count == 3, let sequence = UInt64(parts[0]) else { return nil }
            return Entry(sequence: sequence, hash: String(parts[1]), orderId: String(parts[2]))
        }
    }
}
