/// A SHA-256 digest, stored inline (no heap allocation) because every event carries two.
public struct Digest32: Sendable, Hashable, CustomStringConvertible {
    public var words: (UInt64, UInt64, UInt64, UInt64)

    public init(words: (UInt64, UInt64, UInt64, UInt64)) {
        self.words = words
    }

    /// The digest of nothing: the predecessor hash of the first event.
    public static let zero = Digest32(words: (0, 0, 0, 0))

    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 32 else { return nil }
        var words: [UInt64] = [0, 0, 0, 0]
        for (index, byte) in bytes.enumerated() { words[index / 8] = words[index / 8] << 8 | UInt64(byte) }
        self.words = (words[0], words[1], words[2], words[3])
    }

    /// Reads 32 bytes, big-endian words, without an intermediate array.
    init(rawBytes raw: UnsafeRawBufferPointer) {
        precondition(raw.count == 32)
        func word(_ start: Int) -> UInt64 {
            var value: UInt64 = 0
            for index in start..<(start + 8) { value = value << 8 | UInt64(raw[index]) }
            return value
        }
        self.words = (word(0), word(8), word(16), word(24))
    }

    public init?(hex: String) {
        guard let bytes = Hex.decode(hex) else { return nil }
        self.init(bytes: bytes)
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for word in [self.words.0, self.words.1, self.words.2, self.words.3] {
            for shift in stride(from: 56, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: word >> UInt64(shift)))
            }
        }
        return out
    }

    public var hex: String { Hex.lower(self.bytes) }
    public var description: String { self.hex }

    public static func == (lhs: Digest32, rhs: Digest32) -> Bool {
        lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1 && lhs.words.2 == rhs.words.2
            && lhs.words.3 == rhs.words.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.words.0)
        hasher.combine(self.words.1)
        hasher.combine(self.words.2)
        hasher.combine(self.words.3)
    }
}

/// The stable stored type of an event: a past-tense name and a version. Stored values never change meaning;
/// a new shape gets a new version.
public enum EventType: String, Sendable, Hashable, CaseIterable, Codable {
    case orderCreated = "order.created.v1"
    case callbackReceived = "callback.received.v1"
    case queryResult = "query.result.v1"

    /// The one-byte tag of the binary encoding (the second byte of every encoded event).
    public var tag: UInt8 {
        switch self {
        case .orderCreated: return 1
        case .callbackReceived: return 2
        case .queryResult: return 3
        }
    }

    init?(tag: UInt8) {
        switch tag {
        case 1: self = .orderCreated
        case 2: self = .callbackReceived
        case 3: self = .queryResult
        default: return nil
        }
    }
}

/// The merchant created an order and signed its payment request.
public struct OrderCreated: Sendable, Hashable {
    /// The signed request, exactly as it is sent to the gateway.
    public var request: PayRequest
    /// The gateway URL the request is POSTed to.
    public var gatewayURL: String
    /// The signing dialect the request was signed under.
    public var dialect: SigningDialect

    public init(request: PayRequest, gatewayURL: String, dialect: SigningDialect) {
        self.request = request
        self.gatewayURL = gatewayURL
        self.dialect = dialect
    }
}

/// A notification arrived at `POST /notify`. Everything seen is recorded; what it means is the projection's call.
public struct CallbackReceived: Sendable, Hashable {
    /// The body exactly as received. Always valid UTF-8: a body that is not never parses as a notification.
    public var rawBody: [UInt8]
    /// The decoded fields in the order they arrived.
    public var fields: [FormField]
    /// The peer's address, e.g. `203.0.113.7:51234`.
    public var remoteAddress: String
    /// The signature verdict with the key in force when it arrived.
    public var verdict: SignatureVerdict
    /// The dialect it was verified under.
    public var dialect: SigningDialect

