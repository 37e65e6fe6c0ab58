import LedgerTesting
import Testing

@testable import LedgerCore

/// Seals `payloads` into a chain and folds them.
private func folded(_ payloads: [EventPayload], orderId: String = LedgerFixture.orderId) -> OrderState {
    OrderState.fold(orderId: orderId, LedgerChain.of(payloads, orderId: orderId))
}

/// Seals `prefix` and `then` into one chain, folds `prefix`, then applies the events of `then` one by one and returns
/// the state before them, the state after them and the effect of each.
private func applying(
    _ then: [EventPayload],
    after prefix: [EventPayload],
    orderId: String = LedgerFixture.orderId
) -> (before: OrderState, after: OrderState, effects: [EventEffect]) {
    let events = LedgerChain.of(prefix + then, orderId: orderId)
    let before = OrderState.fold(orderId: orderId, events.prefix(prefix.count))
    var state = before
    var effects: [EventEffect] = []
    for event in events.dropFirst(prefix.count) { effects.append(state.apply(event)) }
    return (before, state, effects)
}

/// The facts a callback or query that "changes nothing" must leave alone (the bookkeeping counters do change).
private func expectSameFacts(
    _ after: OrderState,
    _ before: OrderState,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(after.status == before.status, sourceLocation: sourceLocation)
    #expect(after.flags == before.flags, sourceLocation: sourceLocation)
    #expect(after.order == before.order, sourceLocation: sourceLocation)
    #expect(after.payment == before.payment, sourceLocation: sourceLocation)
}

/// The verdict of a recorded callback payload.
private func verdict(of payload: EventPayload) -> SignatureVerdict? {
    guard case .callbackReceived(let callback) = payload else { return nil }
    return callback.verdict
}

/// Ways a received notification can fail verification.
enum CallbackForgery: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case foreignKey = "signed with another key"
    case tamperedAmount = "amount changed after signing"
    case tamperedTransaction = "transaction id changed after signing"
    case emptySign = "empty sign"
    case shortSign = "sign too short"
    case lowercaseSign = "lowercase sign under the document dialect"
    case nonHexSign = "sign with non-hex digits"

    var testDescription: String { self.rawValue }

    var expectedVerdict: SignatureVerdict {
        switch self {
        case .foreignKey, .tamperedAmount, .tamperedTransaction: return .mismatch
        case .emptySign: return .missing
        case .shortSign, .lowercaseSign, .nonHexSign: return .malformed
        }
    }

    /// The notification for `transactionId`, forged this way.
    func fields(transactionId: String = LedgerFixture.transactionId) -> [FormField] {
        let genuine = LedgerFixture.notificationFields(transactionId: transactionId)
        let sign = genuine.first(where: { $0.name == "sign" })?.value ?? ""
        switch self {
        case .foreignKey:
            return LedgerFixture.notificationFields(
                transactionId: transactionId,
                signingKey: LedgerFixture.foreignKey
            )
        case .tamperedAmount: return LedgerFixture.replacing("amount", with: "1.0000", in: genuine)
        case .tamperedTransaction: return LedgerFixture.replacing("transaction_id", with: "999", in: genuine)
        case .emptySign: return LedgerFixture.replacing("sign", with: "", in: genuine)
        case .shortSign: return LedgerFixture.replacing("sign", with: String(sign.dropLast()), in: genuine)
        case .lowercaseSign: return LedgerFixture.replacing("sign", with: sign.lowercased(), in: genuine)
        case .nonHexSign: return LedgerFixture.replacing("sign", with: "G" + sign.dropFirst(), in: genuine)
        }
    }
}

@Suite("Projection")
struct ProjectionTests {
    // MARK: Callbacks

    /// A validly signed success callback for the order's amount pays a created order
    @Test func validCallbackPaysCreatedOrder() throws {
        let events = LedgerChain.of([
            try LedgerFixture.orderCreated(),
            try LedgerFixture.callback(amount: "100.0000", datetime: "20261127100005"),
        ])
        let created = OrderState.fold(orderId: LedgerFixture.orderId, events.prefix(1))
        #expect(created.status == .created)
        let order = try #require(created.order)
        #expect(order.memberId == LedgerFixture.memberId)
        #expect(order.amount.fen == 10_000)
        #expect(order.amount.text == "100.00")
        #expect(order.productName == "测试商品")
        #expect(order.createdSequence == 1)
        #expect(order.createdAt == events[0].recordedAt)

        let (paid, effect) = created.applyingWithEffect(events[1])
        #expect(effect == .callback(.accepted))
        #expect(paid.status == .paid)
        #expect(paid.flags.isEmpty)
        let payment = try #require(paid.payment)
        #expect(payment.source == .callback)
        #expect(payment.transactionId == LedgerFixture.transactionId)
        #expect(payment.paidAt == "20261127100005")
        #expect(payment.amountText == "100.0000")
        #expect(payment.sequence == 2)
        #expect(payment.recordedAt == events[1].recordedAt)
        #expect(paid.callbacks.received == 1)
        #expect(paid.callbacks.accepted == 1)
        #expect(paid.callbacks.firstAt == events[1].recordedAt)
        #expect(paid.callbacks.lastAt == events[1].recordedAt)
        for classification in CallbackClassification.allCases where classification != .accepted {
            #expect(paid.callbacks[classification] == 0, "\(classification)")
        }
    }

