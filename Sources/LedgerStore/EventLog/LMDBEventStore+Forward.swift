public import LedgerCore

/// The forwarder's state in the ledger's LMDB environment (`LMDBLayout`, `forward-outbox` and `forward.position`):
/// written by the store's one writer thread in a transaction of its own, read in read-only transactions that never
/// block it.
enum LMDBForward {
    static func decode(_ value: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer) throws -> ForwardDelivery {
        do {
            return try ForwardCodec.decode(value)
        } catch {
            throw StoreError(.corrupted, "A forward delivery (\(key.count)-byte key) does not decode: \(error)")
        }
    }
}

extension LMDBEventStore {
    public func forwardPosition() async throws -> UInt64 {
        try self.read { txn in
            LMDBLayout.u64(try txn.get(self.layout.meta, key: LMDBLayout.forwardPositionKey)) ?? 0
        }
    }

    public func forwardOutbox(after: ForwardKey?, limit: Int) async throws -> [ForwardDelivery] {
        let limit = min(max(limit, 0), self.options.readPageMax)
        if limit == 0 { return [] }
        let start = after?.bytes ?? []
        return try self.read { txn in
            var found: [ForwardDelivery] = []
            try txn.withCursor(self.layout.forwardOutbox) { cursor in
                var entry = start.isEmpty ? try cursor.first() : try cursor.seek(start)
                // `seek` lands on the first key at or after `after`; the page starts after it.
                if let (key, _) = entry, !start.isEmpty, key.elementsEqual(start) { entry = try cursor.next() }
                while let (key, value) = entry, found.count < limit {
                    found.append(try LMDBForward.decode(value, key: key))
                    entry = try cursor.next()
                }
            }
            return found
        }
    }

    public func forwardWrite(_ write: ForwardWrite) async throws {
        guard !write.isEmpty else { return }
        // Encoded here, on the caller's thread: the writer thread only stores bytes.
        let puts = write.put.map { ($0.key.bytes, ForwardCodec.encode($0)) }
        let removals = write.remove.map(\.bytes)
        try await self.writer.exclusive { context in
            if let position = write.position, position > context.head.sequence {
                throw StoreError(
                    .invalidArgument,
                    "The forward position \(position) is beyond the log's head \(context.head.sequence)."
                )
            }
            try context.environment.writeGrowing { txn in
                if let position = write.position {
                    try txn.put(context.layout.meta, key: LMDBLayout.forwardPositionKey, value: LMDBUInt64Key(position))
                }
                for (key, value) in puts { try txn.put(context.layout.forwardOutbox, key: key, value: value) }
                for key in removals { _ = try txn.delete(context.layout.forwardOutbox, key: key) }
            }
        }
    }
}