    public init(
        rawBody: [UInt8],
        fields: [FormField],
        remoteAddress: String,
        verdict: SignatureVerdict,
        dialect: SigningDialect
    ) {
        self.rawBody = rawBody
        self.fields = fields
        self.remoteAddress = remoteAddress
        self.verdict = verdict
        self.dialect = dialect
    }

    /// Records a parsed notification.
    public init(
        _ notification: PaymentNotification,
        remoteAddress: String,
        verdict: SignatureVerdict,
        dialect: SigningDialect
    ) {
        self.init(
            rawBody: notification.fields.raw,
            fields: notification.fields.fields,
            remoteAddress: remoteAddress,
            verdict: verdict,
            dialect: dialect
        )
    }

    public subscript(name: String) -> String? { self.fields.first(where: { $0.name == name })?.value }

    /// The received signature normalized to uppercase: for a validly signed callback it identifies the signed
    /// content (it is the MD5 of that content and the key), so two validly signed callbacks with the same
    /// signature are the same notification sent again. This is the callback de-duplication key.
    public var signedContentKey: String? {
        guard self.verdict == .valid, let sign = self["sign"] else { return nil }
        // Gateways send the MD5 in uppercase: then the received text is the key, with no new string.
        return sign.utf8.contains(where: { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") })
            ? sign.uppercased() : sign
    }
}

/// One attempt to query the gateway about an order, with whatever came back.
public struct QueryResult: Sendable, Hashable {
    /// What came back.
    public enum Outcome: Sendable, Hashable {
        /// A reply object: its members as text, whether it was enveloped, and the signature verdict.
        case reply(fields: [FormField], enveloped: Bool, verdict: SignatureVerdict, dialect: SigningDialect)
        /// The gateway's error envelope.
        case gatewayError(message: String)
        /// An HTTP answer that is not a reply (HTML, 5xx, malformed JSON).
        case unreadable(reason: String)
        /// No HTTP answer: a timeout, a refused connection, a reset.
        case transportError(message: String)
    }

    /// 1 for the first attempt.
    public var attempt: UInt32
    /// From sending the request to having the whole answer (or giving up).
    public var latencyMicroseconds: UInt64
    /// The poller's last attempt before the order's deadline: unless it shows the order paid, the order expires.
    public var final: Bool
    /// The HTTP status, when an HTTP answer arrived.
    public var httpStatus: UInt16?
    /// The first bytes of the answer body as received (bounded by the poller).
    public var body: [UInt8]
    public var outcome: Outcome

    public init(
        attempt: UInt32,
        latencyMicroseconds: UInt64,
        final: Bool,
        httpStatus: UInt16?,
        body: [UInt8],
        outcome: Outcome
    ) {
        self.attempt = attempt
        self.latencyMicroseconds = latencyMicroseconds
        self.final = final
        self.httpStatus = httpStatus
        self.body = body
        self.outcome = outcome
    }

    /// The reply, when there is one.
    public var reply: QueryReply? {
        if case .reply(let fields, let enveloped, _, _) = self.outcome {
            return QueryReply(fields: fields, enveloped: enveloped)
        }
        return nil
    }
}

/// The facts an event records.
public enum EventPayload: Sendable, Hashable {
    case orderCreated(OrderCreated)
    case callbackReceived(CallbackReceived)
    case queryResult(QueryResult)

    /// A generous estimate of the payload's encoded size, so the encoder allocates once.
    var estimatedEncodedBytes: Int {
        func fields(_ fields: [FormField]) -> Int {
            fields.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 }
        }
        switch self {
        case .orderCreated(let created):
            let request = created.request
            return 64 + created.gatewayURL.utf8.count + request.notifyURL.utf8.count + request.callbackURL.utf8.count
                + request.productName.utf8.count + (request.attach?.utf8.count ?? 0)
                + (request.productDesc?.utf8.count ?? 0) + (request.productURL?.utf8.count ?? 0)
                + (request.productNum?.utf8.count ?? 0) + 128
        case .callbackReceived(let callback):
            return 32 + callback.rawBody.count + callback.remoteAddress.utf8.count + fields(callback.fields)
        case .queryResult(let result):
            var size = 48 + result.body.count
            switch result.outcome {
            case .reply(let replyFields, _, _, _): size += fields(replyFields)
            case .gatewayError(let text), .unreadable(let text), .transportError(let text): size += text.utf8.count + 4
            }
            return size
        }
    }

    public var type: EventType {
        switch self {
        case .orderCreated: return .orderCreated
        case .callbackReceived: return .callbackReceived
        case .queryResult: return .queryResult
        }
    }
}

/// An event before the log has given it a place: what to append.
///
/// The payload's encoding is made here, by whoever makes the event (a request handler, on any core), not by the
/// log's one writer: the writer adds only the header and the hashes.
public struct PendingEvent: Sendable, Hashable {
    public var recordedAt: Instant
    public var orderId: String
    public var payload: EventPayload {
        didSet { self.encodedPayload = EventCodec.encodePayload(self.payload) }
    }
    /// `EventCodec`'s encoding of `payload`.
    public private(set) var encodedPayload: [UInt8]

