import FuzzSupport
import LedgerCore

/// The control socket's input path without the socket: `ControlLineFramer` cuts a byte stream that arrives in
/// arbitrary pieces into lines, and `ControlRequest.parse` reads each line as a JSON-RPC request under the
/// daemon's JSON limits. These are the values the daemon's NIO handlers carry out (`ControlLineDecoder`,
/// `ControlConnectionHandler`).
///
/// The input's first byte picks the line limit (small, so overflow is reachable), the second seeds the sizes of the
/// pieces the stream arrives in; the rest is the stream.
///
/// Oracles: framing does not depend on how the stream is cut (a reference split of the whole stream gives the same
/// frames); every answer the daemon would write is one line of JSON that parses back to itself; every accepted
/// request writes and parses back to the same request.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzControlFraming(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    ControlFramingOracle.check(fuzzInput(data, size))
    return 0
}

enum Frame: Equatable {
    case line([UInt8])
    case tooLong
}

enum ControlFramingOracle {
    static func check(_ input: [UInt8]) {
        guard input.count >= 2 else { return }
        let lineBytesMax = 8 + Int(input[0]) * 4
        let stream = Array(input[2...])
        var random = SplitMix64(seed: UInt64(input[1]))
        let frames = Self.frame(stream, lineBytesMax: lineBytesMax, random: &random)
        fuzzCheck(
            frames == Self.referenceFrames(stream, lineBytesMax: lineBytesMax),
            "framing depends on how the stream arrives"
        )
        let limits = JSONLimits(bytesMax: lineBytesMax, depthMax: 8, stringBytesMax: lineBytesMax, membersMax: 64)
        for case .line(let line) in frames where !ControlRequest.isBlank(line) {
            Self.checkRequest(line, limits: limits)
        }
    }

    /// Feeds the stream in pieces to a framer, consuming bytes as the daemon's decoder does, then closes it.
    static func frame(_ stream: [UInt8], lineBytesMax: Int, random: inout SplitMix64) -> [Frame] {
        var framer = ControlLineFramer(lineBytesMax: lineBytesMax)
        var buffer: [UInt8] = []
        var frames: [Frame] = []
        var position = 0
        func carryOut(_ action: ControlLineFramer.Action) -> Bool {
            switch action {
            case .line(let length, let consumed):
                fuzzCheck(length <= lineBytesMax, "a line longer than the limit was framed")
                fuzzCheck(
                    consumed <= buffer.count && consumed >= length,
                    "the framer consumed bytes that are not there"
                )
                frames.append(.line(Array(buffer[..<length])))
                buffer.removeFirst(consumed)
                return true
            case .tooLong:
                frames.append(.tooLong)
                buffer.removeAll()
                return false
            case .discard:
                buffer.removeAll()
                return false
            case .needMoreData:
                return false
            }
        }
        while position < stream.count {
            let piece = 1 + random.next(upTo: random.next(upTo: 4) == 0 ? 512 : 16)
            let end = min(stream.count, position + piece)
            buffer.append(contentsOf: stream[position..<end])
            position = end
            while carryOut(buffer.withUnsafeBytes { framer.next($0) }) {}
        }
        while carryOut(buffer.withUnsafeBytes { framer.last($0) }) {}
        fuzzCheck(buffer.isEmpty || framer.hasOverflowed, "bytes were left after the stream closed")
        return frames
    }

    /// The frames of the whole stream at once: lines split at `\n`, the last one without a newline included when
    /// not empty; the first line over the limit ends the stream as `tooLong`.
    static func referenceFrames(_ stream: [UInt8], lineBytesMax: Int) -> [Frame] {
        var frames: [Frame] = []
        let parts = stream.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        for (index, part) in parts.enumerated() {
            let isLast = index == parts.count - 1
            if part.count > lineBytesMax { return frames + [.tooLong] }
            if isLast && part.isEmpty { break }
            frames.append(.line(Array(part)))
        }
        return frames
    }

    static func checkRequest(_ line: [UInt8], limits: JSONLimits) {
        // Whatever parses writes as one line that parses back to the same text.
        if case .success(let value) = Result(catching: { () throws(JSONParseError) in
            try JSONParser.parse(line, limits: limits)
        }) {
            let written = Self.writeLine(value)
            fuzzCheck(
                written.firstIndex(of: UInt8(ascii: "\n")) == written.count - 1,
                "written JSON spans more than one line"
            )
            switch Result(catching: { () throws(JSONParseError) in
                try JSONParser.parse(written.dropLast(), limits: .default)
            }) {
            case .success(let again):
                fuzzCheck(again == value, "parse(write(value)) differs from value")
                fuzzCheck(Self.writeLine(again) == written, "writing JSON is not a fixed point")
            case .failure(let error):
                fuzzCheck(false, "written JSON does not parse: \(error)")
            }
        }
        switch ControlRequest.parse(line, limits: limits) {
        case .success(let request):
            let written = Self.writeLine(.object(Self.envelope(request)))
            switch ControlRequest.parse(written.dropLast(), limits: .default) {
            case .success(let again):
                fuzzCheck(
                    Self.writeLine(.object(Self.envelope(again))) == written,
                    "a request does not write back to itself"
                )
            case .failure(let rejection):
                fuzzCheck(false, "a written request is refused: \(rejection)")
            }
            // The daemon answers unknown methods with the request's id; that answer must be a line of its own.
            Self.checkAnswer(id: request.id ?? .null, message: "There is no method \(request.method).")
        case .failure(.notJSON(let error)):
            fuzzCheck(
                error.offset >= 0 && error.offset <= max(line.count, limits.bytesMax),
                "a parse error offset outside the line"
            )
            Self.checkAnswer(id: .null, message: "The request is not valid JSON: \(error.description)")
        case .failure(.invalid(let id, let message)):
            Self.checkAnswer(id: id, message: message)
        }
    }

    static func envelope(_ request: ControlRequest) -> JSONObject {
        var object: JSONObject = ["jsonrpc": "2.0", "method": .string(request.method)]
        if let id = request.id { object["id"] = id }
        if let params = request.params { object["params"] = params }
        return object
    }

    /// An error answer as `ControlConnectionHandler` writes it: one JSON object and a newline.
    static func checkAnswer(id: JSONValue, message: String) {
        let answer: JSONValue = .object([
            "jsonrpc": "2.0", "id": id,
            "error": .object([
                "code": .number("-32600"), "message": .string(message), "data": .object(["name": "invalid-request"]),
            ]),
        ])
        let written = Self.writeLine(answer)
        fuzzCheck(written.firstIndex(of: UInt8(ascii: "\n")) == written.count - 1, "an answer spans more than one line")
        switch Result(catching: { () throws(JSONParseError) in
            try JSONParser.parse(written.dropLast(), limits: .default)
        }) {
        case .success(let parsed):
            fuzzCheck(Self.writeLine(parsed) == written, "an answer does not parse back to itself")
        case .failure(let error):
            fuzzCheck(false, "an answer is not JSON: \(error)")
        }
    }

    static func writeLine(_ value: JSONValue) -> [UInt8] {
        var bytes: [UInt8] = []
        JSONWriter.write(value, into: &bytes)
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }
}
