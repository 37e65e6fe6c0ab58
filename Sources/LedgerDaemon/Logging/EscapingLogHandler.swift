import LedgerCore
public import Logging

/// A log handler that escapes control characters (`LogText.escape`) in the message, the metadata keys and values and
/// the error of every event before passing it to the handler it wraps.
///
/// Log lines quote text from outside: a refused form field's name, a peer's body, an order id a client typed. A
/// line-oriented handler such as swift-log's `StreamLogHandler` writes that text as it is, so a name carrying a
/// newline and a fake `… info ledgerd: order.id=… order paid by callback` would start a forged line at column 0.
/// Escaping here, once for every line, means no call site can forget it.
public struct EscapingLogHandler: LogHandler {
    private var wrapped: any LogHandler
    /// Kept here rather than in the wrapped handler, so it is escaped with the event's own metadata.
    public var metadata: Logger.Metadata
    /// Evaluated here rather than by the wrapped handler, for the same reason.
    public var metadataProvider: Logger.MetadataProvider?

    public init(wrapping handler: any LogHandler) {
        var handler = handler
        self.metadata = handler.metadata
        self.metadataProvider = handler.metadataProvider
        handler.metadata = [:]
        if handler.metadataProvider != nil { handler.metadataProvider = nil }
        self.wrapped = handler
    }

    public var logLevel: Logger.Level {
        get { self.wrapped.logLevel }
        set { self.wrapped.logLevel = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var event = event
        let merged = Self.merged(event, handlerMetadata: self.metadata, provider: self.metadataProvider)
        event.error = nil
        event.message = Logger.Message(stringLiteral: LogText.escape(event.message.description))
        event.metadata = merged.isEmpty ? nil : Self.escape(merged)
        self.wrapped.log(event: event)
    }

    /// An event's whole metadata: the handler's, the provider's, the event's own (each overriding the one before),
    /// and its error. The error's text is outside text too (a decoding error quotes what it refused), so it travels
    /// as metadata, escaped with the rest, under the keys `StreamLogHandler` itself uses for it.
    static func merged(
        _ event: LogEvent,
        handlerMetadata: Logger.Metadata,
        provider: Logger.MetadataProvider?
    ) -> Logger.Metadata {
        var merged = handlerMetadata
        if let provided = provider?.get() { merged.merge(provided) { _, new in new } }
        if let explicit = event.metadata { merged.merge(explicit) { _, new in new } }
        if let error = event.error {
            merged["error.message"] = .string("\(error)")
            merged["error.type"] = .string(String(reflecting: type(of: error)))
        }
        return merged
    }

    static func escape(_ metadata: Logger.Metadata) -> Logger.Metadata {
        var out = Logger.Metadata(minimumCapacity: metadata.count)
        for (key, value) in metadata { out[LogText.escape(key)] = Self.escape(value) }
        return out
    }

    static func escape(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch value {
        case .string(let text): return .string(LogText.escape(text))
        case .stringConvertible(let convertible): return .string(LogText.escape(convertible.description))
        case .dictionary(let dictionary): return .dictionary(Self.escape(dictionary))
        case .array(let values): return .array(values.map { Self.escape($0) })
        }
    }
}

extension Logger {
    /// This logger with its handler wrapped in an `EscapingLogHandler`; a logger already escaping is returned as it
    /// is, so wrapping twice costs nothing, and so is one writing JSON lines, which escape for themselves.
    public func escapingControlCharacters() -> Logger {
        guard !(self.handler is EscapingLogHandler), !(self.handler is JSONLogHandler) else { return self }
        var logger = self
        logger.handler = EscapingLogHandler(wrapping: self.handler)
        return logger
    }
}
