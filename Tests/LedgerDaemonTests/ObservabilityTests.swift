import AsyncHTTPClient
import Foundation
import LedgerControlProtocol
import LedgerCore
import LedgerDaemon
import LedgerStore
import LedgerTesting
import Logging
import NIOCore
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// One sample of the Prometheus text format: `name{label="value",…} value`.
struct MetricSample: Sendable {
    var name: String
    var labels: [String: String]
    var value: Double
}

/// The Prometheus text exposition, parsed: samples, and the families that have `# HELP` and `# TYPE` lines.
struct Exposition: Sendable {
    var samples: [MetricSample] = []
    var help: Set<String> = []
    var types: [String: String] = [:]

    init(_ text: String) throws {
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# HELP ") {
                self.help.insert(String(line.dropFirst(7).split(separator: " ")[0]))
            } else if line.hasPrefix("# TYPE ") {
                let parts = line.dropFirst(7).split(separator: " ")
                self.types[String(parts[0])] = String(parts[1])
            } else {
                self.samples.append(try Self.sample(line))
            }
        }
    }

    /// Label values here are ours and never hold `"` or `,`, so a plain split reads them.
    static func sample(_ line: Substring) throws -> MetricSample {
        guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
            throw TestFailure("not a sample: \(line)")
        }
        let series = line[..<space]
        guard let brace = series.firstIndex(of: "{") else {
            return MetricSample(name: String(series), labels: [:], value: value)
        }
        var labels: [String: String] = [:]
        for pair in series[series.index(after: brace)..<series.index(before: series.endIndex)].split(separator: ",") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            labels[String(parts[0])] = String(parts[1].dropFirst().dropLast())
        }
        return MetricSample(name: String(series[..<brace]), labels: labels, value: value)
    }

    /// The family a sample belongs to: a histogram's `_bucket`, `_sum` and `_count` series are its family's.
    func family(of sample: MetricSample) -> String {
        for suffix in ["_bucket", "_sum", "_count"] where sample.name.hasSuffix(suffix) {
            let base = String(sample.name.dropLast(suffix.count))
            if self.types[base] == "histogram" { return base }
        }
        return sample.name
    }

    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        self.samples.first { sample in
            sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
        }?.value
    }
}

/// Each `(variable, value, key)` set over `environment` stops the load with a `ConfigurationError` naming `key`.
func expectRefusals(
    _ environment: [String: String],
    _ refusals: [(variable: String, value: String, key: String)],
    sourceLocation: SourceLocation = #_sourceLocation
) async {
    for (variable, value, key) in refusals {
        var refused = environment
        refused[variable] = value
        await #expect(sourceLocation: sourceLocation) {
            _ = try await DaemonConfiguration.load(flags: [:], environment: refused, file: nil)
        } throws: { error in
            (error as? ConfigurationError)?.key == key
        }
    }
}

/// A daemon with both listeners (`http.adminListen` set) running in this process, stopped when `body` returns.
func withAdminListener<T: Sendable>(
    _ configuration: DaemonConfiguration,
    _ body: @Sendable (_ daemon: LedgerDaemon, _ publicPort: Int, _ adminPort: Int) async throws -> T
) async throws -> T {
    let daemon = LedgerDaemon(configuration: configuration, seed: 7, logger: testLogger)
    let (ports, continuation) = AsyncStream<(String, Int)>.makeStream()
    let task = Task {
        // A daemon that fails to start ends the stream, so the wait below ends too.
        defer { continuation.finish() }
        try await daemon.run(
            onHTTPRunning: { continuation.yield(("public", $0.localAddress?.port ?? 0)) },
            onAdminRunning: { continuation.yield(("admin", $0.localAddress?.port ?? 0)) }
        )
    }
    var bound: [String: Int] = [:]
    for await (role, port) in ports {
        bound[role] = port
        if bound.count == 2 { break }
    }
    guard let publicPort = bound["public"], let adminPort = bound["admin"] else {
        await daemon.shutdownHandle.shutdown()
        _ = try? await task.value
        throw TestFailure("the daemon's listeners did not start")
    }
    do {
        let result = try await body(daemon, publicPort, adminPort)
        await daemon.shutdownHandle.shutdown()
        try await task.value
        return result
    } catch {
        await daemon.shutdownHandle.shutdown()
        _ = try? await task.value
        throw error
    }
}