    /// Gateway amounts equal to the order's amount as exact decimals are accepted, whatever their spelling
    @Test(arguments: ["100.00", "100.0000", "100", "100.0", "100.000", "0100.00"])
    func equalAmountSpellingsAreAccepted(amount: String) throws {
        let result = applying([try LedgerFixture.callback(amount: amount)], after: [try LedgerFixture.orderCreated()])
        #expect(result.effects == [.callback(.accepted)])
        #expect(result.after.status == .paid)
        #expect(result.after.payment?.amountText == amount)
        #expect(result.after.flags.isEmpty)
    }

    /// The same signed notification sent again is a duplicate and changes nothing
    @Test func sameNotificationAgainIsDuplicate() throws {
        let callback = try LedgerFixture.callback()
        let result = applying([callback, callback, callback], after: [try LedgerFixture.orderCreated(), callback])
        #expect(result.before.status == .paid)
        #expect(result.effects == Array(repeating: .callback(.duplicate), count: 3))
        expectSameFacts(result.after, result.before)
        #expect(result.after.seenSignatures.count == 1)
        #expect(result.after.callbacks.received == 4)
        #expect(result.after.callbacks.accepted == 1)
        #expect(result.after.callbacks.duplicate == 3)
    }

    /// A not-success notification sent again is recognised as the same notification (a duplicate)
    @Test func repeatedNotSuccessIsDuplicate() throws {
        let failed = try LedgerFixture.callback(returnCode: "01")
        let result = applying([failed, failed], after: [try LedgerFixture.orderCreated()])
        #expect(result.effects == [.callback(.notSuccess), .callback(.duplicate)])
        #expect(result.after.status == .created)
    }

    /// A differently signed callback with the same transaction id and amount after payment is a duplicate
    @Test(
        arguments: [
            ("100.00", "2026-11-27 10:00:05"), ("100.0000", "20261127100005"), ("100", "2026-11-27 10:00:06"),
        ]
    )
    func samePaymentDifferentContentIsDuplicate(amount: String, datetime: String) throws {
        let first = LedgerFixture.notificationFields(amount: "100.0000", datetime: "2026-11-27 10:00:05")
        let second = LedgerFixture.notificationFields(amount: amount, datetime: datetime)
        // The two must really be different signed content, or this would only repeat the test above.
        #expect(first.last?.value != second.last?.value)
        let result = applying(
            [try LedgerFixture.callback(fields: second)],
            after: [try LedgerFixture.orderCreated(), try LedgerFixture.callback(fields: first)]
        )
        #expect(result.effects == [.callback(.duplicate)])
        expectSameFacts(result.after, result.before)
        #expect(result.after.payment?.amountText == "100.0000")
    }

    /// A validly signed success naming another transaction id after payment is conflicting, flagged, and paid stays
    @Test func otherTransactionAfterPaidIsConflicting() throws {
        let result = applying(
            [try LedgerFixture.callback(transactionId: LedgerFixture.otherTransactionId)],
            after: [try LedgerFixture.orderCreated(), try LedgerFixture.callback()]
        )
        #expect(result.effects == [.callback(.conflicting)])
        #expect(result.after.status == .paid)
        #expect(result.after.flags == [.conflictingTransaction])
        #expect(result.after.payment == result.before.payment)
        #expect(result.after.payment?.transactionId == LedgerFixture.transactionId)
        #expect(result.after.callbacks.conflicting == 1)
    }

    /// A validly signed success naming another amount after payment is conflicting and flagged conflicting-amount
    @Test(arguments: ["99.00", "100.0001", "200.00", "1e2"])
    func otherAmountAfterPaidIsConflicting(amount: String) throws {
        let result = applying(
            [try LedgerFixture.callback(amount: amount)],
            after: [try LedgerFixture.orderCreated(), try LedgerFixture.callback()]
        )
        #expect(result.effects == [.callback(.conflicting)])
        #expect(result.after.status == .paid)
        #expect(result.after.flags == [.conflictingAmount])
        #expect(result.after.payment == result.before.payment)
    }

