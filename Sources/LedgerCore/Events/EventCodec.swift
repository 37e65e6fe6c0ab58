import Crypto

/// Why stored bytes are not an event. Reading an event checks it as carefully as writing did: LMDB 0.9 has no
/// page checksums, so a flipped bit must be caught here and reported, never served as a fact.
public struct EventDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Reason: Sendable, Hashable {
        case truncated
        case unknownFormatVersion(UInt8)
        case unknownEventType(UInt8)
        case invalidUTF8
        case invalidValue(String)
        case trailingBytes
        case hashMismatch
    }

    public let reason: Reason
    /// Byte offset in the encoded event where the problem was found.
    public let offset: Int

    public var description: String {
        switch self.reason {
        case .truncated: return "The stored event ends early at byte \(self.offset)."
        case .unknownFormatVersion(let version):
            return "The stored event has format version \(version), which this build does not know."
        case .unknownEventType(let tag):
            return "The stored event has an unknown type tag \(tag) at byte \(self.offset)."
        case .invalidUTF8: return "The stored event has text that is not valid UTF-8 at byte \(self.offset)."
        case .invalidValue(let what): return "The stored event has an invalid \(what) at byte \(self.offset)."
        case .trailingBytes: return "The stored event has unexpected bytes after its end, from byte \(self.offset)."
        case .hashMismatch: return "The stored event's hash does not match its content."
        }
    }
}

/// The deterministic binary encoding of events.
///
/// Layout (all integers big-endian, text as a LEB128 length and UTF-8 bytes):
/// `version:u8 type:u8 sequence:u64 recordedAt:i64 previousHash:32 orderId:text payload… hash:32`.
/// The hash is SHA-256 of every byte before it. One encoding, one hash: the same event always encodes to the same
/// bytes, which is what makes the hash chain meaningful. Decoding reads fields in place without intermediate
/// objects, far faster than a JSON decoder (see the store benchmark).
public enum EventCodec {
    /// The current format version, the first byte of every encoded event.
    public static let formatVersion: UInt8 = 1
    /// The largest text or byte field the decoder accepts (the limits table says why).
    public static let fieldBytesMax = StoreLimits.eventFieldBytesMax

    /// Encodes an event, its hash included.
    public static func encode(_ event: Event) -> [UInt8] {
        var writer = ByteWriter()
        Self.writeBody(event, into: &writer)
        writer.appendDigest(event.hash)
        return writer.bytes
    }

    /// SHA-256 of the encoding of everything but the hash.
    public static func computeHash(of event: Event) -> Digest32 {
        var writer = ByteWriter()
        Self.writeBody(event, into: &writer)
        return Self.sha256(writer.bytes)
    }

    static func sha256(_ bytes: [UInt8]) -> Digest32 {
        bytes.withUnsafeBytes { Self.sha256($0) }
    }

    static func sha256(_ buffer: UnsafeRawBufferPointer) -> Digest32 {
        var hasher = SHA256()
        hasher.update(bufferPointer: buffer)
        return hasher.finalize().withUnsafeBytes { Digest32(rawBytes: $0) }
    }

    /// How much of an event to decode.
    public enum Scope: Sendable {
        /// Every field.
        case full
        /// What `OrderState.apply` reads, for replaying the log into the projection. Raw bodies, the remote
        /// address, the gateway and notify URLs, the request's signature and its optional product fields are
        /// checked (length, UTF-8) and skipped: they come back empty. Both scopes accept exactly the same records.
        /// Copying those fields is most of the cost of a replay, and an event decoded this way is fit only for the
        /// fold.
        case projection
    }

    /// Decodes an event. With `verifyHash` the stored hash is recomputed and compared.
    public static func decode(_ bytes: [UInt8], verifyHash: Bool = true) throws(EventDecodingError) -> Event {
        var result: Result<Event, EventDecodingError>!
        bytes.withUnsafeBytes { raw in
            result = Result { () throws(EventDecodingError) -> Event in
                try Self.decode(raw, verifyHash: verifyHash, scope: .full)
            }
        }
        return try result.get()
    }

