import Foundation
import LedgerCore
import LedgerStore
import LedgerTesting
import Testing

/// The fault suite (`tools/fault-suite`), run as real processes: its short version passes, and its checker is not
/// a rubber stamp.
@Suite(.serialized) struct FaultSuiteTests {
    /// The key `ledger-faults` gives every daemon it starts.
    static let key = try! MerchantKey("fault-suite-key-2026")

    static func run(_ arguments: [String]) throws -> ProcessOutput {
        try ChildProcess.run(try BuiltProducts.path("ledger-faults"), arguments)
    }

    /// The short suite passes: 20 kill -9 cycles under load, a storm of 1,000 copies, the bad-input corpus,
    /// storage faults and gateway faults, all against the real daemon and simulator.
    @Test func shortSuitePasses() throws {
        let statusRun = try Self.run([
            "run", "--seed", "2026", "--only", "kill", "storm", "corpus", "storage", "gateway",
        ])
        let (status, output) = (statusRun.status, statusRun.output)
        #expect(status == 0, "\(output)")
        #expect(output.contains("cases passed"), "\(output)")
        #expect(output.contains("20/20"), "\(output)")
    }

    /// Two daemons on one PostgreSQL ledger (the `shared` scenario): one poller at a time, each daemon's appends
    /// seen by the other's subscribers, one state change per order for the same notification sent to both at once,
    /// identical histories, and after the polling daemon's SIGKILL the other polls the pending orders to paid.
    @Test func sharedLedgerPasses() throws {
        guard let url = try PostgresTestURL.value() else {
            try Test.cancel("The shared-ledger scenario needs LEDGER_TEST_POSTGRES_URL; it is not set.")
        }
        let statusRun = try Self.run(["run", "--only", "shared", "--postgres-url", url])
        let (status, output) = (statusRun.status, statusRun.output)
        #expect(status == 0, "\(output)")
        #expect(output.contains("shared ledger") && output.contains("cases passed"), "\(output)")
        #expect(output.contains("orders queried by the new leader"), "\(output)")
    }

    /// A ledger with orders L1 (paid by one callback), L2 (no callback) and L3 (two different valid callbacks).
    static func prepareLedger(_ path: String) async throws {
        let store = try LMDBEventStore(path: path)
        let settings = GatewaySettings.testing(publicURL: "http://127.0.0.1:1")
        let now = Instant(millisecondsSinceEpoch: 1_795_741_323_000)
        func callback(_ orderId: String, _ transactionId: String) throws -> PendingEvent {
            let fields = SignedNotification.fields(
                orderId: orderId,
                transactionId: transactionId,
                memberId: "10001",
                key: Self.key
            )
            let notification = try PaymentNotification.parse(Array(SignedNotification.body(fields).utf8))
            return PendingEvent(
                recordedAt: now,
                orderId: orderId,
                payload: .callbackReceived(
                    CallbackReceived(
                        notification,
                        remoteAddress: "127.0.0.1:1",
                        verdict: notification.verify(key: Self.key),
                        dialect: .document
                    )
                )
            )
        }
        for orderId in ["L1", "L2", "L3"] {
            let pay = try PayRequest.build(
                OrderRequest(orderId: orderId, amount: "12.50", bankCode: "940", productName: "p"),
                settings: settings,
                key: Self.key,
                appliedAt: now
            ).get()
            _ = try await store.append(
                AppendRequest([
                    PendingEvent(
                        recordedAt: now,
                        orderId: orderId,
                        payload: .orderCreated(
                            OrderCreated(request: pay, gatewayURL: settings.payURL, dialect: .document)
                        )
                    )
                ])
            )
        }
        _ = try await store.append(AppendRequest([try callback("L1", "TL1")]))
        _ = try await store.append(AppendRequest([try callback("L3", "TL3")]))
        _ = try await store.append(AppendRequest([try callback("L3", "TL3-OTHER")]))
        await store.close()
    }

    /// The checker is not a rubber stamp: an acknowledged callback the log does not hold, and an order whose
    /// second, different callback was applied, both fail the check; a truthful file passes.
    @Test func checkerCatchesViolations() async throws {
        let directory = TemporaryDirectory()
        let dataDir = directory.path + "/ledger"
        try await Self.prepareLedger(dataDir)
        let ackFile = directory.path + "/acks"

        try "L1 TL1\nL2 TL2\n".write(toFile: ackFile, atomically: true, encoding: .utf8)
        let lostStatusRun = try Self.run(["check", "--data-dir", dataDir, "--ack-file", ackFile])
        let (lostStatus, lostOutput) = (lostStatusRun.status, lostStatusRun.output)
        #expect(lostStatus != 0)
        #expect(
            lostOutput.contains("the acknowledged callback for order L2 (transaction TL2) is not in the log"),
            "\(lostOutput)"
        )

        try "L3 TL3\n".write(toFile: ackFile, atomically: true, encoding: .utf8)
        let twiceStatusRun = try Self.run(["check", "--data-dir", dataDir, "--ack-file", ackFile])
        let (twiceStatus, twiceOutput) = (twiceStatusRun.status, twiceStatusRun.output)
        #expect(twiceStatus != 0)
        #expect(twiceOutput.contains("order L3: 2 callbacks in the log but 0 duplicates"), "\(twiceOutput)")

        try "L1 TL1\n".write(toFile: ackFile, atomically: true, encoding: .utf8)
        let okStatusRun = try Self.run(["check", "--data-dir", dataDir, "--ack-file", ackFile])
        let (okStatus, okOutput) = (okStatusRun.status, okStatusRun.output)
        #expect(okStatus == 0, "\(okOutput)")
    }
}