    /// A validly signed success whose amount is not the order's amount is flagged and leaves the order created
    @Test(arguments: ["100.0001", "99.99", "100.01", "10.00", "1000.00", "0", "", "abc", "1e2", "-100.00", "100.00000"])
    func amountMismatchLeavesOrderCreated(amount: String) throws {
        let result = applying([try LedgerFixture.callback(amount: amount)], after: [try LedgerFixture.orderCreated()])
        #expect(result.effects == [.callback(.amountMismatch)])
        #expect(result.after.status == .created)
        #expect(result.after.payment == nil)
        #expect(result.after.flags == [.amountMismatch])
        #expect(result.after.callbacks.amountMismatch == 1)
    }

    /// A callback that was refused for its amount does not stop the right payment from being accepted later
    @Test func rightAmountAfterMismatchIsAccepted() throws {
        let result = applying(
            [try LedgerFixture.callback(amount: "100.0001"), try LedgerFixture.callback(amount: "100.0000")],
            after: [try LedgerFixture.orderCreated()]
        )
        #expect(result.effects == [.callback(.amountMismatch), .callback(.accepted)])
        #expect(result.after.status == .paid)
        #expect(result.after.flags == [.amountMismatch])
    }

    /// A validly signed callback for another merchant's member id is flagged and never pays
    @Test func otherMemberIsMemberMismatch() throws {
        let foreign = try LedgerFixture.callback(memberId: LedgerFixture.otherMemberId)
        let created = applying([foreign], after: [try LedgerFixture.orderCreated()])
        #expect(verdict(of: foreign) == .valid)
        #expect(created.effects == [.callback(.memberMismatch)])
        #expect(created.after.status == .created)
        #expect(created.after.payment == nil)
        #expect(created.after.flags == [.memberMismatch])
        #expect(created.after.callbacks.memberMismatch == 1)

        let paid = applying([foreign], after: [try LedgerFixture.orderCreated(), try LedgerFixture.callback()])
        #expect(paid.effects == [.callback(.memberMismatch)])
        #expect(paid.after.status == .paid)
        #expect(paid.after.payment == paid.before.payment)
        #expect(paid.after.flags == [.memberMismatch])
    }

    /// A validly signed callback whose returncode is not 00 is not-success and the order stays created
    @Test(arguments: ["01", "", "0", "000", "99", "SUCCESS"])
    func nonZeroReturnCodeIsNotSuccess(returnCode: String) throws {
        let result = applying(
            [try LedgerFixture.callback(returnCode: returnCode)],
            after: [try LedgerFixture.orderCreated()]
        )
        #expect(result.effects == [.callback(.notSuccess)])
        expectSameFacts(result.after, result.before)
        #expect(result.after.status == .created)
        #expect(result.after.callbacks.notSuccess == 1)
    }

    /// A success callback after a not-success one for the same order pays it
    @Test func successAfterNotSuccessIsAccepted() throws {
        let result = applying(
            [try LedgerFixture.callback(returnCode: "01"), try LedgerFixture.callback(returnCode: "00")],
            after: [try LedgerFixture.orderCreated()]
        )
        #expect(result.effects == [.callback(.notSuccess), .callback(.accepted)])
        #expect(result.after.status == .paid)
    }

    /// A callback whose signature is missing, malformed or does not verify never changes a created order
    @Test(arguments: CallbackForgery.allCases)
    func badSignatureNeverChangesCreatedOrder(forgery: CallbackForgery) throws {
        let forged = try LedgerFixture.callback(fields: forgery.fields())
        #expect(verdict(of: forged) == forgery.expectedVerdict)
        let result = applying([forged], after: [try LedgerFixture.orderCreated()])
        #expect(result.effects == [.callback(.badSignature)])
        expectSameFacts(result.after, result.before)
        #expect(result.after.seenSignatures.isEmpty)
        #expect(result.after.callbacks.badSignature == 1)
        #expect(result.after.callbacks.received == 1)
    }

    /// A forged callback naming another transaction after payment raises no conflict flag
    @Test(arguments: CallbackForgery.allCases)
    func badSignatureNeverFlagsPaidOrder(forgery: CallbackForgery) throws {
        let forged = try LedgerFixture.callback(fields: forgery.fields(transactionId: LedgerFixture.otherTransactionId))
        let result = applying([forged], after: [try LedgerFixture.orderCreated(), try LedgerFixture.callback()])
        #expect(result.effects == [.callback(.badSignature)])
        expectSameFacts(result.after, result.before)
    }

    /// A forged copy seen first does not make the genuine notification a duplicate
    @Test func genuineAfterForgedCopyIsAccepted() throws {
        let result = applying(
            [
                try LedgerFixture.callback(fields: CallbackForgery.tamperedAmount.fields()),
                try LedgerFixture.callback(),
            ],
            after: [try LedgerFixture.orderCreated()]
        )
        #expect(result.effects == [.callback(.badSignature), .callback(.accepted)])
        #expect(result.after.status == .paid)
    }

