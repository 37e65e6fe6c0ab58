import Foundation
import GatewaySimulator
import LedgerControlProtocol
import LedgerCore
import LedgerDaemon
import LedgerStore
import LedgerTesting
import Logging
import Testing

/// How the bounds of ledgerd relate (`Limits`): for the defaults, for the constants, and for every configuration
/// the loader accepts; a configuration that breaks a relation is refused with both keys named.
struct LimitsTests {
    /// One relation broken two ways: in a `Limits` value, and in the `LEDGERD_*` variables of a configuration.
    struct Broken: Sendable, CustomTestStringConvertible {
        var key: String
        var otherKeys: [String]
        var breaking: @Sendable (inout Limits) -> Void
        /// Variables that break the relation through the loader.
        var variables: [String: String]
        /// The same variables with the other side moved too, so that the relation holds again: the pair, not a
        /// value alone, is what is refused.
        var mended: [String: String]

        var testDescription: String { self.key }
    }

    static let broken: [Broken] = [
        Broken(
            key: "limits.notify.fieldBytesMax",
            otherKeys: ["limits.notify.bodyBytesMax"],
            breaking: { $0.http.form.fieldBytesMax = $0.http.form.bodyBytesMax + 1 },
            variables: [
                "LEDGERD_LIMITS_NOTIFY_FIELD_BYTES_MAX": "4096", "LEDGERD_LIMITS_NOTIFY_BODY_BYTES_MAX": "2048",
            ],
            mended: ["LEDGERD_LIMITS_NOTIFY_FIELD_BYTES_MAX": "2048", "LEDGERD_LIMITS_NOTIFY_BODY_BYTES_MAX": "2048"]
        ),
        Broken(
            key: "limits.notify.bodyBytesMax",
            otherKeys: ["the stored event's field bound"],
            breaking: { $0.http.form.bodyBytesMax = StoreLimits.eventFieldBytesMax + 1 },
            variables: [:],
            mended: [:]
        ),
        Broken(
            key: "limits.notify.fieldsMax",
            otherKeys: ["the stored event's field count bound"],
            breaking: { $0.http.form.fieldsMax = StoreLimits.eventFieldsMax + 1 },
            variables: [:],
            mended: [:]
        ),
        Broken(
            key: "limits.order.attachBytesMax",
            otherKeys: ["limits.notify.fieldBytesMax"],
            breaking: { $0.order.attachBytesMax = $0.http.form.fieldBytesMax + 1 },
            variables: [
                "LEDGERD_LIMITS_ORDER_ATTACH_BYTES_MAX": "1024", "LEDGERD_LIMITS_NOTIFY_FIELD_BYTES_MAX": "512",
            ],
            mended: ["LEDGERD_LIMITS_ORDER_ATTACH_BYTES_MAX": "512", "LEDGERD_LIMITS_NOTIFY_FIELD_BYTES_MAX": "512"]
        ),
        Broken(
            key: "limits.http.connectionsPerAddressMax",
            otherKeys: ["limits.http.connectionsMax"],
            breaking: { $0.http.connectionsPerAddressMax = $0.http.connectionsMax + 1 },
            variables: [
                "LEDGERD_LIMITS_HTTP_CONNECTIONS_PER_ADDRESS_MAX": "16", "LEDGERD_LIMITS_HTTP_CONNECTIONS_MAX": "8",
            ],
            mended: [
                "LEDGERD_LIMITS_HTTP_CONNECTIONS_PER_ADDRESS_MAX": "16", "LEDGERD_LIMITS_HTTP_CONNECTIONS_MAX": "16",
            ]
        ),
        Broken(
            key: "poll.bodyBytesMax",
            otherKeys: ["the query reply parser's bound"],
            breaking: { $0.poll.bodyBytesMax = PollLimits.replyJSON.bytesMax + 1 },
            variables: ["LEDGERD_POLL_BODY_BYTES_MAX": "131072"],
            mended: ["LEDGERD_POLL_BODY_BYTES_MAX": "65536"]
        ),
        Broken(
            key: "store.mapSize",
            otherKeys: ["store.mapSizeMax"],
            breaking: { $0.store.mapSize = $0.store.mapSizeMax + 1 },
            variables: ["LEDGERD_STORE_MAP_SIZE": "67108864", "LEDGERD_STORE_MAP_SIZE_MAX": "33554432"],
            mended: ["LEDGERD_STORE_MAP_SIZE": "33554432", "LEDGERD_STORE_MAP_SIZE_MAX": "33554432"]
        ),
        Broken(
            key: "store.batchBytesMax",
            otherKeys: ["store.mapSizeMax"],
            breaking: { $0.store.batchBytesMax = $0.store.mapSizeMax / 2 + 1 },
            variables: ["LEDGERD_STORE_MAP_SIZE_MAX": "8388608"],
            mended: ["LEDGERD_STORE_MAP_SIZE_MAX": "8388608", "LEDGERD_STORE_BATCH_BYTES_MAX": "4194304"]
        ),
        Broken(
            key: "store.queueDepthMax",
            otherKeys: [
                "limits.http.connectionsMax", "control.connectionsMax", "control.requestsInFlightMax",
                "poll.concurrency",
            ],
            breaking: { $0.store.queueDepthMax = $0.appendsAdmittedMax - 1 },
            variables: ["LEDGERD_STORE_QUEUE_DEPTH_MAX": "1000"],
            mended: [
                "LEDGERD_STORE_QUEUE_DEPTH_MAX": "1000", "LEDGERD_LIMITS_HTTP_CONNECTIONS_MAX": "500",
                "LEDGERD_CONTROL_CONNECTIONS_MAX": "8", "LEDGERD_CONTROL_REQUESTS_IN_FLIGHT_MAX": "8",
            ]
        ),
        Broken(
            key: "control.subscriberQueueMax",
            otherKeys: ["store.batchCountMax"],
            breaking: { $0.control.subscriberQueueMax = $0.store.batchCountMax - 1 },
            variables: ["LEDGERD_CONTROL_SUBSCRIBER_QUEUE_MAX": "100"],
            mended: ["LEDGERD_CONTROL_SUBSCRIBER_QUEUE_MAX": "100", "LEDGERD_STORE_BATCH_COUNT_MAX": "100"]
        ),
        Broken(
            key: "control.eventsPageMax",
            otherKeys: ["the store's read page"],
            breaking: { $0.control.eventsPageMax = $0.store.readPageMax + 1 },
            variables: ["LEDGERD_CONTROL_EVENTS_PAGE_MAX": "20000"],
            mended: ["LEDGERD_CONTROL_EVENTS_PAGE_MAX": "10000"]
        ),
        Broken(
            key: "forward.concurrencyUnderLoad",
            otherKeys: ["forward.concurrency"],
            breaking: { $0.forward.concurrencyUnderLoad = $0.forward.concurrency + 1 },
            variables: ["LEDGERD_FORWARD_CONCURRENCY": "2", "LEDGERD_FORWARD_CONCURRENCY_UNDER_LOAD": "4"],
            mended: ["LEDGERD_FORWARD_CONCURRENCY": "4", "LEDGERD_FORWARD_CONCURRENCY_UNDER_LOAD": "4"]
        ),
        Broken(
            key: "quarantine.bytesMax",
            otherKeys: ["quarantine.bodyBytesMax"],
            breaking: { $0.quarantine.bytesMax = $0.quarantine.entryBytesMax - 1 },
            variables: ["LEDGERD_QUARANTINE_BYTES_MAX": "65536", "LEDGERD_QUARANTINE_BODY_BYTES_MAX": "65536"],
            mended: ["LEDGERD_QUARANTINE_BYTES_MAX": "131072", "LEDGERD_QUARANTINE_BODY_BYTES_MAX": "65536"]
        ),
    ]

