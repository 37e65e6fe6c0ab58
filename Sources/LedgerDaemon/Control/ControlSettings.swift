import Foundation
public import LedgerCore

/// The control socket's settings: its bounds (`limits`, the daemon's `Limits.control`, read through it as if they
/// were its own: `settings.lineBytesMax`) and the peers allowed besides the daemon's own user and root.
///
/// Read from the environment as `LEDGERD_CONTROL_` and the key in upper snake case (for example
/// `LEDGERD_CONTROL_LINE_BYTES_MAX`), or from a `[String: String]` keyed like the configuration file.
@dynamicMemberLookup
public struct ControlSettings: Sendable, Hashable {
    /// `control.lineBytesMax`, `control.connectionsMax`, `control.jsonDepthMax`, `control.writeBufferBytesMax`,
    /// `control.idleTimeoutMs`, `control.requestsInFlightMax`, `control.subscriberQueueMax`, `control.eventsPageMax`.
    public var limits = ControlLimits()
    /// `control.allowedUids`: peer uids allowed besides the daemon's own and root, comma separated.
    public var allowedUids: Set<UInt32> = []
    /// `control.threads`: the event loops that serve control connections, apart from HTTP's. `order.history` and
    /// `order.get` read LMDB on the connection's own loop, so a read delays only the control connections that
    /// share that loop, and the answer is written without waking another thread. 8: a few operators' tools and
    /// scripts each get a loop of their own (with 8 busy clients, 4 loops kept the rate but doubled the slowest
    /// answers' wait); the threads sleep while nobody calls.
    public var threads = 8

    public init() {}

    public subscript<Value>(dynamicMember path: WritableKeyPath<ControlLimits, Value>) -> Value {
        get { self.limits[keyPath: path] }
        set { self.limits[keyPath: path] = newValue }
    }

    /// The configuration keys, for error messages and documentation.
    public static let keys = [
        "control.lineBytesMax", "control.connectionsMax", "control.jsonDepthMax", "control.writeBufferBytesMax",
        "control.idleTimeoutMs", "control.requestsInFlightMax", "control.subscriberQueueMax",
        "control.eventsPageMax", "control.allowedUids", "control.threads",
    ]

    /// Settings from values keyed like the configuration file (`control.lineBytesMax` …), checked.
    public static func load(_ values: [String: String]) throws -> ControlSettings {
        var settings = ControlSettings()
        func int(_ key: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let text = values[key] else { return nil }
            guard let value = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(value) else {
                throw ConfigurationError(
                    key: key,
                    message: "'\(text)' is not a whole number in \(range.lowerBound)...\(range.upperBound)"
                )
            }
            return value
        }
        settings.lineBytesMax = try int("control.lineBytesMax", 64...(64 << 20)) ?? settings.lineBytesMax
        settings.connectionsMax = try int("control.connectionsMax", 1...100_000) ?? settings.connectionsMax
        settings.jsonDepthMax = try int("control.jsonDepthMax", 2...512) ?? settings.jsonDepthMax
        settings.writeBufferBytesMax =
            try int("control.writeBufferBytesMax", 4096...(1 << 30)) ?? settings.writeBufferBytesMax
        settings.idleTimeout =
            try int("control.idleTimeoutMs", 100...86_400_000).map { .milliseconds($0) } ?? settings.idleTimeout
        settings.requestsInFlightMax =
            try int("control.requestsInFlightMax", 1...10_000) ?? settings.requestsInFlightMax
        settings.subscriberQueueMax =
            try int("control.subscriberQueueMax", 1...1_000_000) ?? settings.subscriberQueueMax
        settings.eventsPageMax = try int("control.eventsPageMax", 1...100_000) ?? settings.eventsPageMax
        settings.threads = try int("control.threads", 1...256) ?? settings.threads
        if let text = values["control.allowedUids"] {
            for part in text.split(separator: ",") {
                guard let uid = UInt32(part.trimmingCharacters(in: .whitespaces)) else {
                    throw ConfigurationError(key: "control.allowedUids", message: "'\(part)' is not a uid")
                }
                settings.allowedUids.insert(uid)
            }
        }
        try settings.validate()
        return settings
    }

    /// Settings from `LEDGERD_CONTROL_*` environment variables.
    public static func load(environment: [String: String]) throws -> ControlSettings {
        var values: [String: String] = [:]
        for key in Self.keys {
            if let value = environment[Self.environmentName(key)] { values[key] = value }
        }
        return try Self.load(values)
    }

    /// `control.lineBytesMax` → `LEDGERD_CONTROL_LINE_BYTES_MAX`.
    static func environmentName(_ key: String) -> String {
        var name = "LEDGERD_"
        for character in key {
            if character == "." {
                name += "_"
            } else if character.isUppercase {
                name += "_" + String(character)
            } else {
                name += character.uppercased()
            }
        }
        return name
    }

    /// The least each bound can work with, for settings built in code as well as loaded ones. The relations between
    /// the control socket's bounds and the others are `Limits.contradictions`, which the daemon's loader checks.
    public func validate() throws {
        guard self.writeBufferBytesMax >= 4096 else {
            throw ConfigurationError(key: "control.writeBufferBytesMax", message: "must be at least 4096")
        }
        guard self.lineBytesMax >= 64 else {
            throw ConfigurationError(key: "control.lineBytesMax", message: "must be at least 64")
        }
        guard self.jsonDepthMax >= 2 else {
            throw ConfigurationError(
                key: "control.jsonDepthMax",
                message: "must be at least 2 (a request and its params)"
            )
        }
    }
}