    /// Decodes an event from memory the caller owns (an LMDB value inside its transaction); nothing of `buffer`
    /// is kept.
    public static func decode(
        _ buffer: UnsafeRawBufferPointer,
        verifyHash: Bool = true,
        scope: Scope = .full
    ) throws(EventDecodingError) -> Event {
        var reader = ByteReader(buffer)
        reader.projectionOnly = scope == .projection
        let (type, sequence, recordedAt, previousHash, orderId) = try Self.readHeader(&reader)
        let payload: EventPayload
        switch type {
        case .orderCreated: payload = .orderCreated(try Self.readOrderCreated(&reader, orderId: orderId))
        case .callbackReceived: payload = .callbackReceived(try Self.readCallbackReceived(&reader))
        case .queryResult: payload = .queryResult(try Self.readQueryResult(&reader))
        }
        let bodyEnd = reader.offset
        let hash = try reader.digest()
        guard reader.isAtEnd else { throw EventDecodingError(reason: .trailingBytes, offset: reader.offset) }
        if verifyHash {
            let computed = Self.sha256(UnsafeRawBufferPointer(rebasing: buffer[0..<bodyEnd]))
            guard computed == hash else { throw EventDecodingError(reason: .hashMismatch, offset: bodyEnd) }
        }
        return Event(
            sequence: sequence,
            recordedAt: recordedAt,
            orderId: orderId,
            previousHash: previousHash,
            hash: hash,
            payload: payload
        )
    }

    /// Reads only the envelope (sequence, type, order id, hashes) without decoding the payload: what a chain walk
    /// and an index rebuild need.
    public static func decodeEnvelope(_ buffer: UnsafeRawBufferPointer) throws(EventDecodingError) -> EventEnvelope {
        var reader = ByteReader(buffer)
        let (type, sequence, recordedAt, previousHash, orderId) = try Self.readHeader(&reader)
        guard buffer.count >= reader.offset + 32 else {
            throw EventDecodingError(reason: .truncated, offset: reader.offset)
        }
        var tail = ByteReader(UnsafeRawBufferPointer(rebasing: buffer[(buffer.count - 32)...]))
        let hash = try tail.digest()
        return EventEnvelope(
            sequence: sequence,
            type: type,
            recordedAt: recordedAt,
            orderId: orderId,
            previousHash: previousHash,
            hash: hash
        )
    }

    /// The header every event starts with: version, type, sequence, time, previous hash, order id.
    private static func readHeader(_ reader: inout ByteReader) throws(EventDecodingError) -> (
        EventType, UInt64, Instant, Digest32, String
    ) {
        let version = try reader.u8()
        guard version == Self.formatVersion else {
            throw EventDecodingError(reason: .unknownFormatVersion(version), offset: 0)
        }
        let tag = try reader.u8()
        guard let type = EventType(tag: tag) else {
            throw EventDecodingError(reason: .unknownEventType(tag), offset: 1)
        }
        let sequence = try reader.u64()
        let recordedAt = Instant(millisecondsSinceEpoch: Int64(bitPattern: try reader.u64()))
        let previousHash = try reader.digest()
        let orderId = try reader.text()
        return (type, sequence, recordedAt, previousHash, orderId)
    }

    // MARK: Writing

    static func writeBody(_ event: Event, into writer: inout ByteWriter) {
        Self.writeHeader(
            type: event.type,
            sequence: event.sequence,
            recordedAt: event.recordedAt,
            previousHash: event.previousHash,
            orderId: event.orderId,
            into: &writer
        )
        Self.writePayload(event.payload, into: &writer)
    }

