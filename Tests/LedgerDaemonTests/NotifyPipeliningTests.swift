import Foundation
import LedgerCore
import LedgerDaemon
import LedgerStore
import LedgerTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `POST /notify` is served on the connection's event loop, in front of Hummingbird's router; these tests hold it to
/// HTTP/1.1's rules where the two meet on one connection: answers in the order the requests came, however they are
/// pipelined, `Connection: close`, bodies in pieces, and the headers every answer carries.
struct NotifyPipeliningTests {
    /// Notifications and other requests pipelined in one write are answered in the order they were sent.
    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let directory = TemporaryDirectory()
        try await withRunningDaemon(try testConfiguration(directory: directory)) { running in
            for orderId in ["A1", "A2"] { _ = try await running.daemon.ledger.createOrder(.testing(orderId: orderId)) }
            var forged = Notifications.fields(orderId: "A2")
            forged[forged.count - 1].value = forged[forged.count - 1].value.lowercased()
            let requests = [
                Self.notify(Notifications.body(Notifications.fields(orderId: "A1"))),
                "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                Self.notify(Notifications.body(forged)),
                "GET /pay/A1 HTTP/1.1\r\nHost: x\r\n\r\n",
                Self.notify(Notifications.body(Notifications.fields(orderId: "A2"))),
                "GET /return?orderid=A2 HTTP/1.1\r\nHost: x\r\n\r\n",
            ]
            let port = try running.port()
            let answers = try await blocking {
                try HTTPConversation(port: port).exchange(requests.joined(), answers: requests.count)
            }
            #expect(answers.map(\.status) == [200, 200, 403, 200, 200, 200], "\(answers)")
            #expect(answers[0].body == "OK")
            #expect(answers[1].body.contains("\"status\""), "\(answers[1].body)")
            #expect(answers[2].body == "bad signature")
            #expect(answers[3].body.contains("<form"), "\(answers[3].body)")
            #expect(answers[4].body == "OK")
            // The return page was asked after A2's notification was answered, so it shows A2 paid.
            #expect(answers[5].body.contains("paid"), "\(answers[5].body)")
            for answer in [answers[0], answers[2], answers[4]] {
                #expect(answer.headers["server"] == "ledgerd", "\(answer.headers)")
                #expect(answer.headers["date"]?.hasSuffix(" GMT") == true, "\(answer.headers)")
                #expect(answer.headers["content-length"] == String(answer.body.utf8.count))
            }
            #expect(try await running.daemon.ledger.order("A1")?.status == .paid)
            #expect(try await running.daemon.ledger.order("A2")?.status == .paid)
            let metrics = try await blocking {
                try HTTPConversation(port: port).exchange("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", answers: 1)
            }
            #expect(metrics[0].body.contains("ledger_http_requests_total{route=\"/notify\",status=\"200\"} 2"))
            #expect(metrics[0].body.contains("ledger_http_requests_total{route=\"/notify\",status=\"403\"} 1"))
        }
    }

    /// Hundreds of notifications pipelined in one write (more than one read of the socket) are all answered `OK`,
    /// all recorded, and a request behind them is answered last.
    @Test func longPipelineIsAnsweredWhole() async throws {
        let directory = TemporaryDirectory()
        try await withRunningDaemon(try testConfiguration(directory: directory)) { running in
            let count = 400
            var requests: [String] = []
            for index in 0..<count {
                let orderId = "P\(index)"
                _ = try await running.daemon.ledger.createOrder(.testing(orderId: orderId))
                requests.append(Self.notify(Notifications.body(Notifications.fields(orderId: orderId))))
            }
            requests.append("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            let port = try running.port()
            let pipeline = requests.joined()
            let answers = try await blocking { [requests] in
                try HTTPConversation(port: port).exchange(pipeline, answers: requests.count)
            }
            #expect(pipeline.utf8.count > 64 * 1024, "the pipeline spans several reads")
            #expect(answers.count == count + 1)
            #expect(answers.prefix(count).allSatisfy { $0.status == 200 && $0.body == "OK" })
            #expect(answers.last?.body.contains("\"status\"") == true)
            for index in [0, count / 2, count - 1] {
                #expect(try await running.daemon.ledger.order("P\(index)")?.status == .paid)
            }
            #expect(try await running.daemon.store.head().sequence == UInt64(2 * count))
        }
    }

    /// A notification sent with `Connection: close` is answered with it, and then the daemon closes the connection.
    @Test func connectionCloseIsHonoured() async throws {
        let directory = TemporaryDirectory()
        try await withRunningDaemon(try testConfiguration(directory: directory)) { running in
            _ = try await running.daemon.ledger.createOrder(.testing(orderId: "A1"))
            let port = try running.port()
            let request = Self.notify(
                Notifications.body(Notifications.fields(orderId: "A1")),
                extraHeaders: "Connection: close\r\n"
            )
            let (answers, closed) = try await blocking { () throws -> ([HTTPConversation.Answer], Bool) in
                let conversation = try HTTPConversation(port: port)
                let answers = try conversation.exchange(request, answers: 1)
                return (answers, conversation.closedByPeer())
            }
            #expect(answers.first?.status == 200)
            #expect(answers.first?.headers["connection"] == "close")
            #expect(closed, "the daemon closes the connection after the answer")
            #expect(try await running.daemon.ledger.order("A1")?.status == .paid)
        }
    }

    /// A chunked body sent in pieces is recorded whole; one that grows past the bound is answered 413 and the rest of
    /// it dropped, and the connection goes on to answer the next notification.
    @Test func chunkedBodiesInPieces() async throws {
        let directory = TemporaryDirectory()
        try await withRunningDaemon(try testConfiguration(directory: directory)) { running in
            for orderId in ["A1", "A2"] { _ = try await running.daemon.ledger.createOrder(.testing(orderId: orderId)) }
            let port = try running.port()
            let body = Array(Notifications.body(Notifications.fields(orderId: "A1")).utf8)
            let pieces = [body[..<10], body[10..<40], body[40...]].map { String(decoding: $0, as: UTF8.self) }
            let large = String(repeating: "a", count: 6000)
            let answers = try await blocking {
                let conversation = try HTTPConversation(port: port)
                conversation.send("POST /notify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                for piece in pieces {
                    Thread.sleep(forTimeInterval: 0.05)
                    conversation.send(String(piece.utf8.count, radix: 16) + "\r\n" + piece + "\r\n")
                }
                conversation.send("0\r\n\r\n")
                var answers = try conversation.receive(answers: 1)
                // Two chunks of 6,000 bytes: the second takes the body past limits.notify.bodyBytesMax (8,192).
                conversation.send(
                    "POST /notify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        + "1770\r\n\(large)\r\n1770\r\n\(large)\r\n0\r\n\r\n"
                        + Self.notify(Notifications.body(Notifications.fields(orderId: "A2")))
                )
                answers += try conversation.receive(answers: 2)
                return answers
            }
            #expect(answers.map(\.status) == [200, 413, 200], "\(answers)")
            #expect(answers.map(\.body) == ["OK", "body too large", "OK"])
            #expect(try await running.daemon.ledger.order("A1")?.status == .paid)
            #expect(try await running.daemon.ledger.order("A2")?.status == .paid)
            #expect(try await running.daemon.store.head().sequence == 4, "two orders, two callbacks, nothing else")
        }
    }

    /// A request that is not `POST /notify` is Hummingbird's: `GET /notify` and `POST /notify/x` are unknown paths.
    /// Empty path segments are skipped as the router skips them, so `//notify` and `/notify/` are the endpoint.
    @Test func onlyPostNotifyIsTheEndpoint() async throws {
        let directory = TemporaryDirectory()
        try await withRunningDaemon(try testConfiguration(directory: directory)) { running in
            let port = try running.port()
            let requests = [
                "GET /notify HTTP/1.1\r\nHost: x\r\n\r\n",
                "POST /notify/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na=1",
                "POST /notify?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na=1",
                "POST //notify HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na=1",
                "POST /notify/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na=1",
                "POST /Notify HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na=1",
            ]
            let answers = try await blocking {
                try HTTPConversation(port: port).exchange(requests.joined(), answers: requests.count)
            }
            #expect(answers.map(\.status) == [404, 404, 400, 400, 400, 404], "\(answers)")
            #expect(answers[3].body == "malformed notification")
        }
    }

    /// A client that half-closes its socket after sending (shutdown(SHUT_WR)) still hears every answer owed, the
    /// notifications' included, before the daemon closes the connection.
    @Test func halfClosedClientHearsEveryAnswer() async throws {
        let directory = TemporaryDirectory()
        try await withRunningDaemon(try testConfiguration(directory: directory)) { running in
            for orderId in ["H1", "H2", "H3"] {
                _ = try await running.daemon.ledger.createOrder(.testing(orderId: orderId))
            }
            let port = try running.port()
            let alone = Self.notify(Notifications.body(Notifications.fields(orderId: "H1")))
            let mixed = [
                "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                Self.notify(Notifications.body(Notifications.fields(orderId: "H2"))),
                "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                Self.notify(Notifications.body(Notifications.fields(orderId: "H3"))),
            ]
            let (first, second) = try await blocking {
                () throws -> (([HTTPConversation.Answer], Bool), ([HTTPConversation.Answer], Bool)) in
                let one = try HTTPConversation(port: port)
                one.send(alone)
                one.finishSending()
                let oneAnswers = try one.receive(answers: 1)
                let two = try HTTPConversation(port: port)
                two.send(mixed.joined())
                two.finishSending()
                let twoAnswers = try two.receive(answers: mixed.count)
                return ((oneAnswers, one.closedByPeer()), (twoAnswers, two.closedByPeer()))
            }
            #expect(first.0.map(\.body) == ["OK"])
            #expect(first.1, "the daemon closes the half-closed connection once it has answered")
            #expect(second.0.map(\.status) == [200, 200, 200, 200], "\(second.0)")
            #expect(second.0[1].body == "OK" && second.0[3].body == "OK")
            #expect(second.1)
            for orderId in ["H1", "H2", "H3"] {
                #expect(try await running.daemon.ledger.order(orderId)?.status == .paid)
            }
        }
    }

    /// A pipeline the daemon takes longer to answer than the request deadline and the idle timeout is answered whole:
    /// requests the daemon holds back while it answers earlier ones are not late, and the connection is not idle.
    @Test func slowPipelineOutlivesTheDeadlines() async throws {
        let directory = TemporaryDirectory()
        var configuration = try testConfiguration(directory: directory)
        configuration.limits.http.requestTimeout = .milliseconds(100)
        configuration.limits.http.idleTimeout = .milliseconds(100)
        try await withRunningDaemon(configuration) { running in
            _ = try await running.daemon.ledger.createOrder(.testing(orderId: "S1"))
            // Each copy is its own commit (one notification at a time per connection): hundreds of them take far
            // longer than 100 ms, and one write of them spans several reads, so a read ends inside a request.
            let count = 300
            let pipeline = String(
                repeating: Self.notify(Notifications.body(Notifications.fields(orderId: "S1"))),
                count: count
            )
            let port = try running.port()
            let answers = try await blocking {
                try HTTPConversation(port: port).exchange(pipeline, answers: count)
            }
            #expect(answers.count == count)
            #expect(answers.allSatisfy { $0.status == 200 && $0.body == "OK" })
            let state = try #require(try await running.daemon.ledger.order("S1"))
            #expect(state.callbacks.accepted + state.callbacks.duplicate == UInt32(count))
        }
    }

    /// A client that sends refused notifications without ever reading its answers is not read without bound: once its
    /// answers fill the connection, the daemon stops reading, and the client's sending stalls.
    @Test func clientThatNeverReadsIsNotReadWithoutBound() async throws {
        // A daemon process of its own: the test makes it answer tens of thousands of requests, which in this
        // process would hold up the event loops every other test's daemon shares.
        let directory = TemporaryDirectory()
        let daemon = try LedgerdProcess(executable: try BuiltProducts.path("ledgerd"), directory: directory.path)
        daemon.arguments = ["--no-poll"]
        try await daemon.start()
        defer { Task { await daemon.kill9() } }
        let port = daemon.port
        let request = Array("POST /notify HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".utf8)
        let batch = Array((0..<200).map { _ in request }.joined())
        // Far more than the socket buffers on both sides hold (a few megabytes each way, with the requests'
        // answers three times their size): a daemon that read on would take it all.
        let bytesMax = 32 << 20
        let sent = try await blocking { () throws -> Int in
            let conversation = try HTTPConversation(port: port)
            return conversation.sendUntilStalled(batch, bytesMax: bytesMax, stalledAfterSeconds: 2)
        }
        #expect(sent < bytesMax, "the daemon stopped reading after \(sent) bytes")
    }

    /// Random pipelines of notifications (valid, forged, for an unknown order, chunked, announced too large) and
    /// other requests, each sent in random pieces with pauses between some of them, are answered in the order sent,
    /// each with the answer it would get alone (seeded, so a failure repeats).
    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6])
    func randomPipelinesInRandomPieces(seed: UInt64) async throws {
        let directory = TemporaryDirectory()
        try await withRunningDaemon(try testConfiguration(directory: directory)) { running in
            var random = SplitMix64(seed: seed)
            var requests: [(text: String, status: Int, body: String?)] = []
            for index in 0..<40 {
                let orderId = "R\(seed)x\(index)"
                _ = try await running.daemon.ledger.createOrder(.testing(orderId: orderId))
                let valid = Notifications.body(Notifications.fields(orderId: orderId))
                switch random.next(upTo: 7) {
                case 0:
                    requests.append((Self.notify(valid), 200, "OK"))
                case 1:
                    var forged = Notifications.fields(orderId: orderId)
                    forged[forged.count - 1].value = forged[forged.count - 1].value.lowercased()
                    requests.append((Self.notify(Notifications.body(forged)), 403, "bad signature"))
                case 2:
                    let unknown = Notifications.body(Notifications.fields(orderId: "NONE\(index)"))
                    requests.append((Self.notify(unknown), 404, "unknown order"))
                case 3:
                    let cut = valid.utf8.count / 2
                    let bytes = Array(valid.utf8)
                    let chunks = [bytes[..<cut], bytes[cut...]].map {
                        String($0.count, radix: 16) + "\r\n" + String(decoding: $0, as: UTF8.self) + "\r\n"
                    }
                    let text =
                        "POST /notify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        + chunks.joined() + "0\r\n\r\n"
                    requests.append((text, 200, "OK"))
                case 4:
                    // Announced too large, then sent anyway: refused at its head, the body dropped.
                    let filler = String(repeating: "a", count: 9000)
                    let text = "POST /notify HTTP/1.1\r\nHost: x\r\nContent-Length: 9000\r\n\r\n\(filler)"
                    requests.append((text, 413, "body too large"))
                case 5:
                    requests.append(("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, nil))
                default:
                    requests.append(("POST /elsewhere HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na=1", 404, nil))
                }
            }
            let bytes = Array(requests.map(\.text).joined().utf8)
            var pieces: [(bytes: [UInt8], pause: Bool)] = []
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + 1 + random.next(upTo: 1500))
                pieces.append((Array(bytes[start..<end]), random.next(upTo: 8) == 0))
                start = end
            }
            let port = try running.port()
            let answers = try await blocking { [pieces, requests] in
                let conversation = try HTTPConversation(port: port)
                let sender = Thread {
                    for piece in pieces {
                        conversation.send(String(decoding: piece.bytes, as: UTF8.self))
                        if piece.pause { Thread.sleep(forTimeInterval: 0.005) }
                    }
                }
                sender.start()
                return try conversation.receive(answers: requests.count)
            }
            #expect(answers.map(\.status) == requests.map(\.status), "seed \(seed)")
            for (answer, request) in zip(answers, requests) {
                if let body = request.body { #expect(answer.body == body, "seed \(seed)") }
            }
        }
    }

    static func notify(_ body: String, extraHeaders: String = "") -> String {
        "POST /notify HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\(extraHeaders)"
            + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }
}