    /// A validly signed callback for an order id with no order-created event is unknown-order and leaves it unknown
    @Test func callbackWithoutOrderIsUnknownOrder() throws {
        let callback = try LedgerFixture.callback()
        let events = LedgerChain.of([callback])
        let (state, effect) = OrderState(orderId: LedgerFixture.orderId).applyingWithEffect(events[0])
        #expect(effect == .callback(.unknownOrder))
        #expect(state.status == .unknown)
        #expect(state.order == nil)
        #expect(state.payment == nil)
        #expect(state.flags.isEmpty)
        #expect(state.callbacks.unknownOrder == 1)
        #expect(state.callbacks.received == 1)
    }

    /// Callbacks recorded before the order existed stay counted as unknown, and the gateway's retry afterwards pays
    @Test func retryAfterLateCreateIsAccepted() throws {
        let callback = try LedgerFixture.callback()
        let result = applying([try LedgerFixture.orderCreated(), callback], after: [callback])
        #expect(result.before.status == .unknown)
        #expect(result.effects == [.created, .callback(.accepted)])
        #expect(result.after.status == .paid)
        #expect(result.after.callbacks.unknownOrder == 1)
        #expect(result.after.callbacks.accepted == 1)
    }

    /// A forged callback for an order id we never created is bad-signature, not unknown-order
    @Test func forgedCallbackWithoutOrderIsBadSignature() throws {
        let state = folded([try LedgerFixture.callback(signingKey: LedgerFixture.foreignKey)])
        #expect(state.status == .unknown)
        #expect(state.callbacks.badSignature == 1)
        #expect(state.callbacks.unknownOrder == 0)
    }

    // MARK: Query results

    /// A verified SUCCESS reply for the order's amount pays a created order, with the query as the source
    @Test(arguments: [false, true])
    func verifiedSuccessQueryPays(enveloped: Bool) throws {
        let query = try LedgerFixture.queryResult(amount: "100.0000", enveloped: enveloped)
        let events = LedgerChain.of([try LedgerFixture.orderCreated(), query])
        let created = OrderState.fold(orderId: LedgerFixture.orderId, events.prefix(1))
        let (paid, effect) = created.applyingWithEffect(events[1])
        #expect(effect == .query(.paid))
        #expect(paid.status == .paid)
        #expect(paid.flags.isEmpty)
        let payment = try #require(paid.payment)
        #expect(payment.source == .query)
        #expect(payment.transactionId == LedgerFixture.transactionId)
        #expect(payment.paidAt == "2026-11-27 10:00:05")
        #expect(payment.amountText == "100.0000")
        #expect(payment.sequence == 2)
        #expect(payment.recordedAt == events[1].recordedAt)
        #expect(paid.queryAttempts == 1)
        #expect(paid.lastQueryAt == events[1].recordedAt)
        #expect(paid.callbacks.received == 0)
    }

    /// A verified NOTPAY reply keeps the order created, whatever the returncode says
    @Test(arguments: ["00", "01"])
    func notPayQueryKeepsCreated(returnCode: String) throws {
        let result = applying(
            [try LedgerFixture.queryResult(tradeState: "NOTPAY", returnCode: returnCode)],
            after: [try LedgerFixture.orderCreated()]
        )
        #expect(result.effects == [.query(.notPaid)])
        expectSameFacts(result.after, result.before)
        #expect(result.after.status == .created)
        #expect(result.after.queryAttempts == 1)
    }

    /// A verified SUCCESS again for the same transaction confirms the payment and changes nothing
    @Test func sameTransactionQueryConfirms() throws {
        let result = applying(
            [try LedgerFixture.queryResult(attempt: 2)],
            after: [try LedgerFixture.orderCreated(), try LedgerFixture.callback()]
        )
        #expect(result.effects == [.query(.confirmed)])
        expectSameFacts(result.after, result.before)
        #expect(result.after.payment?.source == .callback)
    }

    /// A verified SUCCESS naming another transaction after payment is conflicting and flagged
    @Test func otherTransactionQueryAfterPaidIsConflicting() throws {
        let result = applying(
            [try LedgerFixture.queryResult(transactionId: LedgerFixture.otherTransactionId)],
            after: [try LedgerFixture.orderCreated(), try LedgerFixture.callback()]
        )
        #expect(result.effects == [.query(.conflicting)])
        #expect(result.after.status == .paid)
        #expect(result.after.flags == [.conflictingTransaction])
        #expect(result.after.payment == result.before.payment)
    }