    static func writeHeader(
        type: EventType,
        sequence: UInt64,
        recordedAt: Instant,
        previousHash: Digest32,
        orderId: String,
        into writer: inout ByteWriter
    ) {
        writer.append(Self.formatVersion)
        writer.append(type.tag)
        writer.append(sequence)
        writer.append(UInt64(bitPattern: recordedAt.millisecondsSinceEpoch))
        writer.appendDigest(previousHash)
        writer.appendText(orderId)
    }

    /// The bytes of the header: version, type, sequence, time, previous hash, then the order id as text.
    static func headerBytes(orderIdBytes: Int) -> Int {
        1 + 1 + 8 + 8 + 32 + ByteWriter.lengthBytes(orderIdBytes) + orderIdBytes
    }

    /// The encoding of a payload alone: the same bytes whatever the event's place in the log, so it can be made
    /// before the event has one (`PendingEvent` does, on the appender's thread).
    public static func encodePayload(_ payload: EventPayload) -> [UInt8] {
        var writer = ByteWriter(capacity: payload.estimatedEncodedBytes)
        Self.writePayload(payload, into: &writer)
        return writer.bytes
    }

    /// Writes the whole encoding of `pending` at `sequence` after `previousHash` into `buffer`, which must be
    /// exactly `pending.encodedBytes` long (an LMDB page reserved for it, say), and returns the event's hash.
    /// The same bytes as `encode` of the sealed event, with no intermediate array.
    public static func seal(
        _ pending: PendingEvent,
        sequence: UInt64,
        previousHash: Digest32,
        into buffer: UnsafeMutableRawBufferPointer
    ) -> Digest32 {
        precondition(buffer.count == pending.encodedBytes, "The buffer does not fit the event.")
        var header = ByteWriter(capacity: Self.headerBytes(orderIdBytes: pending.orderId.utf8.count))
        Self.writeHeader(
            type: pending.payload.type,
            sequence: sequence,
            recordedAt: pending.recordedAt,
            previousHash: previousHash,
            orderId: pending.orderId,
            into: &header
        )
        var offset = 0
        func copy(_ bytes: UnsafeRawBufferPointer) {
            guard let source = bytes.baseAddress, bytes.count > 0 else { return }
            buffer.baseAddress!.advanced(by: offset).copyMemory(from: source, byteCount: bytes.count)
            offset += bytes.count
        }
        header.bytes.withUnsafeBytes(copy)
        pending.encodedPayload.withUnsafeBytes(copy)
        let hash = Self.sha256(UnsafeRawBufferPointer(rebasing: buffer[0..<offset]))
        var words = (hash.words.0.bigEndian, hash.words.1.bigEndian, hash.words.2.bigEndian, hash.words.3.bigEndian)
        withUnsafeBytes(of: &words, copy)
        return hash
    }

    static func writePayload(_ payload: EventPayload, into writer: inout ByteWriter) {
        switch payload {
        case .orderCreated(let created):
            let request = created.request
            writer.append(created.dialect.code)
            writer.appendText(created.gatewayURL)
            writer.appendText(request.memberId)
            writer.appendText(request.applyDate)
            writer.appendText(request.bankCode)
            writer.appendText(request.notifyURL)
            writer.appendText(request.callbackURL)
            writer.appendText(request.amount.text)
            writer.appendText(request.productName)
            writer.appendOptionalText(request.attach)
            writer.appendOptionalText(request.productNum)
            writer.appendOptionalText(request.productDesc)
            writer.appendOptionalText(request.productURL)
            writer.appendText(request.sign)
        case .callbackReceived(let callback):
            writer.append(callback.verdict.code)
            writer.append(callback.dialect.code)
            writer.appendText(callback.remoteAddress)
            writer.appendBytes(callback.rawBody)
            writer.appendFields(callback.fields)
        case .queryResult(let result):
            writer.append(result.attempt)
            writer.append(result.latencyMicroseconds)
            writer.append(result.final ? 1 as UInt8 : 0)
            writer.append(result.httpStatus ?? 0)
            writer.appendBytes(result.body)
            switch result.outcome {
            case .reply(let fields, let enveloped, let verdict, let dialect):
                writer.append(1 as UInt8)
                writer.append(enveloped ? 1 as UInt8 : 0)
                writer.append(verdict.code)
                writer.append(dialect.code)
                writer.appendFields(fields)
            case .gatewayError(let message):
                writer.append(2 as UInt8)
                writer.appendText(message)
            case .unreadable(let reason):
                writer.append(3 as UInt8)
                writer.appendText(reason)
            case .transportError(let message):
                writer.append(4 as UInt8)
                writer.appendText(message)
            }
        }
    }

