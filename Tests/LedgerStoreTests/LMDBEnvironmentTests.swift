import Foundation
import LedgerStore
import LedgerTesting
import Synchronization
import Testing

@Suite("LMDB environment: locking, map growth, stale readers, backup")
struct LMDBEnvironmentTests {
    /// A second open of the same directory in the same process is refused as in use, and works after the first
    /// closes.
    @Test func secondOpenInSameProcessIsRefused() throws {
        try withTemporaryDirectory { directory in
            let first = try openEnvironment(directory)
            let error = try #require(throws: LMDBError.self) { try openEnvironment(directory) }
            #expect(error.isDirectoryInUse)
            #expect(error.code == .busy)
            #expect(error.description.contains("is already open in this process (pid \(getpid()))"))

            // Another spelling of the same directory, through a symbolic link, is recognized as the same.
            try FileManager.default.createSymbolicLink(atPath: directory + "/link", withDestinationPath: directory)
            let viaLink = try #require(throws: LMDBError.self) { try openEnvironment(directory + "/link") }
            #expect(viaLink.isDirectoryInUse)

            // A read-only open is refused too: LMDB must never be opened twice in one process.
            var readOnly = first.options
            readOnly.readOnly = true
            #expect(throws: LMDBError.self) { try openEnvironment(directory, options: readOnly) }

            first.close()
            let second = try openEnvironment(directory)
            #expect(try second.info().mapSize >= 8 << 20)
        }
    }

    /// The lock file holds the pid of the process that has the directory open.
    @Test func lockFileNamesTheHolder() throws {
        try withTemporaryDirectory { directory in
            let env = try openEnvironment(directory)
            let contents = try String(contentsOfFile: env.path + "/ledgerd.lock", encoding: .utf8)
            #expect(contents == "\(getpid())\n")
        }
    }

    /// While another process holds the directory's lock, opening it throws an "in use by another process (pid N)"
    /// error; once that process exits, the directory opens.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/flock")))
    func directoryHeldByAnotherProcessIsRefused() throws {
        try withTemporaryDirectory { directory in
            let dataDirectory = directory + "/env"
            try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
            let lockPath = dataDirectory + "/ledgerd.lock"
            // flock(1) takes the lock, the shell writes flock's pid into the file the way ledgerd does, and `cat`
            // keeps the lock held until the test closes its stdin.
            let holder = Process()
            holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
            holder.arguments = ["-x", "-n", lockPath, "/bin/sh", "-c", "echo $PPID > \"$0\"; exec cat", lockPath]
            let stdin = Pipe()
            holder.standardInput = stdin
            try holder.run()
            defer {
                try? stdin.fileHandleForWriting.close()
                holder.waitUntilExit()
            }
            let holderPid = holder.processIdentifier
            let deadline = Date().addingTimeInterval(10)
            while (try? String(contentsOfFile: lockPath, encoding: .utf8)) != "\(holderPid)\n" {
                try #require(Date() < deadline, "flock(1) did not take the lock within 10 s")
                usleep(10_000)
            }

            let error = try #require(throws: LMDBError.self) { try openEnvironment(directory) }
            #expect(error.isDirectoryInUse)
            #expect(error.code == .wouldBlock)
            #expect(error.description.contains("is in use by another process (pid \(holderPid))"))
            // The refused open must not have overwritten the holder's pid.
            #expect(try String(contentsOfFile: lockPath, encoding: .utf8) == "\(holderPid)\n")

            try stdin.fileHandleForWriting.close()
            holder.waitUntilExit()
            let env = try openEnvironment(directory)
            #expect(try String(contentsOfFile: env.path + "/ledgerd.lock", encoding: .utf8) == "\(getpid())\n")
        }
    }

    /// From a 64 KiB map, writing a few MB in writeGrowing succeeds and the map grows (by doubling).
    @Test func writeGrowingGrowsTheMap() throws {
        try withTemporaryDirectory { directory in
            let options = LMDBEnvironment.Options(mapSize: 64 << 10, mapSizeMax: 64 << 20)
            let env = try openEnvironment(directory, options: options)
            let events = try env.openDatabase(name: "events")
            #expect(try env.info().mapSize == 64 << 10)
            let value = [UInt8](repeating: 0xAB, count: 1_000)
            var attempts = 0
            try env.writeGrowing { txn in
                attempts += 1
                for sequence in UInt64(1)...4_000 {
                    try txn.put(events, key: LMDBUInt64Key(sequence), value: value, flags: .append)
                }
            }
            #expect(attempts > 1)
            let info = try env.info()
            #expect(info.mapSize > 4_000_000)
            #expect(info.mapSize <= 64 << 20)
            #expect(try env.usedBytes > 4_000_000)
            #expect(try env.usedBytes <= info.mapSize)
            #expect(try env.read { txn in try txn.stat(events).entries } == 4_000)
        }
    }