    /// A verified SUCCESS naming another amount is conflicting, flagged, and never pays
    @Test func otherAmountQueryIsConflicting() throws {
        let query = try LedgerFixture.queryResult(amount: "100.0001")
        let created = applying([query], after: [try LedgerFixture.orderCreated()])
        #expect(created.effects == [.query(.conflicting)])
        #expect(created.after.status == .created)
        #expect(created.after.payment == nil)
        #expect(created.after.flags == [.amountMismatch])

        let paid = applying([query], after: [try LedgerFixture.orderCreated(), try LedgerFixture.callback()])
        #expect(paid.effects == [.query(.conflicting)])
        #expect(paid.after.status == .paid)
        #expect(paid.after.payment == paid.before.payment)
        #expect(paid.after.flags == [.conflictingAmount])
    }

    /// A query reply that fails verification changes no state, even when it says SUCCESS
    @Test func unverifiedQueryChangesNothing() throws {
        let forgedKey = try LedgerFixture.queryResult(signingKey: LedgerFixture.foreignKey)
        var tampered = LedgerFixture.queryReplyFields(tradeState: "NOTPAY")
        tampered = LedgerFixture.replacing("trade_state", with: "SUCCESS", in: tampered)
        tampered = LedgerFixture.replacing("transaction_id", with: LedgerFixture.transactionId, in: tampered)
        let tamperedQuery = try LedgerFixture.queryResult(fields: tampered)
        let unsigned = try LedgerFixture.queryResult(
            fields: LedgerFixture.replacing("sign", with: "", in: LedgerFixture.queryReplyFields())
        )
        for query in [forgedKey, tamperedQuery, unsigned] {
            let result = applying([query], after: [try LedgerFixture.orderCreated()])
            #expect(result.effects == [.query(.badSignature)])
            expectSameFacts(result.after, result.before)
            #expect(result.after.queryAttempts == 1)
        }
        let forgedNotPay = try LedgerFixture.queryResult(tradeState: "NOTPAY", signingKey: LedgerFixture.foreignKey)
        let paid = applying([forgedNotPay], after: [try LedgerFixture.orderCreated(), try LedgerFixture.callback()])
        #expect(paid.effects == [.query(.badSignature)])
        expectSameFacts(paid.after, paid.before)
    }

    /// A query with no usable reply (transport error, unreadable answer, gateway error) fails and changes no state
    @Test(
        arguments: [
            QueryResult.Outcome.transportError(message: "connection refused"),
            .transportError(message: "timed out after 5000 ms"),
            .unreadable(reason: "an HTML page, not JSON: unexpected byte '<' at 0"),
            .gatewayError(message: "订单不存在"),
        ]
    )
    func failedQueryChangesNothing(outcome: QueryResult.Outcome) throws {
        let failed = LedgerFixture.failedQuery(outcome, httpStatus: 502, body: Array("<html>502</html>".utf8))
        let created = try LedgerFixture.orderCreated()
        for prefix in [[created], [created, try LedgerFixture.callback()]] {
            let result = applying([failed], after: prefix)
            #expect(result.effects == [.query(.failed)])
            expectSameFacts(result.after, result.before)
            #expect(result.after.queryAttempts == result.before.queryAttempts + 1)
        }
    }

    /// A verified NOTPAY after a SUCCESS leaves the order paid and flags notpay-after-paid
    @Test func notPayAfterSuccessKeepsPaidAndFlags() throws {
        let result = applying(
            [try LedgerFixture.queryResult(tradeState: "NOTPAY", attempt: 2)],
            after: [try LedgerFixture.orderCreated(), try LedgerFixture.queryResult()]
        )
        #expect(result.before.status == .paid)
        #expect(result.effects == [.query(.conflicting)])
        #expect(result.after.status == .paid)
        #expect(result.after.flags == [.notPaidAfterPaid])
        #expect(result.after.payment == result.before.payment)
    }

    /// The poller's final attempt expires an order that is still only created
    @Test(
        arguments: [
            ("NOTPAY", QueryClassification.notPaid), ("transport", .failed), ("forged", .badSignature),
            ("other-order", .irrelevant),
        ]
    )
    func finalAttemptExpiresCreatedOrder(kind: String, classification: QueryClassification) throws {
        let query: EventPayload
        switch kind {
        case "NOTPAY": query = try LedgerFixture.queryResult(tradeState: "NOTPAY", final: true)
        case "transport": query = LedgerFixture.failedQuery(.transportError(message: "reset"), final: true)
        case "forged": query = try LedgerFixture.queryResult(signingKey: LedgerFixture.foreignKey, final: true)
        default: query = try LedgerFixture.queryResult(orderId: LedgerFixture.otherOrderId, final: true)
        }
        let result = applying([query], after: [try LedgerFixture.orderCreated()])
        #expect(result.effects == [.query(classification)])
        #expect(result.after.status == .expired)
        #expect(result.after.payment == nil)
    }

