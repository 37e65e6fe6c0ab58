import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerDaemon
import LedgerStore
import LedgerTesting
import Testing

/// The Ledger actor over the in-memory store: order creation rules, callbacks, history.
struct LedgerTests {
    struct FixedIds: OrderIdSource {
        func randomCharacters(_ count: Int) -> String { String(repeating: "X", count: count) }
    }

    func makeLedger(
        clock: ManualLedgerClock = ManualLedgerClock(start: Instant(millisecondsSinceEpoch: 1_795_741_323_000))
    ) -> Ledger {
        let settings = GatewaySettings.testing(baseURL: "http://127.0.0.1:9090")
        return Ledger(
            store: InMemoryEventStore(),
            settings: settings,
            key: TestKeys.key,
            publicURL: "http://127.0.0.1:8080",
            clock: clock,
            orderIds: FixedIds(),
            logger: testLogger
        )
    }

    /// An order is signed, recorded, and returned with the gateway URL, the signed fields and the pay page.
    @Test func createsOrder() async throws {
        let ledger = self.makeLedger()
        let created = try await ledger.createOrder(
            CreateOrderRequest(orderId: "A1", amount: "12.50", bankCode: "940", productName: "手机壳")
        )
        #expect(created.created)
        #expect(created.gatewayURL == "http://127.0.0.1:9090/Pay_Index.html")
        #expect(created.payURL == "http://127.0.0.1:8080/pay/A1")
        #expect(Signer.verify(created.fields, kind: .pay, key: TestKeys.key) == .valid)
        #expect(created.request.applyDate == "2026-11-27 09:02:03")
        #expect(try await ledger.order("A1")?.status == .created)
    }

    /// Without an order id, a 20-character id is generated from the gateway time and the injected randomness.
    @Test func generatesOrderId() async throws {
        let ledger = self.makeLedger()
        let created = try await ledger.createOrder(
            CreateOrderRequest(amount: "1.00", bankCode: "940", productName: "p")
        )
        #expect(created.orderId == "L20261127090203XXXXX")
        #expect(created.orderId.count == 20)
    }

