import LedgerControlProtocol
import LedgerCore
import LedgerTesting
import NIOCore
import Testing

@testable import LedgerDaemon

/// The answers `order.history` and `order.get` write straight into the outbound buffer are, byte for byte, what
/// the general path writes: the protocol's result type, as a `JSONValue`, through `JSONWriter`, in the envelope.
struct ControlAnswerWriterTests {
    /// The general path's response line.
    static func generalLine(id: JSONValue, result: JSONValue) -> [UInt8] {
        var bytes: [UInt8] = []
        JSONWriter.write(ControlEnvelope.response(id: id, result: result), into: &bytes)
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    /// The same bytes; a difference shows both as text.
    static func expectSame(_ written: [UInt8], _ expected: [UInt8]) {
        let same = written == expected
        #expect(
            same,
            "written \(String(decoding: written, as: UTF8.self)), expected \(String(decoding: expected, as: UTF8.self))"
        )
    }

    static let ids: [JSONValue] = [.number("7"), .number("-1.5e3"), .string("a\"\\\u{01}年"), .null]

    /// order.history's direct answer equals the general one for generated histories, every page and cursor.
    @Test func historyMatchesTheGeneralPath() throws {
        var histories = GeneratedHistories(seed: 0x5EED_C0DE)
        var compared = 0
        for _ in 0..<150 {
            let (orderId, events) = try histories.next()
            let entries = HistoryEntry.derive(orderId: orderId, from: events)
            var pages: [OrderHistory.Params] = [OrderHistory.Params(orderId: orderId)]
            for limit in 1...3 {
                pages.append(OrderHistory.Params(orderId: orderId, limit: limit))
                for entry in entries {
                    pages.append(OrderHistory.Params(orderId: orderId, limit: limit, cursor: entry.event.sequence))
                }
            }
            for (index, params) in pages.enumerated() {
                let page = try HistoryPage(entries, params)
                let id = Self.ids[index % Self.ids.count]
                var writer = ControlAnswerWriter(ByteBufferAllocator().buffer(capacity: 16))
                writer.history(id: id, orderId: page.orderId, page: page.entries, nextCursor: page.nextCursor)
                let general = OrderHistory.Result(
                    orderId: page.orderId,
                    entries: page.entries.map(OrderHistory.Entry.init),
                    nextCursor: page.nextCursor
                )
                let expected = Self.generalLine(id: id, result: general.json)
                Self.expectSame(Array(writer.buffer.readableBytesView), expected)
                compared += 1
            }
        }
        // Every shape of event was among them, so no branch of the writer went unchecked.
        #expect(histories.shapes == GeneratedHistories.allShapes, "shapes seen: \(histories.shapes.sorted())")
        #expect(compared > 1000)
    }

    /// order.get's direct answer equals the general one for the orders those histories leave, paid or not.
    @Test func orderMatchesTheGeneralPath() throws {
        var histories = GeneratedHistories(seed: 0xD1_2EC7)
        var paid = 0
        for round in 0..<150 {
            let (orderId, events) = try histories.next()
            let state = events.reduce(OrderState(orderId: orderId)) { $0.applying($1) }
            if state.payment != nil { paid += 1 }
            let id = Self.ids[round % Self.ids.count]
            var writer = ControlAnswerWriter(ByteBufferAllocator().buffer(capacity: 16))
            writer.order(id: id, OrderView(state))
            let expected = Self.generalLine(id: id, result: OrderView(state).json)
            Self.expectSame(Array(writer.buffer.readableBytesView), expected)
        }
        #expect(paid > 0)
    }
}

/// Orders with random histories, from a seed: an order-created event with or without its optional fields, then
/// signed and unsigned callbacks and query results of every outcome, with text holding what JSON escapes (quotes,
/// backslashes, control characters) and what it copies (`/`, DEL, non-ASCII, combining marks), and bodies that
/// are not UTF-8.
struct GeneratedHistories {
    static let allShapes: Set<String> = [
        "created", "created+optional", "callback-signed", "callback-raw", "body-not-utf8", "query-reply",
        "query-gateway-error", "query-unreadable", "query-transport-error", "query-no-status",
    ]
    /// Text that may stand in an order's own fields, which refuse control characters.
    static let plainPieces = [
        "a", "Z", "0", " ", "\"", "\\", "/", "é", "年卡", "😀", "e\u{301}", "{", ":", ",",
    ]
    /// Control characters, DEL among them (JSON copies it as it is).
    static let controlPieces = ["\n", "\r", "\t", "\u{08}", "\u{0C}", "\u{01}", "\u{1F}", "\u{00}", "\u{7F}"]

    var generator: SplitMix64
    var sequence: UInt64 = 0
    var previousHash = Digest32.zero
    var orders = 0
    private(set) var shapes: Set<String> = []
    let settings = GatewaySettings.testing()

    init(seed: UInt64) {
        self.generator = SplitMix64(seed: seed)
    }

