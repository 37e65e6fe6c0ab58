import Foundation
import LedgerControlProtocol
import LedgerCore
import NIOCore

/// Writes the answers of the control socket's busiest reads, `order.history` and `order.get`, straight into the
/// outbound buffer: one pass from the ledger's own values to the bytes on the socket.
///
/// The general path builds the protocol's result type, then a `JSONValue` tree of it, then writes the tree into an
/// array and copies that into a buffer; for a history of three events that is hundreds of allocations, and the
/// profile of `order.history` under load put about a quarter of the daemon's CPU there. The text is exactly what that
/// path writes (`JSONWriter` without options: members in the order the types list them, strings escaped as
/// RFC 8259 requires and nothing more); `ControlAnswerWriterTests` holds the two to the same bytes for generated
/// histories and orders, and the schemas in `schemas/control/` check the result over the socket.
///
/// The text goes into an array first and into the buffer in one copy at the end: an answer is a few thousand small
/// writes, and each `ByteBuffer` write checks its storage's uniqueness, capacity and exclusive access at run time,
/// which the profile showed costing more than the bytes themselves.
struct ControlAnswerWriter {
    private var start: ByteBuffer
    private var bytes: [UInt8] = []
    /// Whether a value precedes in the object or array being written, so the next member or element needs a comma.
    private var follows = false

    /// A writer that appends to `buffer`, reserving its writable capacity for the text.
    init(_ buffer: ByteBuffer) {
        self.start = buffer
        self.bytes.reserveCapacity(buffer.writableBytes)
    }

    /// What `buffer` held, then everything written.
    var buffer: ByteBuffer {
        var buffer = self.start
        buffer.writeBytes(self.bytes)
        return buffer
    }

    private mutating func put(_ byte: UInt8) {
        self.bytes.append(byte)
    }

