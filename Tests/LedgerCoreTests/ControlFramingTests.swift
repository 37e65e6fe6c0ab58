import LedgerTesting
import Testing

@testable import LedgerCore

struct ControlFramingTests {
    /// Runs a framer over `pieces` as they would arrive, consuming bytes the way the daemon's decoder does, then
    /// closes the stream; returns the lines (as text) and `nil` for a too-long report.
    func frames(_ pieces: [String], lineBytesMax: Int) -> [String?] {
        var framer = ControlLineFramer(lineBytesMax: lineBytesMax)
        var buffer: [UInt8] = []
        var frames: [String?] = []
        func carryOut(_ action: ControlLineFramer.Action) -> Bool {
            switch action {
            case .line(let length, let consumed):
                frames.append(String(decoding: buffer[..<length], as: UTF8.self))
                buffer.removeFirst(consumed)
                return true
            case .tooLong:
                frames.append(nil)
                buffer.removeAll()
                return false
            case .discard:
                buffer.removeAll()
                return false
            case .needMoreData:
                return false
            }
        }
        for piece in pieces {
            buffer.append(contentsOf: piece.utf8)
            while carryOut(buffer.withUnsafeBytes { framer.next($0) }) {}
        }
        while carryOut(buffer.withUnsafeBytes { framer.last($0) }) {}
        return frames
    }

    /// Lines are cut at `\n` wherever the pieces of the stream begin and end.
    @Test func framesAcrossPieces() {
        #expect(self.frames(["ab", "c\nde", "f\n\ng"], lineBytesMax: 8) == ["abc", "def", "", "g"])
        #expect(self.frames(["abc\n"], lineBytesMax: 8) == ["abc"])
    }

    /// A line of exactly lineBytesMax bytes is a line; one byte more is reported once, and the rest is dropped.
    @Test func tooLongOnce() {
        #expect(self.frames(["12345678\n"], lineBytesMax: 8) == ["12345678"])
        #expect(self.frames(["ok\n123456789\nlater\n"], lineBytesMax: 8) == ["ok", nil])
        // Without a newline the limit is noticed as soon as the buffered line passes it.
        #expect(self.frames(["12345", "6789", "\nlater\n"], lineBytesMax: 8) == [nil])
    }

    /// The last line of a closed stream is a request even without its newline.
    @Test func lastLineWithoutNewline() {
        #expect(self.frames(["a\nlast"], lineBytesMax: 8) == ["a", "last"])
        #expect(self.frames(["a\n"], lineBytesMax: 8) == ["a"])
    }

    /// Empty lines and a lone `\r` are no requests.
    @Test func blankLines() {
        #expect(ControlRequest.isBlank([]))
        #expect(ControlRequest.isBlank([UInt8(ascii: "\r")]))
        #expect(!ControlRequest.isBlank(Array("{}".utf8)))
    }

    func parse(_ text: String) -> Result<ControlRequest, ControlRequest.Rejection> {
        ControlRequest.parse(Array(text.utf8), limits: .default)
    }

    /// A request's id, method and params are read; a notification has no id.
    @Test func readsRequests() {
        #expect(
            self.parse(#"{"jsonrpc":"2.0","id":7,"method":"order.get","params":{"orderId":"A"}}"#)
                == .success(ControlRequest(id: .number("7"), method: "order.get", params: .object(["orderId": "A"])))
        )
        #expect(
            self.parse(#"{"jsonrpc":"2.0","method":"m"}"#)
                == .success(ControlRequest(id: nil, method: "m", params: nil))
        )
    }

    /// Envelope errors carry the id when there is a usable one, and say what is wrong.
    @Test func refusesBadEnvelopes() {
        #expect(
            self.parse(#"[{"jsonrpc":"2.0","id":1,"method":"m"}]"#)
                == .failure(
                    .invalid(id: .null, message: "Batch requests are not supported; send one request per line.")
                )
        )
        #expect(
            self.parse(#"{"jsonrpc":"1.0","id":"x","method":"m"}"#)
                == .failure(.invalid(id: .string("x"), message: "The request must have \"jsonrpc\": \"2.0\"."))
        )
        #expect(
            self.parse(#"{"jsonrpc":"2.0","id":true,"method":"m"}"#)
                == .failure(.invalid(id: .null, message: "The id must be a string, a number or null."))
        )
        #expect(
            self.parse(#"{"jsonrpc":"2.0","id":1,"method":"m","params":3}"#)
                == .failure(.invalid(id: .number("1"), message: "params must be an object or an array."))
        )
        guard case .failure(.notJSON) = self.parse(#"{"jsonrpc":"#) else {
            Issue.record("truncated JSON was not a parse error")
            return
        }
    }
}
