/// The deterministic binary encoding of a projected order, for the store's projection table.
///
/// Projections are disposable (a rebuild recreates them from the log), but a stored one is still checked on the
/// way back in: a value that does not decode is an error, never a guess.
public enum OrderStateCodec {
    public static let formatVersion: UInt8 = 1

    public static func encode(_ state: OrderState) -> [UInt8] {
        var bytes: [UInt8] = []
        Self.encode(state, into: &bytes)
        return bytes
    }

    /// Encodes into `bytes`, replacing what it held but keeping its capacity: a flush of many orders reuses one
    /// buffer instead of allocating one per order.
    public static func encode(_ state: OrderState, into bytes: inout [UInt8]) {
        bytes.removeAll(keepingCapacity: true)
        var writer = ByteWriter(capacity: 0)
        // Swapped in and out, so the buffer's storage is never shared (and never copied on write).
        swap(&writer.bytes, &bytes)
        defer { swap(&writer.bytes, &bytes) }
        writer.append(Self.formatVersion)
        writer.appendText(state.orderId)
        writer.append(state.status.code)
        writer.append(state.flags.rawValue)
        writer.append(state.lastSequence)
        writer.append(state.eventCount)
        writer.append(state.queryAttempts)
        writer.appendOptionalInstant(state.lastQueryAt)
        if let order = state.order {
            writer.append(1 as UInt8)
            writer.appendText(order.memberId)
            writer.appendText(order.amount.text)
            writer.appendText(order.bankCode)
            writer.appendText(order.productName)
            writer.appendText(order.applyDate)
            writer.append(UInt64(bitPattern: order.createdAt.millisecondsSinceEpoch))
            writer.append(order.createdSequence)
        } else {
            writer.append(0 as UInt8)
        }
        if let payment = state.payment {
            writer.append(payment.source == .callback ? 1 as UInt8 : 2)
            writer.appendText(payment.transactionId)
            writer.appendText(payment.paidAt)
            writer.appendText(payment.amountText)
            writer.append(payment.sequence)
            writer.append(UInt64(bitPattern: payment.recordedAt.millisecondsSinceEpoch))
        } else {
            writer.append(0 as UInt8)
        }
        let counts = state.callbacks
        for classification in CallbackClassification.allCases { writer.append(counts[classification]) }
        writer.append(counts.received)
        writer.appendOptionalInstant(counts.firstAt)
        writer.appendOptionalInstant(counts.lastAt)
        writer.appendLength(state.seenSignatures.count)
        for signature in state.seenSignatures { writer.appendText(signature) }
    }

    public static func decode(_ bytes: [UInt8]) throws(EventDecodingError) -> OrderState {
        var result: Result<OrderState, EventDecodingError>!
        bytes.withUnsafeBytes { raw in
            result = Result { () throws(EventDecodingError) -> OrderState in try Self.decode(raw) }
        }
        return try result.get()
    }

    public static func decode(_ buffer: UnsafeRawBufferPointer) throws(EventDecodingError) -> OrderState {
        var reader = ByteReader(buffer)
        let version = try reader.u8()
        guard version == Self.formatVersion else {
            throw EventDecodingError(reason: .unknownFormatVersion(version), offset: 0)
        }
        var state = OrderState(orderId: try reader.text())
        let statusOffset = reader.offset
        guard let status = OrderStatus(code: try reader.u8()) else {
            throw EventDecodingError(reason: .invalidValue("order status"), offset: statusOffset)
        }
        state.status = status
        state.flags = ReviewFlags(rawValue: try reader.u16())
        state.lastSequence = try reader.u64()
        state.eventCount = try reader.u32()
        state.queryAttempts = try reader.u32()
        state.lastQueryAt = try reader.optionalInstant()
        let orderOffset = reader.offset
        switch try reader.u8() {
        case 0: break
        case 1:
            let memberId = try reader.text()
            let amountOffset = reader.offset
            let amountText = try reader.text()
            guard case .success(let amount) = OrderAmount.parse(amountText, fenMax: .max / 100) else {
                throw EventDecodingError(reason: .invalidValue("order amount"), offset: amountOffset)
            }
            state.order = OrderSummary(
                memberId: memberId,
                amount: amount,
                bankCode: try reader.text(),
                productName: try reader.text(),
                applyDate: try reader.text(),
                createdAt: Instant(millisecondsSinceEpoch: Int64(bitPattern: try reader.u64())),
                createdSequence: try reader.u64()
            )
        default: throw EventDecodingError(reason: .invalidValue("order marker"), offset: orderOffset)
        }
        let paymentOffset = reader.offset
        let paymentMarker = try reader.u8()
        switch paymentMarker {
        case 0: break
        case 1, 2:
            state.payment = Payment(
                source: paymentMarker == 1 ? .callback : .query,
                transactionId: try reader.text(),
                paidAt: try reader.text(),
                amountText: try reader.text(),
                sequence: try reader.u64(),
                recordedAt: Instant(millisecondsSinceEpoch: Int64(bitPattern: try reader.u64()))
            )
        default: throw EventDecodingError(reason: .invalidValue("payment marker"), offset: paymentOffset)
        }
        for classification in CallbackClassification.allCases { state.callbacks[classification] = try reader.u32() }
        state.callbacks.received = try reader.u32()
        state.callbacks.firstAt = try reader.optionalInstant()
        state.callbacks.lastAt = try reader.optionalInstant()
        let countOffset = reader.offset
        let count = try reader.length()
        guard count <= OrderState.seenSignaturesMax else {
            throw EventDecodingError(reason: .invalidValue("signature count"), offset: countOffset)
        }
        for _ in 0..<count { state.seenSignatures.append(try reader.text()) }
        guard reader.isAtEnd else { throw EventDecodingError(reason: .trailingBytes, offset: reader.offset) }
        return state
    }
}

extension OrderStatus {
    /// The one-byte code used in stored projections and the by-status index.
    public var code: UInt8 {
        switch self {
        case .unknown: return 0
        case .created: return 1
        case .paid: return 2
        case .expired: return 3
        }
    }

    public init?(code: UInt8) {
        switch code {
        case 0: self = .unknown
        case 1: self = .created
        case 2: self = .paid
        case 3: self = .expired
        default: return nil
        }
    }
}

extension ByteWriter {
    mutating func appendOptionalInstant(_ instant: Instant?) {
        if let instant {
            self.append(1 as UInt8)
            self.append(UInt64(bitPattern: instant.millisecondsSinceEpoch))
        } else {
            self.append(0 as UInt8)
        }
    }
}

extension ByteReader {
    mutating func optionalInstant() throws(EventDecodingError) -> Instant? {
        let start = self.offset
        switch try self.u8() {
        case 0: return nil
        case 1: return Instant(millisecondsSinceEpoch: Int64(bitPattern: try self.u64()))
        default: throw EventDecodingError(reason: .invalidValue("optional marker"), offset: start)
        }
    }
}