extension RunningDaemon {
    /// The HTTP listener's port.
    func port() throws -> Int {
        guard let port = URL(string: self.baseURL)?.port else { throw TestFailure("no port in \(self.baseURL)") }
        return port
    }
}

/// One client connection that sends raw bytes and reads whole HTTP/1.1 answers (head and a `Content-Length` body).
final class HTTPConversation: @unchecked Sendable {
    // @unchecked: `send` touches only the descriptor, which never changes; `buffer` is read and written by `receive`
    // alone, on one thread.

    struct Answer: CustomStringConvertible, Sendable {
        var status: Int
        /// Header names in lower case.
        var headers: [String: String]
        var body: String
        var description: String { "\(self.status) \(self.body.prefix(60))" }
    }

    private let descriptor: Int32
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        self.descriptor = try connectLoopbackSocket(port: port, receiveTimeoutSeconds: 20)
    }

    deinit { close(self.descriptor) }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes {
                Glibc.send(self.descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard count > 0 else { return }
            sent += count
        }
    }

    /// Sends `text` and reads `answers` answers. Reading starts only after the whole of it is sent, so a long
    /// pipeline relies on the daemon reading on while its answers wait in the socket's buffers.
    func exchange(_ text: String, answers: Int) throws -> [Answer] {
        // A long pipeline is sent from another thread: the daemon stops reading while its answers back up, so
        // sending all before reading any could wait on both sides for ever.
        let sender = Thread { self.send(text) }
        sender.start()
        return try self.receive(answers: answers)
    }

    func receive(answers: Int) throws -> [Answer] {
        var result: [Answer] = []
        while result.count < answers {
            if let answer = self.parse() {
                result.append(answer)
                continue
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { read(self.descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else {
                throw TestFailure("the connection ended after \(result.count) of \(answers) answers: \(result)")
            }
            self.buffer += chunk[..<count]
        }
        return result
    }

    /// Ends the sending side (shutdown(SHUT_WR)), as a client that has sent all it will.
    func finishSending() {
        shutdown(self.descriptor, Int32(SHUT_WR))
    }

    /// Sends `batch` again and again without reading, until `bytesMax` are sent or no byte could be sent for
    /// `stalledAfterSeconds`; returns the bytes sent.
    func sendUntilStalled(_ batch: [UInt8], bytesMax: Int, stalledAfterSeconds: Double) -> Int {
        var sent = 0
        var offset = 0
        var stalledSince: Date?
        while sent < bytesMax {
            let count = batch[offset...].withUnsafeBytes {
                Glibc.send(self.descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            guard count > 0 else {
                let since = stalledSince ?? Date()
                stalledSince = since
                if Date().timeIntervalSince(since) >= stalledAfterSeconds { break }
                Thread.sleep(forTimeInterval: 0.05)
                continue
            }
            stalledSince = nil
            sent += count
            offset = (offset + count) % batch.count
        }
        return sent
    }

    /// Whether the daemon closes the connection (a read sees its end) within the receive timeout.
    func closedByPeer() -> Bool {
        var byte: UInt8 = 0
        return read(self.descriptor, &byte, 1) == 0
    }

    private func parse() -> Answer? {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard
            let end = self.buffer.indices.dropLast(3).first(where: { self.buffer[$0..<$0 + 4].elementsEqual(separator) }
            )
        else { return nil }
        let head = String(decoding: self.buffer[..<end], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...]
                .trimmingCharacters(in: .whitespaces)
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        guard self.buffer.count >= end + 4 + length else { return nil }
        let body = String(decoding: self.buffer[(end + 4)..<(end + 4 + length)], as: UTF8.self)
        self.buffer.removeFirst(end + 4 + length)
        return Answer(status: status, headers: headers, body: body)
    }
}
