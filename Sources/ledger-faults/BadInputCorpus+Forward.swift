import LedgerCore

/// Bad parameters of the forwarder's control methods: each is refused as invalid params, whether or not the
/// daemon forwards, and nothing is retried or replayed.
extension BadInputCorpus {
    static let forwardCases: [CorpusCase] = [
        CorpusCase(
            "forward.retry with both an order id and allDead",
            Self.request("forward.retry", #"{"orderId":"C1","allDead":true}"#),
            .rpcError(-32602),
            appends: 0
        ),
        CorpusCase("forward.retry with neither", Self.request("forward.retry", "{}"), .rpcError(-32602), appends: 0),
        CorpusCase(
            "forward.retry with an order id no order can have",
            Self.request("forward.retry", #"{"orderId":"../../etc/passwd"}"#),
            .rpcError(-32602),
            appends: 0
        ),
        CorpusCase(
            "forward.retry with allDead as text",
            Self.request("forward.retry", #"{"allDead":"yes"}"#),
            .rpcError(-32602),
            appends: 0
        ),
        CorpusCase(
            "forward.replay from 0",
            Self.request("forward.replay", #"{"from":0}"#),
            .rpcError(-32602),
            appends: 0
        ),
        CorpusCase(
            "forward.replay from a sequence as text",
            Self.request("forward.replay", #"{"from":"1"}"#),
            .rpcError(-32602),
            appends: 0
        ),
        CorpusCase(
            "forward.replay from a number with an exponent",
            Self.request("forward.replay", #"{"from":1e3}"#),
            .rpcError(-32602),
            appends: 0
        ),
        CorpusCase("forward.replay without from", Self.request("forward.replay", "{}"), .rpcError(-32602), appends: 0),
        CorpusCase(
            "forward.status with a negative limit",
            Self.request("forward.status", #"{"limit":-1}"#),
            .rpcError(-32602),
            appends: 0
        ),
        CorpusCase(
            "forward.status with a parameter it does not know",
            Self.request("forward.status", #"{"receiver":"x"}"#),
            .rpcError(-32602),
            appends: 0
        ),
    ]
}