    // MARK: Reading payloads

    private static func readOrderCreated(_ reader: inout ByteReader, orderId: String) throws(EventDecodingError)
        -> OrderCreated
    {
        let dialect = try reader.dialect()
        let gatewayURL = try reader.unfoldedText()
        let memberId = try reader.text()
        let applyDate = try reader.text()
        let bankCode = try reader.text()
        let notifyURL = try reader.unfoldedText()
        let callbackURL = try reader.unfoldedText()
        let amountOffset = reader.offset
        let amountText = try reader.text()
        guard case .success(let amount) = OrderAmount.parse(amountText, fenMax: .max / 100) else {
            throw EventDecodingError(reason: .invalidValue("order amount"), offset: amountOffset)
        }
        let productName = try reader.text()
        let attach = try reader.optionalText(unfolded: true)
        let productNum = try reader.optionalText(unfolded: true)
        let productDesc = try reader.optionalText(unfolded: true)
        let productURL = try reader.optionalText(unfolded: true)
        let sign = try reader.unfoldedText()
        let request = PayRequest(
            memberId: memberId,
            orderId: orderId,
            applyDate: applyDate,
            bankCode: bankCode,
            notifyURL: notifyURL,
            callbackURL: callbackURL,
            amount: amount,
            productName: productName,
            attach: attach,
            productNum: productNum,
            productDesc: productDesc,
            productURL: productURL,
            sign: sign
        )
        return OrderCreated(request: request, gatewayURL: gatewayURL, dialect: dialect)
    }

    private static func readCallbackReceived(_ reader: inout ByteReader) throws(EventDecodingError) -> CallbackReceived
    {
        let verdict = try reader.verdict()
        let dialect = try reader.dialect()
        let remoteAddress = try reader.unfoldedText()
        let rawBody = try reader.bytes()
        let fields = try reader.fields()
        return CallbackReceived(
            rawBody: rawBody,
            fields: fields,
            remoteAddress: remoteAddress,
            verdict: verdict,
            dialect: dialect
        )
    }

    private static func readQueryResult(_ reader: inout ByteReader) throws(EventDecodingError) -> QueryResult {
        let attempt = try reader.u32()
        let latency = try reader.u64()
        let finalOffset = reader.offset
        let final: Bool
        switch try reader.u8() {
        case 0: final = false
        case 1: final = true
        default: throw EventDecodingError(reason: .invalidValue("final flag"), offset: finalOffset)
        }
        let status = try reader.u16()
        let body = try reader.bytes()
        let outcomeOffset = reader.offset
        let outcome: QueryResult.Outcome
        switch try reader.u8() {
        case 1:
            let envelopedOffset = reader.offset
            let envelopedByte = try reader.u8()
            guard envelopedByte <= 1 else {
                throw EventDecodingError(reason: .invalidValue("envelope flag"), offset: envelopedOffset)
            }
            let verdict = try reader.verdict()
            let dialect = try reader.dialect()
            let fields = try reader.fields()
            outcome = .reply(fields: fields, enveloped: envelopedByte == 1, verdict: verdict, dialect: dialect)
        case 2: outcome = .gatewayError(message: try reader.text())
        case 3: outcome = .unreadable(reason: try reader.text())
        case 4: outcome = .transportError(message: try reader.text())
        default: throw EventDecodingError(reason: .invalidValue("query outcome"), offset: outcomeOffset)
        }
        return QueryResult(
            attempt: attempt,
            latencyMicroseconds: latency,
            final: final,
            httpStatus: status == 0 ? nil : status,
            body: body,
            outcome: outcome
        )
    }
}

