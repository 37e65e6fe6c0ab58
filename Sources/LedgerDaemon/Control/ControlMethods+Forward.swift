import LedgerCore
import LedgerStore

/// `forward.status`, `forward.retry`, `forward.replay`: operating the forwarder (issue 16). Self-contained so the
/// methods move to the typed protocol as they are; the schemas are `schemas/control/forward.*.json`.
extension ControlMethods {
    public static let forwardNames = ["forward.status", "forward.retry", "forward.replay"]

    /// Deliveries listed per kind (failing, dead) when no limit is asked for, and the most.
    static let forwardListDefault = 20
    static let forwardListMax = 1000

    func callForward(_ method: String, _ params: ControlParams) async throws -> JSONValue {
        switch method {
        case "forward.status": return try await self.forwardStatus(params)
        case "forward.retry": return try await self.forwardRetry(params)
        case "forward.replay": return try await self.forwardReplay(params)
        default: throw ControlError.methodNotFound(method)
        }
    }

    private func requireForwarder() throws(ControlError) -> Forwarder {
        guard let forwarder = self.forwarder, forwarder.enabled else {
            throw ControlError.unavailable("Forwarding is not configured (forward.url): nothing is forwarded.")
        }
        return forwarder
    }

    func forwardStatus(_ params: ControlParams) async throws -> JSONValue {
        try params.allow(["limit"])
        let limit = Int(try params.int("limit", 0...Int64(Self.forwardListMax)) ?? Int64(Self.forwardListDefault))
        guard let forwarder = self.forwarder, forwarder.enabled else {
            return .object([
                "enabled": .bool(false), "active": .bool(false), "position": .number("0"), "head": .number("0"),
                "pending": .number("0"), "dead": .number("0"), "oldestPendingAt": .null, "receivers": .array([]),
                "failing": .array([]), "deadDeliveries": .array([]),
            ])
        }
        let status = await forwarder.status(limit: limit)
        let head = try await self.store.head()
        return .object([
            "enabled": .bool(status.enabled), "active": .bool(status.active),
            "position": ControlJSON.number(status.position), "head": ControlJSON.number(head.sequence),
            "pending": ControlJSON.number(status.pending), "dead": ControlJSON.number(status.dead),
            "oldestPendingAt": ControlJSON.instant(status.oldestPendingAt),
            "receivers": .array(status.receivers.map { .string($0) }),
            "failing": .array(status.failing.map(Self.forwardDelivery)),
            "deadDeliveries": .array(status.deadDeliveries.map(Self.forwardDelivery)),
        ])
    }

    func forwardRetry(_ params: ControlParams) async throws -> JSONValue {
        try params.allow(["orderId", "allDead"])
        let orderId = try params.orderId()
        let allDead: Bool
        switch params.object["allDead"] {
        case nil, .null?: allDead = false
        case .bool(let value)?: allDead = value
        case .number?, .string?, .array?, .object?:
            throw ControlError.invalidParams("forward.retry: allDead must be a boolean.")
        }
        guard (orderId != nil) != allDead else {
            throw ControlError.invalidParams("forward.retry needs either orderId or allDead: true, not both.")
        }
        let forwarder = try self.requireForwarder()
        do {
            let count = try await forwarder.retry(orderId: orderId)
            return .object(["retried": ControlJSON.number(count)])
        } catch {
            throw ControlError.unavailable(error.description)
        }
    }

    func forwardReplay(_ params: ControlParams) async throws -> JSONValue {
        try params.allow(["from"])
        guard let from = try params.int("from", 1...Int64.max) else {
            throw ControlError.invalidParams("forward.replay needs from, the first sequence to derive again.")
        }
        let forwarder = try self.requireForwarder()
        do {
            let position = try await forwarder.replay(from: UInt64(from))
            return .object(["position": ControlJSON.number(position)])
        } catch let unavailable as Forwarder.Unavailable {
            throw ControlError.unavailable(unavailable.description)
        }
    }

    static func forwardDelivery(_ delivery: ForwardDelivery) -> JSONValue {
        .object([
            "receiver": .string(delivery.receiver), "eventId": .string(delivery.event.id),
            "type": .string(delivery.event.type.rawValue), "orderId": .string(delivery.event.orderId),
            "sequence": ControlJSON.number(delivery.event.sequence), "attempts": ControlJSON.number(delivery.attempts),
            "lastError": delivery.lastError.map { .string($0) } ?? .null,
            "lastAttemptAt": ControlJSON.instant(delivery.lastAttemptAt),
            "nextAttemptAt": delivery.dead ? .null : .string(delivery.nextAttemptAt.description),
            "dead": .bool(delivery.dead),
        ])
    }
}
