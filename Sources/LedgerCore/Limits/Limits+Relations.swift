/// Two (or more) bounds whose values cannot hold together: a configuration that sets them so is refused, naming
/// every key involved.
public struct LimitsContradiction: Sendable, Hashable, CustomStringConvertible {
    /// The key the refusal is reported under: the one the relation bounds.
    public var key: String
    /// The keys it is bounded by (or, for a constant, what the constant is).
    public var otherKeys: [String]
    /// The relation with both values and why it must hold, in a sentence that names every key.
    public var message: String

    public var description: String { "\(self.key): \(self.message)" }
}

extension Limits {
    /// Every relation between the configurable bounds that these values break, in a fixed order; empty when they
    /// all hold. Each is one a wrong value would break in operation, as its message says.
    public var contradictions: [LimitsContradiction] {
        var found: [LimitsContradiction] = []
        func require(
            _ holds: Bool,
            _ key: String,
            _ otherKeys: [String],
            _ message: @autoclosure () -> String
        ) {
            if !holds { found.append(LimitsContradiction(key: key, otherKeys: otherKeys, message: message())) }
        }
        let form = self.http.form
        require(
            form.fieldBytesMax <= form.bodyBytesMax,
            "limits.notify.fieldBytesMax",
            ["limits.notify.bodyBytesMax"],
            "limits.notify.fieldBytesMax (\(form.fieldBytesMax)) must not exceed limits.notify.bodyBytesMax "
                + "(\(form.bodyBytesMax)): a field is part of the body"
        )
        require(
            form.bodyBytesMax <= StoreLimits.eventFieldBytesMax,
            "limits.notify.bodyBytesMax",
            ["the stored event's field bound"],
            "limits.notify.bodyBytesMax (\(form.bodyBytesMax)) must not exceed the stored event's field bound "
                + "(\(StoreLimits.eventFieldBytesMax) bytes, not configurable): a callback event keeps the body as "
                + "received, and a longer one would be written and never read again"
        )
        require(
            form.fieldsMax <= StoreLimits.eventFieldsMax,
            "limits.notify.fieldsMax",
            ["the stored event's field count bound"],
            "limits.notify.fieldsMax (\(form.fieldsMax)) must not exceed the stored event's field count bound "
                + "(\(StoreLimits.eventFieldsMax), not configurable): more would be written and never read again"
        )
        require(
            self.order.attachBytesMax <= form.fieldBytesMax,
            "limits.order.attachBytesMax",
            ["limits.notify.fieldBytesMax"],
            "limits.order.attachBytesMax (\(self.order.attachBytesMax)) must not exceed limits.notify.fieldBytesMax "
                + "(\(form.fieldBytesMax)): the gateway echoes attach in its notification, which would be refused "
                + "and the payment never acknowledged"
        )
        require(
            self.http.connectionsPerAddressMax <= self.http.connectionsMax,
            "limits.http.connectionsPerAddressMax",
            ["limits.http.connectionsMax"],
            "limits.http.connectionsPerAddressMax (\(self.http.connectionsPerAddressMax)) must not exceed "
                + "limits.http.connectionsMax (\(self.http.connectionsMax))"
        )
        require(
            self.poll.bodyBytesMax <= PollLimits.replyJSON.bytesMax,
            "poll.bodyBytesMax",
            ["the query reply parser's bound"],
            "poll.bodyBytesMax (\(self.poll.bodyBytesMax)) must not exceed the query reply parser's bound "
                + "(\(PollLimits.replyJSON.bytesMax) bytes, not configurable): a longer reply would be read whole "
                + "and still refused as too long"
        )
        require(
            self.store.mapSize <= self.store.mapSizeMax,
            "store.mapSize",
            ["store.mapSizeMax"],
            "store.mapSize (\(self.store.mapSize)) must not exceed store.mapSizeMax (\(self.store.mapSizeMax))"
        )
        require(
            self.store.batchBytesMax <= self.store.mapSizeMax / 2,
            "store.batchBytesMax",
            ["store.mapSizeMax"],
            "store.batchBytesMax (\(self.store.batchBytesMax)) must be at most half of store.mapSizeMax "
                + "(\(self.store.mapSizeMax)): a full batch writes its events, their indexes and the orders' states "
                + "to fresh pages while the old ones stay readable, so a smaller map fills on one batch and every "
                + "append in it fails"
        )
        let admitted = self.appendsAdmittedMax
        require(
            self.store.queueDepthMax >= admitted,
            "store.queueDepthMax",
            [
                "limits.http.connectionsMax", "control.connectionsMax", "control.requestsInFlightMax",
                "poll.concurrency",
            ],
            "store.queueDepthMax (\(self.store.queueDepthMax)) must be at least the appends the other bounds admit "
                + "at once (\(admitted): limits.http.connectionsMax \(self.http.connectionsMax) + "
                + "control.connectionsMax \(self.control.connectionsMax) × control.requestsInFlightMax "
                + "\(self.control.requestsInFlightMax) + poll.concurrency \(self.poll.concurrency) + the forwarder's "
                + "one): otherwise an admitted notification is answered busy"
        )
        require(
            self.control.subscriberQueueMax >= self.store.batchCountMax,
            "control.subscriberQueueMax",
            ["store.batchCountMax"],
            "control.subscriberQueueMax (\(self.control.subscriberQueueMax)) must be at least store.batchCountMax "
                + "(\(self.store.batchCountMax)): the appends of one commit are published together, and a queue "
                + "that cannot hold them drops a subscriber that reads promptly"
        )
        require(
            self.control.eventsPageMax <= self.store.readPageMax,
            "control.eventsPageMax",
            ["the store's read page"],
            "control.eventsPageMax (\(self.control.eventsPageMax)) must not exceed the store's read page "
                + "(\(self.store.readPageMax) events, not configurable): a larger events.read would come back "
                + "short, which a client paging by it takes for the end of the log"
        )
        require(
            self.forward.concurrencyUnderLoad <= self.forward.concurrency,
            "forward.concurrencyUnderLoad",
            ["forward.concurrency"],
            "forward.concurrencyUnderLoad (\(self.forward.concurrencyUnderLoad)) must not exceed forward.concurrency "
                + "(\(self.forward.concurrency)): under load the forwarder yields, it never sends more"
        )
        let quarantine = self.quarantine
        require(
            quarantine.bytesMax >= quarantine.entryBytesMax,
            "quarantine.bytesMax",
            ["quarantine.bodyBytesMax"],
            "quarantine.bytesMax (\(quarantine.bytesMax)) must hold at least one whole entry "
                + "(\(quarantine.entryBytesMax) bytes with quarantine.bodyBytesMax \(quarantine.bodyBytesMax))"
        )
        return found
    }