    /// A final attempt that shows the order paid pays it instead of expiring it
    @Test func finalSuccessPays() throws {
        let result = applying([try LedgerFixture.queryResult(final: true)], after: [try LedgerFixture.orderCreated()])
        #expect(result.effects == [.query(.paid)])
        #expect(result.after.status == .paid)
        #expect(result.after.flags.isEmpty)
    }

    /// A final attempt never expires an order that is already paid
    @Test func finalAttemptLeavesPaidOrderPaid() throws {
        let result = applying(
            [try LedgerFixture.queryResult(tradeState: "NOTPAY", final: true)],
            after: [try LedgerFixture.orderCreated(), try LedgerFixture.callback()]
        )
        #expect(result.after.status == .paid)
        #expect(result.after.flags == [.notPaidAfterPaid])
    }

    /// A valid payment after expiry still pays the order and flags paid-after-expiry, by callback or by query
    @Test func paymentAfterExpiryPaysAndFlags() throws {
        let expire = try LedgerFixture.queryResult(tradeState: "NOTPAY", final: true)
        for (payment, effect) in [
            (try LedgerFixture.callback(), EventEffect.callback(.accepted)),
            (try LedgerFixture.queryResult(attempt: 9), .query(.paid)),
        ] {
            let result = applying([payment], after: [try LedgerFixture.orderCreated(), expire])
            #expect(result.before.status == .expired)
            #expect(result.effects == [effect])
            #expect(result.after.status == .paid)
            #expect(result.after.flags == [.paidAfterExpiry])
            #expect(result.after.payment != nil)
        }
    }

    /// A NOTPAY after expiry leaves the order expired
    @Test func notPayAfterExpiryStaysExpired() throws {
        let expire = try LedgerFixture.queryResult(tradeState: "NOTPAY", final: true)
        let result = applying(
            [try LedgerFixture.queryResult(tradeState: "NOTPAY", final: true)],
            after: [try LedgerFixture.orderCreated(), expire]
        )
        #expect(result.effects == [.query(.notPaid)])
        #expect(result.after.status == .expired)
        #expect(result.after.flags.isEmpty)
    }

    /// A verified reply about another order, another member or an unknown trade state is irrelevant
    @Test func replyAboutSomethingElseIsIrrelevant() throws {
        let replies = [
            try LedgerFixture.queryResult(orderId: LedgerFixture.otherOrderId),
            try LedgerFixture.queryResult(memberId: LedgerFixture.otherMemberId),
            try LedgerFixture.queryResult(tradeState: "USERPAYING"),
            try LedgerFixture.queryResult(tradeState: "success"),
        ]
        for reply in replies {
            let result = applying([reply], after: [try LedgerFixture.orderCreated()])
            #expect(result.effects == [.query(.irrelevant)])
            expectSameFacts(result.after, result.before)
        }
    }

    /// A verified SUCCESS for an order id with no order-created event is irrelevant and pays nothing
    @Test func queryWithoutOrderIsIrrelevant() throws {
        let result = applying([try LedgerFixture.queryResult()], after: [])
        #expect(result.effects == [.query(.irrelevant)])
        #expect(result.after.status == .unknown)
        #expect(result.after.payment == nil)
    }

    // MARK: Bookkeeping

    /// lastSequence, eventCount, queryAttempts and lastQueryAt follow the events of the order, interleaved or not
    @Test func bookkeepingFollowsTheOrdersEvents() throws {
        var chain = LedgerChain()
        chain.append(try LedgerFixture.orderCreated())
        let other = LedgerFixture.otherOrderId
        chain.append(try LedgerFixture.orderCreated(orderId: other), orderId: other)
        chain.append(LedgerFixture.failedQuery(.transportError(message: "reset")))
        chain.append(try LedgerFixture.queryResult(tradeState: "NOTPAY", attempt: 2))
        chain.append(try LedgerFixture.callback(orderId: other), orderId: other)
        chain.append(try LedgerFixture.callback(returnCode: "01"))
        chain.append(try LedgerFixture.queryResult(attempt: 3))
        chain.append(try LedgerFixture.callback(orderId: other), orderId: other)
        let mine = chain.events.filter { $0.orderId == LedgerFixture.orderId }
        let state = OrderState.fold(orderId: LedgerFixture.orderId, mine)
        #expect(mine.map(\.sequence) == [1, 3, 4, 6, 7])
        #expect(state.lastSequence == 7)
        #expect(state.eventCount == 5)
        #expect(state.queryAttempts == 3)
        #expect(state.lastQueryAt == mine[4].recordedAt)
        #expect(state.callbacks.received == 1)
        #expect(state.callbacks.notSuccess == 1)
        #expect(state.status == .paid)
        #expect(state.payment?.sequence == 7)

        let otherState = OrderState.fold(orderId: other, chain.events.filter { $0.orderId == other })
        #expect(otherState.lastSequence == 8)
        #expect(otherState.eventCount == 3)
        #expect(otherState.queryAttempts == 0)
        #expect(otherState.lastQueryAt == nil)
        #expect(otherState.callbacks.accepted == 1)
        #expect(otherState.callbacks.duplicate == 1)
        #expect(otherState.callbacks.firstAt == chain.events[4].recordedAt)
        #expect(otherState.callbacks.lastAt == chain.events[7].recordedAt)
    }

