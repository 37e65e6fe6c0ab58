import Foundation
import LedgerStore
import LedgerTesting
import Testing

@Suite("LMDB wrapper: transactions, puts and cursors")
struct LMDBWrapperTests {
    /// A value put in a write transaction reads back, and deleting it makes it absent.
    @Test func putGetDeleteRoundTrip() throws {
        try withTemporaryDirectory { directory in
            let env = try openEnvironment(directory)
            let db = try env.openDatabase(name: "things")
            let result = try env.write { txn in try txn.put(db, key: bytes("alpha"), value: bytes("one")) }
            #expect(result == .stored)
            #expect(try env.read { txn in try txn.getBytes(db, key: bytes("alpha")) } == bytes("one"))
            #expect(try env.read { txn in string(try txn.get(db, key: bytes("alpha"))) } == "one")

            let deleted = try env.write { txn in try txn.delete(db, key: bytes("alpha")) }
            let deletedAgain = try env.write { txn in try txn.delete(db, key: bytes("alpha")) }
            #expect(deleted)
            #expect(!deletedAgain)
            #expect(try env.read { txn in try txn.getBytes(db, key: bytes("alpha")) } == nil)
        }
    }

    /// A write closure that throws aborts its transaction, so none of its writes is visible afterwards.
    @Test func throwingWriteAborts() throws {
        struct Refused: Error {}
        try withTemporaryDirectory { directory in
            let env = try openEnvironment(directory)
            let db = try env.openDatabase(name: "things")
            #expect(throws: Refused.self) {
                try env.write { txn in
                    try txn.put(db, key: bytes("alpha"), value: bytes("one"))
                    #expect(try txn.getBytes(db, key: bytes("alpha")) == bytes("one"))
                    throw Refused()
                }
            }
            #expect(try env.read { txn in try txn.getBytes(db, key: bytes("alpha")) } == nil)
            #expect(try env.read { txn in try txn.stat(db).entries } == 0)
        }
    }

    /// A read transaction keeps its snapshot while a write commits; a later read sees the new value.
    @Test func readSeesSnapshotWhileWriteCommits() throws {
        try withTemporaryDirectory { directory in
            let env = try openEnvironment(directory)
            let db = try env.openDatabase(name: "things")
            try env.write { txn in try txn.put(db, key: bytes("k"), value: bytes("old")) }
            try env.read { snapshot in
                // With MDB_NOTLS a thread may hold a read transaction while it runs a write transaction.
                try env.write { txn in try txn.put(db, key: bytes("k"), value: bytes("new")) }
                #expect(string(try snapshot.get(db, key: bytes("k"))) == "old")
                #expect(try env.read { fresh in string(try fresh.get(db, key: bytes("k"))) } == "new")
            }
        }
    }

    /// MDB_APPEND of big-endian UInt64 keys in ascending order stores them all, readable in order.
    @Test func appendInOrder() throws {
        try withTemporaryDirectory { directory in
            let env = try openEnvironment(directory)
            let events = try env.openDatabase(name: "events")
            try env.write { txn in
                for sequence in UInt64(1)...1_000 {
                    try txn.put(events, key: LMDBUInt64Key(sequence), value: bytes("event \(sequence)"), flags: .append)
                }
            }
            // A later transaction may go on appending after the last key.
            try env.write { txn in
                try txn.put(events, key: LMDBUInt64Key(1_001), value: bytes("event 1001"), flags: .append)
            }
            let sequences = try env.read { txn in
                var sequences: [UInt64] = []
                try txn.forEach(events) { key, value in
                    let sequence = LMDBUInt64Key(bytes: key)!.value
                    #expect(string(value) == "event \(sequence)")
                    sequences.append(sequence)
                    return .continue
                }
                return sequences
            }
            #expect(sequences == Array(1...1_001))
        }
    }

    /// An out-of-order MDB_APPEND throws keyExist with a sentence saying keys must ascend, and stores nothing.
    @Test func appendOutOfOrderIsAnError() throws {
        try withTemporaryDirectory { directory in
            let env = try openEnvironment(directory)
            let events = try env.openDatabase(name: "events")
            try env.write { txn in try txn.put(events, key: LMDBUInt64Key(10), value: bytes("ten"), flags: .append) }
            let error = try #require(throws: LMDBError.self) {
                try env.write { txn in
                    try txn.put(events, key: LMDBUInt64Key(5), value: bytes("five"), flags: .append)
                }
            }
            #expect(error.code == .keyExist)
            #expect(error.operation == "mdb_put(events, MDB_APPEND)")
            #expect(error.description.contains("ascending order"))
            expectLMDBError(.keyExist) {
                _ = try env.write { txn in
                    try txn.put(events, key: LMDBUInt64Key(10), value: bytes("ten again"), flags: .append)
                }
            }
            #expect(try env.read { txn in try txn.stat(events).entries } == 1)
        }
    }

    /// NOOVERWRITE on a present key returns .keyExists and leaves the stored value as it was.
    @Test func noOverwriteReportsExistingKey() throws {
        try withTemporaryDirectory { directory in
            let env = try openEnvironment(directory)
            let dedup = try env.openDatabase(name: "dedup")
            let (first, second) = try env.write { txn in
                (
                    try txn.put(dedup, key: bytes("callback-1"), value: LMDBUInt64Key(7), flags: .noOverwrite),
                    try txn.put(dedup, key: bytes("callback-1"), value: LMDBUInt64Key(8), flags: .noOverwrite)
                )
            }
            #expect(first == .stored)
            #expect(second == .keyExists)
            let stored = try env.read { txn in
                try txn.get(dedup, key: bytes("callback-1")).flatMap { LMDBUInt64Key(bytes: $0)?.value }
            }
            #expect(stored == 7)
        }
    }

    /// insertOrGet stores a new key and answers nil; on a present key it answers the stored value and changes
    /// nothing, in the same transaction and in a later one.
    @Test func insertOrGetReturnsTheStoredValue() throws {
        try withTemporaryDirectory { directory in
            let env = try openEnvironment(directory)
            let ids = try env.openDatabase(name: "order-ids")
            let (first, second, third) = try env.write { txn in
                (
                    try txn.insertOrGet(ids, key: bytes("A1"), value: LMDBUInt64Key(7)).map { Array($0) },
                    try txn.insertOrGet(ids, key: bytes("A1"), value: LMDBUInt64Key(8)).flatMap {
                        LMDBUInt64Key(bytes: $0)?.value
                    },
                    try txn.insertOrGet(ids, key: bytes("A2"), value: LMDBUInt64Key(9)).map { Array($0) }
                )
            }
            #expect(first == nil && third == nil)
            #expect(second == 7)
            let later = try env.write { txn in
                try txn.insertOrGet(ids, key: bytes("A2"), value: LMDBUInt64Key(10)).flatMap {
                    LMDBUInt64Key(bytes: $0)?.value
                }
            }
            #expect(later == 9)
            let stored = try env.read { txn in
                (
                    try txn.get(ids, key: bytes("A1")).flatMap { LMDBUInt64Key(bytes: $0)?.value },
                    try txn.get(ids, key: bytes("A2")).flatMap { LMDBUInt64Key(bytes: $0)?.value },
                    try txn.stat(ids).entries
                )
            }
            #expect(stored.0 == 7 && stored.1 == 9 && stored.2 == 2)
        }
    }

    /// A DUPSORT index keeps several values under one key and a cursor walks them in value order.
    @Test func dupSortIndexIteratesDuplicatesInOrder() throws {
        try withTemporaryDirectory { directory in
            let env = try openEnvironment(directory)
            let byOrder = try env.openDatabase(name: "by-order", flags: [.create, .dupSort])
            try env.write { txn in
                for sequence: UInt64 in [30, 10, 20] {
                    try txn.put(byOrder, key: bytes("order-A"), value: LMDBUInt64Key(sequence))
                }
                try txn.put(byOrder, key: bytes("order-B"), value: LMDBUInt64Key(15))
                // The same pair again is refused as .keyExists with NODUPDATA.
                let again = try txn.put(byOrder, key: bytes("order-A"), value: LMDBUInt64Key(20), flags: .noDupData)
                #expect(again == .keyExists)
            }
            try env.read { txn in
                try txn.withCursor(byOrder) { cursor in
                    var sequences: [UInt64] = []
                    try cursor.forEachDuplicate(of: bytes("order-A")) { value in
                        sequences.append(LMDBUInt64Key(bytes: value)!.value)
                        return .continue
                    }
                    #expect(sequences == [10, 20, 30])

                    // MDB_SET_KEY then MDB_NEXT_DUP by hand, with the duplicate count.
                    let first = try #require(try cursor.seekExactly(bytes("order-A")))
                    #expect(LMDBUInt64Key(bytes: first.value)?.value == 10)
                    #expect(try cursor.duplicateCount() == 3)
                    #expect(try cursor.nextDuplicate().map { LMDBUInt64Key(bytes: $0.value)!.value } == 20)
                    #expect(try cursor.nextDuplicate().map { LMDBUInt64Key(bytes: $0.value)!.value } == 30)
                    #expect(try cursor.nextDuplicate() == nil)

                    // MDB_NEXT_NODUP goes to the next key; MDB_GET_BOTH_RANGE finds the first value at or after.
                    _ = try cursor.seekExactly(bytes("order-A"))
                    #expect(try cursor.nextKey().map { string($0.key) } == "order-B")
                    let atOrAfter = try #require(try cursor.seek(bytes("order-A"), valueAtOrAfter: LMDBUInt64Key(11)))
                    #expect(string(atOrAfter.key) == "order-A")
                    #expect(LMDBUInt64Key(bytes: atOrAfter.value)?.value == 20)
                    #expect(try cursor.seekExactly(bytes("order-C")) == nil)
                }
                #expect(try txn.stat(byOrder).entries == 4)
            }
            // Deleting one pair leaves the key's other values.
            try env.write { txn throws in
                #expect(try txn.delete(byOrder, key: bytes("order-A"), value: LMDBUInt64Key(20)))
            }
            let remaining = try env.read { txn in
                try txn.withCursor(byOrder) { cursor in
                    var values: [UInt64] = []
                    try cursor.forEachDuplicate(of: bytes("order-A")) { value in
                        values.append(LMDBUInt64Key(bytes: value)!.value)
                        return .continue
                    }
                    return values
                }
            }
            #expect(remaining == [10, 30])
        }
    }

    /// Cursor moves (first, last, seek, next, prev) land on the expected entries and a scan from a key can stop.
    @Test func cursorMovesAndScanFromKey() throws {
        try withTemporaryDirectory { directory in
            let env = try openEnvironment(directory)
            let db = try env.openDatabase(name: "numbers")
            try env.write { txn in
                for number in stride(from: UInt64(10), through: 100, by: 10) {
                    try txn.put(db, key: LMDBUInt64Key(number), value: bytes("\(number)"))
                }
            }
            try env.read { txn in
                try txn.withCursor(db) { cursor throws in
                    func number(_ entry: LMDBCursor.Entry?) -> UInt64? {
                        entry.flatMap { LMDBUInt64Key(bytes: $0.key)?.value }
                    }
                    #expect(number(try cursor.first()) == 10)
                    #expect(number(try cursor.next()) == 20)
                    #expect(number(try cursor.prev()) == 10)
                    #expect(try cursor.prev() == nil)
                    #expect(number(try cursor.last()) == 100)
                    #expect(try cursor.next() == nil)
                    #expect(number(try cursor.seek(LMDBUInt64Key(35))) == 40)
                    #expect(string(try cursor.current()?.value) == "40")
                    #expect(try cursor.seek(LMDBUInt64Key(101)) == nil)
                    #expect(try cursor.seekExactly(LMDBUInt64Key(35)) == nil)
                    #expect(number(try cursor.seekExactly(LMDBUInt64Key(50))) == 50)
                }
                var seen: [UInt64] = []
                try txn.forEach(db, from: LMDBUInt64Key(45)) { key, _ in
                    seen.append(LMDBUInt64Key(bytes: key)!.value)
                    return seen.count == 3 ? .stop : .continue
                }
                #expect(seen == [50, 60, 70])
            }
        }
    }

    /// A reserved put lets the caller write the value straight into LMDB's page, and drop empties a database.
    @Test func reservedPutAndDrop() throws {
        try withTemporaryDirectory { directory in
            let env = try openEnvironment(directory)
            let projection = try env.openDatabase(name: "orders")
            try env.write { txn in
                for index in 0..<50 {
                    try txn.putReserved(projection, key: bytes("order-\(index)"), count: 16) { buffer in
                        for offset in buffer.indices { buffer[offset] = UInt8(index) }
                    }
                }
            }
            let value = try env.read { txn in try txn.getBytes(projection, key: bytes("order-7")) }
            #expect(value == [UInt8](repeating: 7, count: 16))
            #expect(try env.read { txn in try txn.stat(projection).entries } == 50)

            try env.write { txn in try txn.drop(projection) }
            #expect(try env.read { txn in try txn.stat(projection).entries } == 0)
            // The handle stays valid after emptying, so the projection can be rebuilt at once.
            try env.write { txn in try txn.put(projection, key: bytes("order-1"), value: bytes("paid")) }
            #expect(try env.read { txn in try txn.stat(projection).entries } == 1)

            let dupSort = try env.openDatabase(name: "index", flags: [.create, .dupSort])
            expectLMDBError(.invalidArgument) {
                _ = try env.write { txn in try txn.putReserved(dupSort, key: bytes("k"), count: 8) { _ in } }
            }
        }
    }

    /// An LMDB failure carries its result code, the operation and database, and mdb_strerror's message.
    @Test func errorsCarryOperationAndCode() throws {
        try withTemporaryDirectory { directory in
            let env = try openEnvironment(directory)
            let events = try env.openDatabase(name: "events")
            // lmdb.h: keys are at most mdb_env_get_maxkeysize() bytes (511 by default), else MDB_BAD_VALSIZE.
            let tooLong = [UInt8](repeating: 1, count: 600)
            let error = try #require(throws: LMDBError.self) {
                try env.write { txn in try txn.put(events, key: tooLong, value: bytes("x")) }
            }
            #expect(error.code == .badValSize)
            #expect(error.operation == "mdb_put(events)")
            #expect(error.message.contains("MDB_BAD_VALSIZE"))
            #expect(error.description.hasPrefix("The LMDB operation mdb_put(events) failed with MDB_BAD_VALSIZE"))
            #expect(error.description.hasSuffix("."))
            switch error.code {
            case .badValSize: break
            default: Issue.record("expected the code to pattern-match .badValSize, got \(error.code)")
            }
            do {
                try env.write { txn in try txn.put(events, key: tooLong, value: bytes("x")) }
                Issue.record("The put of a 600-byte key should have thrown.")
            } catch LMDBResultCode.badValSize {
                // A result code matches an LMDBError carrying it directly in a catch clause.
            }
            #expect(LMDBResultCode.diskFull.rawValue == ENOSPC)
            #expect(LMDBResultCode.diskFull.name == "ENOSPC")

            env.close()
            let closed = try #require(throws: LMDBError.self) { try env.read { _ in () } }
            #expect(closed.code == .badTxn)
            #expect(closed.description.contains("has been closed"))
            #expect(closed.isEnvironmentClosed)
            // The same code from LMDB itself is not a closed environment, whatever its detail says.
            let lookalike = LMDBError(
                code: .badTxn,
                operation: "mdb_txn_begin",
                detail: "The LMDB environment has been closed, so no transaction may begin."
            )
            #expect(!lookalike.isEnvironmentClosed)
        }
    }

    /// Options whose bounds contradict each other are refused with a sentence naming them.
    @Test func invalidOptionsAreRefused() throws {
        try withTemporaryDirectory { directory in
            let error = try #require(throws: LMDBError.self) {
                try openEnvironment(directory, options: LMDBEnvironment.Options(mapSize: 1 << 20, mapSizeMax: 1 << 16))
            }
            #expect(error.code == .invalidArgument)
            #expect(error.description.contains("mapSizeMax"))
        }
    }

    /// A read-only environment reads the data a writer left and refuses to write.
    @Test func readOnlyEnvironmentReadsAndRefusesWrites() throws {
        try withTemporaryDirectory { directory in
            do {
                let env = try openEnvironment(directory)
                let db = try env.openDatabase(name: "things")
                try env.write { txn in try txn.put(db, key: bytes("k"), value: bytes("v")) }
            }
            var options = LMDBEnvironment.Options(mapSize: 8 << 20, mapSizeMax: 64 << 20)
            options.readOnly = true
            let env = try openEnvironment(directory, options: options)
            let db = try env.openDatabase(name: "things")
            #expect(try env.read { txn in try txn.getBytes(db, key: bytes("k")) } == bytes("v"))
            expectLMDBError(.accessDenied) {
                _ = try env.write { txn in try txn.put(db, key: bytes("k"), value: bytes("w")) }
            }
        }
    }
}