    /// The same order id with the same fields returns the first result; with different fields it is a conflict.
    @Test func idempotentCreate() async throws {
        let clock = ManualLedgerClock(start: Instant(millisecondsSinceEpoch: 1_795_741_323_000))
        let ledger = self.makeLedger(clock: clock)
        let request = CreateOrderRequest.testing(orderId: "A1")
        let first = try await ledger.createOrder(request)
        clock.advance(by: 5000)
        let again = try await ledger.createOrder(request)
        #expect(!again.created)
        #expect(again.fields == first.fields)
        var other = request
        other.amount = "12.51"
        await #expect {
            _ = try await ledger.createOrder(other)
        } throws: { error in
            (error as? LedgerError)?.code == .orderConflict
        }
        #expect(try await ledger.store.head().sequence == 1)
        // A canonically equivalent but different spelling (é as e + U+0301) is other bytes, so other signed fields:
        // a conflict, not the same order.
        let composed = CreateOrderRequest(orderId: "A2", amount: "12.50", bankCode: "940", productName: "caf\u{E9}")
        _ = try await ledger.createOrder(composed)
        var decomposed = composed
        decomposed.productName = "cafe\u{301}"
        #expect(decomposed.productName == composed.productName, "String's == takes them for one")
        await #expect {
            _ = try await ledger.createOrder(decomposed)
        } throws: { error in
            (error as? LedgerError)?.code == .orderConflict
        }
    }

    /// Concurrent creates of one order id store one order and all get the same fields.
    @Test func concurrentCreates() async throws {
        let ledger = self.makeLedger()
        let request = CreateOrderRequest.testing(orderId: "A1")
        let results = try await withThrowingTaskGroup(of: CreatedOrder.self) { group in
            for _ in 0..<20 { group.addTask { try await ledger.createOrder(request) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.filter(\.created).count == 1)
        #expect(Set(results.map(\.fields)).count == 1)
        #expect(try await ledger.store.head().sequence == 1)
    }

    /// An invalid order is refused with the core's reason and nothing is stored.
    @Test func invalidOrder() async throws {
        let ledger = self.makeLedger()
        await #expect {
            _ = try await ledger.createOrder(
                CreateOrderRequest(orderId: "A1", amount: "1e3", bankCode: "940", productName: "p")
            )
        } throws: { error in
            (error as? LedgerError)?.code == .invalidOrder && "\(error)".contains("exponent")
        }
        #expect(try await ledger.store.head().sequence == 0)
    }

    /// Notifications are classified and acknowledged by the rules; bodies that are not notifications are not stored,
    /// and notifications the gateway did not vouch for go to the quarantine, never to the log.
    @Test func notificationReceipts() async throws {
        let ledger = self.makeLedger()
        _ = try await ledger.createOrder(.testing(orderId: "A1"))
        let valid = Array(Notifications.body(Notifications.fields(orderId: "A1")).utf8)
        let first = try await ledger.recordNotification(body: valid, remoteAddress: "127.0.0.1:1")
        #expect(first == .recorded(.accepted, sequence: 2))
        #expect(first.acknowledges)
        let duplicate = try await ledger.recordNotification(body: valid, remoteAddress: "127.0.0.1:1")
        #expect(duplicate == .recorded(.duplicate, sequence: 3))
        #expect(duplicate.acknowledges)
        var forged = Notifications.fields(orderId: "A1", transactionId: "T2")
        forged[forged.count - 1].value = String(repeating: "A", count: 32)
        let bad = try await ledger.recordNotification(body: Array(Notifications.body(forged).utf8), remoteAddress: "x")
        #expect(bad == .quarantined(.badSignature, id: 1))
        #expect(!bad.acknowledges)
        let foreign = Notifications.fields(orderId: "A1", transactionId: "T3", memberId: "99999")
        let other = try await ledger.recordNotification(
            body: Array(Notifications.body(foreign).utf8),
            remoteAddress: "x"
        )
        #expect(other == .quarantined(.foreignMember, id: 2))
        #expect(!other.acknowledges)
        // A validly signed notification for an order the ledger does not hold is a fact the gateway vouched for.
        let unknown = try await ledger.recordNotification(
            body: Array(Notifications.body(Notifications.fields(orderId: "NOPE")).utf8),
            remoteAddress: "x"
        )
        #expect(unknown == .recorded(.unknownOrder, sequence: 4))
        #expect(!unknown.acknowledges)
        let garbage = try await ledger.recordNotification(body: Array("hello=world".utf8), remoteAddress: "x")
        #expect(garbage == .rejected(.missingField("memberid")))
        #expect(try await ledger.store.head().sequence == 4)
        let history = try await ledger.history("A1")
        #expect(history.map(\.effect) == [.created, .callback(.accepted), .callback(.duplicate)])
        #expect(history.last?.state.status == .paid)
        // Counted exactly, per order, beside the quarantine.
        let counts = try await ledger.store.quarantineCounts(orderId: "A1")["A1"]
        #expect(counts?.badSignature == 1)
        #expect(counts?.foreignMember == 1)
        let page = try await ledger.store.quarantined(QuarantineQuery())
        #expect(page.entries.map(\.reason) == [.foreignMember, .badSignature])
        #expect(page.entries.allSatisfy { $0.orderId == "A1" && $0.remoteAddress == "x" })
    }
}

