import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerDaemon
import LedgerTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The control socket against clients that are foreign, greedy or careless: over the real socket.
@Suite(.serialized) struct ControlHostileTests {
    /// Records `count` copies of one valid notification for `orderId` (one accepted, the rest duplicates).
    static func callbacks(_ harness: ControlHarness, orderId: String, count: Int) async throws {
        _ = try await harness.daemon.ledger.createOrder(.testing(orderId: orderId))
        let body = Array(Notifications.body(Notifications.fields(orderId: orderId)).utf8)
        for _ in 0..<count { _ = try await harness.daemon.ledger.recordNotification(body: body, remoteAddress: "test") }
    }

    static func errorCode(_ response: JSONValue) -> JSONValue? { response["error"]?["code"] }

    /// Connections of a foreign uid are refused and closed at once without counting against
    /// control.connectionsMax: while it holds many open, root is still served.
    @Test(.enabled(if: getuid() == 0, "needs root to run a client under another uid"))
    func foreignUidDoesNotCount() async throws {
        try await withControlDaemon(socketMode: 0o660, configure: { $0.connectionsMax = 4 }) { harness in
            // Where the other uid can write: the test's own directory is private.
            let marker = FileManager.default.temporaryDirectory.appendingPathComponent(
                "ledgerd-held-\(UUID().uuidString)"
            ).path
            defer { try? FileManager.default.removeItem(atPath: marker) }
            // Connections as uid 65534, kept open by the client; it reports how many were told permission-denied.
            let script = """
                import os, socket, sys
                os.setgroups([0]); os.setgid(0); os.setuid(65534)
                import time
                held = []
                denied = 0
                # Connections opened one after another for two seconds and never closed by this client: each is
                # read up to its answer, so the daemon has surely seen it.
                end = time.time() + 2
                while time.time() < end and len(held) < 150:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.connect(sys.argv[1])
                    s.settimeout(20)
                    data = b''
                    try:
                        while not data.endswith(b'\\n'):
                            chunk = s.recv(65536)
                            if not chunk: break
                            data += chunk
                    except socket.timeout:
                        pass
                    if b'permission-denied' in data: denied += 1
                    held.append(s)
                    if len(held) == 10: os.close(os.open(sys.argv[2], os.O_CREAT | os.O_WRONLY, 0o666))
                    time.sleep(0.01)
                sys.stdout.write('denied %d of %d' % (denied, len(held)))
                """
            let path = harness.socketPath
            let client = Task {
                try await blocking { try ChildProcess.run("/usr/bin/env", ["python3", "-c", script, path, marker]) }
            }
            var connected = false
            // Up to a minute: the interpreter starts slowly on a loaded machine.
            for _ in 0..<2400 where !connected {
                connected = FileManager.default.fileExists(atPath: marker)
                if !connected { try await Task.sleep(for: .milliseconds(25)) }
            }
            #expect(connected)
            let stats = try await harness.call("ledger.stats")
            #expect(stats["result"] != nil, "\(stats)")
            let result = try await client.value
            let counts = result.output.split(separator: " ").compactMap { Int($0) }
            #expect(counts.count == 2 && counts[0] == counts[1] && counts[1] >= 10, "\(result.output)")
        }
    }

    /// A client that pipelines three times control.requestsInFlightMax requests at once is slowed, not refused:
    /// every request is answered with its result.
    @Test func pipeliningIsSlowedNotRefused() async throws {
        try await withControlDaemon(configure: { $0.requestsInFlightMax = 4 }) { harness in
            let path = harness.socketPath
            let answers = try await blocking { () throws -> [[JSONValue]] in
                let socket = try ControlConnection(path)
                var rounds: [[JSONValue]] = []
                for round in 0..<2 {
                    var batch = ""
                    for index in 0..<12 {
                        batch += "{\"jsonrpc\":\"2.0\",\"id\":\(round * 100 + index),\"method\":\"ledger.stats\"}\n"
                    }
                    socket.send(batch)
                    var messages: [JSONValue] = []
                    for _ in 0..<12 {
                        guard let message = try socket.readMessage() else { break }
                        messages.append(message)
                    }
                    rounds.append(messages)
                }
                return rounds
            }
            for messages in answers {
                #expect(messages.count == 12)
                #expect(messages.allSatisfy { $0["result"] != nil }, "\(messages.filter { $0["result"] == nil })")
                #expect(Set(messages.compactMap { $0["id"] }).count == 12)
            }
        }
    }

