import Foundation
import LedgerTesting
import Testing

@testable import LedgerCore

/// The outcomes every event of `payloads` (one order, in order) causes, derived event by event.
private func derived(_ payloads: [EventPayload], orderId: String = LedgerFixture.orderId) -> [ForwardEvent] {
    let events = LedgerChain.of(payloads, orderId: orderId)
    return ForwardDerivation.outcomes(orderId: orderId, events: events, in: 1...UInt64(events.count))
}

/// Derivation of forwarded outcomes, their body, signature, schedule and stored form.
struct ForwardTests {
    /// A callback that pays the order yields one order.paid with the payment's facts; the duplicate yields nothing.
    @Test func paidByCallback() throws {
        let outcomes = derived([
            try LedgerFixture.orderCreated(), try LedgerFixture.callback(), try LedgerFixture.callback(),
        ])
        #expect(outcomes.map(\.type) == [.orderPaid])
        let paid = try #require(outcomes.first)
        #expect(paid.id == "2-order.paid")
        #expect(paid.amount == "100.00")
        #expect(paid.status == .paid)
        #expect(paid.source == .callback)
        #expect(paid.transactionId == LedgerFixture.transactionId)
        #expect(paid.paidAt == "2026-11-27 10:00:05")
        #expect(paid.flags.isEmpty && paid.flagsRaised.isEmpty)
    }

    /// A verified SUCCESS query reply pays the order: order.paid with source query.
    @Test func paidByQuery() throws {
        let outcomes = derived([try LedgerFixture.orderCreated(), try LedgerFixture.queryResult()])
        #expect(outcomes.map(\.type) == [.orderPaid])
        #expect(outcomes.first?.source == .query)
    }

    /// The final failed query expires the order; a payment after that is paid and flagged, two outcomes of one event.
    @Test func expiredThenPaidLate() throws {
        let outcomes = derived([
            try LedgerFixture.orderCreated(),
            LedgerFixture.failedQuery(.transportError(message: "timed out"), final: true),
            try LedgerFixture.callback(),
        ])
        #expect(outcomes.map(\.type) == [.orderExpired, .orderPaid, .orderFlagged])
        #expect(outcomes.map(\.id) == ["2-order.expired", "3-order.paid", "3-order.flagged"])
        #expect(outcomes[0].paidAt == nil && outcomes[0].source == nil)
        #expect(outcomes[2].flagsRaised == .paidAfterExpiry)
    }

    /// A conflicting transaction after payment raises a flag: order.flagged alone, paid stays paid.
    @Test func conflictAfterPaid() throws {
        let outcomes = derived([
            try LedgerFixture.orderCreated(),
            try LedgerFixture.callback(),
            try LedgerFixture.callback(transactionId: LedgerFixture.otherTransactionId),
        ])
        #expect(outcomes.map(\.type) == [.orderPaid, .orderFlagged])
        #expect(outcomes[1].flagsRaised == .conflictingTransaction)
        #expect(outcomes[1].status == .paid)
        #expect(outcomes[1].transactionId == LedgerFixture.transactionId)
    }

    /// Unpaid queries, bad signatures and orders the ledger never created yield nothing.
    @Test func nothingWithoutAChange() throws {
        let unpaid = derived([
            try LedgerFixture.orderCreated(),
            try LedgerFixture.queryResult(tradeState: "NOTPAY"),
            try LedgerFixture.callback(signingKey: LedgerFixture.foreignKey),
        ])
        #expect(unpaid.isEmpty)
        #expect(derived([try LedgerFixture.callback()]).isEmpty)
    }

