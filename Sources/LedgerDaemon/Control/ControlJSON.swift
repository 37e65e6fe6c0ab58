import LedgerCore
import LedgerStore

/// The JSON forms of the ledger's values in control results, as `schemas/control/*.json` describe them.
enum ControlJSON {
    static func number<T: BinaryInteger>(_ value: T) -> JSONValue { .number(String(value)) }

    /// A finite double with three decimals: JSON has no NaN or infinity, and durations need no more.
    static func seconds(_ value: Double) -> JSONValue {
        guard value.isFinite else { return .null }
        let thousandths = Int64((value * 1000).rounded())
        let sign = thousandths < 0 ? "-" : ""
        let magnitude = thousandths.magnitude
        let fraction = String(magnitude % 1000)
        return .number(sign + String(magnitude / 1000) + "." + String(repeating: "0", count: 3 - fraction.count) + fraction)
    }

    static func instant(_ instant: Instant?) -> JSONValue {
        instant.map { .string($0.description) } ?? .null
    }

    static func head(_ head: LogHead) -> JSONValue {
        .object(["sequence": Self.number(head.sequence), "hash": .string(head.hash.hex)])
    }

    static func counts(_ counts: CallbackCounts) -> JSONValue {
        .object([
            "received": Self.number(counts.received), "accepted": Self.number(counts.accepted),
            "duplicate": Self.number(counts.duplicate), "conflicting": Self.number(counts.conflicting),
            "amountMismatch": Self.number(counts.amountMismatch), "memberMismatch": Self.number(counts.memberMismatch),
            "notSuccess": Self.number(counts.notSuccess), "badSignature": Self.number(counts.badSignature),
            "unknownOrder": Self.number(counts.unknownOrder), "firstAt": Self.instant(counts.firstAt),
            "lastAt": Self.instant(counts.lastAt),
        ])
    }

    /// What the quarantine holds and has dropped, and its exact counts of all and of unknown orders.
    static func quarantineStatus(_ status: QuarantineStatus) -> JSONValue {
        .object([
            "entries": Self.number(status.entries), "bytes": Self.number(status.bytes),
            "dropped": Self.number(status.dropped), "badSignature": Self.number(status.total.badSignature),
            "foreignMember": Self.number(status.total.foreignMember),
            "unknownOrders": Self.number(status.unknownOrders.total),
        ])
    }

    /// One quarantine entry. The body is shown as UTF-8 text (the form decoder admits nothing else, but a body
    /// cut at the bound may end inside a character, which shows as U+FFFD).
    static func quarantineEntry(_ entry: QuarantineEntry) -> JSONValue {
        .object([
            "id": Self.number(entry.id), "receivedAt": .string(entry.receivedAt.description),
            "remoteAddress": .string(entry.remoteAddress), "source": .string(entry.source),
            "reason": .string(entry.reason.rawValue), "detail": .string(entry.detail),
            "orderId": entry.orderId.map { .string($0) } ?? .null,
            "body": .string(String(decoding: entry.body, as: UTF8.self)), "bodyBytes": Self.number(entry.bodyBytes),
            "bodyCut": .bool(entry.isBodyCut),
        ])
    }

    /// One order's projected state: `state` and `flags` are what shop code reads; the rest is for people.
    static func order(_ state: OrderState) -> JSONValue {
        var object: JSONObject = [
            "orderId": .string(state.orderId),
            "state": .string(state.status.rawValue),
            "flags": .array(state.flags.names.map { .string($0) }),
        ]
        if let order = state.order {
            object["order"] = .object([
                "memberId": .string(order.memberId), "amount": .string(order.amount.text),
                "amountFen": Self.number(order.amount.fen), "bankCode": .string(order.bankCode),
                "productName": .string(order.productName), "applyDate": .string(order.applyDate),
                "createdAt": .string(order.createdAt.description), "createdSequence": Self.number(order.createdSequence),
            ])
        } else {
            object["order"] = .null
        }
        if let payment = state.payment {
            object["payment"] = .object([
                "source": .string(payment.source.rawValue), "transactionId": .string(payment.transactionId),
                "paidAt": .string(payment.paidAt), "amount": .string(payment.amountText),
                "sequence": Self.number(payment.sequence), "recordedAt": .string(payment.recordedAt.description),
            ])
        } else {
            object["payment"] = .null
        }
        object["callbacks"] = Self.counts(state.callbacks)
        object["queryAttempts"] = Self.number(state.queryAttempts)
        object["lastQueryAt"] = Self.instant(state.lastQueryAt)
        object["lastSequence"] = Self.number(state.lastSequence)
        object["eventCount"] = Self.number(state.eventCount)
        return .object(object)
    }

