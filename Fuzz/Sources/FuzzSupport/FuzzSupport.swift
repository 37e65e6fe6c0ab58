// What every fuzz target shares. A target's entry point is `LLVMFuzzerTestOneInput`; it returns normally for every
// input the code under test handles as specified, and stops the process (a trap, which libFuzzer reports and saves
// as `crash-…`) when the code crashes or an oracle disagrees.

/// Stops the process with `message` unless `condition` holds: an oracle's disagreement is a finding, as a crash is.
@inline(__always)
public func fuzzCheck(
    _ condition: @autoclosure () -> Bool,
    _ message: @autoclosure () -> String,
    file: StaticString = #fileID,
    line: UInt = #line
) {
    if !condition() { fatalError("oracle: \(message())", file: file, line: line) }
}

/// The input libFuzzer hands over, copied into an array (libFuzzer's buffer is only valid during the call).
public func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}

/// Text as its exact UTF-8 bytes. Swift compares strings by canonical equivalence ("é" precomposed equals "e" and
/// a combining accent); the oracles compare bytes, because a round trip must give back what was written.
public func utf8Bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

