import LedgerTesting
import Testing

@testable import LedgerCore

/// The error `bytes` are refused with, or nil when they decode.
private func decodingError(_ bytes: [UInt8], verifyHash: Bool = true) -> EventDecodingError? {
    do {
        _ = try EventCodec.decode(bytes, verifyHash: verifyHash)
        return nil
    } catch {
        return error
    }
}

/// `EventCodec.decodeEnvelope` over an array.
private func envelope(_ bytes: [UInt8]) throws(EventDecodingError) -> EventEnvelope {
    var result: Result<EventEnvelope, EventDecodingError>!
    bytes.withUnsafeBytes { raw in
        result = Result { () throws(EventDecodingError) -> EventEnvelope in try EventCodec.decodeEnvelope(raw) }
    }
    return try result.get()
}

/// `EventCodec.decode` over memory the caller owns, as the store calls it inside a read transaction.
private func decodeFromBuffer(_ bytes: [UInt8]) throws(EventDecodingError) -> Event {
    var result: Result<Event, EventDecodingError>!
    bytes.withUnsafeBytes { raw in
        result = Result { () throws(EventDecodingError) -> Event in try EventCodec.decode(raw) }
    }
    return try result.get()
}

/// The error `decodeEnvelope` refuses `bytes` with, or nil when it reads an envelope.
private func envelopeError(_ bytes: [UInt8]) -> EventDecodingError? {
    do {
        _ = try envelope(bytes)
        return nil
    } catch {
        return error
    }
}

/// The bytes of the fixed header: version, type, sequence, recordedAt and previousHash.
private let headerBytes = 1 + 1 + 8 + 8 + 32

/// A description of what a sample covers, for failure messages and the coverage check.
private struct Sample {
    let name: String
    let event: Event
}