    /// Order ids no order can have, and cursors naming one, are invalid params (-32602) in every method that
    /// looks an order up, never an internal error from the store.
    @Test func impossibleKeysAreInvalidParams() async throws {
        try await withControlDaemon { harness in
            let long = String(repeating: "A", count: 600)
            let calls: [(String, JSONObject)] = [
                ("order.get", ["orderId": ""]), ("order.get", ["orderId": .string(long)]),
                ("order.get", ["orderId": "a b"]), ("order.history", ["orderId": ""]),
                ("order.history", ["orderId": .string(long)]), ("order.queryNow", ["orderId": ""]),
                ("callbacks.audit", ["orderId": ""]), ("order.list", ["cursor": "created:"]),
                ("order.list", ["cursor": .string("created:" + long)]), ("order.list", ["cursor": "paid:"]),
                ("order.history", ["orderId": "H1", "cursor": ""]),
                ("order.history", ["orderId": "H1", "cursor": "-1"]),
            ]
            for (method, params) in calls {
                let response = try await harness.call(method, params)
                #expect(Self.errorCode(response) == .number("-32602"), "\(method) \(params): \(response)")
            }
        }
    }

    /// order.history pages: without params the first page of 100 and a cursor; the cursors lead through every
    /// entry once, in order; the answers match the schemas; a cursor that is no event of the order is refused.
    @Test func historyPages() async throws {
        try await withControlDaemon { harness in
            try await Self.callbacks(harness, orderId: "H1", count: 250)
            let rpc = try await harness.session()
            let seen = try await blocking {
                () throws -> (pages: [Int], sequences: [Int64], last: JSONValue?, stranger: JSONValue) in
                let first = try rpc.call("order.history", ["orderId": "H1"])
                var pages = [first["result"]?["entries"]?.arrayValue?.count ?? 0]
                var sequences = (first["result"]?["entries"]?.arrayValue ?? []).compactMap {
                    $0["event"]?["sequence"]?.int64Value
                }
                var cursor = first["result"]?["nextCursor"]
                while let next = cursor?.stringValue, pages.count < 100 {
                    let page = try rpc.call("order.history", ["orderId": "H1", "cursor": .string(next), "limit": 70])
                    let entries = page["result"]?["entries"]?.arrayValue ?? []
                    pages.append(entries.count)
                    sequences += entries.compactMap { $0["event"]?["sequence"]?.int64Value }
                    cursor = page["result"]?["nextCursor"]
                }
                let stranger = try rpc.call("order.history", ["orderId": "H1", "cursor": "999999"])
                return (pages, sequences, cursor, stranger)
            }
            #expect(
                seen.pages == [100, 70, 70, 11],
                "the first page has the default 100 entries, the others 70 at most"
            )
            #expect(seen.last == .null)
            #expect(seen.sequences.count == 251)
            #expect(seen.sequences == seen.sequences.sorted() && Set(seen.sequences).count == 251)
            #expect(Self.errorCode(seen.stranger) == .number("-32602"))
            let records = rpc.records
            let checked = try checkSchemas(records)
            #expect(checked.status == 0, "\(checked.output)")
        }
    }

    /// One answer larger than control.writeBufferBytesMax reaches a client that reads it: a large answer is not a
    /// client that does not read.
    @Test func largeAnswerIsNotASlowClient() async throws {
        try await withControlDaemon(configure: { $0.writeBufferBytesMax = 4096 }) { harness in
            try await Self.callbacks(harness, orderId: "H2", count: 40)
            let response = try await harness.call("order.history", ["orderId": "H2", "limit": 1000])
            #expect(response["result"]?["entries"]?.arrayValue?.count == 41, "\(response)")
        }
    }

    /// A client that writes many order.history requests before it reads, whose answers together are many times
    /// control.writeBufferBytesMax, gets every answer: answering waits while the output is backed up, so a client
    /// that pipelines and reads is slowed, never dropped.
    @Test func pipelinedReadsLargerThanTheBufferAreAllAnswered() async throws {
        try await withControlDaemon(configure: { $0.writeBufferBytesMax = 4096 }) { harness in
            try await Self.callbacks(harness, orderId: "H4", count: 40)
            let path = harness.socketPath
            let answers = try await blocking { () throws -> [JSONValue] in
                let socket = try ControlConnection(path)
                var batch = ""
                for index in 0..<60 {
                    batch += #"{"jsonrpc":"2.0","id":\#(index),"method":"order.history","#
                    batch += #""params":{"orderId":"H4","limit":1000}}"# + "\n"
                }
                socket.send(batch)
                var messages: [JSONValue] = []
                while messages.count < 60, let message = try socket.readMessage() { messages.append(message) }
                return messages
            }
            #expect(answers.count == 60)
            #expect(answers.allSatisfy { $0["result"]?["entries"]?.arrayValue?.count == 41 })
            #expect(Set(answers.compactMap { $0["id"] }).count == 60)
        }
    }

    /// Connections that share one control thread are each answered in full: several clients pipelining
    /// order.history and order.get on control.threads = 1 get every answer with its own id and order.
    @Test func connectionsSharingOneThreadAreAllAnswered() async throws {
        try await withControlDaemon(configure: { $0.threads = 1 }) { harness in
            for index in 0..<4 { try await Self.callbacks(harness, orderId: "T\(index)", count: 2) }
            let path = harness.socketPath
            let answers = try await withThrowingTaskGroup(of: (Int, [JSONValue]).self) { group in
                for client in 0..<4 {
                    group.addTask {
                        try await blocking { () throws -> (Int, [JSONValue]) in
                            let socket = try ControlConnection(path)
                            var batch = ""
                            for index in 0..<20 {
                                let method = index.isMultiple(of: 2) ? "order.history" : "order.get"
                                batch += #"{"jsonrpc":"2.0","id":\#(index),"method":"\#(method)","#
                                batch += #""params":{"orderId":"T\#(client)"}}"# + "\n"
                            }
                            socket.send(batch)
                            var messages: [JSONValue] = []
                            while messages.count < 20, let message = try socket.readMessage() {
                                messages.append(message)
                            }
                            return (client, messages)
                        }
                    }
                }
                var all: [(Int, [JSONValue])] = []
                for try await answer in group { all.append(answer) }
                return all
            }
            #expect(answers.count == 4)
            for (client, messages) in answers {
                #expect(messages.count == 20)
                #expect(Set(messages.compactMap { $0["id"] }).count == 20)
                for message in messages {
                    #expect(message["result"]?["orderId"] == .string("T\(client)"), "\(message)")
                }
            }
        }
    }

    /// A subscriber that never reads is still dropped once its unread output passes control.writeBufferBytesMax
    /// beyond the message being written, so it cannot grow the daemon's memory.
    @Test func subscriberThatDoesNotReadIsDropped() async throws {
        try await withControlDaemon(configure: { $0.writeBufferBytesMax = 4096 }) { harness in
            let path = harness.socketPath
            let socket = try await blocking { try ControlConnection(path) }
            socket.send(#"{"jsonrpc":"2.0","id":1,"method":"events.subscribe"}"# + "\n")
            let answer = try await blocking { try socket.readMessage() }
            #expect(answer?["result"] != nil, "\(String(describing: answer))")
            // Far more events than the socket's buffers and the bound hold, while the client reads nothing.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<1500 {
                    group.addTask {
                        _ = try await harness.daemon.ledger.createOrder(.testing(orderId: "S\(index)", amount: "1.00"))
                    }
                }
                try await group.waitForAll()
            }
            // Reading now finds the stream cut short: the daemon dropped the client.
            let events = try await blocking { () throws -> Int in
                var count = 0
                while let message = try socket.readMessage() {
                    if message["method"] == "events.event" { count += 1 }
                }
                return count
            }
            #expect(events < 1500)
        }
    }

    /// `ledgerctl history` follows the pages and prints every entry.
    @Test func ctlHistoryFollowsPages() async throws {
        try await withControlDaemon { harness in
            try await Self.callbacks(harness, orderId: "H3", count: 1100)
            let out = try await ControlCtlTests.ctl(["history", "H3", "--json", "--socket", harness.socketPath])
            #expect(out.status == 0, "\(out.err)")
            let result = try JSONParser.parse(
                Array(out.out.utf8),
                limits: JSONLimits(bytesMax: 1 << 28, depthMax: 64, stringBytesMax: 1 << 28)
            )
            #expect(result["entries"]?.arrayValue?.count == 1101)
        }
    }

    /// A backup goes into a new directory in an existing parent: directory 0700, file 0600. A missing parent or
    /// an existing path is refused with -32602 naming the path and why, and nothing is created.
    @Test func backupPaths() async throws {
        try await withControlDaemon { harness in
            let base = harness.directory.path
            let good = try await harness.call("ledger.backup", ["path": .string(base + "/copy")])
            #expect(good["result"] != nil, "\(good)")
            var status = stat()
            #expect(stat(base + "/copy", &status) == 0 && status.st_mode & 0o777 == 0o700)
            #expect(stat(base + "/copy/data.mdb", &status) == 0 && status.st_mode & 0o777 == 0o600)
            for path in [base + "/missing/dir/x", base + "/copy", "relative/x", base + "/.."] {
                let refused = try await harness.call("ledger.backup", ["path": .string(path)])
                #expect(Self.errorCode(refused) == .number("-32602"), "\(path): \(refused)")
                #expect(refused["error"]?["message"]?.stringValue?.contains(path) == true, "\(refused)")
            }
            #expect(!FileManager.default.fileExists(atPath: base + "/missing"))
        }
    }
}