    mutating func text(control: Bool, piecesMax: Int = 6) -> String {
        let pieces = control ? Self.plainPieces + Self.controlPieces : Self.plainPieces
        return (0..<self.generator.next(upTo: piecesMax + 1)).map { _ in
            pieces[self.generator.next(upTo: pieces.count)]
        }.joined()
    }

    mutating func maybe(_ body: (inout Self) -> String) -> String? {
        self.generator.next(upTo: 2) == 0 ? nil : body(&self)
    }

    mutating func next() throws -> (orderId: String, events: [Event]) {
        self.orders += 1
        let orderId = "W\(self.orders)"
        var pending: [PendingEvent] = []
        let start = Instant(millisecondsSinceEpoch: 1_795_000_000_000 + Int64(self.generator.next(upTo: 1_000_000)))
        let request = OrderRequest(
            orderId: orderId,
            amount: "12.50",
            bankCode: "940",
            productName: "p" + self.text(control: false),
            attach: self.maybe { $0.text(control: false) },
            productNum: self.maybe { _ in "3" },
            productDesc: self.maybe { $0.text(control: false) },
            productURL: self.maybe { _ in "https://shop.example/p?a=1&b=%E5%B9%B4/x" }
        )
        let payRequest = try PayRequest.build(
            request,
            settings: self.settings,
            key: TestMerchant.key,
            appliedAt: start
        ).get()
        self.shapes.insert(request.attach == nil && request.productDesc == nil ? "created" : "created+optional")
        pending.append(
            PendingEvent(
                recordedAt: start,
                orderId: orderId,
                payload: .orderCreated(
                    OrderCreated(request: payRequest, gatewayURL: self.settings.baseURL, dialect: .document)
                )
            )
        )
        for step in 0..<self.generator.next(upTo: 5) {
            let at = Instant(millisecondsSinceEpoch: start.millisecondsSinceEpoch + Int64(step + 1) * 1000)
            switch self.generator.next(upTo: 3) {
            case 0:
                // A signed notification: paid, or a duplicate or conflict of the payment before it.
                let fields = SignedNotification.fields(
                    orderId: orderId,
                    transactionId: "T\(self.generator.next(upTo: 3))",
                    memberId: self.settings.memberId,
                    key: TestMerchant.key
                )
                let remoteAddress = self.text(control: true)
                pending.append(
                    SignedNotification.event(fields, key: TestMerchant.key, at: at, remoteAddress: remoteAddress)
                )
                self.shapes.insert("callback-signed")
            case 1:
                let fields = (0..<self.generator.next(upTo: 4)).map { _ in
                    FormField(self.text(control: true, piecesMax: 3), self.text(control: true))
                }
                var body = Array(self.text(control: true).utf8)
                let verdicts = SignatureVerdict.allCases
                let verdict = verdicts[self.generator.next(upTo: verdicts.count)]
                if self.generator.next(upTo: 3) == 0 {
                    body.append(0xFF)
                    self.shapes.insert("body-not-utf8")
                }
                pending.append(
                    PendingEvent(
                        recordedAt: at,
                        orderId: orderId,
                        payload: .callbackReceived(
                            CallbackReceived(
                                rawBody: body,
                                fields: fields,
                                remoteAddress: self.text(control: true),
                                verdict: verdict,
                                dialect: .document
                            )
                        )
                    )
                )
                self.shapes.insert("callback-raw")
            default:
                let result = self.queryResult()
                pending.append(PendingEvent(recordedAt: at, orderId: orderId, payload: .queryResult(result)))
            }
        }
        var events: [Event] = []
        for event in pending {
            self.sequence += 1
            let sealed = event.sealed(sequence: self.sequence, previousHash: self.previousHash)
            self.previousHash = sealed.hash
            events.append(sealed)
        }
        return (orderId, events)
    }

    mutating func queryResult() -> QueryResult {
        let outcome: QueryResult.Outcome
        switch self.generator.next(upTo: 4) {
        case 0:
            outcome = .reply(
                fields: [FormField("returncode", "00"), FormField(self.text(control: true), self.text(control: true))],
                enveloped: self.generator.next(upTo: 2) == 0,
                verdict: .valid,
                dialect: .document
            )
            self.shapes.insert("query-reply")
        case 1:
            outcome = .gatewayError(message: self.text(control: true))
            self.shapes.insert("query-gateway-error")
        case 2:
            outcome = .unreadable(reason: self.text(control: true))
            self.shapes.insert("query-unreadable")
        default:
            outcome = .transportError(message: self.text(control: true))
            self.shapes.insert("query-transport-error")
        }
        let status: UInt16? = self.generator.next(upTo: 3) == 0 ? nil : 200
        if status == nil { self.shapes.insert("query-no-status") }
        var body = Array(self.text(control: true).utf8)
        if self.generator.next(upTo: 4) == 0 { body.append(0xC3) }
        return QueryResult(
            attempt: UInt32(self.generator.next(upTo: 9)),
            latencyMicroseconds: UInt64(self.generator.next(upTo: 1_000_000)),
            final: self.generator.next(upTo: 2) == 0,
            httpStatus: status,
            body: body,
            outcome: outcome
        )
    }
}
