import Foundation
import GatewaySimulator
import LedgerControlProtocol
import LedgerCore
import LedgerDaemon
import LedgerStore
import LedgerTesting
import Testing

/// `forward.status`, `forward.retry` and `forward.replay` over a real socket, validated against their schemas, and
/// `ledgerctl forward` against the same daemon.
@Suite(.serialized) struct ForwardControlTests {
    /// A daemon forwarding to a receiver that refuses everything, with one attempt per delivery: a paid order's
    /// outcome is dead at once, so status, retry and replay all have something to show.
    static func withRefusedForwarding<T: Sendable>(_ body: @Sendable (ControlHarness, ShopReceiver) async throws -> T)
        async throws -> T
    {
        let secret = Array("forward-control-secret-01".utf8)
        let receiver = ShopReceiver(secret: secret, logger: testLogger) { _ in .status(500) }
        let url = try await receiver.start()
        defer { Task { await receiver.stop() } }
        return try await withControlDaemon(configureDaemon: { configuration in
            configuration.forward.receivers = [ForwardReceiver(url: url, secrets: [secret])]
            configuration.forward.schedule = ForwardSchedule(delaysMilliseconds: [0])
        }) { harness in
            try await body(harness, receiver)
        }
    }

    static func pay(_ harness: ControlHarness, _ orderId: String) async throws {
        _ = try await harness.daemon.ledger.createOrder(
            CreateOrderRequest(orderId: orderId, amount: "12.50", bankCode: "942", productName: "p")
        )
        let body = Notifications.body(Notifications.fields(orderId: orderId))
        _ = try await harness.daemon.ledger.recordNotification(body: Array(body.utf8), remoteAddress: "127.0.0.1:1")
    }

    /// Every forward method answers as its schema says; retry and replay send the outcome again with its same id.
    @Test func methodsMatchTheirSchemas() async throws {
        try await Self.withRefusedForwarding { harness, receiver in
            try await Self.pay(harness, "F1")
            try await eventually("the delivery is dead") { await harness.daemon.forwarder.status(limit: 10).dead == 1 }
            let records = try await blocking { () throws -> [SchemaRecord] in
                let rpc = try RPCSession(harness.socketPath)
                let status = try rpc.call("forward.status", ["limit": 5])
                #expect(status["result"]?["enabled"] == true)
                #expect(status["result"]?["active"] == true)
                #expect(status["result"]?["dead"] == .number("1"))
                let dead = status["result"]?["deadDeliveries"]?.arrayValue?.first
                #expect(dead?["eventId"] == "2-order.paid")
                #expect(dead?["lastError"]?.stringValue?.contains("HTTP 500") == true)
                #expect(dead?["nextAttemptAt"] == .null)
                #expect(try rpc.call("forward.retry", ["orderId": "NOPE1"])["result"]?["retried"] == .number("0"))
                #expect(try rpc.call("forward.retry", ["allDead": true])["result"]?["retried"] == .number("1"))
                #expect(try rpc.call("forward.replay", ["from": 1])["result"]?["position"] == .number("0"))
                // A sequence past the head, recorded for error.json; then params the schemas refuse too, on a
                // session whose traffic is not checked.
                #expect(errorName(try rpc.call("forward.replay", ["from": 99])) == "invalid-params")
                let refused = try RPCSession(harness.socketPath)
                #expect(
                    errorName(try refused.call("forward.retry", ["orderId": "F1", "allDead": true])) == "invalid-params"
                )
                #expect(errorName(try refused.call("forward.retry", [:])) == "invalid-params")
                #expect(errorName(try refused.call("forward.status", ["limit": 5000])) == "invalid-params")
                return rpc.records
            }
            let checked = try checkSchemas(records)
            #expect(checked.status == 0, "\(checked.output)")
            #expect(checked.output.contains("0 problems"))
            for method in ControlMethodName.allCases.map(\.rawValue) where method.hasPrefix("forward.") {
                #expect(
                    Set(records.map(\.schema)).contains("control/\(method).result.json"),
                    "no traffic for \(method)"
                )
            }
            // The first attempt and the retry: the same outcome twice, with one id. (The replay keeps the delivery it
            // finds held, dead again by then, rather than adding a second.)
            try await eventually("the retry arrives") { receiver.received.count >= 2 }
            #expect(Set(receiver.received.compactMap(\.eventId)) == ["2-order.paid"])
        }
    }

    /// A daemon without forwarding reports it off, and refuses retry and replay with a reason.
    @Test func offWithoutConfiguration() async throws {
        try await withControlDaemon { harness in
            try await blocking {
                let rpc = try RPCSession(harness.socketPath)
                #expect(try rpc.call("forward.status")["result"]?["enabled"] == false)
                #expect(errorName(try rpc.call("forward.retry", ["allDead": true])) == "unavailable")
                #expect(errorName(try rpc.call("forward.replay", ["from": 1])) == "unavailable")
            }
        }
    }

    /// `ledgerctl forward status|retry|replay` print what the methods answer and exit 0; a bad invocation exits 2.
    @Test func ledgerctlForward() async throws {
        try await Self.withRefusedForwarding { harness, _ in
            try await Self.pay(harness, "F2")
            try await eventually("the delivery is dead") { await harness.daemon.forwarder.status(limit: 10).dead == 1 }
            let socket = ["--socket", harness.socketPath]
            let status = try await ControlCtlTests.ctl(["forward", "status"] + socket)
            #expect(status.status == 0, "\(status.err)")
            #expect(
                status.out.contains("dead") && status.out.contains("2-order.paid") && status.out.contains("HTTP 500")
            )
            let json = try await ControlCtlTests.ctl(["forward", "status", "--json"] + socket)
            #expect(try JSONParser.parse(json.out)["dead"] == .number("1"))
            let retry = try await ControlCtlTests.ctl(["forward", "retry", "F2"] + socket)
            #expect(
                retry.status == 0 && retry.out.contains("1 dead deliveries pending again"),
                "\(retry.out)\(retry.err)"
            )
            let replay = try await ControlCtlTests.ctl(["forward", "replay", "--from", "1"] + socket)
            #expect(replay.status == 0 && replay.out.contains("after sequence 0"), "\(replay.out)\(replay.err)")
            let neither = try await ControlCtlTests.ctl(["forward", "retry"] + socket)
            #expect(neither.status == 2)
        }
    }
}
