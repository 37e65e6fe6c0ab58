import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerTesting
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Signed notification bodies as the gateway sends them, with the suite's merchant.
enum Notification {
    static func fields(
        orderId: String,
        amount: String = "12.5000",
        transactionId: String? = nil,
        returnCode: String = "00",
        memberId: String = TestMerchant.memberId,
        key: MerchantKey = TestMerchant.key
    ) -> [FormField] {
        SignedNotification.fields(
            orderId: orderId,
            amount: amount,
            transactionId: transactionId ?? "T" + orderId,
            returnCode: returnCode,
            memberId: memberId,
            key: key
        )
    }

    static func body(_ fields: [FormField]) -> String { SignedNotification.body(fields) }

    static func body(orderId: String) -> String { Self.body(Self.fields(orderId: orderId)) }
}

/// One scenario's outcome for the summary table.
struct ScenarioReport: Sendable {
    var name: String
    var cases = 0
    var passed = 0
    var figures: [String] = []
    var failures: [String] = []
    var skipped: String?

    init(_ name: String) { self.name = name }

    /// Counts one case, recording why it failed when it did.
    mutating func check(_ condition: Bool, _ message: @autoclosure () -> String) {
        self.cases += 1
        if condition {
            self.passed += 1
        } else {
            self.fail(message())
        }
    }

    mutating func fail(_ message: String) {
        self.failures.append(message)
        print("  FAILED [\(self.name)]: \(message)")
        fflush(nil)
    }

    var ok: Bool { self.failures.isEmpty && self.passed == self.cases }
}

/// A value shared by concurrent tasks.
final class Shared<Value: Sendable>: Sendable {
    private let state: Mutex<Value>
    init(_ value: Value) { self.state = Mutex(value) }
    func with<T: Sendable>(_ body: (inout Value) -> T) -> T { self.state.withLock { body(&$0) } }
    var value: Value { self.state.withLock { $0 } }
}

/// Waits (real time, bounded) until `condition` holds; the answer says whether it did. An error on the way (a daemon
/// that is restarting refuses connections) counts as "not yet" rather than ending the wait, except on the last check.
func eventuallyIgnoringErrors(seconds: Double = 30, _ condition: () async throws -> Bool) async throws -> Bool {
    if try await LedgerTesting.eventually(seconds: seconds, { (try? await condition()) == true }) { return true }
    return try await condition()
}

/// Prints a progress line at once (the suite runs for minutes; its output is read while it runs).
func say(_ text: String) {
    print(text)
    fflush(nil)
}

/// Left-aligned table cells, the way `ledgerctl` prints tables.
func table(_ header: [String], _ rows: [[String]]) -> String {
    var widths = header.map(\.count)
    for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { index, cell in
            index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }
    return ([line(header), line(widths.map { String(repeating: "-", count: $0) })] + rows.map(line)).joined(
        separator: "\n"
    )
}