/// One request from a loopback source address, `Connection: close`; the whole answer.
func exchange(port: Int, from source: String = "127.0.0.1", _ request: String) async throws -> String {
    try await blocking {
        let client = try LoopbackClient(port: port, from: source)
        client.send(request)
        return client.readToEnd().text
    }
}

/// A `POST /notify` request with extra header lines.
func notifyRequest(_ body: String, headers: [String] = []) -> String {
    "POST /notify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        + headers.map { $0 + "\r\n" }.joined() + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
}

/// Logging, metrics and the listeners an operator runs the daemon with, against the real daemon over real sockets.
@Suite(.serialized) struct ObservabilityTests {
    /// A notification signed under PHP's empty() rule (its returncode is "0"), which the document's dialect refuses.
    static func phpEmptySigned(orderId: String) -> [FormField] {
        var fields = Notifications.fields(orderId: orderId, returnCode: "0")
        fields.removeLast()
        let dialect = SigningDialect(emptyValueRule: .phpEmpty)
        let sign = Signer.canonical(fields, kind: .notify, dialect: dialect).signature(key: TestKeys.key)
        fields.append(FormField("sign", sign))
        return fields
    }

    /// A refused forgery leaves one warning with the signing diagnosis `ledgerctl sign --verify` gives (the setting
    /// that would accept it, or that none would) and never the expected signature; a foreign member id says whose
    /// it is; each is counted by cause.
    @Test func refusedNotificationsAreLoggedWithTheDiagnosis() async throws {
        let directory = TemporaryDirectory()
        let log = CapturedLog()
        let php = Self.phpEmptySigned(orderId: "A1")
        // An unsigned extra field whose name carries a newline and a fake line: the diagnosis's hints quote it.
        let stranger = SignedNotification.forged(Notifications.fields(orderId: "A1"))
        let strangerBody = Notifications.body(stranger) + "&x%0Afake line=%20y"
        let metrics = try await withRunningDaemon(try testConfiguration(directory: directory), logger: log.logger) {
            running in
            let client = HTTPClient()
            defer { shutdownLater(client) }
            let url = running.baseURL + "/notify"
            #expect(try await post(client, url, body: Notifications.body(php)).0 == 403)
            #expect(try await post(client, url, body: strangerBody).0 == 403)
            let foreign = Notifications.fields(orderId: "A1", memberId: "99999")
            #expect(try await post(client, url, body: Notifications.body(foreign)).0 == 403)
            return try Exposition(try await get(client, running.baseURL + "/metrics").1)
        }
        let lines = log.all.filter { $0.message == "refused a notification the gateway did not vouch for" }
        #expect(lines.count == 3, "\(log.all)")
        #expect(lines.map { $0.metadata["reason"] } == ["bad-signature", "bad-signature", "foreign-member"])
        #expect(lines.first?.metadata["signature.diagnosis"] == "matches under signing.emptyValueRule=php-empty")
        #expect(lines.first?.metadata["signature.explanation"]?.contains("PHP's empty()") == true)
        #expect(lines.dropFirst().first?.metadata["signature.diagnosis"] == "matches no known dialect")
        let hints = try #require(lines.dropFirst().first?.metadata["signature.explanation"])
        #expect(hints.contains("x\\nfake line begins or ends with a space"), "\(hints)")
        #expect(!hints.utf8.contains(0x0A))
        #expect(lines.last?.metadata["signature.diagnosis"] == "signed for member id 99999, not 10001")
        #expect(lines.allSatisfy { $0.metadata["remote"]?.hasPrefix("127.0.0.1:") == true })
        // What the document's dialect expects for the PHP-signed one is never written.
        let expected = Signer.diagnose(php, kind: .notify, key: TestKeys.key).expected
        #expect(!log.all.contains { entry in entry.metadata.values.contains { $0.contains(expected) } })
        let refused = "ledger_notifications_refused_total"
        #expect(metrics.value(refused, ["cause": "signature-mismatch"]) == 2)
        #expect(metrics.value(refused, ["cause": "foreign-member"]) == 1)
        #expect(metrics.value(refused, ["cause": "malformed"]) == 0)
    }