    /// The most appends waiting for the store's writer at once that the other bounds allow: one per HTTP
    /// connection (each serves one request at a time, and a request appends at most once), one per control request
    /// in flight, one per query in flight, and the forwarder's one write.
    public var appendsAdmittedMax: Int {
        self.http.connectionsMax + self.control.connectionsMax * self.control.requestsInFlightMax
            + self.poll.concurrency + 1
    }

    /// The relations between constants (and the defaults of bounds that have no key), as compile-time assertions
    /// would check them; each names what breaks without it. The tests check that every one holds.
    public static var constantRelations: [(relation: String, holds: Bool)] {
        let readPageMax = StoreLimits().readPageMax
        return [
            (
                "the daemon's scan page (\(StoreLimits.scanPageMax)) is at most the store's read page "
                    + "(\(readPageMax)): a scan stops at the first short page",
                StoreLimits.scanPageMax <= readPageMax
            ),
            (
                "order.history's, order.list's, quarantine.read's and forward.status's largest pages are at most "
                    + "the store's read page (\(readPageMax)): the store returns no more, and the answer would be "
                    + "short",
                max(
                    ControlLimits.historyPageMax,
                    ControlLimits.listPageMax,
                    ControlLimits.forwardStatusPageMax
                ) <= readPageMax
            ),
            (
                "a forward receiver's key (\(ForwardLimits.urlBytesMax) + \(ForwardLimits.keyOverheadBytes) bytes) "
                    + "fits an LMDB key (\(StoreLimits.lmdbKeyBytesMax) bytes): its deliveries could not be stored",
                ForwardLimits.urlBytesMax + ForwardLimits.keyOverheadBytes <= StoreLimits.lmdbKeyBytesMax
            ),
            (
                "an order id (\(GatewayValidation.orderIdBytesMax) bytes) fits an LMDB key: orders are indexed by it",
                GatewayValidation.orderIdBytesMax <= StoreLimits.lmdbKeyBytesMax
            ),
            (
                "the standard forward schedule (\(ForwardSchedule.standard.delaysMilliseconds.count) attempts) keeps "
                    + "the schedule's bounds: otherwise the default could not be written as forward.schedule",
                ForwardSchedule.standard.problem == nil
            ),
            (
                "the query reply parser's depth (\(PollLimits.replyJSON.depthMax)) holds the status/msg/data "
                    + "envelope (2): enveloped replies would be refused",
                PollLimits.replyJSON.depthMax >= 2
            ),
        ]
    }
}