    /// The initial state is unknown with nothing counted
    @Test func initialStateIsEmpty() {
        let state = OrderState.fold(orderId: LedgerFixture.orderId, [Event]())
        #expect(state == OrderState(orderId: LedgerFixture.orderId))
        #expect(state.status == .unknown)
        #expect(state.lastSequence == 0)
        #expect(state.eventCount == 0)
        #expect(state.queryAttempts == 0)
        #expect(state.callbacks == CallbackCounts())
    }

    /// A second order-created event is ignored, flagged duplicate-create, and keeps the first order's facts
    @Test func secondCreateIsIgnoredAndFlagged() throws {
        let second = try LedgerFixture.orderCreated(amount: "200.00", productName: "另一个商品")
        let created = applying([second], after: [try LedgerFixture.orderCreated()])
        #expect(created.effects == [.ignoredSecondCreate])
        #expect(created.after.flags == [.duplicateCreate])
        #expect(created.after.status == .created)
        #expect(created.after.order == created.before.order)
        #expect(created.after.order?.amount.text == "100.00")
        #expect(created.after.eventCount == 2)
        #expect(created.after.lastSequence == 2)

        let paid = applying([second], after: [try LedgerFixture.orderCreated(), try LedgerFixture.callback()])
        #expect(paid.effects == [.ignoredSecondCreate])
        #expect(paid.after.status == .paid)
        #expect(paid.after.flags == [.duplicateCreate])
        #expect(paid.after.payment == paid.before.payment)
    }

    /// `applying` and `fold` give the same state as applying each event in place
    @Test func applyingAndFoldAgree() throws {
        let events = LedgerChain.of([
            try LedgerFixture.orderCreated(), try LedgerFixture.callback(returnCode: "01"),
            try LedgerFixture.queryResult(tradeState: "NOTPAY"), try LedgerFixture.callback(),
            try LedgerFixture.callback(),
        ])
        var inPlace = OrderState(orderId: LedgerFixture.orderId)
        var functional = OrderState(orderId: LedgerFixture.orderId)
        for event in events {
            let (next, effect) = functional.applyingWithEffect(event)
            #expect(inPlace.apply(event) == effect)
            #expect(functional.applying(event) == next)
            functional = next
            #expect(inPlace == functional)
        }
        #expect(OrderState.fold(orderId: LedgerFixture.orderId, events) == inPlace)
    }

    // MARK: Properties over random sequences

    /// Paid never goes back: over many seeded random event sequences, a paid order stays paid with the same payment
    @Test func paidNeverGoesBack() throws {
        let pool = try RandomEvents.pool()
        // How often the sequences exercised what the property is about, so it cannot pass by never getting there.
        var stepsAfterPaid = 0
        var paidAfterExpiry = 0
        for seed in UInt64(1)...400 {
            var random = SplitMix64(seed: seed)
            let events = RandomEvents.sequence(from: pool, using: &random)
            var state = OrderState(orderId: LedgerFixture.orderId)
            for event in events {
                let before = state
                let effect = state.apply(event)
                if before.status == .paid { stepsAfterPaid += 1 }
                if before.status == .expired && state.status == .paid { paidAfterExpiry += 1 }
                let violation = RandomEvents.violation(before: before, after: state, event: event)
                // The first violation names its seed and event, which reproduce it; the rest would only repeat it.
                guard violation == nil else {
                    Issue.record("seed \(seed), event \(event.sequence) (\(effect)): \(violation ?? "")")
                    return
                }
            }
        }
        #expect(stepsAfterPaid > 1_000)
        #expect(paidAfterExpiry > 10)
    }

