import AsyncHTTPClient
import Foundation
import LedgerCore
import LedgerDaemon
import LedgerPostgres
import LedgerStore
import LedgerTesting
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

enum TestKeys {
    static let text = "daemon-test-key-0123"
    static let key = try! MerchantKey(text)
    static let memberId = "10001"
}

/// A configuration for tests: loopback, a free port, a fresh data directory, the test key.
func testConfiguration(directory: TemporaryDirectory, gatewayURL: String = "http://127.0.0.1:9") throws
    -> DaemonConfiguration
{
    let gateway = GatewaySettings.testing(memberId: TestKeys.memberId, baseURL: gatewayURL)
    var configuration = DaemonConfiguration(gateway: gateway, key: TestKeys.key)
    configuration.dataDirectory = directory.path + "/ledger"
    configuration.socketPath = directory.path + "/ledgerd.sock"
    configuration.httpPort = 0
    configuration.publicURL = "http://127.0.0.1:8080"
    return configuration
}

var testLogger: Logger {
    var logger = Logger(label: "ledgerd-test")
    logger.logLevel = .warning
    return logger
}

/// A logger that keeps what is logged at `.warning` and above, for tests that check what an operator would read.
final class CapturedLog: Sendable {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let entries = Mutex<[Entry]>([])

    var logger: Logger {
        Logger(label: "ledgerd-test") { _ in Handler(log: self) }
    }

    var all: [Entry] { self.entries.withLock { $0 } }

    private struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .warning

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { self.metadata[key] }
            set { self.metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let metadata = (event.metadata ?? [:]).mapValues { "\($0)" }
            self.log.entries.withLock {
                $0.append(Entry(level: event.level, message: "\(event.message)", metadata: metadata))
            }
        }
    }
}

/// A daemon running in this process on a free port, stopped when the closure returns.
struct RunningDaemon: Sendable {
    let daemon: LedgerDaemon
    let baseURL: String
}

func withRunningDaemon<T: Sendable>(
    _ configuration: DaemonConfiguration,
    clock: any LedgerClock = SystemLedgerClock(),
    logger: Logger = testLogger,
    _ body: @Sendable (RunningDaemon) async throws -> T
) async throws -> T {
    let daemon = LedgerDaemon(configuration: configuration, clock: clock, seed: 7, logger: logger)
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    let task = Task {
        try await daemon.run(onHTTPRunning: { channel in
            continuation.yield(channel.localAddress?.port ?? 0)
            continuation.finish()
        })
    }
    var iterator = ports.makeAsyncIterator()
    guard let port = await iterator.next() else {
        task.cancel()
        _ = try? await task.value
        throw TestFailure("the daemon did not start")
    }
    // Stopped gracefully, as SIGTERM would: cancelling a server mid-connection trips NIO's checks.
    do {
        let result = try await body(RunningDaemon(daemon: daemon, baseURL: "http://127.0.0.1:\(port)"))
        await daemon.shutdownHandle.shutdown()
        _ = try? await task.value
        return result
    } catch {
        await daemon.shutdownHandle.shutdown()
        _ = try? await task.value
        throw error
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Signed notification bodies as the gateway sends them, with the test key and member id.
enum Notifications {
    static func fields(
        orderId: String,
        amount: String = "12.5000",
        transactionId: String = "T1",
        returnCode: String = "00",
        memberId: String = TestKeys.memberId
    ) -> [FormField] {
        SignedNotification.fields(
            orderId: orderId,
            amount: amount,
            transactionId: transactionId,
            returnCode: returnCode,
            memberId: memberId,
            key: TestKeys.key
        )
    }

    static func body(_ fields: [FormField]) -> String { SignedNotification.body(fields) }
}

/// POSTs a body and returns status and body text.
func post(_ client: HTTPClient, _ url: String, body: String, contentType: String = "application/x-www-form-urlencoded")
    async throws -> (Int, String, HTTPHeaders)
{
    var request = HTTPClientRequest(url: url)
    request.method = .POST
    request.headers.add(name: "Content-Type", value: contentType)
    request.body = .bytes(ByteBuffer(string: body))
    let response = try await client.execute(request, timeout: .seconds(30))
    let bytes = try await response.body.collect(upTo: 1 << 20)
    return (Int(response.status.code), String(buffer: bytes), response.headers)
}

func get(_ client: HTTPClient, _ url: String) async throws -> (Int, String) {
    let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(30))
    let bytes = try await response.body.collect(upTo: 1 << 20)
    return (Int(response.status.code), String(buffer: bytes))
}

/// Shuts a client down without blocking the test's async context.
func shutdownLater(_ client: HTTPClient) {
    Task { try? await client.shutdown() }
}

/// The test PostgreSQL (`LEDGER_TEST_POSTGRES_URL`, which `.ci/run` sets): under `CI=true` a missing URL fails the
/// test; otherwise the test is cancelled (reported as skipped) with `note`.
func requirePostgresURL(_ note: String = "PostgreSQL tests need LEDGER_TEST_POSTGRES_URL; it is not set.") throws
    -> String
{
    guard let url = try PostgresTestURL.value() else { try Test.cancel(Comment(rawValue: note)) }
    return url
}

/// Store settings for a daemon on the test PostgreSQL, in a schema of its own so tests run in parallel and never
/// share data. Four connections are enough for one daemon; a full parallel test run on two cores is slow to connect.
func testPostgresSettings(url: String) throws -> PostgresStoreSettings {
    var postgres = PostgresStoreSettings(url: url, connection: try PostgresConnectionSettings(url: url))
    postgres.schema = PostgresTestURL.freshSchemaName()
    postgres.connectionsMax = 4
    postgres.connectTimeout = .seconds(30)
    return postgres
}