    static func effect(_ effect: EventEffect) -> JSONValue {
        switch effect {
        case .created: return .object(["kind": "created"])
        case .ignoredSecondCreate: return .object(["kind": "ignored-second-create"])
        case .callback(let classification):
            return .object(["kind": "callback", "classification": .string(classification.rawValue)])
        case .query(let classification):
            return .object(["kind": "query", "classification": .string(classification.rawValue)])
        }
    }

    static func progress(_ progress: StoreProgress) -> JSONValue {
        .object([
            "phase": .string(progress.phase), "done": Self.number(progress.done), "total": Self.number(progress.total),
            "rate": Self.seconds(progress.rate), "secondsRemaining": progress.secondsRemaining.map(Self.seconds) ?? .null,
        ])
    }
}

/// A request's named params, read with type checks that answer -32602 naming the parameter.
struct ControlParams {
    let object: JSONObject
    let method: String

    init(_ params: JSONValue?, method: String) throws(ControlError) {
        self.method = method
        switch params {
        case nil, .null?: self.object = [:]
        case .object(let object)?: self.object = object
        case .array?, .bool?, .number?, .string?:
            throw .invalidParams("\(method) takes its params by name, as an object.")
        }
    }

    /// Refuses names the method does not know, so a typo is an error rather than a silently ignored filter.
    func allow(_ names: Set<String>) throws(ControlError) {
        for key in self.object.keys where !names.contains(key) {
            throw .invalidParams("\(self.method) has no parameter \(key); it takes \(names.sorted().joined(separator: ", ")).")
        }
    }

    func string(_ name: String) throws(ControlError) -> String? {
        switch self.object[name] {
        case nil, .null?: return nil
        case .string(let value)?: return value
        case .bool?, .number?, .array?, .object?: throw .invalidParams("\(self.method): \(name) must be a string.")
        }
    }

    func requiredString(_ name: String) throws(ControlError) -> String {
        guard let value = try self.string(name) else { throw .invalidParams("\(self.method) needs \(name), a string.") }
        return value
    }

    /// An order id to look up: 1 to 20 of `[A-Za-z0-9_-]`, as every stored order id is (notifications and
    /// pay requests with another are refused before anything is stored). An id no order can have is a
    /// parameter error, never a store lookup that fails.
    func orderId(_ name: String = "orderId") throws(ControlError) -> String? {
        guard let value = try self.string(name) else { return nil }
        guard GatewayValidation.isOrderId(value) else { throw Self.impossibleOrderId(self.method, name) }
        return value
    }

    func requiredOrderId(_ name: String = "orderId") throws(ControlError) -> String {
        guard let value = try self.orderId(name) else {
            throw .invalidParams("\(self.method) needs \(name), a string.")
        }
        return value
    }

    static func impossibleOrderId(_ method: String, _ name: String) -> ControlError {
        .invalidParams(
            "\(method): \(name) must be 1 to \(GatewayValidation.orderIdBytesMax) ASCII letters, digits, '_' or '-'."
        )
    }

    func int(_ name: String, _ range: ClosedRange<Int64>) throws(ControlError) -> Int64? {
        switch self.object[name] {
        case nil, .null?: return nil
        case .number(let text)?:
            guard let value = Int64(text), range.contains(value) else {
                throw .invalidParams("\(self.method): \(name) must be a whole number in \(range.lowerBound)...\(range.upperBound).")
            }
            return value
        case .bool?, .string?, .array?, .object?:
            throw .invalidParams("\(self.method): \(name) must be a whole number.")
        }
    }
}
