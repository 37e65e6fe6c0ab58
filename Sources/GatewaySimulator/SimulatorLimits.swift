/// Every bound of the gateway simulator, in one place, each with what it bounds and why its default. `gateway-sim`
/// sets the notification's from its flags (`--notify-attempts-max`, `--notify-retry-delay-ms`,
/// `--notify-timeout-ms`); the rest are fixed. The relation that matters between the two processes (the pay form
/// of the largest order ledgerd allows fits `requestBytesMax`) is checked by the limits tests.
public struct SimulatorLimits: Sendable, Hashable {
    /// Sends of one notification at most: the first and the retries. Deployments retry 3 times
    /// (gateway-protocol.md §3), so 4.
    public var notifyAttemptsMax: Int
    /// Wait between two sends of a notification that was not acknowledged (deployments: about 10 s).
    public var notifyRetryDelay: Duration
    /// How long one notification POST may take before it counts as not acknowledged. 5 s: a merchant that has
    /// not answered by then is retried, as deployments do.
    public var notifyTimeout: Duration
    /// Bytes of a request body the simulator reads at most. 16 KiB: the pay form of the largest order ledgerd's
    /// default order bounds allow, every text in three-byte characters percent-encoded, is under 5 KiB.
    public var requestBytesMax: Int
    /// Bytes of a merchant's reply to a notification the simulator reads at most. 64 KiB: the reply is `OK`, and
    /// an error page is read far enough to be logged.
    public var replyBytesMax: Int

    public init(
        notifyAttemptsMax: Int = 4,
        notifyRetryDelay: Duration = .seconds(10),
        notifyTimeout: Duration = .seconds(5),
        requestBytesMax: Int = 16 << 10,
        replyBytesMax: Int = 64 << 10
    ) {
        self.notifyAttemptsMax = notifyAttemptsMax
        self.notifyRetryDelay = notifyRetryDelay
        self.notifyTimeout = notifyTimeout
        self.requestBytesMax = requestBytesMax
        self.replyBytesMax = replyBytesMax
    }
}
