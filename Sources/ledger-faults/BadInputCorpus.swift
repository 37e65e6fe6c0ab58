import LedgerControlProtocol
import LedgerCore
import LedgerTesting

/// What a corpus case sends.
enum Probe: Sendable {
    /// `POST /notify` with exactly these body bytes (form content type).
    case notify([UInt8])
    /// `POST /notify` with these body bytes and these headers instead of the form content type.
    case notifyWithHeaders([UInt8], [String])
    /// A whole raw HTTP request.
    case http([UInt8])
    /// Request headers dribbled a few bytes at a time and never finished.
    case slowHeaders
    /// A request whose body stops halfway and never resumes.
    case stalledBody
    /// `count` idle connections held open while a valid notification for `orderId` is sent on one more.
    case manyConnections(count: Int, orderId: String)
    /// A valid notification for `orderId` whose body is sent one byte every 200 ms, far slower than the request
    /// deadline allows.
    case drippedBody(orderId: String)
    /// `limits.http.connectionsPerAddressMax` connections held from one address and one more from it (which
    /// must be closed without an answer), then a valid notification for `orderId` from another address.
    case addressFlood(orderId: String)
    /// Raw bytes on a fresh control connection (with their own newlines).
    case control([UInt8])
    /// Raw bytes on a fresh control connection, then the connection's write side is closed.
    case controlHalfClose([UInt8])
    /// `control.connectionsMax` connections held open, and one more.
    case controlConnectionFlood
}

/// The answer a case must get: the daemon's specified one, read from its code (`NotifyReply`, `ControlError`).
enum Expected: Sendable, Equatable {
    /// This HTTP status and exactly this body.
    case http(Int, String)
    /// The connection is closed by the daemon without any answer.
    case closedWithoutAnswer
    /// A JSON-RPC error with this code.
    case rpcError(Int)
    /// A JSON-RPC error with this code, and then the daemon closes the connection.
    case rpcErrorThenClose(Int)
    /// A JSON-RPC result for the request with id 1 (and nothing answered for anything else sent).
    case rpcResult
}

/// What the ledger must hold after a case: the order's state, a review flag it must carry, and how many
/// notifications the audit counts for it (those in the log and those in the quarantine).
struct Aftermath: Sendable {
    var orderId: String
    var state: String
    var flag: String? = nil
    var callbacksReceived: Int? = nil
}

/// One hostile, malformed or odd input with its specified answer.
struct CorpusCase: Sendable {
    var name: String
    var probe: Probe
    var expected: Expected
    /// Events the case must append to the log: 0 for bodies refused unrecorded, 1 for a recorded notification.
    var appends: Int?
    /// Notifications the case must put in the quarantine (kept outside the log): 1 for a parseable notification the
    /// gateway did not vouch for, 0 for everything else.
    var quarantined: Int?
    var after: Aftermath?

    init(
        _ name: String,
        _ probe: Probe,
        _ expected: Expected,
        appends: Int? = nil,
        quarantined: Int? = nil,
        after: Aftermath? = nil
    ) {
        self.name = name
        self.probe = probe
        self.expected = expected
        self.appends = appends
        // A case that appends nothing and says nothing of the quarantine must not fill it either.
        self.quarantined = quarantined ?? (appends == 0 ? 0 : nil)
        self.after = after
    }
}

extension CorpusCase {
    /// A body refused as malformed: nothing recorded and nothing quarantined.
    static func malformedBody(_ name: String, _ body: [UInt8]) -> CorpusCase {
        CorpusCase(name, .notify(body), BadInputCorpus.malformed, appends: 0)
    }

    /// A notification for `orderId` refused as malformed: nothing recorded, nothing quarantined, and the order still
    /// as it was created. `body` makes the notification for the order id it is given, so the probe and the check
    /// after it name the same order.
    static func malformedNotification(_ name: String, _ orderId: String, _ body: (String) -> [UInt8]) -> CorpusCase {
        CorpusCase(
            name,
            .notify(body(orderId)),
            BadInputCorpus.malformed,
            appends: 0,
            after: Aftermath(orderId: orderId, state: "created")
        )
    }

