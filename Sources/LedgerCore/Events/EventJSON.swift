#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The JSON form of events: what operators read in `order.history` and `events.read`, validated against
/// `schemas/events/*.json`. Keys are written sorted so the same event always prints the same text.
extension Event {
    public var json: JSONValue {
        var object: JSONObject = [
            "sequence": .number(String(self.sequence)),
            "recordedAt": .string(self.recordedAt.description),
            "type": .string(self.type.rawValue),
            "orderId": .string(self.orderId),
            "previousHash": .string(self.previousHash.hex),
            "hash": .string(self.hash.hex),
        ]
        object["data"] = self.payload.json
        return .object(object)
    }

    /// The JSON text of the event, keys sorted.
    public var jsonText: String { JSONWriter.write(self.json, options: .sortedKeys) }
}

extension EventPayload {
    public var json: JSONValue {
        switch self {
        case .orderCreated(let created): return created.json
        case .callbackReceived(let callback): return callback.json
        case .queryResult(let result): return result.json
        }
    }
}

extension OrderCreated {
    public var json: JSONValue {
        let request = self.request
        var object: JSONObject = [
            "memberId": .string(request.memberId),
            "applyDate": .string(request.applyDate),
            "bankCode": .string(request.bankCode),
            "notifyUrl": .string(request.notifyURL),
            "callbackUrl": .string(request.callbackURL),
            "amount": .string(request.amount.text),
            "amountFen": .number(String(request.amount.fen)),
            "productName": .string(request.productName),
            "sign": .string(request.sign),
            "gatewayUrl": .string(self.gatewayURL),
            "dialect": .string(self.dialect.description),
        ]
        if let value = request.attach { object["attach"] = .string(value) }
        if let value = request.productNum { object["productNum"] = .string(value) }
        if let value = request.productDesc { object["productDesc"] = .string(value) }
        if let value = request.productURL { object["productUrl"] = .string(value) }
        return .object(object)
    }
}

extension CallbackReceived {
    public var json: JSONValue {
        var object: JSONObject = [
            "fields": FormField.json(self.fields),
            "remoteAddress": .string(self.remoteAddress),
            "verdict": .string(self.verdict.rawValue),
            "dialect": .string(self.dialect.description),
        ]
        Self.addBody(self.rawBody, to: &object, key: "rawBody")
        return .object(object)
    }

    /// A body as text when it is UTF-8 (always, for a recorded callback), otherwise as base64 under `…Base64`.
    static func addBody(_ bytes: [UInt8], to object: inout JSONObject, key: String) {
        if let text = String(checkedUTF8: bytes) {
            object[key] = .string(text)
        } else {
            object[key + "Base64"] = .string(Data(bytes).base64EncodedString())
        }
    }
}

extension QueryResult {
    public var json: JSONValue {
        var object: JSONObject = [
            "attempt": .number(String(self.attempt)),
            "latencyMicroseconds": .number(String(self.latencyMicroseconds)),
            "final": .bool(self.final),
            "httpStatus": self.httpStatus.map { .number(String($0)) } ?? .null,
        ]
        CallbackReceived.addBody(self.body, to: &object, key: "body")
        switch self.outcome {
        case .reply(let fields, let enveloped, let verdict, let dialect):
            object["outcome"] = .object([
                "kind": "reply",
                "fields": FormField.json(fields),
                "enveloped": .bool(enveloped),
                "verdict": .string(verdict.rawValue),
                "dialect": .string(dialect.description),
            ])
        case .gatewayError(let message):
            object["outcome"] = .object(["kind": "gateway-error", "message": .string(message)])
        case .unreadable(let reason):
            object["outcome"] = .object(["kind": "unreadable", "reason": .string(reason)])
        case .transportError(let message):
            object["outcome"] = .object(["kind": "transport-error", "message": .string(message)])
        }
        return .object(object)
    }
}

extension FormField {
    /// Fields as a list of `{"name","value"}` pairs: a list, not an object, because order and repetition are
    /// facts of what was received.
    static func json(_ fields: [FormField]) -> JSONValue {
        .array(fields.map { .object(["name": .string($0.name), "value": .string($0.value)]) })
    }
}