    /// A flood of forgeries writes limits.http.rejectLogPerMinute lines and then one line with how many were
    /// suppressed (when the minute ends, or here when the daemon stops); every one of them is counted.
    @Test func forgeryFloodIsRateLimited() async throws {
        let directory = TemporaryDirectory()
        let log = CapturedLog()
        var configuration = try testConfiguration(directory: directory)
        configuration.limits.http.rejectLogPerMinute = 5
        let forged = Notifications.body(SignedNotification.forged(Notifications.fields(orderId: "A1")))
        let counted = try await withRunningDaemon(configuration, logger: log.logger) { running in
            let client = HTTPClient()
            defer { shutdownLater(client) }
            for _ in 0..<30 { #expect(try await post(client, running.baseURL + "/notify", body: forged).0 == 403) }
            #expect(try await post(client, running.baseURL + "/notify", body: "a=%ZZ").0 == 400)
            let metrics = try Exposition(try await get(client, running.baseURL + "/metrics").1)
            return metrics.value("ledger_notifications_refused_total", ["cause": "signature-mismatch"])
        }
        #expect(counted == 30)
        let refusals = log.all.filter { $0.message.hasPrefix("refused a ") }
        #expect(refusals.count == 5, "\(log.all.map(\.message))")
        let suppressed = log.all.filter { $0.message.hasPrefix("suppressed ") }
        #expect(suppressed.count == 1, "\(log.all.map(\.message))")
        // 25 forgeries and the malformed body: one limit for every kind of refusal.
        #expect(suppressed.first?.metadata["suppressed"] == "26", "\(suppressed)")
        #expect(suppressed.first?.message.hasPrefix("suppressed 26 log lines") == true)
    }

    /// Every family of /metrics has # HELP and # TYPE; the build, the process, the HTTP requests by route pattern
    /// and the store's size are there with sane values, and a path a client made up never becomes a label value.
    @Test func metricsFamiliesAreDescribed() async throws {
        let directory = TemporaryDirectory()
        let configuration = try testConfiguration(directory: directory)
        let metrics = try await withRunningDaemon(configuration) { running in
            _ = try await running.daemon.ledger.createOrder(.testing(orderId: "A1"))
            let client = HTTPClient()
            defer { shutdownLater(client) }
            let body = Notifications.body(Notifications.fields(orderId: "A1"))
            #expect(try await post(client, running.baseURL + "/notify", body: body).1 == "OK")
            #expect(try await get(client, running.baseURL + "/pay/NOPE").0 == 404)
            #expect(try await get(client, running.baseURL + "/made-up-path-zq").0 == 404)
            _ = try await get(client, running.baseURL + "/metrics")
            return try Exposition(try await get(client, running.baseURL + "/metrics").1)
        }
        #expect(!metrics.samples.isEmpty)
        for sample in metrics.samples {
            let family = metrics.family(of: sample)
            #expect(metrics.help.contains(family), "\(family) has no # HELP")
            #expect(metrics.types[family] != nil, "\(family) has no # TYPE")
        }
        let info = try #require(metrics.samples.first { $0.name == "ledger_build_info" })
        #expect(info.value == 1)
        #expect(info.labels == ["version": BuildInfo.version, "commit": BuildInfo.commit])
        let resident = try #require(metrics.value("process_resident_memory_bytes"))
        #expect(resident > Double(1 << 20))
        #expect(try #require(metrics.value("process_virtual_memory_bytes")) >= resident)
        #expect(try #require(metrics.value("process_cpu_seconds_total")) > 0)
        #expect(metrics.types["process_cpu_seconds_total"] == "counter")
        let open = try #require(metrics.value("process_open_fds"))
        #expect(open >= 3)
        #expect(open <= (try #require(metrics.value("process_max_fds"))))
        let started = try #require(metrics.value("process_start_time_seconds"))
        #expect(started > 0 && started <= Date().timeIntervalSince1970 + 1)
        let requests = "ledger_http_requests_total"
        #expect(metrics.value(requests, ["route": "/notify", "status": "200"]) == 1)
        let counted = metrics.samples.filter { $0.name == requests }
        #expect(metrics.value(requests, ["route": "/pay/{orderId}", "status": "404"]) == 1, "\(counted)")
        #expect(metrics.value(requests, ["route": "unmatched", "status": "404"]) == 1)
        #expect(metrics.value(requests, ["route": "/metrics", "status": "200"]) == 1)
        let labelValues = metrics.samples.flatMap { $0.labels.values }
        #expect(!labelValues.contains { $0.contains("NOPE") || $0.contains("made-up") }, "\(labelValues)")
        let used = try #require(metrics.value("ledger_store_used_bytes"))
        let map = try #require(metrics.value("ledger_store_map_bytes"))
        #expect(used > 0 && used <= map)
        #expect(metrics.value("ledger_store_map_max_bytes") == Double(configuration.store.mapSizeMax))
    }

    /// /healthz names the part that is unhealthy: with the store closed under it, it answers 503 with the store's
    /// error under "store", and "http" still "ok".
    @Test func healthNamesTheUnhealthyPart() async throws {
        let directory = TemporaryDirectory()
        try await withRunningDaemon(try testConfiguration(directory: directory)) { running in
            let client = HTTPClient()
            defer { shutdownLater(client) }
            await running.daemon.store.close()
            let (status, body) = try await get(client, running.baseURL + "/healthz")
            #expect(status == 503, "\(body)")
            let health = try JSONParser.parse(body)
            #expect(health["status"] == "unhealthy")
            #expect(health["checks"]?["http"] == "ok")
            let store = try #require(health["checks"]?["store"]?.stringValue)
            #expect(store != "ok" && !store.isEmpty, "\(body)")
        }
    }

    /// A control method that fails on the daemon's side (the store closed under it) answers the client with the
    /// message only, and logs the error whole: its code, cause and where it was raised.
    @Test func daemonFailuresAreLoggedWithTheirCause() async throws {
        let directory = TemporaryDirectory()
        let captured = CapturedLog()
        try await withRunningDaemon(try testConfiguration(directory: directory), logger: captured.logger) { running in
            _ = try await running.daemon.ledger.createOrder(.testing(orderId: "A1"))
            await running.daemon.store.close()
            let path = running.daemon.configuration.socketPath
            let answer = try await blocking { try RPCSession(path).call("order.get", ["orderId": "A1"]) }
            #expect(answer["error"]?["data"]?["name"] == "unavailable", "\(answer)")
            #expect(answer["error"]?["message"]?.stringValue?.contains("[at ") == false)
            let logged = try #require(captured.all.first { $0.message == "control method failed" })
            #expect(logged.metadata["method"] == "order.get")
            let error = logged.metadata["error"] ?? ""
            #expect(
                error.hasPrefix("closed: ") && error.contains("[at ") && error.contains("(LedgerStore/"),
                "\(error) / \(answer)"
            )
        }
    }

