import ArgumentParser
import Foundation
import Hummingbird

struct SystemCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "system",
        abstract:
            "Durable callbacks per second, control-socket round trips, rebuild time and memory of the real daemon.",
        discussion: """
            Seeds a fresh ledger (default 1,000,000 orders; the unpaid ones are set aside for the callback runs), \
            starts the release `ledgerd` on it and measures it from outside, in one run:

              callbacks  wrk posts valid, distinct, signed notifications for created orders at each connection \
            count (default 1, 16, 64); every answer must be OK and the ledger's paid count must grow by the number \
            of OKs. Baselines: the same daemon with group commit off (store.batchCountMax=1, one fsync per \
            callback) and the same HTTP stack (Hummingbird) answering a bare OK (`ledger-bench bare-ok`).
              forward    the widest callback run again on a daemon that forwards every outcome to a receiver \
            answering at once (the bare OK server); the forwarder must deliver every outcome of the run. Target: \
            ≥ 0.9× the run without forwarding.
              control    order.history round trips from 1 and 8 client connections over the control socket.
              rebuild    projection.rebuild through the control socket, timed from the client.
              memory     the daemon's anonymous resident memory (RssAnon) with every order loaded.

            Needs wrk (Debian: apt-get install wrk). Targets: ≥ 20,000 callbacks/s at 64 connections with p99 < 10 ms \
            and ≤ 80 µs of ledgerd CPU each, ≥ 0.6× the bare OK, ≥ 10× one fsync per callback; ≥ 30,000 \
            order.history/s with 8 clients, p99 ≤ 2 ms; rebuild ≤ 3 s; RssAnon ≤ 200 MB.
            """
    )

    @Option(help: "Orders in the ledger. (default: 1000000, or 20000 with --quick)")
    var orders: Int?

    @Option(help: "Unpaid orders set aside per callback run. (default: 150000, or 3000 with --quick)")
    var callbackOrders: Int?

    @Option(help: "Seconds of load per callback run. (default: 8, or 1 with --quick)")
    var seconds: Int?

    @Option(help: "Connection counts of the callback runs, comma-separated.")
    var connections = "1,16,64"

    @Option(help: "Seconds per control-socket run. (default: 5, or 1 with --quick)")
    var controlSeconds: Int?

    @Option(
        help: ArgumentHelp(
            "Run only these parts, comma-separated: callbacks, forward, control, rebuild, memory.",
            valueName: "parts"
        )
    )
    var only: String?

    @Option(help: "The ledgerd executable. (default: next to this one)")
    var ledgerd: String?

    @Option(help: "The load script. (default: tools/bench-notify.lua beside the package)")
    var script: String?

    @OptionGroup var output: BenchOutputOptions

    func validate() throws {
        let counts = self.connections.split(separator: ",").map { Int($0) }
        guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw ValidationError("--connections must be positive whole numbers, comma-separated.")
        }
        for (name, value) in [
            ("--orders", self.orders), ("--callback-orders", self.callbackOrders), ("--seconds", self.seconds),
            ("--control-seconds", self.controlSeconds),
        ] {
            if let value, value < 1 { throw ValidationError("\(name) must be at least 1.") }
        }
        if let only {
            let parts: [(name: Substring, part: SystemBenchConfig.Part?)] = benchParts(only)
            for (name, part) in parts where part == nil {
                throw ValidationError("--only: '\(name)' is not one of callbacks, forward, control, rebuild, memory.")
            }
            if parts.contains(where: { $0.part == .forward }), !parts.contains(where: { $0.part == .callbacks }) {
                throw ValidationError("--only: forward is compared with the callback runs; add callbacks.")
            }
        }
    }

    func run() async throws {
        var config = self.output.quick ? SystemBenchConfig.quick : SystemBenchConfig.full
        config.orders = self.orders ?? config.orders
        config.callbackOrders = self.callbackOrders ?? config.callbackOrders
        config.seconds = self.seconds ?? config.seconds
        config.controlSeconds = self.controlSeconds ?? config.controlSeconds
        config.connections = self.connections.split(separator: ",").compactMap { Int($0) }
        if let only = self.only {
            config.parts = Set(benchParts(only).compactMap(\.part))
        }
        let own = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let ledgerd = self.ledgerd ?? own.deletingLastPathComponent().appendingPathComponent("ledgerd").path
        guard FileManager.default.isExecutableFile(atPath: ledgerd) else {
            throw BenchError(
                "No ledgerd at \(ledgerd): build it (swift build -c release --product ledgerd) or pass --ledgerd."
            )
        }
        let root = own.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let script = self.script ?? root.appendingPathComponent("tools/bench-notify.lua").path
        guard FileManager.default.fileExists(atPath: script) else {
            throw BenchError("No load script at \(script); pass --script.")
        }
        if config.parts.contains(.callbacks) {
            guard (try? runToEnd("/usr/bin/env", ["sh", "-c", "command -v wrk"])) != nil else {
                throw BenchError("The callback runs need wrk, which is not installed (Debian: apt-get install wrk).")
            }
        }

        let run = BenchRun.start("system")
        let results = try await SystemBenchmark(
            config: config,
            ledgerd: ledgerd,
            benchExecutable: own.path,
            loadScript: script
        ).run()
        let rows = systemFigures(results, config: config)
        let json = systemJSON(rows, results: results, run: run, config: config)
        print(self.output.json ? json : textTable(rows))
        try run.writeReport(json: json, named: "system", into: self.output.reportDirectory) {
            systemMarkdown(rows, results: results, run: run, config: config)
        }
        BenchRun.sayTargets(rows)
    }
}

/// The ceiling the daemon is compared with: the same HTTP stack reading the body and answering `OK`, nothing else.
struct BareOKCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bare-ok",
        abstract: "Serves POST /notify with a bare OK and no work: the system benchmark's HTTP ceiling."
    )

    @Option(help: "The loopback port to listen on.")
    var port: Int

    func run() async throws {
        let router = Router()
        router.post("/notify") { request, _ -> String in
            _ = try await request.body.collect(upTo: 8192)
            return "OK"
        }
        let application = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: self.port))
        )
        try await application.runService()
    }
}