    /// Folding the same events twice gives equal states, and so does folding them after an encode/decode round trip
    @Test func foldIsDeterministic() throws {
        let pool = try RandomEvents.pool()
        for seed in UInt64(1)...200 {
            var random = SplitMix64(seed: seed)
            let events = RandomEvents.sequence(from: pool, using: &random)
            let first = OrderState.fold(orderId: LedgerFixture.orderId, events)
            let second = OrderState.fold(orderId: LedgerFixture.orderId, events)
            #expect(first == second, "seed \(seed)")
            let decoded = try events.map { try EventCodec.decode(EventCodec.encode($0)) }
            #expect(OrderState.fold(orderId: LedgerFixture.orderId, decoded) == first, "seed \(seed)")
        }
    }
}

/// Random event sequences for one order, drawn from a pool of realistic payloads.
private enum RandomEvents {
    /// Every status change the order life allows (architecture.md, "Order life"), and staying put.
    static let allowedTransitions: Set<[OrderStatus]> = [
        [.unknown, .unknown], [.unknown, .created], [.created, .created], [.created, .paid], [.created, .expired],
        [.expired, .expired], [.expired, .paid], [.paid, .paid],
    ]

    /// What is wrong with one step of the fold, or nil when every invariant holds.
    static func violation(before: OrderState, after: OrderState, event: Event) -> String? {
        if before.status == .paid && after.status != .paid { return "paid went back to \(after.status)" }
        if before.payment != nil && after.payment != before.payment { return "the payment changed" }
        if !Self.allowedTransitions.contains([before.status, after.status]) {
            return "\(before.status) → \(after.status) is not a transition of the order life"
        }
        // Flags are only ever added: a flag raised for review is never silently cleared.
        if !after.flags.isSuperset(of: before.flags) {
            return "flags \(before.flags.names) became \(after.flags.names)"
        }
        if (after.status == .paid) != (after.payment != nil) {
            return "status \(after.status) with payment \(String(describing: after.payment))"
        }
        if after.eventCount != before.eventCount + 1 {
            return "eventCount \(before.eventCount) → \(after.eventCount)"
        }
        if after.lastSequence != event.sequence { return "lastSequence \(after.lastSequence), event \(event.sequence)" }
        let counts = after.callbacks
        let classified = CallbackClassification.allCases.reduce(UInt32(0)) { $0 + counts[$1] }
        if classified != counts.received { return "\(classified) callbacks classified of \(counts.received) received" }
        return nil
    }

    static func pool() throws -> [EventPayload] {
        [
            try LedgerFixture.orderCreated(),
            try LedgerFixture.orderCreated(amount: "200.00"),
            try LedgerFixture.callback(),
            try LedgerFixture.callback(amount: "100.00", datetime: "20261127100005"),
            try LedgerFixture.callback(transactionId: LedgerFixture.otherTransactionId),
            try LedgerFixture.callback(amount: "99.00"),
            try LedgerFixture.callback(amount: "100.0001"),
            try LedgerFixture.callback(amount: "200.00"),
            try LedgerFixture.callback(memberId: LedgerFixture.otherMemberId),
            try LedgerFixture.callback(returnCode: "01"),
            try LedgerFixture.callback(signingKey: LedgerFixture.foreignKey),
            try LedgerFixture.callback(fields: CallbackForgery.tamperedAmount.fields()),
            try LedgerFixture.callback(fields: CallbackForgery.emptySign.fields()),
            try LedgerFixture.queryResult(),
            try LedgerFixture.queryResult(final: true),
            try LedgerFixture.queryResult(transactionId: LedgerFixture.otherTransactionId),
            try LedgerFixture.queryResult(amount: "1.00"),
            try LedgerFixture.queryResult(tradeState: "NOTPAY"),
            try LedgerFixture.queryResult(tradeState: "NOTPAY", final: true),
            try LedgerFixture.queryResult(tradeState: "USERPAYING"),
            try LedgerFixture.queryResult(signingKey: LedgerFixture.foreignKey),
            try LedgerFixture.queryResult(orderId: LedgerFixture.otherOrderId),
            LedgerFixture.failedQuery(.transportError(message: "connection reset by peer")),
            LedgerFixture.failedQuery(.transportError(message: "timed out"), final: true),
            LedgerFixture.failedQuery(.gatewayError(message: "签名错误"), httpStatus: 200),
            LedgerFixture.failedQuery(.unreadable(reason: "an HTML page"), httpStatus: 502, final: true),
        ]
    }

    /// 1 to 40 events drawn from `pool`, sealed into a chain. Orders usually start with their creation, as in the
    /// daemon, but not always, so unknown orders are covered too.
    static func sequence(from pool: [EventPayload], using random: inout SplitMix64) -> [Event] {
        let count = Int.random(in: 1...40, using: &random)
        var payloads: [EventPayload] = []
        if Int.random(in: 0..<5, using: &random) != 0 { payloads.append(pool[0]) }
        while payloads.count < count { payloads.append(pool[Int.random(in: 0..<pool.count, using: &random)]) }
        return LedgerChain.of(payloads)
    }
}