    /// The defaults keep every relation, and a configuration that sets no bound runs with exactly the defaults.
    @Test func defaultsKeepEveryRelation() async throws {
        #expect(Limits().contradictions.isEmpty, "\(Limits().contradictions)")
        Self.expectRelationsHold(Limits(), "the defaults")
        let loaded = try await DaemonConfiguration.load(
            flags: [:],
            environment: GatewaySettings.testingEnvironment(),
            file: nil
        )
        #expect(loaded.limits == Limits())
    }

    /// Every relation between the constants holds.
    @Test func constantRelationsHold() {
        for (relation, holds) in Limits.constantRelations {
            #expect(holds, "\(relation)")
        }
    }

    /// Each relation, broken in a `Limits` value, is the one contradiction found, and its message names every key
    /// involved.
    @Test(arguments: Self.broken) func brokenRelationIsFound(_ broken: Broken) {
        var limits = Limits()
        broken.breaking(&limits)
        let found = limits.contradictions
        #expect(found.map(\.key) == [broken.key], "\(found)")
        for key in [broken.key] + broken.otherKeys {
            #expect(found.first?.message.contains(key) == true, "\(found)")
        }
        #expect(found.first?.otherKeys == broken.otherKeys)
    }

    /// The loader refuses a configuration whose bounds contradict each other, naming both keys, and accepts the
    /// same configuration once the other side moves with it.
    @Test(arguments: Self.broken.filter { !$0.variables.isEmpty })
    func loaderRefusesContradictingBounds(_ broken: Broken) async throws {
        await #expect {
            _ = try await DaemonConfiguration.load(
                flags: [:],
                environment: GatewaySettings.testingEnvironment(broken.variables),
                file: nil
            )
        } throws: { error in
            guard let error = error as? ConfigurationError, error.key == broken.key else { return false }
            return ([broken.key] + broken.otherKeys).allSatisfy { error.description.contains($0) }
        }
        let mended = try await DaemonConfiguration.load(
            flags: [:],
            environment: GatewaySettings.testingEnvironment(broken.mended),
            file: nil
        )
        #expect(mended.limits.contradictions.isEmpty)
    }

    /// Whatever values within their ranges a configuration gives the related bounds, the loader either refuses it
    /// with a configuration error or accepts it with every relation kept; both happen.
    @Test func acceptedConfigurationsKeepEveryRelation() async throws {
        let ranges: [(variable: String, values: [Int])] = [
            ("LEDGERD_LIMITS_NOTIFY_BODY_BYTES_MAX", [256, 2048, 8192, 1 << 20]),
            ("LEDGERD_LIMITS_NOTIFY_FIELD_BYTES_MAX", [64, 512, 2048, 1 << 20]),
            ("LEDGERD_LIMITS_ORDER_ATTACH_BYTES_MAX", [1, 256, 2048]),
            ("LEDGERD_LIMITS_HTTP_CONNECTIONS_MAX", [1, 64, 1024, 100_000]),
            ("LEDGERD_LIMITS_HTTP_CONNECTIONS_PER_ADDRESS_MAX", [1, 128, 100_000]),
            ("LEDGERD_POLL_BODY_BYTES_MAX", [256, 16 << 10, 64 << 10, 1 << 20]),
            ("LEDGERD_POLL_CONCURRENCY", [1, 8, 256]),
            ("LEDGERD_STORE_MAP_SIZE", [1 << 16, 64 << 20, 1 << 40]),
            ("LEDGERD_STORE_MAP_SIZE_MAX", [1 << 20, 64 << 20, 64 << 30]),
            ("LEDGERD_STORE_BATCH_BYTES_MAX", [64 << 10, 8 << 20, 1 << 30]),
            ("LEDGERD_STORE_BATCH_COUNT_MAX", [1, 1024, 100_000]),
            ("LEDGERD_STORE_QUEUE_DEPTH_MAX", [1, 4096, 65_536, 10_000_000]),
            ("LEDGERD_CONTROL_CONNECTIONS_MAX", [1, 64, 100_000]),
            ("LEDGERD_CONTROL_REQUESTS_IN_FLIGHT_MAX", [1, 32, 10_000]),
            ("LEDGERD_CONTROL_SUBSCRIBER_QUEUE_MAX", [1, 4096, 1_000_000]),
            ("LEDGERD_CONTROL_EVENTS_PAGE_MAX", [1, 1000, 100_000]),
            ("LEDGERD_QUARANTINE_BYTES_MAX", [64 << 10, 32 << 20]),
            ("LEDGERD_QUARANTINE_BODY_BYTES_MAX", [64, 4096, 1 << 20]),
            ("LEDGERD_FORWARD_CONCURRENCY", [1, 8, 256]),
            ("LEDGERD_FORWARD_CONCURRENCY_UNDER_LOAD", [1, 4, 256]),
        ]
        var random = SplitMix64(seed: 18)
        var accepted = 0
        var refused = 0
        for _ in 0..<300 {
            var variables: [String: String] = [:]
            for (variable, values) in ranges where Bool.random(using: &random) {
                variables[variable] = String(values.randomElement(using: &random)!)
            }
            do {
                let loaded = try await DaemonConfiguration.load(
                    flags: [:],
                    environment: GatewaySettings.testingEnvironment(variables),
                    file: nil
                )
                Self.expectRelationsHold(loaded.limits, "\(variables)")
                accepted += 1
            } catch let error as ConfigurationError {
                #expect(!error.key.isEmpty)
                refused += 1
            }
        }
        #expect(accepted > 0 && refused > 0, "accepted \(accepted), refused \(refused)")
    }

    /// The relations, stated again independently of `Limits.contradictions`, so that a relation the loader
    /// stops checking is caught here.
    static func expectRelationsHold(_ limits: Limits, _ comment: Comment) {
        let form = limits.http.form
        #expect(form.fieldBytesMax <= form.bodyBytesMax, comment)
        #expect(form.bodyBytesMax <= StoreLimits.eventFieldBytesMax, comment)
        #expect(form.fieldsMax <= StoreLimits.eventFieldsMax, comment)
        #expect(limits.order.attachBytesMax <= form.fieldBytesMax, comment)
        #expect(limits.http.connectionsPerAddressMax <= limits.http.connectionsMax, comment)
        #expect(limits.poll.bodyBytesMax <= PollLimits.replyJSON.bytesMax, comment)
        #expect(limits.store.mapSize <= limits.store.mapSizeMax, comment)
        #expect(2 * limits.store.batchBytesMax <= limits.store.mapSizeMax, comment)
        let admitted =
            limits.http.connectionsMax + limits.control.connectionsMax * limits.control.requestsInFlightMax
            + limits.poll.concurrency + 1
        #expect(limits.store.queueDepthMax >= admitted, comment)
        #expect(limits.control.subscriberQueueMax >= limits.store.batchCountMax, comment)
        #expect(limits.control.eventsPageMax <= limits.store.readPageMax, comment)
        #expect(limits.quarantine.bytesMax >= limits.quarantine.entryBytesMax, comment)
        #expect(limits.forward.concurrencyUnderLoad <= limits.forward.concurrency, comment)
    }

    /// `ledgerd check-config` exits 78 on bounds that contradict each other, naming both keys on standard error.
    @Test func checkConfigRefusesContradictingBounds() throws {
        let directory = TemporaryDirectory()
        let (config, _) = try CheckConfigTests.prepare(directory)
        let (status, _, err) = try CheckConfigTests.checkConfig(
            ["--config", config],
            environment: ["LEDGERD_CONTROL_SUBSCRIBER_QUEUE_MAX": "100"]
        )
        #expect(status == 78)
        #expect(err.contains("control.subscriberQueueMax") && err.contains("store.batchCountMax"), "\(err)")
    }

    /// What `poll.bodyBytesMax` must stay under: a reply body past the reply parser's bound is refused however
    /// well formed, so a larger `poll.bodyBytesMax` would read and record replies that can never be understood.
    @Test func replyPastTheParserBoundIsNeverUnderstood() throws {
        func reply(bytes: Int) -> [UInt8] {
            // 60 members of equal strings: within the parser's member and string bounds, whatever the size.
            let value = String(repeating: "v", count: bytes / 60 - 12)
            let members = (0..<60).map { "\"k\($0)\":\"\(value)\"" }
            return Array(("{" + members.joined(separator: ",") + "}").utf8)
        }
        let within = reply(bytes: PollLimits.replyJSON.bytesMax - 1024)
        #expect(within.count <= PollLimits.replyJSON.bytesMax)
        #expect(throws: Never.self) { try JSONParser.parse(within, limits: PollLimits.replyJSON) }
        let past = reply(bytes: PollLimits.replyJSON.bytesMax + 4096)
        #expect(past.count > PollLimits.replyJSON.bytesMax && past.count <= 1 << 20)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(past, limits: PollLimits.replyJSON) }
    }

    /// What `control.eventsPageMax` must stay under: the store returns at most its read page, whatever a read asks
    /// for, so a page bound above it would answer short.
    @Test func storeReadsStopAtTheReadPage() async throws {
        let directory = TemporaryDirectory()
        let store = try LMDBEventStore(
            path: directory.path + "/ledger",
            options: .init(limits: StoreLimits(mapSize: 1 << 20, readPageMax: 3))
        )
        let ledger = Ledger(
            store: store,
            settings: GatewaySettings.testing(),
            key: try MerchantKey("k-1"),
            publicURL: "http://127.0.0.1:8080",
            logger: Logger(label: "limits-test")
        )
        for index in 0..<5 {
            _ = try await ledger.createOrder(
                CreateOrderRequest(orderId: "P\(index)", amount: "1.00", bankCode: "940", productName: "p")
            )
        }
        #expect(try await store.head().sequence == 5)
        #expect(try await store.readEvents(from: 1, limit: 5).count == 3)
    }

    /// A notification echoing the largest attach an order may carry is accepted by the notification's bounds; one
    /// byte past the field bound, which the attach relation forbids, it is refused.
    @Test func largestEchoedAttachFitsTheNotification() throws {
        let limits = Limits()
        let key = try MerchantKey("k-1")
        var fields = SignedNotification.fields(orderId: "A1", transactionId: "T1", memberId: "10001", key: key)
        fields.append(FormField("attach", String(repeating: "a", count: limits.order.attachBytesMax)))
        let body = Array(SignedNotification.body(fields).utf8)
        #expect(throws: Never.self) { try FormCoding.decode(body, limits: limits.http.form) }
        fields[fields.count - 1] = FormField(
            "attach",
            String(repeating: "a", count: limits.http.form.fieldBytesMax + 1)
        )
        #expect(throws: FormDecodingError.self) {
            try FormCoding.decode(Array(SignedNotification.body(fields).utf8), limits: limits.http.form)
        }
    }

    /// The pay form of the largest order the default order bounds allow, in three-byte characters percent-encoded,
    /// fits the gateway simulator's request bound.
    @Test func largestPayFormFitsTheSimulator() throws {
        let limits = Limits()
        let key = try MerchantKey("k-1")
        let settings = GatewaySettings.testing()
        // "货" is three UTF-8 bytes, each written as %XX in the form.
        func text(_ bytesMax: Int) -> String { String(repeating: "货", count: bytesMax / 3) }
        let url = "https://shop.example.com/" + String(repeating: "p", count: limits.order.urlBytesMax - 25)
        let order = OrderRequest(
            orderId: String(repeating: "9", count: GatewayValidation.orderIdBytesMax),
            amount: "1000000.00",
            bankCode: settings.bankCodes[0],
            productName: text(limits.order.textBytesMax),
            attach: text(limits.order.attachBytesMax),
            productNum: text(limits.order.textBytesMax),
            productDesc: text(limits.order.textBytesMax),
            productURL: url
        )
        let request = try PayRequest.build(
            order,
            settings: settings,
            key: key,
            appliedAt: Instant(millisecondsSinceEpoch: 0)
        ).get()
        let form = FormCoding.encode(request.fields)
        let simulator = SimulatorConfiguration(memberId: settings.memberId, key: key)
        #expect(form.utf8.count <= simulator.requestBytesMax, "\(form.utf8.count)")
    }
}
