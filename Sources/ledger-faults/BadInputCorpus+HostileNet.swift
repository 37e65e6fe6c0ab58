import LedgerControlProtocol
import LedgerCore
import LedgerTesting

/// Hostile clients from the open Internet: bodies dripped past the request deadline, one address holding more
/// than its share of connections, and order ids no order can have on the control socket.
extension BadInputCorpus {
    static let hostileNetCases: [CorpusCase] = [
        CorpusCase(
            "a body dripped a byte at a time past limits.http.requestTimeoutMs",
            .drippedBody(orderId: "C37"),
            .http(408, ""),
            appends: 0
        ),
        CorpusCase(
            "one address over limits.http.connectionsPerAddressMax, then a valid notification from another",
            .addressFlood(orderId: "C38"),
            Self.ok,
            appends: 1,
            after: Aftermath(orderId: "C38", state: "paid")
        ),
        CorpusCase(
            "control: order.get with an empty order id",
            Self.request("order.get", #"{"orderId":""}"#),
            .rpcError(-32602)
        ),
        CorpusCase(
            "control: order.history with an order id longer than any",
            Self.request("order.history", #"{"orderId":"\#(String(repeating: "A", count: 600))"}"#),
            .rpcError(-32602)
        ),
        CorpusCase(
            "control: order.list with an empty cursor id",
            Self.request("order.list", #"{"cursor":"created:"}"#),
            .rpcError(-32602)
        ),
        CorpusCase(
            "control: order.history with a cursor that is no event of the order",
            Self.request("order.history", #"{"orderId":"C01","cursor":"999999999"}"#),
            .rpcError(-32602)
        ),
        CorpusCase(
            "control: a backup under a directory that does not exist",
            Self.request("ledger.backup", #"{"path":"/nonexistent-ledger-parent/dir/x"}"#),
            .rpcError(-32602)
        ),
    ]
}
