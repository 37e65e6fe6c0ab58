import AsyncHTTPClient
import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerTesting
import NIOCore
import NIOHTTP1
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The shop code examples in `examples/`, in Python and PHP, each run as a real program against a real `ledgerd`.
struct ShopExamplesTests {
    /// A language the examples are written in: its interpreter and its programs.
    enum Language: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case python
        case php

        var testDescription: String { self.rawValue }

        var interpreterName: String {
            switch self {
            case .python: return "python3"
            case .php: return "php"
            }
        }

        /// The path of one example program.
        func program(_ name: String) -> String {
            switch self {
            case .python: return ShopExamplesTests.examples + "/python/" + name + ".py"
            case .php: return ShopExamplesTests.examples + "/php/" + name + ".php"
            }
        }
    }

    static let secret = "shop-examples-secret-0001"
    /// The package's examples directory, from this file's place under Tests/ToolTests.
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples").path

    /// The interpreter on PATH. PHP may be missing outside CI (the test is then skipped, saying so); under `CI=true`
    /// it must be there, as `.ci/run` installs it. Python 3 is always required: the schema checks need it too.
    static func interpreter(_ language: Language) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.utf8.split(separator: UInt8(ascii: ":")) {
            let candidate = String(decoding: directory, as: UTF8.self) + "/" + language.interpreterName
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        let missing = "\(language.interpreterName) is not on PATH, so the \(language.rawValue) shop examples cannot run"
        switch language {
        case .python:
            throw HarnessError(missing)
        case .php:
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                throw HarnessError(missing + "; CI must run them (.ci/run installs php-cli).")
            }
            print("note: \(missing); skipping them (Debian: apt-get install php-cli).")
            try Test.cancel("\(missing).")
        }
    }

    /// The lines of a file, split on its bytes.
    static func lines(_ path: String) -> [String] {
        let bytes = FileManager.default.contents(atPath: path) ?? Data()
        return bytes.split(separator: UInt8(ascii: "\n")).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Starts a long-running example with its output (standard output and error) in `logPath`.
    static func launch(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        logPath: String
    ) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? log.close()
        return process
    }

    /// Sends `signal` and waits for the process to end; its exit status.
    static func end(_ process: Process, with signal: Int32) async throws -> Int32 {
        try await blocking {
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
            return ChildProcess.status(process)
        }
    }

    /// A daemon of `TestMerchant` in `directory`, started.
    static func daemon(_ directory: TemporaryDirectory, environment: [String: String] = [:], extra: JSONObject = [:])
        async throws -> LedgerdProcess
    {
        let daemon = try LedgerdProcess(
            executable: try BuiltProducts.path("ledgerd"),
            directory: directory.path,
            extra: extra
        )
        daemon.environment = environment
        try await daemon.start()
        return daemon
    }

    /// Creates an order over the control socket, as the shop's checkout would.
    static func createOrder(_ daemon: LedgerdProcess, _ orderId: String) async throws {
        _ = try await daemon.call(
            OrderCreate.self,
            OrderCreate.Params(orderId: orderId, amount: "12.50", bankCode: "942", productName: "年卡")
        )
    }

    /// Pays an order the way the gateway does: its signed notification POSTed to the daemon's `/notify`.
    static func pay(_ daemon: LedgerdProcess, _ orderId: String, client: HTTPClient) async throws {
        let fields = SignedNotification.fields(
            orderId: orderId,
            transactionId: "T" + orderId,
            memberId: TestMerchant.memberId,
            key: TestMerchant.key
        )
        let answer = try await Self.post(
            client,
            daemon.baseURL + "/notify",
            body: SignedNotification.body(fields),
            headers: ["Content-Type": "application/x-www-form-urlencoded"]
        )
        #expect(answer.body == "OK", "the daemon did not acknowledge the payment of \(orderId): \(answer)")
    }

    static func post(_ client: HTTPClient, _ url: String, body: String, headers: [String: String]) async throws
        -> (status: Int, body: String)
    {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await client.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), String(buffer: bytes))
    }

    /// The create-order example prints the pay URL of a new order the ledger then holds; a refused order and a
    /// missing socket are reported with the daemon's error name and exit 1, and with the socket's path and exit 3.
    @Test(arguments: Language.allCases) func createOrderPrintsPayURL(_ language: Language) async throws {
        let interpreter = try Self.interpreter(language)
        let directory = TemporaryDirectory()
        let daemon = try await Self.daemon(directory)
        let program = language.program("create_order")
        let socket = daemon.socketPath
        let run = try await blocking {
            try ChildProcess.run(
                interpreter,
                [program, "--socket", socket, "--amount", "12.50", "--bank", "942", "--product", "年卡"]
            )
        }
        #expect(run.status == 0, "\(run.output)")
        let printed = Self.fields(run.stdout)
        let orderId = try #require(printed["order"], "\(run.output)")
        #expect(printed["redirect the buyer to"] == daemon.baseURL + "/pay/" + orderId, "\(run.output)")
        let order = try await daemon.order(orderId)
        #expect(order.state == .created)
        #expect(order.order?.amount == "12.50" && order.order?.productName == "年卡")

        let refused = try await blocking {
            try ChildProcess.run(
                interpreter,
                [program, "--socket", socket, "--amount", "12.5x", "--bank", "942", "--product", "年卡"]
            )
        }
        #expect(refused.status == 1 && refused.stderr.contains("invalid-order"), "\(refused.output)")
        let missing = try await blocking {
            try ChildProcess.run(
                interpreter,
                [program, "--socket", socket + ".missing", "--amount", "1", "--bank", "942", "--product", "x"]
            )
        }
        #expect(missing.status == 3 && missing.stderr.contains("no socket at \(socket).missing"), "\(missing.output)")
        await daemon.kill9()
    }

    /// The `name: value` lines a create-order example prints (`order ID: created` gives `order` → `ID`).
    static func fields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in text.utf8.split(separator: UInt8(ascii: "\n")) {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let name = String(decoding: line[..<colon], as: UTF8.self)
            let value = String(decoding: line[line.index(colon, offsetBy: 2)...], as: UTF8.self)
            if name.utf8.starts(with: "order ".utf8) {
                fields["order"] = String(decoding: name.utf8.dropFirst(6), as: UTF8.self)
            } else {
                fields[name] = value
            }
        }
        return fields
    }

    /// The receiver example gets the daemon's real `order.paid` deliveries and stores each once, across a replay
    /// that sends them again; it answers 500 while it cannot store (the daemon retries), 400 to a tampered body, a
    /// stale timestamp and a wrong secret, and accepts a request whose second `v1` is the matching one.
    @Test(arguments: Language.allCases) func receiverStoresEachOutcomeOnce(_ language: Language) async throws {
        let interpreter = try Self.interpreter(language)
        let directory = TemporaryDirectory()
        let secretFile = try TemporaryDirectory.writeSecret(Self.secret + "\n", to: directory.path + "/forward.secret")
        // The store's directory does not exist yet: the first delivery cannot be stored and must not be acknowledged.
        let storePath = directory.path + "/shop/outcomes.jsonl"
        let logPath = directory.path + "/receiver.log"
        let port = freeTCPPort()
        let receiver: Process
        switch language {
        case .python:
            receiver = try Self.launch(
                interpreter,
                [
                    language.program("receive_outcomes"), "--listen", "127.0.0.1:\(port)", "--secret-file",
                    secretFile, "--store", storePath,
                ],
                logPath: logPath
            )
        case .php:
            receiver = try Self.launch(
                interpreter,
                ["-S", "127.0.0.1:\(port)", language.program("receive_outcomes")],
                environment: ["LEDGER_SECRET_FILE": secretFile, "LEDGER_STORE": storePath],
                logPath: logPath
            )
        }
        defer { kill(receiver.processIdentifier, SIGKILL) }
        try await eventually("the receiver listens") { try await blocking { portAccepts(port) } }
        let hookURL = "http://127.0.0.1:\(port)/ledger-hook"
        let daemon = try await Self.daemon(
            directory,
            environment: ["LEDGERD_FORWARD_URL": hookURL, "LEDGERD_FORWARD_SECRET_FILE": secretFile],
            // Retries a second apart for half a minute, so the delivery the receiver could not store comes again soon.
            extra: [
                "forward": ["schedule": .string((["0"] + Array(repeating: "1000", count: 30)).joined(separator: ","))]
            ]
        )
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { Task { try? await client.shutdown() } }

        try await Self.createOrder(daemon, "SHOP-A")
        try await Self.createOrder(daemon, "SHOP-B")
        try await Self.pay(daemon, "SHOP-A", client: client)
        try await eventually("the receiver answers 500 to what it cannot store") {
            Self.lines(logPath).contains { $0.contains("500 cannot store") }
        }
        #expect(!FileManager.default.fileExists(atPath: storePath))
        try FileManager.default.createDirectory(atPath: directory.path + "/shop", withIntermediateDirectories: false)
        try await Self.pay(daemon, "SHOP-B", client: client)
        let paidA = try #require(try await daemon.order("SHOP-A").payment?.sequence)
        let paidB = try #require(try await daemon.order("SHOP-B").payment?.sequence)
        let expected = ["\(paidA)-order.paid", "\(paidB)-order.paid"]
        try await eventually("both outcomes are stored") { Set(Self.storedIds(storePath)) == Set(expected) }

        // The daemon sends both again with their same ids: acknowledged, not stored twice.
        let acknowledged = { Self.lines(logPath).filter { $0.contains("200 stored") || $0.contains("200 duplicate") } }
        // A receiver stores an outcome before it answers and logs the answer, so its log line may come a moment
        // after the store shows the outcome.
        try await eventually("the receiver acknowledges both") { acknowledged().count >= 2 }
        #expect(acknowledged().count == 2)
        _ = try await daemon.call(ForwardReplay.self, ForwardReplay.Params(from: 1))
        try await eventually("the receiver acknowledges both copies") { acknowledged().count >= 4 }
        #expect(acknowledged().filter { $0.contains("200 duplicate") }.count == 2, "\(acknowledged())")
        #expect(Self.storedIds(storePath).sorted() == expected.sorted(), "\(Self.lines(storePath))")

        // Requests made here, signed with the shop's secret or not.
        let stored = try #require(Self.lines(storePath).first)
        let storedId = try #require(Self.storedIds(storePath).first)
        let now = Int64(Date().timeIntervalSince1970)
        func signature(_ body: String, at timestamp: Int64, _ secrets: [String]) -> String {
            ForwardSignature.header(
                body: Array(body.utf8),
                timestamp: timestamp,
                secrets: secrets.map { Array($0.utf8) }
            )
        }
        func send(_ body: String, _ header: String, id: String) async throws -> Int {
            try await Self.post(
                client,
                hookURL,
                body: body,
                headers: ["Content-Type": "application/json", "Ledger-Signature": header, "Ledger-Event-Id": id]
            ).status
        }
        let tampered = stored.replacingOccurrences(of: "\"amount\":\"12.50\"", with: "\"amount\":\"0.01\"")
        #expect(tampered != stored)
        #expect(try await send(tampered, signature(stored, at: now, [Self.secret]), id: storedId) == 400)
        #expect(try await send(stored, signature(stored, at: now - 3600, [Self.secret]), id: storedId) == 400)
        #expect(try await send(stored, signature(stored, at: now, ["not-the-shop-secret-01"]), id: storedId) == 400)
        let fresh = stored.replacingOccurrences(of: storedId, with: "900000-order.paid")
        let rotated = signature(fresh, at: now, ["not-the-shop-secret-01", Self.secret])
        #expect(try await send(fresh, rotated, id: "900000-order.paid") == 200)
        #expect(try await send(fresh, rotated, id: "900000-order.paid") == 200)
        #expect(Self.storedIds(storePath).sorted() == (expected + ["900000-order.paid"]).sorted())
        #expect(Self.lines(logPath).filter { $0.contains("400 refused") }.count == 3)
        await daemon.kill9()
    }

    /// The event ids in a receiver's store, one per line, repeats kept.
    static func storedIds(_ path: String) -> [String] {
        Self.lines(path).compactMap { line in (try? JSONParser.parse(line))?["id"]?.stringValue }
    }

    /// The follower example handles every event once, in order, across a stop (SIGTERM, exit 0) and a restart from
    /// its saved position, with events appended while it was stopped.
    @Test(arguments: Language.allCases) func followerResumesFromSavedPosition(_ language: Language) async throws {
        let interpreter = try Self.interpreter(language)
        let directory = TemporaryDirectory()
        let daemon = try await Self.daemon(directory)
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { Task { try? await client.shutdown() } }
        let positionPath = directory.path + "/follow.position"
        let arguments = [language.program("follow_events"), "--socket", daemon.socketPath, "--position", positionPath]
        try await Self.createOrder(daemon, "SHOP-1")
        try await Self.createOrder(daemon, "SHOP-2")

        let firstLog = directory.path + "/follow-1.log"
        let first = try Self.launch(interpreter, arguments, logPath: firstLog)
        defer { kill(first.processIdentifier, SIGKILL) }
        try await eventually("the backlog is handled") { Self.sequences(firstLog).count >= 2 }
        #expect(Self.sequences(firstLog) == [1, 2])
        try await Self.createOrder(daemon, "SHOP-3")
        try await eventually("a new event is handled") { Self.sequences(firstLog).count >= 3 }
        #expect(Self.sequences(firstLog) == [1, 2, 3])
        #expect(try await Self.end(first, with: SIGTERM) == 0, "\(Self.lines(firstLog))")
        #expect(Self.lines(positionPath) == ["3"])

        // While it is stopped: an order created and one paid.
        try await Self.createOrder(daemon, "SHOP-4")
        try await Self.pay(daemon, "SHOP-1", client: client)
        let secondLog = directory.path + "/follow-2.log"
        let second = try Self.launch(interpreter, arguments, logPath: secondLog)
        defer { kill(second.processIdentifier, SIGKILL) }
        try await eventually("the events of the stop are handled") { Self.sequences(secondLog).count >= 2 }
        #expect(Self.sequences(secondLog) == [4, 5], "it resumed from the wrong place")
        try await Self.createOrder(daemon, "SHOP-5")
        try await eventually("a new event is handled") { Self.sequences(secondLog).count >= 3 }
        #expect(Self.sequences(secondLog) == [4, 5, 6])
        #expect(try await Self.end(second, with: SIGTERM) == 0, "\(Self.lines(secondLog))")
        #expect(Self.lines(positionPath) == ["6"])
        #expect(try await daemon.call(LedgerStats.self).head.sequence == 6)
        #expect(Self.lines(secondLog).contains { $0.contains("sequence 5: callback.received.v1 for order SHOP-1") })
        await daemon.kill9()
    }

    /// The sequences a follower printed (`sequence N: ...`), in the order printed.
    static func sequences(_ logPath: String) -> [Int] {
        Self.lines(logPath).compactMap { line in
            guard line.utf8.starts(with: "sequence ".utf8), let colon = line.utf8.firstIndex(of: UInt8(ascii: ":"))
            else { return nil }
            return Int(
                String(decoding: line.utf8[line.utf8.index(line.utf8.startIndex, offsetBy: 9)..<colon], as: UTF8.self)
            )
        }
    }
}