/// Configuration: flags over environment over file over defaults, and errors that name the key.
struct ConfigurationTests {
    /// Flags override the environment, which overrides the file.
    @Test func precedence() async throws {
        let directory = TemporaryDirectory()
        let keyFile = directory.path + "/merchant.key"
        try TemporaryDirectory.writeSecret("file-key-123\n", to: keyFile)
        let file = directory.path + "/ledgerd.json"
        try """
        {"dataDir": "/from/file", "http": "127.0.0.1:7000", "gateway": {"memberId": "20002", "keyFile": "\(keyFile)", "url": "http://gw.example:1"}, "poll": {"deadlineMs": 60000}}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let configuration = try await DaemonConfiguration.load(
            flags: ["dataDir": "/from/flag"],
            environment: [
                "LEDGERD_DATA_DIR": "/from/env", "LEDGERD_GATEWAY_MEMBER_ID": "30003", "LEDGERD_HTTP": "127.0.0.1:7001",
            ],
            file: file
        )
        #expect(configuration.dataDirectory == "/from/flag")
        #expect(configuration.gateway.memberId == "30003")
        #expect(configuration.httpPort == 7001)
        #expect(configuration.gateway.baseURL == "http://gw.example:1")
        #expect(configuration.poll.deadline == .seconds(60))
        #expect(configuration.key == (try MerchantKey("file-key-123")))
    }

    /// The control socket's bounds come from the same sources, and a bad one names its key.
    @Test func controlSettings() async throws {
        let directory = TemporaryDirectory()
        let file = directory.path + "/ledgerd.json"
        try #"{"control": {"connectionsMax": 7, "lineBytesMax": 4096}}"#.write(
            toFile: file,
            atomically: true,
            encoding: .utf8
        )
        let configuration = try await DaemonConfiguration.load(
            flags: [:],
            environment: GatewaySettings.testingEnvironment(["LEDGERD_CONTROL_LINE_BYTES_MAX": "8192"]),
            file: file
        )
        #expect(configuration.control.connectionsMax == 7)
        #expect(configuration.control.lineBytesMax == 8192)
        await #expect {
            _ = try await DaemonConfiguration.load(
                flags: [:],
                environment: GatewaySettings.testingEnvironment(["LEDGERD_CONTROL_CONNECTIONS_MAX": "none"]),
                file: nil
            )
        } throws: { error in
            (error as? ConfigurationError)?.key == "control.connectionsMax"
        }
    }

    /// The initial map size has a key; it may not exceed the most the map may grow to.
    @Test func storeMapSize() async throws {
        let configuration = try await DaemonConfiguration.load(
            flags: [:],
            environment: GatewaySettings.testingEnvironment(["LEDGERD_STORE_MAP_SIZE": "1048576"]),
            file: nil
        )
        #expect(configuration.store.mapSize == 1 << 20)
        await #expect {
            _ = try await DaemonConfiguration.load(
                flags: [:],
                environment: GatewaySettings.testingEnvironment([
                    "LEDGERD_STORE_MAP_SIZE": "4194304", "LEDGERD_STORE_MAP_SIZE_MAX": "2097152",
                ]),
                file: nil
            )
        } throws: { error in
            (error as? ConfigurationError)?.key == "store.mapSize"
        }
    }

    /// The store's batch-bytes and rebuild-chunk bounds and the order field limits have keys, read from every
    /// source, with their ranges enforced.
    @Test func storeAndOrderLimitKeys() async throws {
        let directory = TemporaryDirectory()
        let file = directory.path + "/ledgerd.json"
        try #"{"store": {"batchBytesMax": 1048576}, "limits": {"order": {"textBytesMax": 600, "urlBytesMax": 1024}}}"#
            .write(toFile: file, atomically: true, encoding: .utf8)
        let configuration = try await DaemonConfiguration.load(
            flags: [:],
            environment: GatewaySettings.testingEnvironment([
                "LEDGERD_STORE_REBUILD_CHUNK_EVENTS": "4096",
                "LEDGERD_LIMITS_ORDER_ATTACH_BYTES_MAX": "300",
            ]),
            file: file
        )
        #expect(configuration.store.batchBytesMax == 1 << 20)
        #expect(configuration.store.rebuildChunkEvents == 4096)
        #expect(configuration.gateway.limits.textBytesMax == 600)
        #expect(configuration.gateway.limits.attachBytesMax == 300)
        #expect(configuration.gateway.limits.urlBytesMax == 1024)
        let defaults = try await DaemonConfiguration.load(
            flags: [:],
            environment: GatewaySettings.testingEnvironment(),
            file: nil
        )
        #expect(defaults.store.batchBytesMax == LMDBEventStore.Options().batchBytesMax)
        #expect(defaults.store.rebuildChunkEvents == LMDBEventStore.Options().rebuildChunkEvents)
        #expect(defaults.gateway.limits == OrderLimits.default)
        for (variable, key) in [
            ("LEDGERD_STORE_BATCH_BYTES_MAX", "store.batchBytesMax"),
            ("LEDGERD_STORE_REBUILD_CHUNK_EVENTS", "store.rebuildChunkEvents"),
            ("LEDGERD_LIMITS_ORDER_TEXT_BYTES_MAX", "limits.order.textBytesMax"),
            ("LEDGERD_LIMITS_ORDER_URL_BYTES_MAX", "limits.order.urlBytesMax"),
        ] {
            await #expect {
                _ = try await DaemonConfiguration.load(
                    flags: [:],
                    environment: GatewaySettings.testingEnvironment([variable: "0"]),
                    file: nil
                )
            } throws: { error in
                (error as? ConfigurationError)?.key == key
            }
        }
    }

    /// A list in the JSON file (`"bankCodes": ["940", "950"]`) is read as the environment's comma-separated one, and a
    /// value of the wrong type is an error that names its key, not a silent default.
    @Test func jsonListsAndWrongTypes() async throws {
        let directory = TemporaryDirectory()
        let file = directory.path + "/ledgerd.json"
        try #"{"gateway": {"bankCodes": ["940", "950"]}, "control": {"allowedUids": [1001, 1002]}}"#
            .write(toFile: file, atomically: true, encoding: .utf8)
        let configuration = try await DaemonConfiguration.load(
            flags: [:],
            environment: GatewaySettings.testingEnvironment(),
            file: file
        )
        #expect(configuration.gateway.bankCodes == ["940", "950"])
        #expect(configuration.control.allowedUids == [1001, 1002])
        let wrong = directory.path + "/wrong.json"
        try #"{"poll": {"deadlineMs": 1.5}}"#.write(toFile: wrong, atomically: true, encoding: .utf8)
        await #expect {
            _ = try await DaemonConfiguration.load(
                flags: [:],
                environment: GatewaySettings.testingEnvironment(),
                file: wrong
            )
        } throws: { error in
            (error as? ConfigurationError)?.key == "poll.deadlineMs"
        }
    }

    /// The defaults make a local daemon: data dir, socket, HTTP address, the URLs under the public one.
    @Test func defaults() async throws {
        let configuration = try await DaemonConfiguration.load(
            flags: [:],
            environment: GatewaySettings.testingEnvironment(),
            file: nil
        )
        #expect(configuration.dataDirectory == "./ledger-data")
        #expect(configuration.socketPath == "./ledgerd.sock")
        #expect(configuration.httpHost == "127.0.0.1" && configuration.httpPort == 8080)
        #expect(configuration.gateway.baseURL == GatewaySettings.testing().baseURL)
        #expect(configuration.gateway.notifyURL == "http://127.0.0.1:8080/notify")
    }

    /// The gateway URL, the member id and the key have no default: each one missing stops the start, and the
    /// message names every missing key with its flag and variable.
    @Test(arguments: [
        (["LEDGERD_GATEWAY_URL"], ["gateway.url"]), (["LEDGERD_GATEWAY_MEMBER_ID"], ["gateway.memberId"]),
        (["LEDGERD_GATEWAY_KEY"], ["gateway.keyFile"]),
        (
            ["LEDGERD_GATEWAY_URL", "LEDGERD_GATEWAY_MEMBER_ID", "LEDGERD_GATEWAY_KEY"],
            ["gateway.url", "gateway.memberId", "gateway.keyFile"]
        ),
    ])
    func requiredSettingsHaveNoDefault(_ removed: [String], _ missing: [String]) async throws {
        var environment = GatewaySettings.testingEnvironment()
        for variable in removed { environment[variable] = nil }
        await #expect {
            _ = try await DaemonConfiguration.load(flags: [:], environment: environment, file: nil)
        } throws: { error in
            guard let error = error as? ConfigurationError, error.key == missing[0] else { return false }
            let required = DaemonConfiguration.requiredSettings
            return required.allSatisfy { setting in
                error.message.contains(setting.flag) == missing.contains(setting.key)
            } && error.message.contains("no default")
        }
    }

    /// Unknown keys in the file and unknown `LEDGERD_*` variables stop the start, naming the nearest known key;
    /// every key the README documents, and the PostgreSQL keys with another backend, are known.
    @Test func unknownKeysNameTheNearest() async throws {
        let directory = TemporaryDirectory()
        let file = directory.path + "/ledgerd.json"
        try #"{"memberID": "10002"}"#.write(toFile: file, atomically: true, encoding: .utf8)
        await #expect {
            _ = try await DaemonConfiguration.load(
                flags: [:],
                environment: GatewaySettings.testingEnvironment(),
                file: file
            )
        } throws: { error in
            let error = error as? ConfigurationError
            return error?.key == "memberID" && error?.message.contains("did you mean gateway.memberId?") == true
        }
        await #expect {
            _ = try await DaemonConfiguration.load(
                flags: [:],
                environment: GatewaySettings.testingEnvironment(["LEDGERD_POLL_DEADLINE": "1000"]),
                file: nil
            )
        } throws: { error in
            let error = error as? ConfigurationError
            return error?.key == "LEDGERD_POLL_DEADLINE"
                && error?.message.contains("did you mean LEDGERD_POLL_DEADLINE_MS?") == true
        }
        await #expect {
            _ = try await DaemonConfiguration.load(
                flags: [:],
                environment: GatewaySettings.testingEnvironment(["LEDGERD_ZZZZZZZZZZZZ": "1"]),
                file: nil
            )
        } throws: { error in
            (error as? ConfigurationError)?.message.hasSuffix("is not a setting ledgerd knows") == true
        }
        // A file using many known keys, nested and in lists, loads; so do PostgreSQL keys beside the LMDB backend.
        try """
        {"dataDir": "/d", "gateway": {"memberId": "20002", "bankCodes": ["940"], "keyFile": "/k"},
         "quarantine": {"entriesMax": 50}, "limits": {"http": {"requestTimeoutMs": 5000}},
         "control": {"allowedUids": [1000]}, "store": {"backend": "lmdb", "postgresSchema": "s"},
         "signing": {"notificationExtraFields": ["msg"]}, "poll": {"queriesPerSecondMax": 5}}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let loaded = try await DaemonConfiguration.load(
            flags: [:],
            environment: GatewaySettings.testingEnvironment(),
            file: file
        )
        #expect(loaded.store.quarantineLimits.entriesMax == 50)
    }