    /// A notification for `orderId` acknowledged and recorded (one event), after which the order is in `state`,
    /// flagged for review with `flag` when one is given.
    static func recordedNotification(
        _ name: String,
        _ orderId: String,
        state: String,
        flag: String? = nil,
        _ body: (String) -> [UInt8]
    ) -> CorpusCase {
        CorpusCase(
            name,
            .notify(body(orderId)),
            BadInputCorpus.ok,
            appends: 1,
            after: Aftermath(orderId: orderId, state: state, flag: flag)
        )
    }
}

/// The corpus. Orders `C01`…`C40` exist (12.50 each) when it runs; answers are the daemon's exact bodies.
enum BadInputCorpus {
    static let ok = Expected.http(200, "OK")
    static let malformed = Expected.http(400, "malformed notification")
    static let tooLarge = Expected.http(413, "body too large")
    static let badSignature = Expected.http(403, "bad signature")
    static let foreignMember = Expected.http(403, "foreign member id")
    static let unknownOrder = Expected.http(404, "unknown order")

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
    static func body(_ fields: [FormField]) -> [UInt8] { Self.bytes(Notification.body(fields)) }
    static func body(_ orderId: String) -> [UInt8] { Self.body(Notification.fields(orderId: orderId)) }

    /// The fields of a valid notification with `name` removed.
    static func without(_ orderId: String, _ name: String) -> [UInt8] {
        Self.body(Notification.fields(orderId: orderId).filter { $0.name != name })
    }

    /// A valid notification with its signature replaced.
    static func signed(_ orderId: String, _ transform: (String) -> String) -> [UInt8] {
        var fields = Notification.fields(orderId: orderId)
        fields[fields.count - 1].value = transform(fields[fields.count - 1].value)
        return Self.body(fields)
    }

    /// A valid notification with `attach` placed before the signature: the gateway concatenates it raw.
    static func attached(_ orderId: String, _ attach: String) -> [UInt8] {
        var fields = Notification.fields(orderId: orderId)
        fields.insert(FormField("attach", attach), at: fields.count - 1)
        return Self.body(fields)
    }

    /// A notification of about 7.4 KB (an `attach` and three more fields of 1,800 bytes, each under the field
    /// bound) with a signature of zeros.
    static func forgedLarge(_ orderId: String) -> [UInt8] {
        var fields = Notification.fields(orderId: orderId)
        for name in ["attach", "x1", "x2", "x3"] {
            fields.insert(FormField(name, String(repeating: "x", count: 1_800)), at: fields.count - 1)
        }
        fields[fields.count - 1].value = String(repeating: "0", count: 32)
        return Self.body(fields)
    }

