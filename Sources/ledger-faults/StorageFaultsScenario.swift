import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerTesting

#if canImport(Glibc)
    import Glibc
#endif

/// Storage faults: a map full from a tiny initial map grows and the daemon continues; a full disk (a small tmpfs as
/// the data directory) answers no `OK` for what it could not store and recovers once space is back; a record
/// damaged on disk while the daemon is stopped is found by its checksum, reported by `ledger.verify` and never
/// served as a fact.
struct StorageFaultsScenario {
    let binaries: Binaries
    let directory: String

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("storage faults")
        try await self.mapFull(&report)
        try await self.diskFull(&report)
        try await self.corruptedRecord(&report)
        return report
    }

    /// Sends a valid notification for every order, `concurrency` at a time; returns each order's answer.
    static func notifyAll(_ orders: [String], daemon: DaemonProcess, concurrency: Int = 16) async -> [String:
        HTTPAnswer]
    {
        let http = HTTP(connections: concurrency)
        let queue = Shared(orders)
        let answers = Shared<[String: HTTPAnswer]>([:])
        let url = daemon.baseURL + "/notify"
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    while let orderId = queue.with({ $0.isEmpty ? nil : $0.removeFirst() }) {
                        let answer =
                            (try? await http.post(url, Notification.body(orderId: orderId)))
                            ?? HTTPAnswer(status: nil, body: "no answer")
                        answers.with { $0[orderId] = answer }
                    }
                }
            }
        }
        await http.shutdown()
        return answers.value
    }

    static let acknowledgement = HTTPAnswer(status: 200, body: "OK")

    // MARK: Map full

    func mapFull(_ report: inout ScenarioReport) async throws {
        let initial = 256 << 10
        let daemon = try DaemonProcess(
            binaries: self.binaries,
            directory: self.directory + "/map",
            extra: ["store": ["mapSize": .number(String(initial))]]
        )
        try await daemon.start()
        let orders = (0..<1500).map { "M\($0)" }
        var createErrors: [String] = []
        for start in stride(from: 0, to: orders.count, by: 300) {
            do {
                _ = try await daemon.createOrders(Array(orders[start..<min(start + 300, orders.count)]))
            } catch {
                createErrors.append("\(error)")
            }
        }
        let answers = await Self.notifyAll(orders, daemon: daemon)
        let refused = answers.filter { $0.value != Self.acknowledgement }
        let stats = try await daemon.call(LedgerStats.self)
        let mapBytes = Int(stats.mapBytes ?? 0)
        report.check(
            createErrors.isEmpty,
            "map full: order.create failed while the map grew: \(createErrors.prefix(3))"
        )
        report.check(
            refused.isEmpty,
            "map full: \(refused.count) notifications not acknowledged while the map grew, e.g. \(refused.first.map { "\($0.key): \($0.value)" } ?? "")"
        )
        report.check(mapBytes > initial, "map full: the map is \(mapBytes) bytes, not grown from \(initial)")
        // Every acknowledged callback survives a restart of the grown store.
        await daemon.kill9()
        try await daemon.start()
        let acks = answers.filter { $0.value == Self.acknowledgement }.map {
            Acknowledgement(orderId: $0.key, transactionId: "T" + $0.key)
        }
        let failures = try await blocking { [daemon] in
            try AckChecker().check(try daemon.control(), acks: acks, touched: [:])
        }
        report.check(failures.isEmpty, "map full: after restart: " + failures.prefix(5).joined(separator: "; "))
        report.figures.append(
            "map grew \(initial >> 10) KiB → \(mapBytes >> 10) KiB under \(acks.count) acknowledged callbacks"
        )
        await daemon.stop()
    }

    // MARK: Disk full

    func diskFull(_ report: inout ScenarioReport) async throws {
        let mountPoint = self.directory + "/tmpfs"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mount = Self.shell("/bin/mount", ["-t", "tmpfs", "-o", "size=24m", "tmpfs", mountPoint])
        guard mount.status == 0 else {
            let message =
                "disk full: cannot mount a tmpfs (\(mount.output.trimmingCharacters(in: .whitespacesAndNewlines))); the disk-full case needs root"
            say("  SKIPPED: " + message)
            report.skipped = message
            return
        }
        defer { _ = Self.shell("/bin/umount", ["-l", mountPoint]) }
        let daemon = try DaemonProcess(binaries: self.binaries, directory: self.directory + "/disk")
        daemon.dataDir = mountPoint + "/ledger"
        try await daemon.start()
        let before = (0..<100).map { "DA\($0)" }
        let during = (0..<300).map { "DB\($0)" }
        _ = try await daemon.createOrders(before + during)
        let first = await Self.notifyAll(before, daemon: daemon)
        report.check(
            first.values.allSatisfy { $0 == Self.acknowledgement },
            "disk full: notifications before the disk filled were refused"
        )

        // Fill the file system to the last byte.
        let filler = mountPoint + "/filler"
        let filled = Self.fill(filler)
        let during1 = await Self.notifyAll(during, daemon: daemon, concurrency: 8)
        var createAnswer: String
        do {
            _ = try await daemon.call(
                OrderCreate.self,
                OrderCreate.Params(orderId: "DFULL", amount: "1.00", bankCode: "940", productName: "p")
            )
            createAnswer = "created"
        } catch let error as ControlError {
            createAnswer = "\(error.code)"
        }
        let refused = during1.filter { $0.value != Self.acknowledgement }
        let wrong = refused.filter { $0.value != HTTPAnswer(status: 503, body: "ledger unavailable, retry later") }
        report.check(
            !refused.isEmpty,
            "disk full: every notification was acknowledged on a full disk (\(filled) bytes of filler)"
        )
        report.check(
            wrong.isEmpty,
            "disk full: refusals other than 503: \(wrong.prefix(3).map { "\($0.key): \($0.value)" })"
        )
        report.check(
            createAnswer == "created" || createAnswer == "-32005",
            "disk full: order.create answered \(createAnswer), specified store-full (-32005)"
        )
        report.check(daemon.isRunning, "disk full: the daemon died: \(daemon.logTail())")
        // What was refused was not stored; what was acknowledged was.
        var leaked: [String] = []
        for orderId in refused.keys.sorted() {
            let state = try await daemon.order(orderId)
            if state.state != .created || state.callbacks.received != 0 { leaked.append(orderId) }
        }
        report.check(leaked.isEmpty, "disk full: refused notifications were stored after all: \(leaked.prefix(5))")

        // Space comes back: the same notifications, sent again as the gateway would, are stored and acknowledged.
        try? FileManager.default.removeItem(atPath: filler)
        let retried = await Self.notifyAll(refused.keys.sorted(), daemon: daemon, concurrency: 8)
        let stillRefused = retried.filter { $0.value != Self.acknowledgement }
        report.check(
            stillRefused.isEmpty,
            "disk full: after space came back \(stillRefused.count) retries were refused, e.g. \(stillRefused.first.map { "\($0.key): \($0.value)" } ?? "")"
        )
        let acks = (before + during).filter {
            (first[$0] ?? during1[$0]) == Self.acknowledgement || retried[$0] == Self.acknowledgement
        }
        .map { Acknowledgement(orderId: $0, transactionId: "T" + $0) }
        let live = try await blocking { [daemon] in
            try AckChecker().check(try daemon.control(), acks: acks, touched: [:])
        }
        report.check(live.isEmpty, "disk full: after recovery: " + live.prefix(5).joined(separator: "; "))
        await daemon.kill9()
        try await daemon.start()
        let restarted = try await blocking { [daemon] in
            try AckChecker().check(try daemon.control(), acks: acks, touched: [:])
        }
        report.check(
            restarted.isEmpty,
            "disk full: after kill -9 and restart: " + restarted.prefix(5).joined(separator: "; ")
        )
        report.figures.append(
            "disk full: \(refused.count) refused with 503 on a full 24 MiB tmpfs, all stored once space came back"
        )
        await daemon.stop()
    }

    /// Writes zeros to `path` until the file system is full; returns the bytes written.
    static func fill(_ path: String) -> Int {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        defer { close(fd) }
        var written = 0
        for size in [1 << 20, 4096, 1] {
            let chunk = [UInt8](repeating: 0, count: size)
            while true {
                let count = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if count <= 0 { break }
                written += count
            }
        }
        return written
    }

    // MARK: Corrupted record

    func corruptedRecord(_ report: inout ScenarioReport) async throws {
        let daemon = try DaemonProcess(binaries: self.binaries, directory: self.directory + "/corrupt")
        try await daemon.start()
        let marker = "DAMAGEDRECORD7"
        _ = try await daemon.createOrders(["R1"])
        _ = try await daemon.createOrders(["R2"], attach: marker)
        _ = try await daemon.createOrders(["R3", "R4", "R5"])
        let answers = await Self.notifyAll(["R1", "R3", "R4"], daemon: daemon)
        report.check(
            answers.values.allSatisfy { $0 == Self.acknowledgement },
            "corruption: setup notifications refused"
        )
        let history = try await daemon.history("R2")
        let damagedSequence = history.first.map { Int($0.event.sequence) } ?? -1
        await daemon.stop()

        // Flip one byte of the marker wherever it is in the file: the live record and any stale page copies.
        let path = daemon.dataDir + "/data.mdb"
        var data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let needle = Array(marker.utf8)
        var flipped = 0
        var index = 0
        while let range = data[index...].firstRange(of: needle) {
            data[range.lowerBound + 3] ^= 0x01
            flipped += 1
            index = range.upperBound
        }
        try Data(data).write(to: URL(fileURLWithPath: path))
        report.check(flipped > 0, "corruption: the marker was not found in data.mdb")

        try await daemon.start()
        let chain = try await daemon.call(LedgerVerify.self)
        let firstBreak = chain.firstBreak
        report.check(
            !chain.intact && firstBreak.map { Int($0.sequence) } == damagedSequence
                && (firstBreak?.reason ?? "").contains("checksum"),
            "corruption: ledger.verify reported \(chain.json)"
        )
        // Never served as a fact: reading the damaged event fails with store-corrupted, whatever the path.
        /// A read of the damaged record is refused as store-corrupted.
        func expectCorrupted<M: ControlMethod>(_ method: M.Type, _ params: M.Params) async throws {
            do {
                let result = try await daemon.call(method, params)
                report.check(
                    false,
                    "corruption: \(M.name.rawValue) served the damaged record: \(String(describing: result.json).prefix(300))"
                )
            } catch let error as ControlError {
                report.check(
                    error.code == -32006 && error.name == "store-corrupted",
                    "corruption: \(M.name.rawValue) answered \(error), specified store-corrupted (-32006)"
                )
            }
        }
        try await expectCorrupted(OrderHistory.self, OrderHistory.Params(orderId: "R2"))
        try await expectCorrupted(
            EventsRead.self,
            EventsRead.Params(fromSequence: UInt64(max(1, damagedSequence)), limit: 10)
        )
        do {
            let result = try await daemon.call(ProjectionVerify.self, ProjectionVerify.Params())
            report.check(
                false,
                "corruption: projection.verify replayed the damaged record: \(String(describing: result.json).prefix(300))"
            )
        } catch let error as ControlError {
            report.check(
                error.code == -32006,
                "corruption: projection.verify answered \(error), specified store-corrupted (-32006)"
            )
        }
        // The rest of the ledger keeps serving: other orders are read and paid.
        let others = try await daemon.history("R3")
        report.check(others.count == 2, "corruption: order R3's history is \(others.map(\.json))")
        let later = await Self.notifyAll(["R5"], daemon: daemon)
        report.check(
            later["R5"] == Self.acknowledgement,
            "corruption: a new notification got \(later["R5"] ?? HTTPAnswer(status: nil, body: ""))"
        )
        report.figures.append(
            "1 damaged record (\(flipped) copies in the file) found by checksum at event \(damagedSequence)"
        )
        await daemon.stop()
    }

    /// Runs a command; returns its exit status and output.
    static func shell(_ path: String, _ arguments: [String]) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do {
            try process.run()
        } catch {
            return (-1, "\(error)")
        }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}