/// The envelope of an event, read without its payload.
public struct EventEnvelope: Sendable, Hashable {
    public var sequence: UInt64
    public var type: EventType
    public var recordedAt: Instant
    public var orderId: String
    public var previousHash: Digest32
    public var hash: Digest32
}

extension SignatureVerdict {
    var code: UInt8 {
        switch self {
        case .valid: return 1
        case .missing: return 2
        case .malformed: return 3
        case .mismatch: return 4
        }
    }

    init?(code: UInt8) {
        switch code {
        case 1: self = .valid
        case 2: self = .missing
        case 3: self = .malformed
        case 4: self = .mismatch
        default: return nil
        }
    }
}

struct ByteWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 512) {
        self.bytes.reserveCapacity(capacity)
    }

    mutating func append(_ value: UInt8) { self.bytes.append(value) }

    mutating func append<T: FixedWidthInteger & UnsignedInteger>(_ value: T) {
        var bigEndian = value.bigEndian
        withUnsafeBytes(of: &bigEndian) { self.bytes.append(contentsOf: $0) }
    }

    /// The bytes `appendLength` writes for `count`.
    static func lengthBytes(_ count: Int) -> Int {
        var value = UInt64(count)
        var bytes = 1
        while value >= 0x80 {
            value >>= 7
            bytes += 1
        }
        return bytes
    }

    mutating func appendLength(_ count: Int) {
        var value = UInt64(count)
        repeat {
            var byte = UInt8(value & 0x7F)
            value >>= 7
            if value != 0 { byte |= 0x80 }
            self.bytes.append(byte)
        } while value != 0
    }

    mutating func appendText(_ text: String) {
        var text = text
        text.withUTF8 { utf8 in
            self.appendLength(utf8.count)
            self.bytes.append(contentsOf: utf8)
        }
    }

    mutating func appendOptionalText(_ text: String?) {
        if let text {
            self.bytes.append(1)
            self.appendText(text)
        } else {
            self.bytes.append(0)
        }
    }

    mutating func appendBytes(_ bytes: [UInt8]) {
        self.appendLength(bytes.count)
        self.bytes.append(contentsOf: bytes)
    }

    mutating func appendDigest(_ digest: Digest32) {
        self.append(digest.words.0)
        self.append(digest.words.1)
        self.append(digest.words.2)
        self.append(digest.words.3)
    }

    mutating func appendFields(_ fields: [FormField]) {
        self.appendLength(fields.count)
        for field in fields {
            self.appendText(field.name)
            self.appendText(field.value)
        }
    }
}

struct ByteReader {
    let buffer: UnsafeRawBufferPointer
    var offset = 0
    /// Skip what the projection's fold never reads (`EventCodec.Scope.projection`).
    var projectionOnly = false

    init(_ buffer: UnsafeRawBufferPointer) {
        self.buffer = buffer
    }

    var isAtEnd: Bool { self.offset == self.buffer.count }

    private func need(_ count: Int) throws(EventDecodingError) {
        guard count >= 0, self.buffer.count - self.offset >= count else {
            throw EventDecodingError(reason: .truncated, offset: self.offset)
        }
    }

    mutating func u8() throws(EventDecodingError) -> UInt8 {
        try self.need(1)
        defer { self.offset += 1 }
        return self.buffer[self.offset]
    }

    mutating func integer<T: FixedWidthInteger>(_: T.Type) throws(EventDecodingError) -> T {
        let size = MemoryLayout<T>.size
        try self.need(size)
        var value: T = 0
        for index in 0..<size { value = value << 8 | T(self.buffer[self.offset + index]) }
        self.offset += size
        return value
    }