    /// A key file that group or others can read is refused with the chmod to run; an owner-only one is read.
    @Test func keyFileMustBeOwnerOnly() async throws {
        let directory = TemporaryDirectory()
        let path = try TemporaryDirectory.writeSecret("k-file-1", to: directory.path + "/merchant.key")
        var environment = GatewaySettings.testingEnvironment(["LEDGERD_GATEWAY_KEY_FILE": path])
        environment["LEDGERD_GATEWAY_KEY"] = nil
        let loaded = try await DaemonConfiguration.load(flags: [:], environment: environment, file: nil)
        #expect(loaded.key == (try MerchantKey("k-file-1")))
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: path)
        await #expect {
            _ = try await DaemonConfiguration.load(flags: [:], environment: environment, file: nil)
        } throws: { error in
            let error = error as? ConfigurationError
            return error?.key == "gateway.keyFile" && error?.message.contains("chmod 600 \(path)") == true
                && error?.message.contains("640") == true
        }
    }

    /// Invalid values fail at start with a message naming the key.
    @Test(arguments: [
        (["LEDGERD_HTTP": "nowhere"], "http"), (["LEDGERD_POLL_DEADLINE_MS": "abc"], "poll.deadlineMs"),
        (["LEDGERD_GATEWAY_MEMBER_ID": "abc"], "gateway.memberId"),
        (["LEDGERD_SIGNING_EMPTY_VALUE_RULE": "maybe"], "signing.emptyValueRule"),
        (["LEDGERD_GATEWAY_TIME_ZONE": "Mars/Base"], "gateway.timeZone"),
        (["LEDGERD_PUBLIC_URL": "ftp://x"], "publicUrl"),
        (["LEDGERD_GATEWAY_KEY_FILE": "/nonexistent/key"], "gateway.keyFile"),
    ])
    func invalidValuesNamed(_ environment: [String: String], _ key: String) async throws {
        var environment = GatewaySettings.testingEnvironment(environment)
        if environment["LEDGERD_GATEWAY_KEY_FILE"] != nil { environment["LEDGERD_GATEWAY_KEY"] = nil }
        await #expect {
            _ = try await DaemonConfiguration.load(flags: [:], environment: environment, file: nil)
        } throws: { error in
            (error as? ConfigurationError)?.key == key
        }
    }
}