    /// With a small mapSizeMax, writeGrowing throws the clear "map is full" error and the environment stays
    /// usable with its earlier data intact.
    @Test func mapFullAtCeilingIsClearAndRecoverable() throws {
        try withTemporaryDirectory { directory in
            let options = LMDBEnvironment.Options(mapSize: 64 << 10, mapSizeMax: 256 << 10)
            let env = try openEnvironment(directory, options: options)
            let events = try env.openDatabase(name: "events")
            try env.write { txn in try txn.put(events, key: LMDBUInt64Key(0), value: bytes("before")) }
            let value = [UInt8](repeating: 0xCD, count: 1_000)
            let error = try #require(throws: LMDBError.self) {
                try env.writeGrowing { txn in
                    for sequence in UInt64(1)...2_000 {
                        try txn.put(events, key: LMDBUInt64Key(sequence), value: value, flags: .append)
                    }
                }
            }
            #expect(error.code == .mapFull)
            #expect(error.description.contains("map is full at \(256 << 10) bytes"))
            #expect(error.description.contains("may not grow past mapSizeMax"))
            #expect(try env.info().mapSize == 256 << 10)

            // Nothing of the failed transaction was stored, and small writes still work.
            #expect(try env.read { txn in try txn.stat(events).entries } == 1)
            try env.write { txn in try txn.put(events, key: LMDBUInt64Key(1), value: bytes("after")) }
            #expect(try env.read { txn in try txn.getBytes(events, key: LMDBUInt64Key(1)) } == bytes("after"))
            #expect(try env.read { txn in try txn.getBytes(events, key: LMDBUInt64Key(0)) } == bytes("before"))
        }
    }

    /// A MAP_FULL that the closure swallows still aborts the transaction, and writeGrowing grows and retries.
    @Test func swallowedMapFullStillAborts() throws {
        try withTemporaryDirectory { directory in
            let options = LMDBEnvironment.Options(mapSize: 64 << 10, mapSizeMax: 16 << 20)
            let env = try openEnvironment(directory, options: options)
            let events = try env.openDatabase(name: "events")
            let value = [UInt8](repeating: 1, count: 1_000)
            let body: (borrowing LMDBWriteTransaction) throws -> Int = { txn in
                var stored = 0
                for sequence in UInt64(1)...500 {
                    do {
                        try txn.put(events, key: LMDBUInt64Key(sequence), value: value)
                        stored += 1
                    } catch {
                        break
                    }
                }
                return stored
            }
            expectLMDBError(.mapFull) { _ = try env.write(body) }
            #expect(try env.read { txn in try txn.stat(events).entries } == 0)
            #expect(try env.writeGrowing(body) == 500)
            #expect(try env.read { txn in try txn.stat(events).entries } == 500)
        }
    }

    /// growMap refuses, after waiting mapGrowthWaitMax, while a transaction of this process stays open.
    @Test func growMapWaitsForOpenTransactions() throws {
        try withTemporaryDirectory { directory in
            var options = LMDBEnvironment.Options(mapSize: 64 << 10, mapSizeMax: 1 << 20)
            options.mapGrowthWaitMax = .milliseconds(100)
            let env = try openEnvironment(directory, options: options)
            let error = try #require(throws: LMDBError.self) { try env.read { _ in try env.growMap() } }
            #expect(error.code == .busy)
            #expect(error.description.contains("stayed open"))
            #expect(try env.info().mapSize == 64 << 10)
            #expect(try env.growMap() == 128 << 10)
        }
    }

    /// clearStaleReaders finds nothing on a healthy environment, and clears the slot of a process killed with
    /// SIGKILL inside a read transaction.
    @Test(.enabled(if: executableOnPath("python3") != nil))
    func staleReaderOfKilledProcessIsCleared() throws {
        try withTemporaryDirectory { directory in
            let env = try openEnvironment(directory)
            let db = try env.openDatabase(name: "things")
            try env.write { txn in try txn.put(db, key: bytes("k"), value: bytes("v")) }
            #expect(env.staleReadersClearedAtOpen == 0)
            #expect(try env.clearStaleReaders() == 0)

            // The ledger's exclusive lock keeps a second LMDBEnvironment out, but LMDB itself admits readers from
            // other processes. Python's ctypes calls liblmdb directly: open read-only, begin a read transaction,
            // and die by SIGKILL with the reader slot still taken.
            let script = """
                import ctypes, os, signal, sys
                lib = ctypes.CDLL("liblmdb.so.0")
                env = ctypes.c_void_p()
                txn = ctypes.c_void_p()
                assert lib.mdb_env_create(ctypes.byref(env)) == 0
                rc = lib.mdb_env_open(env, sys.argv[1].encode(), 0x20000, 0o600)
                assert rc == 0, rc
                rc = lib.mdb_txn_begin(env, None, 0x20000, ctypes.byref(txn))
                assert rc == 0, rc
                print("reading", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
                """
            let child = Process()
            child.executableURL = URL(fileURLWithPath: executableOnPath("python3")!)
            child.arguments = ["-c", script, env.path]
            let output = Pipe()
            child.standardOutput = output
            try child.run()
            child.waitUntilExit()
            let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            try #require(printed == "reading\n", "the helper did not reach its read transaction")
            #expect(child.terminationReason == .uncaughtSignal)
            #expect(child.terminationStatus == SIGKILL)

            #expect(try env.info().numReaders >= 1)
            #expect(try env.clearStaleReaders() == 1)
            #expect(try env.clearStaleReaders() == 0)
        }
    }

    /// copy(to:compact:) taken while another thread keeps writing yields an environment that opens and holds
    /// a consistent prefix of the data.
    @Test func hotCompactCopyWhileWriting() throws {
        try withTemporaryDirectory { directory in
            let env = try openEnvironment(directory)
            let events = try env.openDatabase(name: "events")
            let value = [UInt8](repeating: 0x5A, count: 200)
            try env.write { txn in
                for sequence in UInt64(1)...5_000 {
                    try txn.put(events, key: LMDBUInt64Key(sequence), value: value, flags: .append)
                }
            }
            let progress = WriterProgress(written: 5_000)
            let writerDone = DispatchSemaphore(value: 0)
            let writer = Thread {
                defer { writerDone.signal() }
                var next = UInt64(5_001)
                while !progress.stop.load(ordering: .acquiring) {
                    do {
                        try env.write { txn in
                            for _ in 0..<100 {
                                try txn.put(events, key: LMDBUInt64Key(next), value: value, flags: .append)
                                next += 1
                            }
                        }
                        progress.written.store(next - 1, ordering: .releasing)
                    } catch {
                        progress.failure.withLock { $0 = "\(error)" }
                        return
                    }
                }
            }
            writer.start()
            // Let the writer get going so that the copy really overlaps writes.
            while progress.written.load(ordering: .acquiring) < 6_000 && progress.failure.withLock({ $0 }) == nil {
                usleep(1_000)
            }
            let backup = directory + "/backup"
            try env.copy(to: backup, compact: true)
            let writtenAtCopyEnd = progress.written.load(ordering: .acquiring)
            progress.stop.store(true, ordering: .releasing)
            writerDone.wait()
            #expect(progress.failure.withLock { $0 } == nil)

            // A second copy into the same directory is refused: it must not overwrite a backup.
            #expect(throws: LMDBError.self) { try env.copy(to: backup, compact: true) }

            let copy = try LMDBEnvironment(path: backup, options: env.options)
            let copiedEvents = try copy.openDatabase(name: "events", flags: [])
            let sequences = try copy.read { txn in
                var count: UInt64 = 0
                try txn.forEach(copiedEvents) { key, stored in
                    count += 1
                    #expect(LMDBUInt64Key(bytes: key)?.value == count)
                    #expect(stored.elementsEqual(value))
                    return .continue
                }
                return count
            }
            #expect(sequences >= 6_000)
            #expect(sequences <= writtenAtCopyEnd + 100)
            #expect(sequences % 100 == 0)
        }
    }

    /// A hot non-compacting copy opens and holds the same data as the source.
    @Test func plainCopyHoldsTheSameData() throws {
        try withTemporaryDirectory { directory in
            let env = try openEnvironment(directory)
            let db = try env.openDatabase(name: "things")
            try env.write { txn in
                for index in 0..<100 { try txn.put(db, key: bytes("key-\(index)"), value: bytes("value-\(index)")) }
            }
            try env.copy(to: directory + "/plain", compact: false)
            try env.sync(force: true)
            let copy = try LMDBEnvironment(path: directory + "/plain", options: env.options)
            let copiedDb = try copy.openDatabase(name: "things", flags: [])
            try copy.read { txn throws in
                #expect(try txn.stat(copiedDb).entries == 100)
                #expect(try txn.getBytes(copiedDb, key: bytes("key-42")) == bytes("value-42"))
            }
            #expect(try copy.stat().pageSize == (try env.stat().pageSize))
            copy.close()

            // A fresh copy has no ledgerd.lock; a read-only open creates one and reads the data.
            try env.copy(to: directory + "/second", compact: true)
            var readOnly = env.options
            readOnly.readOnly = true
            let readOnlyCopy = try LMDBEnvironment(path: directory + "/second", options: readOnly)
            let readOnlyDb = try readOnlyCopy.openDatabase(name: "things")
            #expect(
                try readOnlyCopy.read { txn in try txn.getBytes(readOnlyDb, key: bytes("key-7")) } == bytes("value-7")
            )
        }
    }
}

/// What the background writer of the hot-copy test shares with the test.
private final class WriterProgress: Sendable {
    let stop = Atomic<Bool>(false)
    let written: Atomic<UInt64>
    let failure = Mutex<String?>(nil)

    init(written: UInt64) {
        self.written = Atomic(written)
    }
}
