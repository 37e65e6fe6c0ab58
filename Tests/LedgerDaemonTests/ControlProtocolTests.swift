import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerDaemon
import LedgerStore
import LedgerTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The error name of a response, or nil for a result.
func errorName(_ response: JSONValue) -> String? { response["error"]?["data"]?["name"]?.stringValue }

/// Every control method over a real socket, and the traffic validated against `schemas/control/`.
@Suite(.serialized) struct ControlProtocolTests {
    /// Appends commit in log order, but the tasks that made them publish afterwards, each when it runs again, and
    /// two of them may run in either order. A subscriber still gets every event once, in log order: a later event
    /// arriving first is preceded by what it skipped, read from the log.
    @Test func subscriberGetsEveryEventWhenAppendsPublishOutOfOrder() async throws {
        try await withControlDaemon { harness in
            let subscriber = try await harness.session()
            let subscribed = try await blocking { try subscriber.call("events.subscribe", ["fromSequence": 1]) }
            #expect(subscribed["result"]?["fromSequence"] == .number("1"))
            func attempt(_ number: UInt32) -> PendingEvent {
                PendingEvent(
                    recordedAt: Instant(millisecondsSinceEpoch: 1_795_741_323_000),
                    orderId: "X1",
                    payload: .queryResult(
                        QueryResult(
                            attempt: number,
                            latencyMicroseconds: 1,
                            final: false,
                            httpStatus: nil,
                            body: [],
                            outcome: .transportError(message: "test")
                        )
                    )
                )
            }
            // Stored (committed) without being published, then published later one first.
            let store = harness.daemon.store
            let first = try #require(try await store.append(AppendRequest([attempt(1)])).events)
            let second = try #require(try await store.append(AppendRequest([attempt(2), attempt(3)])).events)
            harness.daemon.ledger.feed.publish(second)
            harness.daemon.ledger.feed.publish(first)
            let third = try #require(try await store.append(AppendRequest([attempt(4)])).events)
            harness.daemon.ledger.feed.publish(third)
            _ = try await blocking { try subscriber.readUntil { $0["params"]?["event"]?["sequence"] == .number("4") } }
            let sequences = subscriber.notifications.compactMap { $0.1["event"]?["sequence"]?.int64Value }
            #expect(sequences == [1, 2, 3, 4])
        }
    }

