import Foundation

/// Every bound of the control socket, in one place, each with its configuration key (`control.*`).
///
/// Read from the environment as `LEDGERD_CONTROL_` and the key in upper snake case (for example
/// `LEDGERD_CONTROL_LINE_BYTES_MAX`), or from a `[String: String]` keyed like the configuration file.
public struct ControlSettings: Sendable, Hashable {
    /// `control.lineBytesMax`: the longest request line, newline excluded. A longer line gets an error and the
    /// connection is closed, because the framing is lost once a line is cut.
    public var lineBytesMax: Int = 1 << 20
    /// `control.connectionsMax`: open control connections at once; one more is told so and closed.
    public var connectionsMax: Int = 64
    /// `control.jsonDepthMax`: the deepest nesting of a request's arrays and objects.
    public var jsonDepthMax: Int = 32
    /// `control.writeBufferBytesMax`: output queued for one client that does not read, beyond the message being
    /// written (so one large answer never counts as not reading); past it the client is dropped, so a stuck
    /// client cannot grow the daemon's memory. Output over it also stops the daemon reading the client's requests
    /// until the output drains below half of it.
    public var writeBufferBytesMax: Int = 8 << 20
    /// `control.idleTimeoutMs`: a connection with nothing in flight, no subscription and no input for this long
    /// is closed.
    public var idleTimeout: Duration = .seconds(300)
    /// `control.requestsInFlightMax`: requests one connection may have running at once. A client that pipelines
    /// more is slowed, never refused: the daemon stops reading its connection until answers drain.
    public var requestsInFlightMax: Int = 32
    /// `control.subscriberQueueMax`: events queued for one `events.subscribe` before the subscriber is dropped.
    public var subscriberQueueMax: Int = 4096
    /// `control.eventsPageMax`: the most events one `events.read` returns.
    public var eventsPageMax: Int = 1000
    /// `control.allowedUids`: peer uids allowed besides the daemon's own and root, comma separated.
    public var allowedUids: Set<UInt32> = []

    public init() {}

    /// The configuration keys, for error messages and documentation.
    public static let keys = [
        "control.lineBytesMax", "control.connectionsMax", "control.jsonDepthMax", "control.writeBufferBytesMax",
        "control.idleTimeoutMs", "control.requestsInFlightMax", "control.subscriberQueueMax",
        "control.eventsPageMax", "control.allowedUids",
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

    /// The relations between the bounds.
    public func validate() throws {
        // One response must fit in the write buffer, or a client that reads promptly would be dropped as slow;
        // an events page of the largest events is the biggest response.
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