    /// With http.adminListen set, /healthz and /metrics answer there and 404 on the public listener, which keeps
    /// /notify, /pay/ and /return; the admin listener serves nothing else; both stop when the daemon drains.
    @Test func adminListenerServesOnlyTheOperatorsPaths() async throws {
        let directory = TemporaryDirectory()
        var configuration = try testConfiguration(directory: directory)
        configuration.adminListen = ("127.0.0.1", 0)
        let ports = try await withAdminListener(configuration) { daemon, publicPort, adminPort in
            _ = try await daemon.ledger.createOrder(.testing(orderId: "A1"))
            let get = { (port: Int, path: String) in
                try await exchange(port: port, "GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            }
            for path in ["/healthz", "/metrics"] {
                #expect(try await get(publicPort, path).hasPrefix("HTTP/1.1 404"), "\(path)")
                #expect(try await get(adminPort, path).hasPrefix("HTTP/1.1 200"), "\(path)")
            }
            #expect(try await get(publicPort, "/pay/A1").hasPrefix("HTTP/1.1 200"))
            #expect(try await get(publicPort, "/return?orderid=A1").hasPrefix("HTTP/1.1 200"))
            #expect(try await get(adminPort, "/pay/A1").hasPrefix("HTTP/1.1 404"))
            #expect(try await get(adminPort, "/return?orderid=A1").hasPrefix("HTTP/1.1 404"))
            let body = Notifications.body(Notifications.fields(orderId: "A1"))
            #expect(try await exchange(port: adminPort, notifyRequest(body)).hasPrefix("HTTP/1.1 404"))
            #expect(try await exchange(port: publicPort, notifyRequest(body)).hasSuffix("\r\n\r\nOK"))
            // The admin listener's metrics count the public listener's requests.
            let metrics = try await get(adminPort, "/metrics")
            #expect(metrics.contains("ledger_http_requests_total{route=\"/notify\",status=\"200\"} 1"), "\(metrics)")
            return (publicPort, adminPort)
        }
        // The daemon drained both listeners and returned: neither accepts a connection any more.
        for port in [ports.0, ports.1] {
            #expect(throws: (any Error).self) { _ = try LoopbackClient(port: port) }
        }
    }

    /// Behind a trusted proxy the client is the rightmost X-Forwarded-For address that is not itself a proxy: the
    /// ledger records it, the quarantine groups by it and the log shows it; a header that does not parse leaves the
    /// proxy's address and is counted.
    @Test func trustedProxyForwardsTheClientAddress() async throws {
        let directory = TemporaryDirectory()
        let log = CapturedLog()
        var configuration = try testConfiguration(directory: directory)
        configuration.trustedProxies = try TrustedProxies(parsing: "127.0.0.1, 10.0.0.0/8, fd00::/8")
        try await withRunningDaemon(configuration, logger: log.logger) { running in
            _ = try await running.daemon.ledger.createOrder(.testing(orderId: "A1"))
            let port = try #require(URL(string: running.baseURL)?.port)
            let valid = Notifications.body(Notifications.fields(orderId: "A1"))
            // The client's own entry on the left is whatever it wrote; 10.1.2.3 is an inner proxy.
            let chain = "X-Forwarded-For: 192.0.2.66, 203.0.113.9, 10.1.2.3"
            #expect(try await exchange(port: port, notifyRequest(valid, headers: [chain])).hasSuffix("OK"))
            let history = try await running.daemon.ledger.history("A1")
            guard case .callbackReceived(let callback) = history.last?.event.payload else {
                Issue.record("the callback must be recorded")
                return
            }
            #expect(callback.remoteAddress == "203.0.113.9")

            let forged = Notifications.body(SignedNotification.forged(Notifications.fields(orderId: "A1")))
            let cases: [(headers: [String], remote: String, source: String)] = [
                (["X-Forwarded-For: 198.51.100.7"], "198.51.100.7", "198.51.100.7"),
                // Two headers are one list, in order; IPv6 is grouped by its /64 like a direct IPv6 peer.
                (
                    ["X-Forwarded-For: 198.51.100.8", "X-Forwarded-For: 2001:db8:1:2::7, fd00::1"], "2001:db8:1:2::7",
                    "2001:db8:1:2::/64"
                ),
                (["X-Forwarded-For: 198.51.100.9, not-an-address"], "127.0.0.1:", "127.0.0.1"),
            ]
            for (headers, _, _) in cases {
                let answer = try await exchange(port: port, notifyRequest(forged, headers: headers))
                #expect(answer.hasPrefix("HTTP/1.1 403"))
            }
            let entries = try await running.daemon.store.quarantined(QuarantineQuery()).entries.reversed()
            #expect(entries.count == cases.count)
            for (entry, expected) in zip(entries, cases) {
                #expect(entry.remoteAddress.hasPrefix(expected.remote), "\(entry.remoteAddress)")
                #expect(entry.source == expected.source)
            }
            let client = HTTPClient()
            defer { shutdownLater(client) }
            let metrics = try Exposition(try await get(client, running.baseURL + "/metrics").1)
            #expect(metrics.value("ledger_http_forwarded_malformed_total") == 1)
        }
        let refusals = log.all.filter { $0.message.hasPrefix("refused a notification") }
        let remotes = refusals.compactMap { $0.metadata["remote"] }
        #expect(remotes.first == "198.51.100.7", "\(remotes)")
    }

    /// X-Forwarded-For from a peer that is not a trusted proxy changes nothing: the TCP peer is recorded, with no
    /// proxies configured and with proxies that do not include the peer.
    @Test func spoofedForwardedForIsIgnored() async throws {
        for trusted in ["", "127.0.0.1/32"] {
            let directory = TemporaryDirectory()
            var configuration = try testConfiguration(directory: directory)
            configuration.trustedProxies = try TrustedProxies(parsing: trusted)
            try await withRunningDaemon(configuration) { running in
                _ = try await running.daemon.ledger.createOrder(.testing(orderId: "A1"))
                let port = try #require(URL(string: running.baseURL)?.port)
                let valid = Notifications.body(Notifications.fields(orderId: "A1"))
                let spoof = ["X-Forwarded-For: 203.0.113.9"]
                // From 127.0.0.2: an address of this machine that is not the trusted proxy.
                let answer = try await exchange(port: port, from: "127.0.0.2", notifyRequest(valid, headers: spoof))
                #expect(answer.hasSuffix("OK"), "\(answer)")
                let forged = Notifications.body(SignedNotification.forged(Notifications.fields(orderId: "A1")))
                _ = try await exchange(port: port, from: "127.0.0.2", notifyRequest(forged, headers: spoof))
                let history = try await running.daemon.ledger.history("A1")
                guard case .callbackReceived(let callback) = history.last?.event.payload else {
                    Issue.record("the callback must be recorded")
                    return
                }
                #expect(callback.remoteAddress.hasPrefix("127.0.0.2:"), "\(trusted): \(callback.remoteAddress)")
                let entry = try #require(try await running.daemon.store.quarantined(QuarantineQuery()).entries.first)
                #expect(entry.source == "127.0.0.2", "\(trusted)")
            }
        }
    }

    /// log.format, log.level, http.adminListen and http.trustedProxies are read from the environment; a value that
    /// is not one stops the start with its key named.
    @Test func observabilityConfiguration() async throws {
        let environment = GatewaySettings.testingEnvironment([
            "LEDGERD_LOG_FORMAT": "json", "LEDGERD_LOG_LEVEL": "debug",
            "LEDGERD_HTTP_ADMIN_LISTEN": "127.0.0.1:9101", "LEDGERD_HTTP_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
        ])
        let configuration = try await DaemonConfiguration.load(flags: [:], environment: environment, file: nil)
        #expect(configuration.log.format == .json)
        #expect(configuration.log.level == .debug)
        #expect(configuration.adminListen?.host == "127.0.0.1")
        #expect(configuration.adminListen?.port == 9101)
        #expect(configuration.trustedProxies == (try TrustedProxies(parsing: "10.0.0.0/8,::1")))
        let defaults = try await DaemonConfiguration.load(
            flags: [:],
            environment: GatewaySettings.testingEnvironment(),
            file: nil
        )
        #expect(defaults.log.format == .text)
        #expect(defaults.log.level == .info)
        #expect(defaults.adminListen == nil)
        #expect(defaults.trustedProxies.isEmpty)
        let refusals: [(variable: String, value: String, key: String)] = [
            ("LEDGERD_LOG_FORMAT", "xml", "log.format"),
            ("LEDGERD_LOG_LEVEL", "verbose", "log.level"),
            ("LEDGERD_HTTP_ADMIN_LISTEN", "9101", "http.adminListen"),
            ("LEDGERD_HTTP_ADMIN_LISTEN", "127.0.0.1:8080", "http.adminListen"),
            ("LEDGERD_HTTP_ADMIN_LISTEN", "127.0.0.1:\u{301}9101", "http.adminListen"),
            ("LEDGERD_HTTP_ADMIN_LISTEN", "127.0.0.1:+9101", "http.adminListen"),
            ("LEDGERD_HTTP_TRUSTED_PROXIES", "10.0.0.0/33", "http.trustedProxies"),
            ("LEDGERD_HTTP_TRUSTED_PROXIES", "proxy.example", "http.trustedProxies"),
        ]
        await expectRefusals(environment, refusals)
        // In a file `http` is HOST:PORT, so the two keys under it are spelled whole.
        let directory = TemporaryDirectory()
        let file = directory.path + "/ledgerd.json"
        let json =
            #"{"http": "127.0.0.1:8080", "http.adminListen": "127.0.0.1:9101", "#
            + #""http.trustedProxies": ["10.0.0.0/8"]}"#
        try json.write(toFile: file, atomically: true, encoding: .utf8)
        let fromFile = try await DaemonConfiguration.load(
            flags: [:],
            environment: GatewaySettings.testingEnvironment(),
            file: file
        )
        #expect(fromFile.adminListen?.port == 9101)
        #expect(fromFile.trustedProxies == (try TrustedProxies(parsing: "10.0.0.0/8")))
    }

    /// A JSON log line stays one valid object whatever the message holds (a newline, a quote, a control character,
    /// a line separator, a bidirectional override), and those decode back exactly.
    @Test func jsonLogLinesStayOneObject() throws {
        let lines = Mutex<[String]>([])
        var logger = Logger(label: "ledgerd") { label in
            JSONLogHandler(label: label) { line in lines.withLock { $0.append(line) } }
        }
        logger.logLevel = .info
        let hostile = "a\nb\"c\\d\u{01}e\u{7F}f\u{85}g\u{2028}h\u{202E}i"
        logger.warning("\(hostile)", metadata: ["field": "\(hostile)", "nested": ["list": ["\(hostile)"]]])
        logger.debug("not at this level")
        let written = lines.withLock { $0 }
        #expect(written.count == 1)
        let line = try #require(written.first)
        #expect(line.utf8.filter { $0 == 0x0A }.count == 1 && line.hasSuffix("\n"))
        let raw: Set<Unicode.Scalar> = ["\u{7F}", "\u{85}", "\u{2028}", "\u{202E}"]
        #expect(!line.unicodeScalars.contains { raw.contains($0) })
        let object = try JSONParser.parse(String(line.dropLast()))
        #expect(object["message"] == .string(hostile))
        #expect(object["level"] == "warning")
        #expect(object["label"] == "ledgerd")
        #expect(object["metadata"]?["field"] == .string(hostile))
        #expect(object["metadata"]?["nested"]?["list"] == .array([.string(hostile)]))
        #expect(object["time"]?.stringValue?.hasSuffix("Z") == true)
    }

    /// `ledgerd run --log-format json` writes only JSON objects, one a line, with the configured level; a refused
    /// body whose field name carries a newline and a fake line stays inside its object and decodes back exactly.
    @Test func daemonWritesJSONLines() async throws {
        let directory = TemporaryDirectory()
        let daemon = try LedgerdProcess(executable: try BuiltProducts.path("ledgerd"), directory: directory.path)
        daemon.arguments = ["--log-format", "json", "--log-level", "info", "--no-poll"]
        try await daemon.start()
        defer { Task { await daemon.kill9() } }
        let port = daemon.port
        let errors = daemon.logPath
        let fake = "2026-01-01T00:00:00Z info ledgerd: order paid \"quoted\"\u{01}"
        let repeated = FormCoding.encode([FormField("x\n" + fake, "1"), FormField("x\n" + fake, "2")])
        let body = Notifications.body(Notifications.fields(orderId: "A1")) + "&" + repeated
        let started = try await eventually(seconds: 60) {
            (try? await exchange(port: port, notifyRequest(body)))?.hasPrefix("HTTP/1.1 400") == true
        }
        #expect(started)
        let logged = try await eventually(seconds: 10) {
            (try String(contentsOfFile: errors, encoding: .utf8)).contains("refused a body")
        }
        #expect(logged)
        let text = try String(contentsOfFile: errors, encoding: .utf8)
        let lines = text.split(separator: "\n")
        #expect(lines.count >= 2, "\(text)")
        var objects: [JSONValue] = []
        for line in lines {
            let object = try JSONParser.parse(String(line))
            #expect(object["level"] != nil && object["time"] != nil && object["message"] != nil, "\(line)")
            objects.append(object)
        }
        #expect(objects.contains { $0["message"] == "ledgerd starting" && $0["level"] == "info" })
        let refusal = try #require(objects.first { $0["message"] == "refused a body that is not a notification" })
        let reason = try #require(refusal["metadata"]?["reason"]?.stringValue)
        #expect(reason.contains("'x\n" + fake + "'"), "\(reason)")
    }
}
