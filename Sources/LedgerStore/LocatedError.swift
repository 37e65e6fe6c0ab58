/// Where in the source an error was raised, as NIO's file-system errors record it: for the log, not for users.
public struct ErrorLocation: Sendable, Hashable, CustomStringConvertible {
    public var function: String
    public var file: String
    public var line: Int

    public var description: String { "\(self.function) (\(self.file):\(self.line))" }
}

/// An error of the ledger's own, as NIO's `FileSystemError` is shaped: a code from a closed set the control protocol
/// maps to its answers, the message clients see (`description`), the error that caused it (kept whole rather than
/// flattened into the message) and where it was raised, all in the debug form the daemon logs. Each layer names its
/// own codes (`StoreError`, `LedgerError`), so one shape serves every layer and a catch still matches one of them.
public struct LocatedError<Code>: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible
where Code: RawRepresentable & Sendable & Hashable, Code.RawValue == String {
    public var code: Code
    public var message: String
    public var cause: (any Error)?
    public var location: ErrorLocation

    public init(
        _ code: Code,
        _ message: String,
        cause: (any Error)? = nil,
        function: String = #function,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.cause = cause
        self.location = ErrorLocation(function: function, file: file, line: line)
    }

    public var description: String { self.message }

    public var debugDescription: String {
        var text = "\(self.code.rawValue): \(self.message)"
        if let cause = self.cause { text += " [cause: \(cause)]" }
        return text + " [at \(self.location)]"
    }
}