/// Events of every kind and shape the codec must carry: optional fields present and absent, Chinese text, empty
/// bodies, every query outcome, with and without an HTTP status, extreme integers, a non-default dialect.
private func samples() throws -> [Sample] {
    var chain = LedgerChain()
    var samples: [Sample] = []
    func add(_ name: String, _ payload: EventPayload, orderId: String = LedgerFixture.orderId) {
        samples.append(Sample(name: name, event: chain.append(payload, orderId: orderId)))
    }
    add("order, no optional fields", try LedgerFixture.orderCreated())
    add(
        "order, every optional field, Chinese",
        try LedgerFixture.orderCreated(
            orderId: LedgerFixture.otherOrderId,
            amount: "0.01",
            productName: "年度会员",
            attach: "用户备注：周末送达",
            productNum: "12",
            productDesc: "年度会员 12 个月",
            productURL: "https://shop.example.com/p/12?from=扫码"
        ),
        orderId: LedgerFixture.otherOrderId
    )
    var variant = LedgerFixture.settings
    variant.dialect = SigningDialect(
        emptyValueRule: .phpEmpty,
        notificationFieldSet: .allReceived,
        acceptLowercaseHex: true
    )
    add("order, deployment dialect, empty attach", try LedgerFixture.orderCreated(attach: "", settings: variant))
    let genuine = LedgerFixture.notificationFields()
    add("callback, valid, Chinese attach", try LedgerFixture.callback(attach: "用户备注：周末送达"))
    add("callback, mismatch", try LedgerFixture.callback(signingKey: LedgerFixture.foreignKey))
    add(
        "callback, missing sign",
        try LedgerFixture.callback(fields: LedgerFixture.replacing("sign", with: "", in: genuine))
    )
    add(
        "callback, malformed sign",
        try LedgerFixture.callback(fields: LedgerFixture.replacing("sign", with: "0x", in: genuine))
    )
    add(
        "callback, empty body, no fields",
        .callbackReceived(
            CallbackReceived(rawBody: [], fields: [], remoteAddress: "", verdict: .missing, dialect: .document)
        )
    )
    add(
        "callback, allReceived dialect",
        try LedgerFixture.callback(fields: genuine, dialect: variant.dialect)
    )
    add("query, SUCCESS reply", try LedgerFixture.queryResult())
    add(
        "query, NOTPAY reply, enveloped, final",
        try LedgerFixture.queryResult(tradeState: "NOTPAY", enveloped: true, final: true)
    )
    add("query, forged reply", try LedgerFixture.queryResult(signingKey: LedgerFixture.foreignKey, attempt: 7))
    add(
        "query, gateway error, Chinese",
        LedgerFixture.failedQuery(
            .gatewayError(message: "签名错误"),
            httpStatus: 200,
            body: Array(#"{"status":"error","msg":"签名错误","data":null}"#.utf8)
        )
    )
    add(
        "query, unreadable, not UTF-8, 502",
        LedgerFixture.failedQuery(.unreadable(reason: "an HTML page"), httpStatus: 502, body: [0xC4, 0xE3, 0x3C, 0x68])
    )
    add("query, transport error, no status, empty body", LedgerFixture.failedQuery(.transportError(message: "reset")))
    add("query, transport error, empty message", LedgerFixture.failedQuery(.transportError(message: ""), final: true))
    add(
        "query, text that JSON must escape",
        LedgerFixture.failedQuery(
            .transportError(message: "line 1\nline 2\t\"quoted\" \\ \u{0} \u{1F} \u{2028} </script>"),
            body: Array("\u{0}\r\n{\"a\":\"\\\"}".utf8)
        )
    )
    add(
        "query, extreme integers",
        .queryResult(
            QueryResult(
                attempt: .max,
                latencyMicroseconds: .max,
                final: false,
                httpStatus: .max,
                body: Array(repeating: 0x41, count: 300),
                outcome: .reply(fields: [], enveloped: true, verdict: .missing, dialect: .document)
            )
        )
    )
    // The envelope's extremes: the last sequence number and an instant before the epoch.
    let extreme = PendingEvent(
        recordedAt: Instant(millisecondsSinceEpoch: -1),
        orderId: "x",
        payload: LedgerFixture.failedQuery(.unreadable(reason: "🙂 emoji"))
    ).sealed(sequence: .max, previousHash: Digest32(words: (.max, 1, 0, .max)))
    samples.append(Sample(name: "envelope extremes", event: extreme))
    return samples
}

/// A kind label per payload and outcome, to check the samples cover them all.
private func kind(of event: Event) -> String {
    switch event.payload {
    case .orderCreated: return "order"
    case .callbackReceived: return "callback"
    case .queryResult(let result):
        switch result.outcome {
        case .reply: return "reply"
        case .gatewayError: return "gateway-error"
        case .unreadable: return "unreadable"
        case .transportError: return "transport-error"
        }
    }
}

/// A realistic signed callback event, the subject of the corruption tests.
private func realisticCallback() throws -> Event {
    var chain = LedgerChain()
    chain.append(try LedgerFixture.orderCreated())
    return chain.append(try LedgerFixture.callback(attach: "用户备注"))
}

@Suite("Event codec")
struct EventCodecTests {
    // MARK: Round trips

    /// The samples cover every event kind, every query outcome, both HTTP status cases and both optional cases
    @Test func samplesCoverEveryShape() throws {
        let all = try samples()
        let kinds: Set = ["order", "callback", "reply", "gateway-error", "unreadable", "transport-error"]
        #expect(Set(all.map { kind(of: $0.event) }) == kinds)
        let statuses = all.compactMap { sample -> UInt16?? in
            guard case .queryResult(let result) = sample.event.payload else { return nil }
            return result.httpStatus
        }
        #expect(statuses.contains(where: { $0 == nil }))
        #expect(statuses.contains(where: { $0 != nil }))
        let attaches = all.compactMap { sample -> String?? in
            guard case .orderCreated(let created) = sample.event.payload else { return nil }
            return created.request.attach
        }
        #expect(attaches.contains(where: { $0 == nil }))
        #expect(attaches.contains(where: { $0 != nil }))
    }

    /// Decoding an encoded event gives the same event, for every kind and shape
    @Test func roundTripGivesTheSameEvent() throws {
        for sample in try samples() {
            let bytes = EventCodec.encode(sample.event)
            #expect(try EventCodec.decode(bytes) == sample.event, "\(sample.name)")
            #expect(try EventCodec.decode(bytes, verifyHash: false) == sample.event, "\(sample.name)")
            #expect(try decodeFromBuffer(bytes) == sample.event, "\(sample.name)")
        }
    }

    /// Both scopes refuse invalid UTF-8 in a field the projection skips, at the same offset: they accept exactly
    /// the same records
    @Test func projectionScopeChecksSkippedText() throws {
        var chain = LedgerChain()
        let event = chain.append(try LedgerFixture.orderCreated())
        var bytes = EventCodec.encode(event)
        // The gateway URL: after the order id (its length byte and 17 bytes) and the dialect byte.
        let urlOffset = headerBytes + 1 + LedgerFixture.orderId.utf8.count + 1
        bytes[urlOffset + 1] = 0xFF
        for scope in [EventCodec.Scope.full, .projection] {
            let error = bytes.withUnsafeBytes { raw -> EventDecodingError? in
                do throws(EventDecodingError) {
                    _ = try EventCodec.decode(raw, verifyHash: false, scope: scope)
                    return nil
                } catch {
                    return error
                }
            }
            #expect(error == EventDecodingError(reason: .invalidUTF8, offset: urlOffset), "\(scope)")
        }
    }

    /// An order id of 128 bytes or more takes a two-byte length: sealing sizes and writes it as encoding does
    @Test(arguments: [127, 128, 300])
    func sealingLongOrderIds(_ length: Int) throws {
        let orderId = String(repeating: "订", count: length / 3) + String(repeating: "x", count: length % 3)
        #expect(orderId.utf8.count == length)
        // Not a pay request's order id (those are at most 20 characters): a callback or a query may name any.
        let pending = PendingEvent(
            recordedAt: LedgerFixture.start,
            orderId: orderId,
            payload: LedgerFixture.failedQuery(.transportError(message: "reset"))
        )
        let (event, encoded) = pending.sealedAndEncoded(sequence: 42, previousHash: Digest32(words: (1, 2, 3, 4)))
        #expect(encoded == EventCodec.encode(event))
        #expect(encoded.count == pending.encodedBytes)
        #expect(try EventCodec.decode(encoded) == event)
    }

    /// The projection scope skips what the fold never reads, and folding its events gives the same states and
    /// effects as folding fully decoded ones: an order's life through every sample payload
    @Test func projectionScopeFoldsLikeFullDecode() throws {
        let payloads = try samples().map(\.event.payload)
        let chain = LedgerChain.of([try LedgerFixture.orderCreated()] + payloads + [try LedgerFixture.orderCreated()])
        var full = OrderState(orderId: LedgerFixture.orderId)
        var projected = OrderState(orderId: LedgerFixture.orderId)
        var skipped = 0
        for event in chain {
            let bytes = EventCodec.encode(event)
            let decoded = try bytes.withUnsafeBytes { raw in try EventCodec.decode(raw, scope: .projection) }
            #expect(
                decoded.sequence == event.sequence && decoded.hash == event.hash && decoded.orderId == event.orderId
            )
            #expect(projected.apply(decoded) == full.apply(event), "event \(event.sequence)")
            #expect(projected == full, "event \(event.sequence)")
            switch decoded.payload {
            case .orderCreated(let created):
                #expect(created.gatewayURL.isEmpty && created.request.sign.isEmpty && created.request.notifyURL.isEmpty)
                skipped += 1
            case .callbackReceived(let callback):
                #expect(callback.rawBody.isEmpty && callback.remoteAddress.isEmpty)
                skipped += 1
            case .queryResult(let result):
                #expect(result.body.isEmpty)
            }
        }
        #expect(skipped >= 3)
        #expect(full.status == .paid)
    }

    /// Encoding is deterministic: the same event, and its decoded copy, encode to the same bytes
    @Test func encodingIsDeterministic() throws {
        for sample in try samples() {
            let first = EventCodec.encode(sample.event)
            #expect(EventCodec.encode(sample.event) == first, "\(sample.name)")
            #expect(EventCodec.encode(try EventCodec.decode(first)) == first, "\(sample.name)")
            let pending = PendingEvent(
                recordedAt: sample.event.recordedAt,
                orderId: sample.event.orderId,
                payload: sample.event.payload
            )
            let resealed = pending.sealed(sequence: sample.event.sequence, previousHash: sample.event.previousHash)
            #expect(resealed == sample.event, "\(sample.name)")
            // Sealing writes the same bytes as encoding the sealed event: header, the pending payload's
            // encoding, the hash.
            let (sealed, encoded) = pending.sealedAndEncoded(
                sequence: sample.event.sequence,
                previousHash: sample.event.previousHash
            )
            #expect(sealed == sample.event && encoded == first, "\(sample.name)")
            #expect(pending.encodedBytes == first.count, "\(sample.name)")
            var changed = pending
            changed.payload = try LedgerFixture.orderCreated(orderId: "other")
            #expect(changed.encodedPayload != pending.encodedPayload, "a changed payload is encoded again")
        }
    }

    /// The encoding ends with the hash, which is SHA-256 of every byte before it
    @Test func encodingEndsWithHashOfTheRest() throws {
        for sample in try samples() {
            let bytes = EventCodec.encode(sample.event)
            #expect(Array(bytes.suffix(32)) == sample.event.hash.bytes, "\(sample.name)")
            #expect(EventCodec.sha256(bytes.dropLast(32)) == sample.event.hash, "\(sample.name)")
            #expect(bytes[0] == EventCodec.formatVersion)
        }
    }

    // MARK: Hashes

    /// Sealing a pending event sets its hash so that hashIsValid holds, and any later change breaks it
    @Test func sealedEventHasValidHash() throws {
        let event = PendingEvent(
            recordedAt: LedgerFixture.start,
            orderId: LedgerFixture.orderId,
            payload: try LedgerFixture.callback()
        ).sealed(sequence: 42, previousHash: .zero)
        #expect(event.hash != .zero)
        #expect(event.hashIsValid)
        #expect(EventCodec.computeHash(of: event) == event.hash)

        var changes: [(String, Event)] = []
        var changed = event
        changed.sequence = 43
        changes.append(("sequence", changed))
        changed = event
        changed.recordedAt = event.recordedAt.adding(milliseconds: 1)
        changes.append(("recordedAt", changed))
        changed = event
        changed.orderId = LedgerFixture.otherOrderId
        changes.append(("orderId", changed))
        changed = event
        changed.previousHash = Digest32(words: (0, 0, 0, 1))
        changes.append(("previousHash", changed))
        changed = event
        changed.payload = try LedgerFixture.callback(amount: "100.00")
        changes.append(("payload", changed))
        changed = event
        let words = event.hash.words
        changed.hash = Digest32(words: (words.0 ^ 1, words.1, words.2, words.3))
        changes.append(("hash", changed))
        for (name, altered) in changes {
            #expect(!altered.hashIsValid, "changing \(name) keeps the hash valid")
        }
    }

    /// Each event's previousHash is its predecessor's hash, the first's is zero, and sequence numbers rise by one
    @Test func hashesChain() throws {
        let events = try samples().map(\.event).dropLast()
        #expect(events.first?.previousHash == .zero)
        #expect(events.first?.sequence == 1)
        for (previous, next) in zip(events, events.dropFirst()) {
            #expect(next.previousHash == previous.hash)
            #expect(next.sequence == previous.sequence + 1)
            #expect(next.hashIsValid)
        }
        #expect(Set(events.map(\.hash)).count == events.count)
        // The chain survives the disk: decoding every event keeps every link.
        let decoded = try events.map { try EventCodec.decode(EventCodec.encode($0)) }
        for (previous, next) in zip(decoded, decoded.dropFirst()) { #expect(next.previousHash == previous.hash) }
    }

    /// The same payload sealed at another place in the chain gets another hash
    @Test func hashDependsOnPlace() throws {
        let pending = PendingEvent(
            recordedAt: LedgerFixture.start,
            orderId: LedgerFixture.orderId,
            payload: try LedgerFixture.callback()
        )
        let first = pending.sealed(sequence: 1, previousHash: .zero)
        #expect(pending.sealed(sequence: 2, previousHash: .zero).hash != first.hash)
        #expect(pending.sealed(sequence: 1, previousHash: first.hash).hash != first.hash)
    }

    // MARK: Corruption

    /// Every single-bit flip anywhere in an encoded event is detected, as a decoding error or a hash mismatch
    @Test func everyBitFlipIsDetected() throws {
        var created = LedgerChain()
        let events = [created.append(try LedgerFixture.orderCreated(attach: "备注")), try realisticCallback()]
        for event in events {
            let bytes = EventCodec.encode(event)
            var hashMismatches = 0
            var unnoticed: [String] = []
            for position in bytes.indices {
                for bit in 0..<8 {
                    var corrupted = bytes
                    corrupted[position] ^= 1 << bit
                    let error = decodingError(corrupted)
                    if error == nil { unnoticed.append("bit \(bit) of byte \(position)") }
                    if error?.reason == .hashMismatch { hashMismatches += 1 }
                }
            }
            #expect(unnoticed.isEmpty, "\(unnoticed.count) of \(bytes.count * 8) unnoticed: \(unnoticed.prefix(5))")
            // Most flips leave a decodable event; only the hash can catch those.
            #expect(hashMismatches > bytes.count)
        }
    }

    /// A flipped bit in the stored hash is a hash mismatch at the hash's offset, and decodes without verification
    @Test func corruptedHashIsReportedAtItsOffset() throws {
        let event = try realisticCallback()
        var bytes = EventCodec.encode(event)
        bytes[bytes.count - 1] ^= 0x01
        let error = decodingError(bytes)
        #expect(error?.reason == .hashMismatch)
        #expect(error?.offset == bytes.count - 32)
        let unverified = try EventCodec.decode(bytes, verifyHash: false)
        #expect(!unverified.hashIsValid)
        #expect(unverified.payload == event.payload)
    }

    /// Truncation at every length is reported as truncated, never a crash and never an event
    @Test func everyTruncationIsAnError() throws {
        for sample in try samples() {
            let bytes = EventCodec.encode(sample.event)
            var wrong: [String] = []
            for length in 0..<bytes.count {
                let error = decodingError(Array(bytes.prefix(length)))
                if error?.reason != .truncated || error.map({ $0.offset > length }) == true {
                    wrong.append("cut to \(length): \(error.map(String.init(describing:)) ?? "decoded")")
                }
                // The envelope reader must not crash either; when it can read something, it reads the right envelope
                // fields.
                if let partial = try? envelope(Array(bytes.prefix(length))) {
                    #expect(partial.sequence == sample.event.sequence)
                    #expect(partial.orderId == sample.event.orderId)
                }
            }
            #expect(wrong.isEmpty, "\(sample.name), \(bytes.count) bytes: \(wrong.prefix(5))")
        }
    }

    /// The envelope reader refuses a prefix too short to hold the envelope and a hash
    @Test func envelopeOfShortPrefixIsTruncated() throws {
        let event = try realisticCallback()
        let bytes = EventCodec.encode(event)
        let envelopeEnd = headerBytes + 1 + event.orderId.utf8.count
        for length in 0..<(envelopeEnd + 32) {
            #expect(envelopeError(Array(bytes.prefix(length)))?.reason == .truncated, "cut to \(length)")
        }
    }

    /// Bytes after the hash are reported as trailing bytes at the offset where they start
    @Test(arguments: [[0x00], [0xFF, 0x01, 0x02], Array(repeating: UInt8(0x41), count: 32)])
    func trailingBytesAreReported(extra: [UInt8]) throws {
        let bytes = EventCodec.encode(try realisticCallback())
        let error = decodingError(bytes + extra)
        #expect(error?.reason == .trailingBytes)
        #expect(error?.offset == bytes.count)
        #expect(decodingError(bytes + extra, verifyHash: false)?.reason == .trailingBytes)
    }

    /// An unknown format version is reported with the version, at offset 0, by both readers
    @Test(arguments: [UInt8(0), 2, 0x7F, 0xFF])
    func unknownVersionIsReported(version: UInt8) throws {
        var bytes = EventCodec.encode(try realisticCallback())
        bytes[0] = version
        let error = decodingError(bytes)
        #expect(error?.reason == .unknownFormatVersion(version))
        #expect(error?.offset == 0)
        #expect(envelopeError(bytes)?.reason == .unknownFormatVersion(version))
    }

    /// An unknown type tag is reported with the tag, at offset 1, by both readers
    @Test(arguments: [UInt8(0), 4, 0x80, 0xFF])
    func unknownTypeTagIsReported(tag: UInt8) throws {
        var bytes = EventCodec.encode(try realisticCallback())
        bytes[1] = tag
        let error = decodingError(bytes)
        #expect(error?.reason == .unknownEventType(tag))
        #expect(error?.offset == 1)
        #expect(envelopeError(bytes)?.reason == .unknownEventType(tag))
    }

    /// An out-of-range byte in a flag or code is an invalid value naming the field, at its offset
    @Test func invalidFlagValuesAreNamed() throws {
        let callback = try realisticCallback()
        var bytes = EventCodec.encode(callback)
        let verdictOffset = headerBytes + 1 + callback.orderId.utf8.count
        bytes[verdictOffset] = 9
        let verdictError = EventDecodingError(reason: .invalidValue("signature verdict"), offset: verdictOffset)
        #expect(decodingError(bytes) == verdictError)

        let query = LedgerChain.of([try LedgerFixture.queryResult()])[0]
        bytes = EventCodec.encode(query)
        let finalOffset = headerBytes + 1 + query.orderId.utf8.count + 4 + 8
        #expect(bytes[finalOffset] == 0)
        bytes[finalOffset] = 2
        #expect(decodingError(bytes) == EventDecodingError(reason: .invalidValue("final flag"), offset: finalOffset))
    }

    /// A length spelled with more bytes than it needs is refused, even under a hash that matches those bytes: one
    /// event has one encoding (the event fuzz target's re-encoding oracle caught the order id's length `11` written
    /// as `91 00` decoding to the same event, which then re-encoded to other bytes with another hash)
    @Test func nonMinimalLengthIsRefused() throws {
        let event = try realisticCallback()
        let bytes = EventCodec.encode(event)
        let lengthOffset = headerBytes
        let length = bytes[lengthOffset]
        #expect(length == UInt8(event.orderId.utf8.count) && length < 0x80)
        let rest = Array(bytes[(lengthOffset + 1)..<(bytes.count - 32)])
        let body = Array(bytes[..<lengthOffset]) + [length | 0x80, 0x00] + rest
        var writer = ByteWriter()
        writer.bytes = body
        writer.appendDigest(EventCodec.sha256(body))
        let refusal = EventDecodingError(reason: .invalidValue("length"), offset: lengthOffset)
        #expect(decodingError(writer.bytes) == refusal)
        #expect(decodingError(writer.bytes, verifyHash: false) == refusal)
        // The shortest spelling of every length still decodes.
        #expect(decodingError(bytes) == nil)
    }

    /// A text field that is not valid UTF-8 is reported as such, at the field's offset
    @Test func invalidUTF8IsReported() throws {
        let event = try realisticCallback()
        var bytes = EventCodec.encode(event)
        let orderIdOffset = headerBytes
        bytes[orderIdOffset + 1] = 0xFF
        let error = decodingError(bytes, verifyHash: false)
        #expect(error == EventDecodingError(reason: .invalidUTF8, offset: orderIdOffset))
    }

    // MARK: Envelope

    /// decodeEnvelope reads the same envelope fields as the full decode
    @Test func envelopeMatchesFullDecode() throws {
        for sample in try samples() {
            let bytes = EventCodec.encode(sample.event)
            let decoded = try EventCodec.decode(bytes)
            let read = try envelope(bytes)
            #expect(read.sequence == decoded.sequence, "\(sample.name)")
            #expect(read.type == decoded.type, "\(sample.name)")
            #expect(read.recordedAt == decoded.recordedAt, "\(sample.name)")
            #expect(read.orderId == decoded.orderId, "\(sample.name)")
            #expect(read.previousHash == decoded.previousHash, "\(sample.name)")
            #expect(read.hash == decoded.hash, "\(sample.name)")
        }
    }

    // MARK: JSON form

    /// The JSON text is valid JSON with the envelope keys, the stored type string and lowercase hex hashes
    @Test func jsonTextHasTheEnvelope() throws {
        for sample in try samples() {
            let event = sample.event
            let value = try JSONParser.parse(event.jsonText)
            let object = try #require(value.objectValue, "\(sample.name)")
            #expect(
                Set(object.keys) == ["sequence", "recordedAt", "type", "orderId", "previousHash", "hash", "data"],
                "\(sample.name)"
            )
            #expect(object["sequence"]?.numberText == String(event.sequence))
            #expect(object["recordedAt"]?.stringValue == event.recordedAt.description)
            #expect(object["type"]?.stringValue == event.type.rawValue)
            #expect(object["orderId"]?.stringValue == event.orderId)
            for key in ["previousHash", "hash"] {
                let hex = try #require(object[key]?.stringValue, "\(sample.name) \(key)")
                #expect(hex.utf8.count == 64, "\(sample.name) \(key)")
                let isLowerHex = hex.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
                #expect(isLowerHex, "\(sample.name) \(key) \(hex)")
            }
            #expect(object["previousHash"]?.stringValue.flatMap { Digest32(hex: $0) } == event.previousHash)
            #expect(object["hash"]?.stringValue.flatMap { Digest32(hex: $0) } == event.hash)
            #expect(object["data"]?.objectValue != nil, "\(sample.name)")
        }
    }

    /// The envelope of a concrete event prints the expected values
    @Test func jsonTextOfFirstEvent() throws {
        let event = LedgerChain.of([try LedgerFixture.orderCreated()])[0]
        let object = try #require(try JSONParser.parse(event.jsonText).objectValue)
        #expect(object["type"] == "order.created.v1")
        #expect(object["sequence"] == .number("1"))
        #expect(object["recordedAt"] == "2026-11-27T02:00:01.000Z")
        #expect(object["previousHash"] == .string(String(repeating: "0", count: 64)))
        #expect(object["orderId"] == .string(LedgerFixture.orderId))
        let data = try #require(object["data"]?.objectValue)
        #expect(data["amount"] == "100.00")
        #expect(data["amountFen"] == .number("10000"))
        #expect(data["productName"] == "测试商品")
        #expect(data["applyDate"] == "2026-11-27 10:00:00")
        #expect(!data.keys.contains("attach"))
        #expect(data["gatewayUrl"] == "https://gateway.example.cn/Pay_Index.html")
        #expect(data["dialect"] == "empty-string/documented/upper")
    }

    /// The JSON form prints an event recorded at any instant the type admits, the earliest ones included
    @Test func jsonTextAtExtremeInstants() async {
        // In a child process: `Instant.floorDiv` negates its argument, which traps for the first 1000 values from
        // Int64.min, and a trap here would stop every other test with it.
        await #expect(processExitsWith: .success) {
            for milliseconds in [Int64.min, Int64.min + 999, -1, 0, Int64.max] {
                let event = PendingEvent(
                    recordedAt: Instant(millisecondsSinceEpoch: milliseconds),
                    orderId: "x",
                    payload: LedgerFixture.failedQuery(.transportError(message: "reset"))
                ).sealed(sequence: 1, previousHash: .zero)
                _ = event.jsonText
            }
        }
    }

    /// Keys are sorted at every level of the JSON text
    @Test func jsonKeysAreSorted() throws {
        for sample in try samples() {
            let value = try JSONParser.parse(sample.event.jsonText)
            var unsorted: [[String]] = []
            Self.collectUnsortedKeys(value, into: &unsorted)
            #expect(unsorted.isEmpty, "\(sample.name): \(unsorted)")
        }
    }

    private static func collectUnsortedKeys(_ value: JSONValue, into unsorted: inout [[String]]) {
        switch value {
        case .object(let object):
            let keys = object.keys
            let sorted = keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            if keys != sorted { unsorted.append(keys) }
            for member in object.members { Self.collectUnsortedKeys(member.value, into: &unsorted) }
        case .array(let elements):
            for element in elements { Self.collectUnsortedKeys(element, into: &unsorted) }
        case .null, .bool, .number, .string:
            break
        }
    }

    /// The same event always prints the same JSON text, and so does its decoded copy
    @Test func jsonTextIsDeterministic() throws {
        for sample in try samples() {
            let text = sample.event.jsonText
            #expect(sample.event.jsonText == text, "\(sample.name)")
            #expect(try EventCodec.decode(EventCodec.encode(sample.event)).jsonText == text, "\(sample.name)")
        }
    }

    /// A query body that is not UTF-8 is printed as base64, and a missing HTTP status as null
    @Test func queryBodyAndStatusInJSON() throws {
        let events = LedgerChain.of([
            LedgerFixture.failedQuery(
                .unreadable(reason: "an HTML page"),
                httpStatus: 502,
                body: [0xC4, 0xE3, 0x3C, 0x68]
            ),
            LedgerFixture.failedQuery(.transportError(message: "reset")),
        ])
        let unreadable = try #require(try JSONParser.parse(events[0].jsonText)["data"]?.objectValue)
        #expect(unreadable["bodyBase64"] == "xOM8aA==")
        #expect(!unreadable.keys.contains("body"))
        #expect(unreadable["httpStatus"] == .number("502"))
        #expect(unreadable["outcome"]?["kind"] == "unreadable")
        let transport = try #require(try JSONParser.parse(events[1].jsonText)["data"]?.objectValue)
        #expect(transport["httpStatus"] == .null)
        #expect(transport["body"] == "")
        #expect(transport["final"] == false)
        #expect(transport["outcome"]?["kind"] == "transport-error")
        #expect(transport["outcome"]?["message"] == "reset")
    }

    /// Text with quotes, backslashes, control characters and line separators survives the JSON text exactly
    @Test func jsonTextPreservesEscapedText() throws {
        let message = "line 1\nline 2\t\"quoted\" \\ \u{0} \u{1F} \u{2028} </script> 中文"
        let body = "\u{0}\r\n{\"a\":\"\\\"}"
        let event = LedgerChain.of([
            LedgerFixture.failedQuery(.transportError(message: message), body: Array(body.utf8))
        ])[0]
        let data = try #require(try JSONParser.parse(event.jsonText)["data"]?.objectValue)
        #expect(data["outcome"]?["message"]?.stringValue == message)
        #expect(data["body"]?.stringValue == body)
    }

    /// A callback prints its raw body as text and its fields as an ordered list of name/value pairs
    @Test func callbackInJSON() throws {
        let event = try realisticCallback()
        guard case .callbackReceived(let callback) = event.payload else {
            Issue.record("not a callback")
            return
        }
        let data = try #require(try JSONParser.parse(event.jsonText)["data"]?.objectValue)
        #expect(data["rawBody"]?.stringValue == String(decoding: callback.rawBody, as: UTF8.self))
        #expect(data["verdict"] == "valid")
        #expect(data["remoteAddress"] == .string(LedgerFixture.remoteAddress))
        let fields = try #require(data["fields"]?.arrayValue)
        #expect(fields.compactMap { $0["name"]?.stringValue } == callback.fields.map(\.name))
        #expect(fields.compactMap { $0["value"]?.stringValue } == callback.fields.map(\.value))
        #expect(callback["attach"] == "用户备注")
    }
}