    private mutating func put(_ text: StaticString) {
        self.bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    // MARK: Answers

    /// The whole response line to `order.history`: the envelope, the page of entries and the cursor.
    mutating func history(id: JSONValue, orderId: String, page: ArraySlice<HistoryEntry>, nextCursor: String?) {
        self.envelope(id: id)
        self.open()
        self.key("orderId")
        self.string(orderId)
        self.key("entries")
        self.openArray()
        for entry in page {
            self.element()
            self.entry(entry)
        }
        self.closeArray()
        self.key("nextCursor")
        self.optional(nextCursor)
        self.close()
        self.endEnvelope()
    }

    /// The whole response line to `order.get`.
    mutating func order(id: JSONValue, _ view: OrderView) {
        self.envelope(id: id)
        self.orderView(view)
        self.endEnvelope()
    }

    /// `{"jsonrpc":"2.0","id":…,"result":`, as `ControlEnvelope.response(id:result:)` orders it.
    private mutating func envelope(id: JSONValue) {
        self.put(#"{"jsonrpc":"2.0","id":"#)
        // The id is the client's own value (a string, a number or null), written as the general path writes it.
        JSONWriter.write(id, into: &self.bytes)
        self.put(#","result":"#)
        self.follows = false
    }

    private mutating func endEnvelope() {
        self.put("}\n")
    }

    // MARK: The values

    /// `OrderHistory.Entry`: the event, its effect, the state and flags after it.
    private mutating func entry(_ entry: HistoryEntry) {
        self.open()
        self.key("event")
        self.event(entry.event)
        let effect = EffectView(entry.effect)
        self.key("effect")
        self.open()
        self.key("kind")
        self.string(effect.kind)
        if let classification = effect.classification {
            self.key("classification")
            self.string(classification)
        }
        self.close()
        self.key("stateAfter")
        self.string(entry.state.status.rawValue)
        self.key("flagsAfter")
        self.strings(entry.state.flags.names)
        self.close()
    }

    /// `Event.json`.
    private mutating func event(_ event: Event) {
        self.open()
        self.key("sequence")
        self.number(event.sequence)
        self.key("recordedAt")
        self.string(event.recordedAt.description)
        self.key("type")
        self.string(event.type.rawValue)
        self.key("orderId")
        self.string(event.orderId)
        self.key("previousHash")
        self.hex(event.previousHash)
        self.key("hash")
        self.hex(event.hash)
        self.key("data")
        switch event.payload {
        case .orderCreated(let created): self.orderCreated(created)
        case .callbackReceived(let callback): self.callback(callback)
        case .queryResult(let result): self.queryResult(result)
        }
        self.close()
    }

    /// `OrderCreated.json`.
    private mutating func orderCreated(_ created: OrderCreated) {
        let request = created.request
        self.open()
        self.key("memberId")
        self.string(request.memberId)
        self.key("applyDate")
        self.string(request.applyDate)
        self.key("bankCode")
        self.string(request.bankCode)
        self.key("notifyUrl")
        self.string(request.notifyURL)
        self.key("callbackUrl")
        self.string(request.callbackURL)
        self.key("amount")
        self.string(request.amount.text)
        self.key("amountFen")
        self.number(request.amount.fen)
        self.key("productName")
        self.string(request.productName)
        self.key("sign")
        self.string(request.sign)
        self.key("gatewayUrl")
        self.string(created.gatewayURL)
        self.key("dialect")
        self.string(created.dialect.description)
        if let value = request.attach {
            self.key("attach")
            self.string(value)
        }
        if let value = request.productNum {
            self.key("productNum")
            self.string(value)
        }
        if let value = request.productDesc {
            self.key("productDesc")
            self.string(value)
        }
        if let value = request.productURL {
            self.key("productUrl")
            self.string(value)
        }
        self.close()
    }

    /// `CallbackReceived.json`.
    private mutating func callback(_ callback: CallbackReceived) {
        self.open()
        self.key("fields")
        self.fields(callback.fields)
        self.key("remoteAddress")
        self.string(callback.remoteAddress)
        self.key("verdict")
        self.string(callback.verdict.rawValue)
        self.key("dialect")
        self.string(callback.dialect.description)
        self.body(callback.rawBody, key: "rawBody", base64Key: "rawBodyBase64")
        self.close()
    }

    /// `QueryResult.json`.
    private mutating func queryResult(_ result: QueryResult) {
        self.open()
        self.key("attempt")
        self.number(result.attempt)
        self.key("latencyMicroseconds")
        self.number(result.latencyMicroseconds)
        self.key("final")
        self.bool(result.final)
        self.key("httpStatus")
        if let status = result.httpStatus { self.number(status) } else { self.null() }
        self.body(result.body, key: "body", base64Key: "bodyBase64")
        self.key("outcome")
        self.open()
        switch result.outcome {
        case .reply(let fields, let enveloped, let verdict, let dialect):
            self.key("kind")
            self.string("reply")
            self.key("fields")
            self.fields(fields)
            self.key("enveloped")
            self.bool(enveloped)
            self.key("verdict")
            self.string(verdict.rawValue)
            self.key("dialect")
            self.string(dialect.description)
        case .gatewayError(let message):
            self.key("kind")
            self.string("gateway-error")
            self.key("message")
            self.string(message)
        case .unreadable(let reason):
            self.key("kind")
            self.string("unreadable")
            self.key("reason")
            self.string(reason)
        case .transportError(let message):
            self.key("kind")
            self.string("transport-error")
            self.key("message")
            self.string(message)
        }
        self.close()
        self.close()
    }

    /// A body as text when it is UTF-8, else as base64 under the other key: `CallbackReceived.addBody`.
    private mutating func body(_ bytes: [UInt8], key: StaticString, base64Key: StaticString) {
        if let text = String(checkedUTF8: bytes) {
            self.key(key)
            self.string(text)
        } else {
            self.key(base64Key)
            self.string(Data(bytes).base64EncodedString())
        }
    }

    /// `FormField.json`: a list of `{"name","value"}` pairs.
    private mutating func fields(_ fields: [FormField]) {
        self.openArray()
        for field in fields {
            self.element()
            self.open()
            self.key("name")
            self.string(field.name)
            self.key("value")
            self.string(field.value)
            self.close()
        }
        self.closeArray()
    }

    /// `OrderView.json`.
    private mutating func orderView(_ view: OrderView) {
        self.open()
        self.key("orderId")
        self.string(view.orderId)
        self.key("state")
        self.string(view.state.rawValue)
        self.key("flags")
        self.strings(view.flags)
        self.key("order")
        if let order = view.order {
            self.open()
            self.key("memberId")
            self.string(order.memberId)
            self.key("amount")
            self.string(order.amount)
            self.key("amountFen")
            self.number(order.amountFen)
            self.key("bankCode")
            self.string(order.bankCode)
            self.key("productName")
            self.string(order.productName)
            self.key("applyDate")
            self.string(order.applyDate)
            self.key("createdAt")
            self.string(order.createdAt)
            self.key("createdSequence")
            self.number(order.createdSequence)
            self.close()
        } else {
            self.null()
        }
        self.key("payment")
        if let payment = view.payment {
            self.open()
            self.key("source")
            self.string(payment.source)
            self.key("transactionId")
            self.string(payment.transactionId)
            self.key("paidAt")
            self.string(payment.paidAt)
            self.key("amount")
            self.string(payment.amount)
            self.key("sequence")
            self.number(payment.sequence)
            self.key("recordedAt")
            self.string(payment.recordedAt)
            self.close()
        } else {
            self.null()
        }
        self.key("callbacks")
        self.open()
        for count in view.callbacks.named {
            self.member(count.name)
            self.number(count.value)
        }
        self.key("firstAt")
        self.optional(view.callbacks.firstAt)
        self.key("lastAt")
        self.optional(view.callbacks.lastAt)
        self.close()
        self.key("queryAttempts")
        self.number(view.queryAttempts)
        self.key("lastQueryAt")
        self.optional(view.lastQueryAt)
        self.key("lastSequence")
        self.number(view.lastSequence)
        self.key("eventCount")
        self.number(view.eventCount)
        self.close()
    }

    // MARK: JSON

    private mutating func open() {
        self.put(UInt8(ascii: "{"))
        self.follows = false
    }

    private mutating func close() {
        self.put(UInt8(ascii: "}"))
        self.follows = true
    }

    private mutating func openArray() {
        self.put(UInt8(ascii: "["))
        self.follows = false
    }

    private mutating func closeArray() {
        self.put(UInt8(ascii: "]"))
        self.follows = true
    }

    /// Before each element of an array.
    private mutating func element() {
        if self.follows { self.put(UInt8(ascii: ",")) }
        self.follows = false
    }

    /// A member's key, written as is: every key here is a literal of plain ASCII letters, which JSON never escapes.
    private mutating func key(_ name: StaticString) {
        if self.follows { self.put(UInt8(ascii: ",")) }
        self.put(UInt8(ascii: "\""))
        self.put(name)
        self.put("\":")
        self.follows = false
    }

    /// A member whose key is a `String` (the callback counts' names), escaped as any string.
    private mutating func member(_ name: String) {
        if self.follows { self.put(UInt8(ascii: ",")) }
        self.string(name)
        self.put(UInt8(ascii: ":"))
        self.follows = false
    }

    private mutating func null() {
        self.put("null")
        self.follows = true
    }

    private mutating func bool(_ value: Bool) {
        self.put(value ? "true" : "false")
        self.follows = true
    }

    private mutating func number(_ value: some BinaryInteger) {
        // The decimal text of an integer fits a small string, which needs no allocation.
        self.bytes.append(contentsOf: String(value).utf8)
        self.follows = true
    }

    private mutating func optional(_ text: String?) {
        if let text { self.string(text) } else { self.null() }
    }

    private mutating func strings(_ texts: [String]) {
        self.openArray()
        for text in texts {
            self.element()
            self.string(text)
        }
        self.closeArray()
    }

    /// A digest as 64 lowercase hex digits, `Digest32.hex`, without building the string.
    private mutating func hex(_ digest: Digest32) {
        self.put(UInt8(ascii: "\""))
        self.hexWord(digest.words.0)
        self.hexWord(digest.words.1)
        self.hexWord(digest.words.2)
        self.hexWord(digest.words.3)
        self.put(UInt8(ascii: "\""))
        self.follows = true
    }

    /// 16 lowercase hex digits, the most significant first.
    private mutating func hexWord(_ word: UInt64) {
        let digits: StaticString = "0123456789abcdef"
        for shift in stride(from: 60, through: 0, by: -4) {
            self.put(digits.utf8Start[Int(truncatingIfNeeded: (word >> UInt64(shift)) & 0xF)])
        }
    }

    /// A string as `JSONWriter` writes it: `"`, `\` and the control characters below U+0020 escaped (`\b \f \n \r
    /// \t`, else `\u00XX` in lowercase hex), everything else copied as UTF-8. Runs with nothing to escape are
    /// copied whole.
    private mutating func string(_ text: String) {
        self.put(UInt8(ascii: "\""))
        if text.utf8.withContiguousStorageIfAvailable({ self.escaped($0) }) == nil {
            Array(text.utf8).withUnsafeBufferPointer { self.escaped($0) }
        }
        self.put(UInt8(ascii: "\""))
        self.follows = true
    }

    private mutating func escaped(_ bytes: UnsafeBufferPointer<UInt8>) {
        let hexDigits: StaticString = "0123456789abcdef"
        var start = 0
        for index in bytes.indices {
            let byte = bytes[index]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
            if start < index {
                self.bytes.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
            }
            start = index + 1
            switch byte {
            case UInt8(ascii: "\""): self.put(#"\""#)
            case UInt8(ascii: "\\"): self.put(#"\\"#)
            case 0x08: self.put(#"\b"#)
            case 0x0C: self.put(#"\f"#)
            case UInt8(ascii: "\n"): self.put(#"\n"#)
            case UInt8(ascii: "\r"): self.put(#"\r"#)
            case UInt8(ascii: "\t"): self.put(#"\t"#)
            default:
                self.put(#"\u00"#)
                self.put(hexDigits.utf8Start[Int(byte >> 4)])
                self.put(hexDigits.utf8Start[Int(byte & 0x0F)])
            }
        }
        if start < bytes.count {
            self.bytes.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start...]))
        }
    }
}
