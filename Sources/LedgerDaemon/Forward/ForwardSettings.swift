import Foundation
public import LedgerCore

/// One shop endpoint the ledger forwards order outcomes to (`forward.url`, `forward.secretFile`).
public struct ForwardReceiver: Sendable, Hashable {
    /// The URL each outcome is POSTed to; also the key its deliveries are stored under.
    public var url: String
    /// One or two secrets (a rotation): each signs every request with its own `v1=`.
    public var secrets: [[UInt8]]

    public init(url: String, secrets: [[UInt8]]) {
        self.url = url
        self.secrets = secrets
    }
}

/// Forwarding's settings (`forward.*`). With no receiver, nothing is forwarded and the forwarder does not run.
/// Its bounds (`forward.timeoutMs`, `forward.concurrency`, `forward.outboxMax`, `forward.concurrencyUnderLoad`,
/// `forward.yieldMaxMs`) are `limits`, a group of the daemon's `Limits`, and read through it as if they were its own
/// (`settings.concurrency`).
@dynamicMemberLookup
public struct ForwardSettings: Sendable, Hashable {
    /// `forward.url` with `forward.secretFile`, in the same order (lists, comma-separated in the environment).
    public var receivers: [ForwardReceiver] = []
    /// `forward.schedule`: the delays, in milliseconds, before each attempt (comma-separated).
    public var schedule: ForwardSchedule = .standard
    /// `forward.writeIntervalMs`: the forwarder writes its state (results, new deliveries, position) to the store at
    /// most this often. Each write is a commit with a sync on the store's one writer, which the ledger's appends
    /// share; at 100 ms the forwarder takes at most ten of them a second however fast the shop answers. 0 writes
    /// after every turn.
    public var writeInterval: Duration = .milliseconds(100)
    /// `forward.pollIntervalMs`: how often the forwarder looks at the log when no append has woken it (appends by
    /// other daemons on a shared store, or a missed wake-up).
    public var pollInterval: Duration = .seconds(1)
    /// The bounds: `forward.timeoutMs`, `forward.concurrency`, `forward.outboxMax`, `forward.concurrencyUnderLoad`,
    /// `forward.yieldMaxMs`.
    public var limits = ForwardLimits()

    public init() {}

    public subscript<Value>(dynamicMember path: WritableKeyPath<ForwardLimits, Value>) -> Value {
        get { self.limits[keyPath: path] }
        set { self.limits[keyPath: path] = newValue }
    }

    public var enabled: Bool { !self.receivers.isEmpty }

    /// Reads a secret file: owner-only like the merchant key file, one secret per line (two during a rotation),
    /// blank lines ignored. Throws a sentence naming what to fix.
    public static func readSecrets(path: String) throws(ForwardSettingsError) -> [[UInt8]] {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else {
            throw ForwardSettingsError(
                "cannot read the forward secret file \(path); write the shared secret into it (chmod 600)"
            )
        }
        if let mode = (attributes[.posixPermissions] as? NSNumber)?.uint16Value, mode & 0o077 != 0 {
            throw ForwardSettingsError(
                "the forward secret file \(path) is readable by others (mode \(String(mode & 0o777, radix: 8))); "
                    + "run chmod 600 \(path)"
            )
        }
        guard let data = FileManager.default.contents(atPath: path), data.count <= ForwardLimits.secretFileBytesMax
        else {
            throw ForwardSettingsError(
                "the forward secret file \(path) is unreadable or larger than \(ForwardLimits.secretFileBytesMax) bytes"
            )
        }
        let lines = Array(data).split(separator: UInt8(ascii: "\n")).map { line -> [UInt8] in
            var line = Array(line)
            while let last = line.last,
                last == UInt8(ascii: "\r") || last == UInt8(ascii: " ") || last == UInt8(ascii: "\t")
            {
                line.removeLast()
            }
            return line
        }.filter { !$0.isEmpty }
        guard !lines.isEmpty else { throw ForwardSettingsError("the forward secret file \(path) holds no secret") }
        guard lines.count <= ForwardSignature.secretsMax else {
            throw ForwardSettingsError(
                "the forward secret file \(path) holds \(lines.count) secrets; "
                    + "at most \(ForwardSignature.secretsMax) (the current and the next)"
            )
        }
        guard lines.allSatisfy({ $0.count >= 16 }) else {
            throw ForwardSettingsError("each forward secret in \(path) must be at least 16 bytes")
        }
        return lines
    }

    /// Parses `forward.schedule`: milliseconds, comma-separated.
    public static func parseSchedule(_ text: String) throws(ForwardSettingsError) -> ForwardSchedule {
        var delays: [Int64] = []
        for part in text.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            let trimmed = String(decoding: part.filter { $0 != UInt8(ascii: " ") }, as: UTF8.self)
            guard let delay = Int64(trimmed) else {
                throw ForwardSettingsError("'\(trimmed)' is not a whole number of milliseconds")
            }
            delays.append(delay)
        }
        let schedule = ForwardSchedule(delaysMilliseconds: delays)
        if let problem = schedule.problem { throw ForwardSettingsError(problem) }
        return schedule
    }
}

/// A forwarding setting that cannot be used, in a sentence.
public struct ForwardSettingsError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
