// Waiting for what a daemon, a simulator or a child process does in the background: real time, always bounded, so a
// test or a scenario that waits in vain fails instead of hanging.

/// Checks `condition` every 50 ms until it holds or `seconds` have passed, then once more; whether it held. An error
/// `condition` throws ends the wait.
public func eventually(seconds: Double = 30, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}

/// Waits as `eventually(seconds:_:)` does, 90 s by default (the whole test suite shares two cores, where a request
/// can wait seconds for a thread), and throws, naming `what`, when `condition` never held.
public func eventually(
    _ what: String,
    seconds: Double = 90,
    _ condition: () async throws -> Bool
) async throws {
    guard try await eventually(seconds: seconds, condition) else {
        throw HarnessError("timed out waiting until \(what)")
    }
}
