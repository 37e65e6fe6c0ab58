import FuzzSupport
import LedgerCore

/// The event decoder (`EventCodec.decode` and `decodeEnvelope`) on arbitrary bytes, as a corrupted or hostile log
/// record would reach it.
///
/// Oracles: one encoding, one event — what decodes re-encodes to exactly the input bytes; the hash check only adds
/// a refusal, and passes once the hash is the content's; the projection scope accepts the same records, with the
/// same envelope, and folds to the same state; the envelope reader agrees with the full decoder on every record the
/// full decoder accepts.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEventDecoding(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    EventDecodingOracle.check(fuzzInput(data, size))
    return 0
}

enum EventDecodingOracle {
    static func decode(_ bytes: [UInt8], verifyHash: Bool, scope: EventCodec.Scope = .full) -> Result<Event, EventDecodingError> {
        bytes.withUnsafeBytes { buffer in
            Result { () throws(EventDecodingError) in
                try EventCodec.decode(buffer, verifyHash: verifyHash, scope: scope)
            }
        }
    }

    static func envelope(_ bytes: [UInt8]) -> Result<EventEnvelope, EventDecodingError> {
        bytes.withUnsafeBytes { buffer in
            Result { () throws(EventDecodingError) in try EventCodec.decodeEnvelope(buffer) }
        }
    }

    static func check(_ bytes: [UInt8]) {
        let plain = Self.decode(bytes, verifyHash: false)
        let verified = Self.decode(bytes, verifyHash: true)
        let skimmed = Self.decode(bytes, verifyHash: false, scope: .projection)
        let envelope = Self.envelope(bytes)
        guard case .success(let event) = plain else {
            if case .failure(let error) = plain {
                fuzzCheck(!error.description.isEmpty, "an empty refusal message")
                fuzzCheck(error.offset >= 0 && error.offset <= bytes.count, "a refusal offset outside the record")
            }
            fuzzCheck(!Self.succeeded(verified), "the hash check accepted what the decoder refuses")
            fuzzCheck(!Self.succeeded(skimmed), "the projection scope accepted what the decoder refuses")
            return
        }
        fuzzCheck(EventCodec.encode(event) == bytes, "a decoded event re-encodes to other bytes")

        let hashIsValid = EventCodec.computeHash(of: event) == event.hash
        switch verified {
        case .success(let checked):
            fuzzCheck(hashIsValid, "the hash check accepted a wrong hash")
            fuzzCheck(checked == event, "the hash check changed the event")
        case .failure(let error):
            fuzzCheck(!hashIsValid && error.reason == .hashMismatch, "the hash check refused for \(error)")
        }
        // With the content's hash in place the record verifies: the checked path runs for every decodable input.
        var rehashed = event
        rehashed.hash = EventCodec.computeHash(of: event)
        let fixed = EventCodec.encode(rehashed)
        fuzzCheck(Self.decode(fixed, verifyHash: true) == .success(rehashed), "a rehashed event does not verify")

        switch skimmed {
        case .success(let skim):
            fuzzCheck(
                skim.sequence == event.sequence && skim.orderId == event.orderId && skim.hash == event.hash
                    && skim.previousHash == event.previousHash && skim.recordedAt == event.recordedAt
                    && skim.type == event.type,
                "the projection scope changed the envelope"
            )
            var full = OrderState(orderId: event.orderId)
            var projected = full
            fuzzCheck(projected.apply(skim) == full.apply(event) && projected == full, "the projection scope folds to another state")
        case .failure(let error):
            fuzzCheck(false, "the projection scope refused a decodable event: \(error)")
        }

        switch envelope {
        case .success(let head):
            fuzzCheck(
                head.sequence == event.sequence && head.type == event.type && head.recordedAt == event.recordedAt
                    && utf8Bytes(head.orderId) == utf8Bytes(event.orderId) && head.previousHash == event.previousHash
                    && head.hash == event.hash,
                "the envelope reader disagrees with the decoder"
            )
        case .failure(let error):
            fuzzCheck(false, "the envelope reader refused a decodable event: \(error)")
        }
    }

    static func succeeded<T, E>(_ result: Result<T, E>) -> Bool {
        if case .success = result { return true }
        return false
    }
}