    static func control(_ text: String) -> Probe { .control(Self.bytes(text + "\n")) }
    static func request(_ method: String, _ params: String) -> Probe {
        Self.control(#"{"jsonrpc":"2.0","id":1,"method":"\#(method)","params":\#(params)}"#)
    }

    static let cases: [CorpusCase] =
        Self.notifyCases + Self.controlCases + Self.hostileNetCases + Self.hostileTextCases + Self.observeCases
        + Self.forwardCases

    static let notifyCases: [CorpusCase] = [
        .recordedNotification("valid notification", "C01", state: "paid") { Self.body($0) },
        .malformedBody("empty body", []),
        .malformedBody("only memberid", Self.bytes("memberid=10001")),
        .malformedBody("missing sign", Self.without("C02", "sign")),
        .malformedBody("missing orderid", Self.without("C02", "orderid")),
        .malformedBody("missing returncode", Self.without("C02", "returncode")),
        CorpusCase(
            "empty sign",
            .notify(Self.signed("C02") { _ in "" }),
            Self.badSignature,
            appends: 0,
            quarantined: 1,
            after: Aftermath(orderId: "C02", state: "created")
        ),
        CorpusCase(
            "lower-case signature",
            .notify(Self.signed("C02") { $0.lowercased() }),
            Self.badSignature,
            appends: 0,
            quarantined: 1,
            after: Aftermath(orderId: "C02", state: "created")
        ),
        CorpusCase(
            "forged signature",
            .notify(Self.signed("C02") { _ in String(repeating: "0", count: 32) }),
            Self.badSignature,
            appends: 0,
            quarantined: 1
        ),
        CorpusCase(
            "signature with a trailing space",
            .notify(Self.signed("C02") { $0 + "%20" }),
            Self.badSignature,
            appends: 0,
            quarantined: 1
        ),
        CorpusCase(
            "signed with another key",
            .notify(Self.body(Notification.fields(orderId: "C02", key: TestMerchant.otherKey))),
            Self.badSignature,
            appends: 0,
            quarantined: 1,
            after: Aftermath(orderId: "C02", state: "created", callbacksReceived: 5)
        ),
        .malformedBody("repeated orderid", Self.body("C03") + Self.bytes("&orderid=C04")),
        .malformedBody("repeated sign", Self.body("C03") + Self.bytes("&sign=00")),
        .malformedBody("invalid percent escape", Self.body("C03") + Self.bytes("&x=%ZZ")),
        .malformedBody("truncated percent escape", Self.body("C03") + Self.bytes("&x=%4")),
        .malformedBody("raw non-UTF-8 byte", Self.body("C03") + Self.bytes("&x=") + [0xFF, 0xFE]),
        .malformedBody("escaped non-UTF-8 byte", Self.body("C03") + Self.bytes("&x=%FF")),
        .malformedBody("overlong UTF-8 '/'", Self.body("C03") + Self.bytes("&x=%C0%AF")),
        CorpusCase(
            "body of 8193 bytes",
            .notify(Self.body("C03") + Self.bytes("&x=" + String(repeating: "a", count: 8193))),
            Self.tooLarge,
            appends: 0
        ),
        CorpusCase(
            "body of 1 MiB",
            .notify(Self.bytes(String(repeating: "a", count: 1 << 20))),
            Self.tooLarge,
            appends: 0
        ),
        .malformedBody("33 fields", Self.body("C03") + Self.bytes((0..<26).map { "&f\($0)=1" }.joined())),
        .malformedBody(
            "value of 2049 bytes",
            Self.body("C03") + Self.bytes("&x=" + String(repeating: "b", count: 2049))
        ),
        .malformedBody("empty field name", Self.body("C03") + Self.bytes("&=x")),
        .malformedBody("orderid with a path", Self.body("../../etc/passwd")),
        .malformedBody("orderid of 21 characters", Self.body(String(repeating: "C", count: 21))),
        .malformedBody("NUL in orderid", Self.body("C03%00")),
        .malformedBody("byte-order mark before the body", [0xEF, 0xBB, 0xBF] + Self.body("C03")),
        .malformedBody(
            "upper-case field names",
            Self.bytes(Notification.body(Notification.fields(orderId: "C03")).uppercased())
        ),
        CorpusCase(
            "JSON instead of a form",
            .notifyWithHeaders(
                Self.bytes(#"{"memberid":"10001","orderid":"C03"}"#),
                ["Content-Type: application/json"]
            ),
            Self.malformed,
            appends: 0
        ),
        CorpusCase("unknown order, validly signed", .notify(Self.body("NOSUCHORDER")), Self.unknownOrder, appends: 1),
        CorpusCase(
            "foreign member id, validly signed",
            .notify(Self.body(Notification.fields(orderId: "C04", memberId: "99999"))),
            Self.foreignMember,
            appends: 0,
            quarantined: 1,
            after: Aftermath(orderId: "C04", state: "created", callbacksReceived: 1)
        ),
        // Issue 14 §1: a forged notification of 7.4 KB for an order id nobody created made an order in state
        // `unknown` and 17 KB of permanent log; now it is kept in the bounded quarantine, and no order is made.
        CorpusCase(
            "forged 7.4 KB notification for an order nobody created",
            .notify(Self.forgedLarge("ZQ7X1RANDOM")),
            Self.badSignature,
            appends: 0,
            quarantined: 1
        ),
        .recordedNotification("amount 1e3", "C05", state: "created", flag: "amount-mismatch") {
            Self.body(Notification.fields(orderId: $0, amount: "1e3"))
        },
        .recordedNotification("amount -1", "C06", state: "created", flag: "amount-mismatch") {
            Self.body(Notification.fields(orderId: $0, amount: "-1"))
        },
        .recordedNotification("amount 0.001", "C07", state: "created", flag: "amount-mismatch") {
            Self.body(Notification.fields(orderId: $0, amount: "0.001"))
        },
        .recordedNotification("amount 12.50001 (five decimals)", "C08", state: "created", flag: "amount-mismatch") {
            Self.body(Notification.fields(orderId: $0, amount: "12.50001"))
        },
        .recordedNotification("amount 12.5 equals 12.50", "C09", state: "paid") {
            Self.body(Notification.fields(orderId: $0, amount: "12.5"))
        },
        .recordedNotification("returncode 01", "C10", state: "created") {
            Self.body(Notification.fields(orderId: $0, returnCode: "01"))
        },
        .malformedBody("attach reframed into a second amount", Self.attached("C11", "x&amount=0.01")),
        .malformedBody("attach reframed into a second orderid", Self.attached("C11", "x&orderid=C12")),
        .recordedNotification("attach reframed into an extra field", "C11", state: "paid") {
            Self.attached($0, "x&note=1")
        },
        .recordedNotification("attach with '=' in it", "C12", state: "paid") { Self.attached($0, "a=b=c") },
        CorpusCase(
            "'+' in a signed value arrives as a space",
            .notify(Self.body(Notification.fields(orderId: "C13", transactionId: "T+13"))),
            Self.badSignature,
            appends: 0,
            quarantined: 1,
            after: Aftermath(orderId: "C13", state: "created")
        ),
        CorpusCase(
            "text/plain content type",
            .notifyWithHeaders(Self.body("C14"), ["Content-Type: text/plain"]),
            Self.ok,
            appends: 1,
            after: Aftermath(orderId: "C14", state: "paid")
        ),
        CorpusCase(
            "chunked body",
            .http(
                Self.bytes(
                    "POST /notify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n"
                )
                    + Self.chunked(Self.body("C15"))
            ),
            Self.ok,
            appends: 1,
            after: Aftermath(orderId: "C15", state: "paid")
        ),
        .recordedNotification(
            "conflicting transaction after paid",
            "C01",
            state: "paid",
            flag: "conflicting-transaction"
        ) { Self.body(Notification.fields(orderId: $0, transactionId: "OTHER1")) },
        CorpusCase(
            "duplicate after paid",
            .notify(Self.body("C01")),
            Self.ok,
            appends: 1,
            after: Aftermath(orderId: "C01", state: "paid", callbacksReceived: 3)
        ),
        CorpusCase(
            "Content-Length over the limit, body not sent",
            .http(
                Self.bytes(
                    "POST /notify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100000000\r\n\r\nmemberid=1"
                )
            ),
            Self.tooLarge,
            appends: 0
        ),
        CorpusCase("slowloris: headers never finished", .slowHeaders, .closedWithoutAnswer, appends: 0),
        CorpusCase("body stalls halfway", .stalledBody, .closedWithoutAnswer, appends: 0),
        CorpusCase(
            "300 idle connections, then a valid notification",
            .manyConnections(count: 300, orderId: "C16"),
            Self.ok,
            appends: 1,
            after: Aftermath(orderId: "C16", state: "paid")
        ),
    ]

    static let controlCases: [CorpusCase] = [
        CorpusCase("control: not JSON", Self.control("hello"), .rpcError(-32700)),
        CorpusCase(
            "control: truncated JSON",
            Self.control(#"{"jsonrpc":"2.0","id":1,"method":"order.get""#),
            .rpcError(-32700)
        ),
        CorpusCase(
            "control: non-UTF-8 in a string",
            .control(
                Self.bytes(#"{"jsonrpc":"2.0","id":1,"method":"order.get","params":{"orderId":""#) + [0xC3, 0x28]
                    + Self.bytes("\"}}\n")
            ),
            .rpcError(-32700)
        ),
        CorpusCase(
            "control: nesting 100 deep",
            Self.request("order.get", String(repeating: "[", count: 100) + String(repeating: "]", count: 100)),
            .rpcError(-32700)
        ),
        CorpusCase(
            "control: byte-order mark",
            .control([0xEF, 0xBB, 0xBF] + Self.bytes(#"{"jsonrpc":"2.0","id":1,"method":"ledger.stats"}"# + "\n")),
            .rpcError(-32700)
        ),
        CorpusCase(
            "control: repeated member",
            Self.control(#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ledger.stats"}"#),
            .rpcError(-32700)
        ),
        CorpusCase("control: empty batch", Self.control("[]"), .rpcError(-32600)),
        CorpusCase(
            "control: batch",
            Self.control(#"[{"jsonrpc":"2.0","id":1,"method":"ledger.stats"}]"#),
            .rpcError(-32600)
        ),
        CorpusCase("control: a number", Self.control("42"), .rpcError(-32600)),
        CorpusCase("control: null", Self.control("null"), .rpcError(-32600)),
        CorpusCase("control: no jsonrpc member", Self.control(#"{"id":1,"method":"ledger.stats"}"#), .rpcError(-32600)),
        CorpusCase(
            "control: jsonrpc 1.0",
            Self.control(#"{"jsonrpc":"1.0","id":1,"method":"ledger.stats"}"#),
            .rpcError(-32600)
        ),
        CorpusCase(
            "control: method is a number",
            Self.control(#"{"jsonrpc":"2.0","id":1,"method":7}"#),
            .rpcError(-32600)
        ),
        CorpusCase(
            "control: id is an object",
            Self.control(#"{"jsonrpc":"2.0","id":{},"method":"ledger.stats"}"#),
            .rpcError(-32600)
        ),
        CorpusCase(
            "control: unknown member",
            Self.control(#"{"jsonrpc":"2.0","id":1,"method":"ledger.stats","extra":1}"#),
            .rpcError(-32600)
        ),
        CorpusCase("control: params is a string", Self.request("ledger.stats", #""x""#), .rpcError(-32600)),
        CorpusCase("control: params is an array", Self.request("order.get", #"["C01"]"#), .rpcError(-32602)),
        CorpusCase("control: unknown method", Self.request("order.delete", "{}"), .rpcError(-32601)),
        CorpusCase("control: case-altered method", Self.request("Order.Get", #"{"orderId":"C01"}"#), .rpcError(-32601)),
        CorpusCase("control: missing orderId", Self.request("order.get", "{}"), .rpcError(-32602)),
        CorpusCase("control: orderId is a number", Self.request("order.get", #"{"orderId":1}"#), .rpcError(-32602)),
        CorpusCase(
            "control: unknown parameter",
            Self.request("order.get", #"{"orderId":"C01","verbose":true}"#),
            .rpcError(-32602)
        ),
        CorpusCase("control: unknown order", Self.request("order.get", #"{"orderId":"NOPE"}"#), .rpcError(-32001)),
        CorpusCase(
            "control: amount 1e3",
            Self.request("order.create", #"{"orderId":"X1","amount":"1e3","bankCode":"940","productName":"p"}"#),
            .rpcError(-32003),
            appends: 0
        ),
        CorpusCase(
            "control: amount -1",
            Self.request("order.create", #"{"orderId":"X1","amount":"-1","bankCode":"940","productName":"p"}"#),
            .rpcError(-32003),
            appends: 0
        ),
        CorpusCase(
            "control: amount 0.001",
            Self.request("order.create", #"{"orderId":"X1","amount":"0.001","bankCode":"940","productName":"p"}"#),
            .rpcError(-32003),
            appends: 0
        ),
        CorpusCase(
            "control: amount 0",
            Self.request("order.create", #"{"orderId":"X1","amount":"0","bankCode":"940","productName":"p"}"#),
            .rpcError(-32003),
            appends: 0
        ),
        CorpusCase(
            "control: amount as a JSON number",
            Self.request("order.create", #"{"orderId":"X1","amount":12.5,"bankCode":"940","productName":"p"}"#),
            .rpcError(-32602),
            appends: 0
        ),
        CorpusCase(
            "control: '&' and '=' in attach",
            Self.request(
                "order.create",
                #"{"orderId":"X1","amount":"1.00","bankCode":"940","productName":"p","attach":"a&amount=0.01"}"#
            ),
            .rpcError(-32003),
            appends: 0
        ),
        CorpusCase(
            "control: orderId of 21 characters",
            Self.request(
                "order.create",
                #"{"orderId":"XXXXXXXXXXXXXXXXXXXXX","amount":"1.00","bankCode":"940","productName":"p"}"#
            ),
            .rpcError(-32003),
            appends: 0
        ),
        CorpusCase(
            "control: unknown bank code",
            Self.request("order.create", #"{"orderId":"X1","amount":"1.00","bankCode":"999","productName":"p"}"#),
            .rpcError(-32003),
            appends: 0
        ),
        CorpusCase(
            "control: existing order, other amount",
            Self.request(
                "order.create",
                #"{"orderId":"C01","amount":"99.00","bankCode":"940","productName":"fault suite"}"#
            ),
            .rpcError(-32002),
            appends: 0
        ),
        CorpusCase("control: events.read limit 0", Self.request("events.read", #"{"limit":0}"#), .rpcError(-32602)),
        CorpusCase(
            "control: order.list unknown state",
            Self.request("order.list", #"{"status":"refunded"}"#),
            .rpcError(-32602)
        ),
        CorpusCase(
            "control: line over control.lineBytesMax",
            .control(
                Self.bytes(
                    #"{"jsonrpc":"2.0","id":1,"method":"ledger.stats","params":{"x":""#
                        + String(repeating: "x", count: 70_000) + "\"}}\n"
                )
            ),
            .rpcErrorThenClose(-32010)
        ),
        CorpusCase(
            "control: notification then request",
            .control(
                Self.bytes(
                    #"{"jsonrpc":"2.0","method":"order.get","params":{}}"# + "\n"
                        + #"{"jsonrpc":"2.0","id":1,"method":"ledger.stats"}"# + "\n"
                )
            ),
            .rpcResult
        ),
        CorpusCase(
            "control: empty lines then request",
            .control(Self.bytes("\n\r\n\n" + #"{"jsonrpc":"2.0","id":1,"method":"ledger.stats"}"# + "\n")),
            .rpcResult
        ),
        CorpusCase(
            "control: CRLF line end",
            .control(Self.bytes(#"{"jsonrpc":"2.0","id":1,"method":"ledger.stats"}"# + "\r\n")),
            .rpcResult
        ),
        CorpusCase(
            "control: last line without newline",
            .controlHalfClose(Self.bytes(#"{"jsonrpc":"2.0","id":1,"method":"ledger.stats"}"#)),
            .rpcResult
        ),
        CorpusCase(
            "control: one connection over control.connectionsMax",
            .controlConnectionFlood,
            .rpcErrorThenClose(-32011)
        ),
    ]

    static func chunked(_ body: [UInt8]) -> [UInt8] {
        let half = body.count / 2
        var out: [UInt8] = []
        for part in [Array(body[..<half]), Array(body[half...])] {
            out += Self.bytes(String(part.count, radix: 16) + "\r\n") + part + Self.bytes("\r\n")
        }
        return out + Self.bytes("0\r\n\r\n")
    }
}
