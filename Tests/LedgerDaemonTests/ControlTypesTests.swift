import LedgerControlProtocol
import LedgerCore
import Testing

/// The typed control protocol on its own: params read strictly and written back the same, notifications and
/// errors both ways. What the daemon really sends is checked against these types and the schemas in
/// `ControlProtocolTests` (every recorded result is read and written back, then validated).
struct ControlTypesTests {
    /// Every method's params, with every member set, read back equal to what was written.
    @Test func everyMethodsParamsRoundTrip() throws {
        let samples: [(ControlMethodName, JSONValue)] = [
            (
                .orderCreate,
                OrderCreate.Params(
                    orderId: "A1",
                    amount: "12.50",
                    bankCode: "940",
                    productName: "年卡",
                    attach: "x",
                    productNum: "1",
                    productDesc: "d",
                    productUrl: "https://shop.example/p"
                ).json
            ),
            (.orderGet, OrderIdParams(orderId: "A1").json),
            (.orderHistory, OrderHistory.Params(orderId: "A1", limit: 5, cursor: 17).json),
            (
                .orderList,
                OrderList.Params(
                    status: .paid,
                    flag: "amount-mismatch",
                    bankCode: "940",
                    createdFrom: "2026-11-27T00:00:00Z",
                    createdTo: "2026-11-28T00:00:00.500Z",
                    cursor: "paid:A1",
                    limit: 50
                ).json
            ),
            (.orderQueryNow, OrderIdParams(orderId: "A1").json),
            (.callbacksAudit, CallbacksAudit.Params(orderId: "A1", from: "2026-11-27T00:00:00Z", to: nil).json),
            (
                .quarantineRead,
                QuarantineRead.Params(
                    reason: .badSignature,
                    orderId: "A1",
                    remoteAddress: "192.0.2.1",
                    cursor: 9,
                    limit: 3
                )
                .json
            ),
            (.projectionRebuild, NoParams().json),
            (.projectionVerify, ProjectionVerify.Params(differencesMax: 7).json),
            (.ledgerVerify, NoParams().json),
            (.ledgerStats, NoParams().json),
            (.ledgerBackup, LedgerBackup.Params(path: "/var/backups/ledger").json),
            (.eventsRead, EventsRead.Params(fromSequence: 3, limit: 10).json),
            (.eventsSubscribe, EventsSubscribe.Params(fromSequence: 3).json),
            (.forwardStatus, ForwardStatus.Params(limit: 5).json),
            (.forwardRetry, ForwardRetry.Params(orderId: "A1").json),
            (.forwardRetry, ForwardRetry.Params.allDead.json),
            (.forwardReplay, ForwardReplay.Params(from: 12).json),
        ]
        #expect(Set(samples.map(\.0)) == Set(ControlMethodName.allCases), "a method has no sample")
        for (name, json) in samples {
            #expect(try name.method.paramsRoundTrip(json) == json, "\(name.rawValue)")
        }
    }

    /// Params are read strictly: an unknown member, a wrong type, an impossible order id or time are -32602
    /// errors that name the member.
    @Test func paramsAreReadStrictly() {
        func refusal(_ name: ControlMethodName, _ json: JSONValue) -> ControlError? {
            do {
                _ = try name.method.paramsRoundTrip(json)
                return nil
            } catch {
                return error
            }
        }
        let unknown = refusal(.orderGet, ["orderId": "A1", "orderID": "A1"])
        #expect(
            unknown?.code == -32602 && unknown?.message.contains("orderID") == true,
            "\(String(describing: unknown))"
        )
        let wrongType = refusal(.orderHistory, ["orderId": "A1", "limit": "5"])
        #expect(wrongType?.message == "order.history: limit must be a whole number.")
        let outOfRange = refusal(.orderHistory, ["orderId": "A1", "limit": 1001])
        #expect(outOfRange?.message == "order.history: limit must be a whole number in 1...1000.")
        let impossible = refusal(.orderGet, ["orderId": "A<1"])
        #expect(impossible?.code == -32602 && impossible?.message.contains("orderId") == true)
        let time = refusal(.orderList, ["createdFrom": "yesterday"])
        #expect(time?.message.contains("RFC 3339") == true)
        let reason = refusal(.quarantineRead, ["reason": "nonsense"])
        #expect(reason?.message == "quarantine.read: reason must be one of bad-signature, foreign-member.")
        // Names from outside match byte for byte: a cursor's status spelled with a combining mark is refused.
        #expect(OrderStatus(exactly: "paid") == .paid)
        #expect(OrderStatus(exactly: "pai\u{0064}\u{0307}") == nil)
        #expect(ControlMethodName(exactly: "order.get") == .orderGet)
        #expect(ControlMethodName(exactly: "order.get\u{0301}") == nil)
        // A member's name is compared as bytes: U+212A KELVIN SIGN is not the `K` of an allowed name.
        let kelvin = Result { () throws(ControlError) in
            try ControlFields(["\u{212A}ey": 1], context: "test.method").allow(["Key"])
        }
        #expect(throws: ControlError.self) { try kelvin.get() }
        #expect(throws: Never.self) { try ControlFields(["Key": 1], context: "test.method").allow(["Key"]) }
        let notObject = refusal(.ledgerStats, ["a"])
        #expect(notObject?.message == "ledger.stats takes its params by name, as an object.")
        #expect(refusal(.ledgerStats, .null) == nil)
    }

    /// Notifications and errors read back as they were written; a notification this build does not know is
    /// skipped, not an error.
    @Test func notificationsAndErrorsRoundTrip() throws {
        let progress = ControlNotification.progress(
            method: .projectionRebuild,
            ProgressView(phase: "replay", done: 5, total: 10, rate: "2.500", secondsRemaining: nil)
        )
        let dropped = ControlNotification.dropped(subscription: 3, reason: "fell behind")
        for notification in [progress, dropped] {
            #expect(try ControlNotification(method: notification.method, params: notification.params) == notification)
        }
        #expect(progress.method == "projection.rebuild.progress")
        #expect(try ControlNotification(method: "events.somethingNew", params: [:]) == nil)
        #expect(throws: ControlError.self) { try ControlNotification(method: "events.dropped", params: ["reason": 1]) }
        let error = ControlError.rebuildRunning
        #expect(ControlError(json: error.json) == error)
        #expect(ControlError(json: ["message": "no code"]) == nil)
    }

    /// A result missing a member it must have does not read: a client learns the daemon and it disagree.
    @Test func resultsMissingMembersDoNotRead() {
        #expect(throws: ControlError.self) {
            _ = try LedgerStats.resultRoundTrip(["head": ["sequence": 1, "hash": "ab"]])
        }
        #expect(throws: ControlError.self) {
            _ = try OrderGet.resultRoundTrip(["orderId": "A1", "state": "paid-ish", "callbacks": [:]])
        }
    }

    /// order.history's paging follows a cursor to the next page and ends with an error on a cursor that names no
    /// event, instead of asking for the first page again
    @Test func historyPagingEndsOnABadCursor() {
        var asked: [UInt64?] = []
        let error = #expect(throws: ControlError.self) {
            _ = try OrderHistory.allEntries(of: "H1") { params in
                asked.append(params.cursor)
                // A paging that starts over would ask forever; ten asks are enough to tell.
                guard asked.count < 10 else { throw CancellationError() }
                return OrderHistory.Result(orderId: "H1", entries: [], nextCursor: asked.count == 1 ? "7" : "abc")
            }
        }
        #expect(error?.name == "internal-error")
        #expect(asked == [nil, 7])
    }
}