    mutating func u16() throws(EventDecodingError) -> UInt16 { try self.integer(UInt16.self) }
    mutating func u32() throws(EventDecodingError) -> UInt32 { try self.integer(UInt32.self) }
    mutating func u64() throws(EventDecodingError) -> UInt64 { try self.integer(UInt64.self) }

    mutating func length() throws(EventDecodingError) -> Int {
        let start = self.offset
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try self.u8()
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                // One spelling per length: a last byte of zero after the first adds nothing (`80 00` is a second
                // spelling of 0), and a record with two spellings would be one event with two encodings and two
                // hashes. The writer always writes the shortest form.
                guard byte != 0 || shift == 0 else {
                    throw EventDecodingError(reason: .invalidValue("length"), offset: start)
                }
                break
            }
            shift += 7
            guard shift < 28 else { throw EventDecodingError(reason: .invalidValue("length"), offset: start) }
        }
        guard value <= UInt64(EventCodec.fieldBytesMax) else {
            throw EventDecodingError(reason: .invalidValue("length"), offset: start)
        }
        return Int(value)
    }

    mutating func rawSlice() throws(EventDecodingError) -> UnsafeRawBufferPointer {
        let count = try self.length()
        try self.need(count)
        defer { self.offset += count }
        return UnsafeRawBufferPointer(rebasing: self.buffer[self.offset..<(self.offset + count)])
    }

    mutating func text() throws(EventDecodingError) -> String {
        let start = self.offset
        let slice = try self.rawSlice()
        guard let text = String(checkedUTF8: slice) else {
            throw EventDecodingError(reason: .invalidUTF8, offset: start)
        }
        return text
    }

    /// A text field the projection's fold never reads: with `projectionOnly` it is checked and skipped (the empty
    /// string stands in).
    mutating func unfoldedText() throws(EventDecodingError) -> String {
        guard self.projectionOnly else { return try self.text() }
        let start = self.offset
        let slice = try self.rawSlice()
        // Checked all the same, so both scopes accept exactly the same records; ASCII is checked without a copy.
        guard String.isASCII(slice) || String(checkedUTF8: slice) != nil else {
            throw EventDecodingError(reason: .invalidUTF8, offset: start)
        }
        return ""
    }

    mutating func optionalText(unfolded: Bool = false) throws(EventDecodingError) -> String? {
        let start = self.offset
        switch try self.u8() {
        case 0: return nil
        case 1: return unfolded ? try self.unfoldedText() : try self.text()
        default: throw EventDecodingError(reason: .invalidValue("optional marker"), offset: start)
        }
    }

    /// A byte field (a raw body). With `projectionOnly` it is checked and skipped, not copied.
    mutating func bytes() throws(EventDecodingError) -> [UInt8] {
        let slice = try self.rawSlice()
        return self.projectionOnly ? [] : Array(slice)
    }

    mutating func digest() throws(EventDecodingError) -> Digest32 {
        Digest32(words: (try self.u64(), try self.u64(), try self.u64(), try self.u64()))
    }

    mutating func verdict() throws(EventDecodingError) -> SignatureVerdict {
        let start = self.offset
        guard let verdict = SignatureVerdict(code: try self.u8()) else {
            throw EventDecodingError(reason: .invalidValue("signature verdict"), offset: start)
        }
        return verdict
    }

    mutating func dialect() throws(EventDecodingError) -> SigningDialect {
        let start = self.offset
        guard let dialect = SigningDialect(code: try self.u8()) else {
            throw EventDecodingError(reason: .invalidValue("signing dialect"), offset: start)
        }
        return dialect
    }

    mutating func fields() throws(EventDecodingError) -> [FormField] {
        let start = self.offset
        let count = try self.length()
        guard count <= StoreLimits.eventFieldsMax else {
            throw EventDecodingError(reason: .invalidValue("field count"), offset: start)
        }
        var fields: [FormField] = []
        fields.reserveCapacity(count)
        for _ in 0..<count { fields.append(FormField(try self.text(), try self.text())) }
        return fields
    }
}
