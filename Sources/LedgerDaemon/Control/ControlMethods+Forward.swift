import LedgerControlProtocol
import LedgerCore
import LedgerStore

/// `forward.status`, `forward.retry`, `forward.replay`: operating the forwarder; the schemas are
/// `schemas/control/forward.*.json`.
extension ControlMethods {
    private func requireForwarder() throws(ControlError) -> Forwarder {
        guard let forwarder = self.forwarder, forwarder.enabled else {
            throw ControlError.unavailable("Forwarding is not configured (forward.url): nothing is forwarded.")
        }
        return forwarder
    }

    func forwardStatus(_ params: ForwardStatus.Params) async throws -> ForwardStatus.Result {
        guard let forwarder = self.forwarder, forwarder.enabled else { return .off }
        let status = await forwarder.status(limit: params.limit ?? ForwardStatus.listDefault)
        let head = try await self.store.head()
        return ForwardStatus.Result(
            enabled: status.enabled,
            active: status.active,
            position: status.position,
            head: head.sequence,
            pending: UInt64(status.pending),
            dead: UInt64(status.dead),
            oldestPendingAt: status.oldestPendingAt?.description,
            receivers: status.receivers,
            failing: status.failing.map(ForwardDeliveryView.init),
            deadDeliveries: status.deadDeliveries.map(ForwardDeliveryView.init)
        )
    }

    func forwardRetry(_ params: ForwardRetry.Params) async throws -> ForwardRetry.Result {
        let forwarder = try self.requireForwarder()
        do {
            return ForwardRetry.Result(retried: UInt64(try await forwarder.retry(orderId: params.orderId)))
        } catch {
            throw ControlError.unavailable(error.description)
        }
    }

    func forwardReplay(_ params: ForwardReplay.Params) async throws -> ForwardReplay.Result {
        let forwarder = try self.requireForwarder()
        do {
            return ForwardReplay.Result(position: try await forwarder.replay(from: params.from))
        } catch let unavailable as Forwarder.Unavailable {
            throw ControlError.unavailable(unavailable.description)
        }
    }
}

extension ForwardDeliveryView {
    init(_ delivery: ForwardDelivery) {
        self.init(
            receiver: delivery.receiver,
            eventId: delivery.event.id,
            type: delivery.event.type.rawValue,
            orderId: delivery.event.orderId,
            sequence: delivery.event.sequence,
            attempts: UInt64(delivery.attempts),
            lastError: delivery.lastError,
            lastAttemptAt: delivery.lastAttemptAt?.description,
            nextAttemptAt: delivery.dead ? nil : delivery.nextAttemptAt.description,
            dead: delivery.dead
        )
    }
}