    /// Every method answers as its schema says; the recorded traffic passes `tools/check-schemas`.
    @Test func everyMethodOverTheSocketMatchesItsSchema() async throws {
        try await withControlDaemon { harness in
            let backupPath = harness.directory.path + "/backup"
            // One quarantined notification, for an order nobody created, so `quarantine.read` has an entry to show.
            try await harness.quarantineForgedNotification(orderId: "Q1", body: "memberid=10001&orderid=Q1&sign=0")
            let records = try await blocking { () throws -> [SchemaRecord] in
                let rpc = try RPCSession(harness.socketPath)
                let subscriber = try RPCSession(harness.socketPath)
                let subscribed = try subscriber.call("events.subscribe", ["fromSequence": 1])
                #expect(subscribed["result"]?["fromSequence"] == .number("1"))

                let created = try rpc.call(
                    "order.create",
                    ["orderId": "C1", "amount": "100.00", "bankCode": "942", "productName": "年卡", "attach": "会员"]
                )
                let result = try #require(created["result"])
                #expect(result["orderId"] == "C1")
                #expect(result["fields"]?["pay_amount"] == "100.00")
                #expect(result["fields"]?["pay_md5sign"]?.stringValue?.count == 32)
                #expect(result["payUrl"] == "http://127.0.0.1:8080/pay/C1")
                #expect(result["gatewayUrl"]?.stringValue?.hasSuffix("Pay_Index.html") == true)
                // The same order again with the same fields is the earlier result, not a second order.
                #expect(
                    try rpc.call(
                        "order.create",
                        ["orderId": "C1", "amount": "100.00", "bankCode": "942", "productName": "年卡", "attach": "会员"]
                    )["result"]?["created"] == false
                )
                let generated = try rpc.call(
                    "order.create",
                    ["amount": "1.50", "bankCode": "942", "productName": "coffee"]
                )
                #expect(generated["result"]?["orderId"]?.stringValue?.count == 20)

                let order = try rpc.call("order.get", ["orderId": "C1"])
                #expect(order["result"]?["state"] == "created")
                #expect(order["result"]?["flags"] == [])
                #expect(order["result"]?["order"]?["amountFen"] == .number("10000"))

                let history = try rpc.call("order.history", ["orderId": "C1"])
                #expect(history["result"]?["entries"]?.arrayValue?.count == 1)
                #expect(history["result"]?["entries"]?.arrayValue?.first?["effect"]?["kind"] == "created")

                let list = try rpc.call("order.list", ["status": "created", "limit": 1])
                #expect(list["result"]?["orders"]?.arrayValue?.count == 1)
                #expect(list["result"]?["counts"]?["created"] == .number("2"))
                let cursor = try #require(list["result"]?["nextCursor"]?.stringValue)
                let second = try rpc.call("order.list", ["status": "created", "limit": 1, "cursor": .string(cursor)])
                #expect(second["result"]?["orders"]?.arrayValue?.count == 1)
                #expect(
                    second["result"]?["orders"]?.arrayValue?.first?["orderId"]
                        != list["result"]?["orders"]?.arrayValue?.first?["orderId"]
                )
                let byBank = try rpc.call("order.list", ["bankCode": "942", "flag": "amount-mismatch"])
                #expect(byBank["result"]?["orders"] == [])

                let audit = try rpc.call("callbacks.audit", [:])
                // The one quarantined notification named no order the ledger holds: counted in the total only.
                #expect(audit["result"]?["total"]?["received"] == .number("1"))
                #expect(audit["result"]?["total"]?["badSignature"] == .number("1"))
                #expect(audit["result"]?["orders"] == [])
                #expect(audit["result"]?["quarantine"]?["entries"] == .number("1"))
                let quarantined = try rpc.call("quarantine.read", ["reason": "bad-signature", "limit": 10])
                #expect(quarantined["result"]?["entries"]?.arrayValue?.first?["orderId"] == "Q1")
                #expect(quarantined["result"]?["entries"]?.arrayValue?.first?["source"] == "192.0.2.1")
                #expect(quarantined["result"]?["nextCursor"] == .null)
                let none = try rpc.call("quarantine.read", ["reason": "foreign-member"])
                #expect(none["result"]?["entries"] == [])
                let stats = try rpc.call("ledger.stats")
                #expect(stats["result"]?["head"]?["sequence"] == .number("2"))
                #expect(stats["result"]?["ordersByState"]?["created"] == .number("2"))
                let verify = try rpc.call("ledger.verify")
                #expect(verify["result"]?["intact"] == true)
                let events = try rpc.call("events.read", ["fromSequence": 1, "limit": 10])
                #expect(events["result"]?["events"]?.arrayValue?.count == 2)
                #expect(events["result"]?["nextSequence"] == .number("3"))
                let projection = try rpc.call("projection.verify")
                #expect(projection["result"]?["matches"] == true)
                let rebuilt = try rpc.call("projection.rebuild")
                #expect(rebuilt["result"]?["orders"] == .number("2"))
                let backup = try rpc.call("ledger.backup", ["path": .string(backupPath)])
                #expect(backup["result"]?["path"] == .string(backupPath))
                // The gateway of the test configuration is unreachable, so the query is a recorded failure.
                let query = try rpc.call("order.queryNow", ["orderId": "C1"])
                #expect(query["result"]?["classification"] == "failed")
                #expect(query["result"]?["order"]?["queryAttempts"] == .number("1"))

                // The subscriber sees the two creations and the query result, in order.
                var sequences: [String] = []
                while sequences.count < 3 {
                    let message = try subscriber.readUntil { $0["method"] == "events.event" }
                    sequences.append(message["params"]?["event"]?["sequence"]?.numberText ?? "?")
                }
                #expect(sequences == ["1", "2", "3"])

                // Errors, recorded for error.json.
                #expect(errorName(try rpc.call("order.get", ["orderId": "missing"])) == "order-not-found")
                return rpc.records + subscriber.records
            }
            let checked = try checkSchemas(records)
            #expect(checked.status == 0, "\(checked.output)")
            #expect(checked.output.contains("0 problems"))
            let schemas = Set(records.map(\.schema))
            // The forward.* methods need a daemon that forwards: `ForwardControlTests` records their traffic.
            for method in ControlMethodName.allCases.map(\.rawValue) where !method.hasPrefix("forward.") {
                #expect(schemas.contains("control/\(method).result.json"), "no traffic recorded for \(method)")
            }
        }
    }

    /// The standard errors and the application errors have their codes and names, and the connection goes on.
    @Test func standardAndApplicationErrors() async throws {
        try await withControlDaemon { harness in
            try await blocking {
                let rpc = try RPCSession(harness.socketPath)
                let socket = rpc.socket
                // Truncated JSON: a parse error with a null id.
                socket.send("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ledger.stats\"\n")
                let truncated = try #require(try socket.readMessage())
                #expect(truncated["error"]?["code"] == .number("-32700"))
                #expect(truncated["id"] == .null)
                // Not a request object.
                socket.send("{\"id\":2,\"method\":\"ledger.stats\"}\n")
                let noVersion = try #require(try socket.readMessage())
                #expect(noVersion["error"]?["code"] == .number("-32600"))
                #expect(noVersion["id"] == .number("2"))
                socket.send("[{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ledger.stats\"}]\n")
                #expect(errorName(try #require(try socket.readMessage())) == "invalid-request")
                // Unknown method.
                let unknown = try rpc.call("order.teleport")
                #expect(unknown["error"]?["code"] == .number("-32601"))
                #expect(errorName(unknown) == "method-not-found")
                // Wrong param types and unknown params.
                let wrongType = try rpc.call("order.get", ["orderId": 42])
                #expect(wrongType["error"]?["code"] == .number("-32602"))
                #expect(wrongType["error"]?["message"]?.stringValue?.contains("orderId") == true)
                #expect(errorName(try rpc.call("events.read", ["limit": "ten"])) == "invalid-params")
                #expect(errorName(try rpc.call("order.list", ["colour": "red"])) == "invalid-params")
                #expect(errorName(try rpc.call("order.create", ["amount": "1.00"])) == "invalid-params")
                // Application errors.
                #expect(
                    errorName(try rpc.call("order.create", ["amount": "abc", "bankCode": "942", "productName": "x"]))
                        == "invalid-order"
                )
                _ = try rpc.call(
                    "order.create",
                    ["orderId": "E1", "amount": "1.00", "bankCode": "942", "productName": "x"]
                )
                let conflict = try rpc.call(
                    "order.create",
                    ["orderId": "E1", "amount": "2.00", "bankCode": "942", "productName": "x"]
                )
                #expect(errorName(conflict) == "order-conflict")
                #expect(conflict["error"]?["code"] == .number("-32002"))
                #expect(errorName(try rpc.call("order.history", ["orderId": "nope"])) == "order-not-found")
                #expect(errorName(try rpc.call("order.queryNow", ["orderId": "nope"])) == "order-not-found")
                // Pipelining: two requests written at once are both answered, each with its id.
                socket.send(
                    "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"ledger.stats\"}\n{\"jsonrpc\":\"2.0\",\"id\":\"b\",\"method\":\"order.get\",\"params\":{\"orderId\":\"E1\"}}\n"
                )
                let first = try #require(try socket.readMessage())
                let second = try #require(try socket.readMessage())
                #expect(Set([first["id"], second["id"]].compactMap { $0 }) == Set<JSONValue>(["a", "b"]))
                // Still serving on the same connection.
                #expect(try rpc.call("ledger.stats")["result"] != nil)
                // The deliberately wrong params above are left out: the schemas refuse them too.
                let checked = try checkSchemas(rpc.records.filter { !$0.schema.hasSuffix(".params.json") })
                #expect(checked.status == 0, "\(checked.output)")
                let refused = try checkSchemas(rpc.records.filter { $0.schema == "control/order.get.params.json" })
                #expect(refused.status == 1)
            }
        }
    }

    /// Invalid UTF-8 and nesting past control.jsonDepthMax are parse errors; the connection stays usable.
    @Test func invalidUTF8AndDeepNestingAreParseErrors() async throws {
        try await withControlDaemon(configure: { $0.jsonDepthMax = 8 }) { harness in
            try await blocking {
                let rpc = try RPCSession(harness.socketPath)
                rpc.socket.send(
                    Array("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"".utf8) + [0xC3, 0x28] + Array("\"}\n".utf8)
                )
                let utf8 = try #require(try rpc.socket.readMessage())
                #expect(utf8["error"]?["code"] == .number("-32700"))
                let deep = String(repeating: "[", count: 50) + String(repeating: "]", count: 50)
                rpc.socket.send(
                    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ledger.stats\",\"params\":{\"x\":\(deep)}}\n"
                )
                let nested = try #require(try rpc.socket.readMessage())
                #expect(nested["error"]?["code"] == .number("-32700"))
                #expect(nested["error"]?["message"]?.stringValue?.isEmpty == false)
                #expect(try rpc.call("ledger.stats")["result"] != nil)
            }
        }
    }

    /// A client that shuts down its write side after its requests (as `socat` does at the end of its input) still
    /// gets every answer, a last line without its newline included, and then the connection closes.
    @Test func halfClosedClientGetsItsAnswers() async throws {
        try await withControlDaemon { harness in
            try await blocking {
                let socket = try ControlConnection(harness.socketPath)
                socket.send(
                    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ledger.stats\"}\n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ledger.stats\"}"
                )
                shutdown(socket.fd, Int32(SHUT_WR))
                var ids: Set<JSONValue> = []
                while let message = try socket.readMessage() {
                    #expect(message["result"] != nil, "\(message)")
                    if let id = message["id"] { ids.insert(id) }
                }
                #expect(ids == [.number("1"), .number("2")])
            }
        }
    }

    /// A line longer than control.lineBytesMax, with no newline, is answered line-too-long and closed.
    @Test func overlongLineIsRefusedAndClosed() async throws {
        try await withControlDaemon(configure: { $0.lineBytesMax = 1024 }) { harness in
            try await blocking {
                let socket = try ControlConnection(harness.socketPath)
                socket.send(String(repeating: "x", count: 5000))
                let answer = try #require(try socket.readMessage())
                #expect(errorName(answer) == "line-too-long")
                #expect(socket.readLine() == nil)
                // The daemon still serves others.
                #expect(try RPCSession(harness.socketPath).call("ledger.stats")["result"] != nil)
            }
        }
    }

    /// A client that writes requests but never reads is dropped once its output passes the bound.
    @Test func clientThatNeverReadsIsDropped() async throws {
        try await withControlDaemon(configure: { $0.writeBufferBytesMax = 64 * 1024 }) { harness in
            try await blocking {
                let socket = try ControlConnection(harness.socketPath, timeoutSeconds: 5)
                let request = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ledger.stats\"}\n"
                let batch = String(repeating: request, count: 100)
                // Each stats answer is ~500 bytes: 20,000 of them are far more than the socket buffers and the
                // 64 KiB bound together. Writing fails once the daemon has closed the connection.
                var sent = 0
                for _ in 0..<200 {
                    guard socket.send(batch) else { break }
                    sent += 100
                    usleep(2000)
                }
                var answered = 0
                while socket.readLine() != nil { answered += 1 }
                #expect(answered < sent, "the daemon answered all \(sent) requests instead of dropping the client")
                #expect(try RPCSession(harness.socketPath).call("ledger.stats")["result"] != nil)
            }
        }
    }

    /// Connections past control.connectionsMax get one error line and are closed; the others keep working.
    @Test func connectionsPastTheLimitAreRefused() async throws {
        try await withControlDaemon(configure: { $0.connectionsMax = 3 }) { harness in
            try await blocking {
                // Earlier connections (the harness's readiness probe) are counted until the daemon sees them
                // close, so wait until this one is the only one open.
                let first = try RPCSession(harness.socketPath)
                for _ in 0..<100 where try first.call("ledger.stats")["result"]?["connections"] != .number("1") {
                    usleep(20_000)
                }
                let sessions = try [first] + (0..<2).map { _ in try RPCSession(harness.socketPath) }
                for session in sessions { #expect(try session.call("ledger.stats")["result"] != nil) }
                let extra = try ControlConnection(harness.socketPath)
                let refusal = try #require(try extra.readMessage())
                #expect(errorName(refusal) == "too-many-connections")
                #expect(extra.readLine() == nil)
                #expect(try sessions[0].call("ledger.stats")["result"]?["connections"] != nil)
            }
        }
    }

    /// A second rebuild while one runs is refused with rebuild-running, not queued.
    @Test func concurrentRebuildIsRefused() async throws {
        try await withControlDaemon { harness in
            try await blocking {
                let rpc = try RPCSession(harness.socketPath)
                for index in 0..<200 {
                    _ = try rpc.call(
                        "order.create",
                        ["orderId": .string("R\(index)"), "amount": "1.00", "bankCode": "942", "productName": "x"]
                    )
                }
                // Pipelined: the second arrives while the first replays; one of them may finish first on a fast
                // machine, so only a refusal's name is checked when there is one.
                rpc.socket.send(
                    "{\"jsonrpc\":\"2.0\",\"id\":\"r1\",\"method\":\"projection.rebuild\"}\n{\"jsonrpc\":\"2.0\",\"id\":\"r2\",\"method\":\"projection.rebuild\"}\n"
                )
                var names: [String?] = []
                while names.count < 2 {
                    let message = try #require(try rpc.socket.readMessage())
                    if message["id"] != nil { names.append(errorName(message)) }
                }
                #expect(names.contains(nil))
                #expect(names.allSatisfy { $0 == nil || $0 == "rebuild-running" })
            }
        }
    }
}