    /// Deriving a part of the log again (a restart, a replay) yields the same outcomes with the same ids and bodies.
    @Test func derivationIsDeterministic() throws {
        let events = LedgerChain.of([
            try LedgerFixture.orderCreated(), try LedgerFixture.callback(),
            try LedgerFixture.callback(transactionId: LedgerFixture.otherTransactionId),
        ])
        let all = ForwardDerivation.outcomes(orderId: LedgerFixture.orderId, events: events, in: 1...3)
        let tail = ForwardDerivation.outcomes(orderId: LedgerFixture.orderId, events: events, in: 3...3)
        #expect(tail == [all[1]])
        #expect(tail.map(\.body) == [all[1].body])
        #expect(
            ForwardDerivation.mayHaveOutcomes(OrderState.fold(orderId: LedgerFixture.orderId, events.prefix(1)))
                == false
        )
        #expect(ForwardDerivation.mayHaveOutcomes(OrderState.fold(orderId: LedgerFixture.orderId, events.prefix(2))))
    }

    /// The signature is HMAC-SHA256 over `t.body` in lowercase hex, the value any HMAC library computes.
    @Test func signatureKnownAnswer() {
        let body = Array(#"{"id":"2-order.paid"}"#.utf8)
        let secret = Array("whsec-test-1".utf8)
        #expect(
            ForwardSignature.signature(body: body, timestamp: 1_795_744_805, secret: secret)
                == "f54279b53049a8ea690c48e52a921066b66d5b803692fc57ac3f4680557d8c51"
        )
        #expect(
            ForwardSignature.header(body: body, timestamp: 1_795_744_805, secrets: [secret])
                == "t=1795744805,v1=f54279b53049a8ea690c48e52a921066b66d5b803692fc57ac3f4680557d8c51"
        )
    }

    /// During a rotation both secrets sign; a receiver with either verifies, and tampering or age is refused.
    @Test func verificationWithTwoSecrets() {
        let body = Array(#"{"id":"7-order.expired"}"#.utf8)
        let old = Array("old-secret".utf8)
        let new = Array("new-secret".utf8)
        let header = ForwardSignature.header(body: body, timestamp: 1000, secrets: [old, new])
        func verify(_ secret: [UInt8], _ body: [UInt8], now: Int64 = 1010) -> Result<Void, ForwardSignature.Rejection> {
            ForwardSignature.verify(header: header, body: body, secret: secret, now: now, toleranceSeconds: 300)
        }
        #expect((try? verify(old, body).get()) != nil)
        #expect((try? verify(new, body).get()) != nil)
        #expect(throws: ForwardSignature.Rejection.noMatchingSignature) { try verify(Array("other".utf8), body).get() }
        #expect(throws: ForwardSignature.Rejection.noMatchingSignature) { try verify(old, body + [0x20]).get() }
        #expect(throws: ForwardSignature.Rejection.outsideTolerance) { try verify(old, body, now: 2000).get() }
        #expect(throws: ForwardSignature.Rejection.malformedHeader) {
            try ForwardSignature.verify(header: "v1=zz", body: body, secret: old, now: 1000, toleranceSeconds: 300)
                .get()
        }
    }

    /// The standard schedule: eight attempts, each delay plus at most a tenth of it, the same for the same seed.
    @Test func scheduleWithJitter() {
        let schedule = ForwardSchedule.standard
        let failedAt = LedgerFixture.start
        var random = SplitMix64(seed: 7)
        var again = SplitMix64(seed: 7)
        for failed in 0..<8 {
            let delay = schedule.delaysMilliseconds[failed]
            let next = schedule.nextAttempt(afterFailed: UInt32(failed), failedAt: failedAt, random: &random)
            let wait = (next?.millisecondsSinceEpoch ?? -1) - failedAt.millisecondsSinceEpoch
            #expect(wait >= delay && wait <= delay + delay / 10)
            #expect(next == schedule.nextAttempt(afterFailed: UInt32(failed), failedAt: failedAt, random: &again))
        }
        #expect(schedule.nextAttempt(afterFailed: 8, failedAt: failedAt, random: &random) == nil)
        #expect(ForwardSchedule(delaysMilliseconds: []).problem != nil)
        #expect(ForwardSchedule(delaysMilliseconds: [-1]).problem != nil)
        #expect(schedule.problem == nil)
    }

    /// A delivery survives its stored form exactly, and a damaged record is refused, not misread.
    @Test func deliveryCodecRoundTrip() throws {
        let outcomes = derived([
            try LedgerFixture.orderCreated(),
            LedgerFixture.failedQuery(.transportError(message: "timed out"), final: true),
            try LedgerFixture.callback(),
        ])
        for (index, event) in outcomes.enumerated() {
            let delivery = ForwardDelivery(
                receiver: "http://127.0.0.1:9/hook",
                event: event,
                attempts: UInt32(index),
                nextAttemptAt: LedgerFixture.start.adding(milliseconds: 5_000),
                lastAttemptAt: index == 0 ? nil : LedgerFixture.start,
                lastError: index == 0 ? nil : "HTTP 500",
                dead: index == 2
            )
            #expect(try ForwardCodec.decode(ForwardCodec.encode(delivery)) == delivery)
        }
        #expect(throws: ForwardCodecError.self) { try ForwardCodec.decode(Array(#"{"receiver":"x"}"#.utf8)) }
    }

    /// Keys sort by receiver, then sequence, then type, in their byte form as in their comparison.
    @Test func keyOrder() {
        let keys = [
            ForwardKey(receiver: "http://a", sequence: 3, type: .orderFlagged),
            ForwardKey(receiver: "http://a", sequence: 3, type: .orderPaid),
            ForwardKey(receiver: "http://a", sequence: 256, type: .orderPaid),
            ForwardKey(receiver: "http://b", sequence: 1, type: .orderPaid),
        ]
        let sorted = keys.sorted()
        #expect(sorted.map(\.sequence) == [3, 3, 256, 1])
        #expect(sorted[0].type == .orderPaid)
        #expect(keys.sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) } == sorted)
    }

    /// Every kind of forwarded body, as the ledger writes it, is valid against `schemas/forward/order.event.json`,
    /// and the checker refuses a body with a bad amount.
    @Test func bodiesMatchSchema() throws {
        let outcomes = derived([
            try LedgerFixture.orderCreated(),
            LedgerFixture.failedQuery(.transportError(message: "timed out"), final: true),
            try LedgerFixture.callback(),
        ])
        #expect(Set(outcomes.map(\.type)) == Set(ForwardEventType.allCases))
        func line(_ instance: JSONValue) -> String {
            JSONWriter.write(.object(["schema": "forward/order.event.json", "instance": instance]))
        }
        let result = try EventSchemaTests.runChecker(outcomes.map { line($0.json) })
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("\(outcomes.count) documents checked, 0 problems"))
        guard case .object(var broken) = outcomes[0].json else {
            Issue.record("a forwarded body is an object")
            return
        }
        broken["amount"] = .number("100")
        let refused = try EventSchemaTests.runChecker([line(.object(broken))])
        #expect(refused.status == 1)
        #expect(refused.output.contains("/amount"))
    }
}