    public init(recordedAt: Instant, orderId: String, payload: EventPayload) {
        self.recordedAt = recordedAt
        self.orderId = orderId
        self.payload = payload
        self.encodedPayload = EventCodec.encodePayload(payload)
    }

    /// The length of the sealed event's encoding, its hash included.
    public var encodedBytes: Int {
        EventCodec.headerBytes(orderIdBytes: self.orderId.utf8.count) + self.encodedPayload.count + 32
    }

    /// Gives the event its place in the log: its sequence number and its predecessor's hash, and computes its own
    /// hash over the deterministic encoding of everything else.
    public func sealed(sequence: UInt64, previousHash: Digest32) -> Event {
        self.sealedAndEncoded(sequence: sequence, previousHash: previousHash).event
    }

    /// Seals the event and returns its encoding too, encoding it only once (the hash is computed over the same
    /// bytes that are stored).
    public func sealedAndEncoded(sequence: UInt64, previousHash: Digest32) -> (event: Event, encoded: [UInt8]) {
        var hash = Digest32.zero
        let bytes = self.encodedBytes
        let encoded = [UInt8](unsafeUninitializedCapacity: bytes) { buffer, count in
            let exact = UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[0..<bytes]))
            hash = EventCodec.seal(self, sequence: sequence, previousHash: previousHash, into: exact)
            count = bytes
        }
        return (self.sealed(sequence: sequence, previousHash: previousHash, hash: hash), encoded)
    }

    /// The event at `sequence` with the hash `EventCodec.seal` computed for it.
    public func sealed(sequence: UInt64, previousHash: Digest32, hash: Digest32) -> Event {
        Event(
            sequence: sequence,
            recordedAt: self.recordedAt,
            orderId: self.orderId,
            previousHash: previousHash,
            hash: hash,
            payload: self.payload
        )
    }
}

/// An event in the log: its envelope and its facts.
public struct Event: Sendable, Hashable {
    /// The position in the log, from 1, without gaps.
    public var sequence: UInt64
    public var recordedAt: Instant
    public var orderId: String
    /// The hash of the event before it, `Digest32.zero` for the first.
    public var previousHash: Digest32
    /// SHA-256 over the deterministic encoding of every other part of the event.
    public var hash: Digest32
    public var payload: EventPayload

    public init(
        sequence: UInt64,
        recordedAt: Instant,
        orderId: String,
        previousHash: Digest32,
        hash: Digest32,
        payload: EventPayload
    ) {
        self.sequence = sequence
        self.recordedAt = recordedAt
        self.orderId = orderId
        self.previousHash = previousHash
        self.hash = hash
        self.payload = payload
    }

    public var type: EventType { self.payload.type }

    /// Whether `hash` is the hash of the rest of the event.
    public var hashIsValid: Bool { EventCodec.computeHash(of: self) == self.hash }
}
