import Foundation
import LedgerCore

/// The system benchmark's figures, in the order the issue lists them.
func systemFigures(_ results: SystemBenchmark.Results, config: SystemBenchConfig) -> [Figure] {
    var rows: [Figure] = []
    let widest = config.connections.max() ?? 64
    for connections in config.connections {
        guard let run = results.callbacks[connections] else { continue }
        let top = connections == widest
        rows.append(
            Figure(
                key: "callbacks.c\(connections)",
                label: "durable callbacks, \(connections) connections",
                value: run.perSecond,
                unit: "callbacks/s",
                target: top ? .valueAtLeast(20_000) : nil,
                note:
                    "\(run.requests) notifications in \(Format.seconds(run.seconds)), every answer 2xx; the ledger's paid orders grew by the number answered (up to the requests in flight when the load stopped)"
            )
        )
        rows.append(
            Figure(
                key: "callbacks.c\(connections).p50",
                label: "  p50 latency, \(connections) connections",
                value: run.p50 * 1e3,
                unit: "ms"
            )
        )
        rows.append(
            Figure(
                key: "callbacks.c\(connections).p99",
                label: "  p99 latency, \(connections) connections",
                value: run.p99 * 1e3,
                unit: "ms",
                target: top ? .valueAtMost(10) : nil
            )
        )
        rows.append(
            Figure(
                key: "callbacks.c\(connections).p999",
                label: "  p99.9 latency, \(connections) connections",
                value: run.p999 * 1e3,
                unit: "ms"
            )
        )
        if let cpu = run.serverCPU, run.requests > run.statusErrors, run.windowSeconds > 0 {
            let ok = Double(run.requests - run.statusErrors)
            rows.append(
                Figure(
                    key: "callbacks.c\(connections).cpu",
                    label: "  ledgerd CPU per callback, \(connections) connections",
                    value: cpu / ok * 1e6,
                    unit: "µs",
                    target: top ? .valueAtMost(80) : nil,
                    note: String(
                        format: "ledgerd used %.2f cores, the load generator %.2f cores, of %d",
                        cpu / run.windowSeconds,
                        run.loadGeneratorCPU / run.windowSeconds,
                        ProcessInfo.processInfo.activeProcessorCount
                    )
                )
            )
        }
    }
    if let run = results.callbacks[widest], let bare = results.bareOK {
        rows.append(
            Figure(
                key: "callbacks.vsBareOK",
                label: "callbacks vs bare OK, \(widest) connections",
                value: run.perSecond,
                unit: "callbacks/s",
                baselineLabel: "bare OK",
                baselineValue: bare.perSecond,
                target: .ratioAtLeast(0.6)
            )
        )
    }
    if let run = results.callbacks[widest], let single = results.callbacksOneFsync {
        rows.append(
            Figure(
                key: "callbacks.vsOneFsync",
                label: "callbacks vs one fsync each, \(widest) connections",
                value: run.perSecond,
                unit: "callbacks/s",
                baselineLabel: "one fsync per callback",
                baselineValue: single.perSecond,
                target: .ratioAtLeast(10)
            )
        )
    }
    if let run = results.callbacks[widest], let forwarding = results.callbacksForwarding {
        rows.append(
            Figure(
                key: "callbacks.forwarding",
                label: "durable callbacks while forwarding each outcome, \(widest) connections",
                value: forwarding.perSecond,
                unit: "callbacks/s",
                baselineLabel: "without forwarding",
                baselineValue: run.perSecond,
                target: .ratioAtLeast(0.9),
                note: String(format: "p50 %.2f ms, p99 %.2f ms; ", forwarding.p50 * 1e3, forwarding.p99 * 1e3)
                    + "the forwarder delivered the \(results.forwardedDuringRun ?? 0) order.paid outcomes of the run "
                    + "to a receiver answering 200 at once (the bare OK server) before the run counted as done, "
                    + "\(results.forwardedUnderLoad ?? 0) of them while the load ran"
            )
        )
    }
    if let forwarding = results.callbacksForwarding, let cpu = forwarding.serverCPU,
        forwarding.requests > forwarding.statusErrors, forwarding.windowSeconds > 0
    {
        // On a machine whose other load varies, the CPU per callback compares the two runs better than their rates.
        rows.append(
            Figure(
                key: "callbacks.forwarding.cpu",
                label: "  ledgerd CPU per callback while forwarding",
                value: cpu / Double(forwarding.requests - forwarding.statusErrors) * 1e6,
                unit: "µs",
                note: String(
                    format: "ledgerd used %.2f cores; its deliveries while the load ran are included",
                    cpu / forwarding.windowSeconds
                )
            )
        )
    }
    if let catchUp = results.forwardCatchUp, catchUp.deliveries > 0, catchUp.seconds > 0 {
        rows.append(
            Figure(
                key: "forward.catchUp",
                label: "forwarding after the load, to the bare OK server",
                value: Double(catchUp.deliveries) / catchUp.seconds,
                unit: "outcomes/s",
                note: String(format: "%d outcomes in %.1f s", catchUp.deliveries, catchUp.seconds)
            )
        )
        if let cpu = catchUp.cpu {
            rows.append(
                Figure(
                    key: "forward.cpu",
                    label: "  ledgerd CPU per forwarded outcome",
                    value: cpu / Double(catchUp.deliveries) * 1e6,
                    unit: "µs",
                    note: String(format: "ledgerd used %.2f cores while it forwarded alone", cpu / catchUp.seconds)
                )
            )
        }
    }
    if let bare = results.bareOK {
        rows.append(
            Figure(
                key: "bareOK",
                label: "bare OK (same HTTP stack, no work), \(widest) connections",
                value: bare.perSecond,
                unit: "requests/s",
                note: String(format: "p50 %.2f ms, p99 %.2f ms", bare.p50 * 1e3, bare.p99 * 1e3)
                    + (bare.serverCPU.map {
                        String(
                            format: "; the server used %.2f cores, the load generator %.2f",
                            $0 / bare.windowSeconds,
                            bare.loadGeneratorCPU / bare.windowSeconds
                        )
                    } ?? "")
            )
        )
    }
    if let single = results.callbacksOneFsync {
        rows.append(
            Figure(
                key: "callbacks.oneFsync",
                label: "one fsync per callback (store.batchCountMax=1), \(widest) connections",
                value: single.perSecond,
                unit: "callbacks/s",
                note: String(format: "p50 %.2f ms, p99 %.2f ms", single.p50 * 1e3, single.p99 * 1e3)
            )
        )
    }
    for clients in [1, 8] {
        guard let run = results.control[clients] else { continue }
        rows.append(
            Figure(
                key: "control.history.c\(clients)",
                label: "order.history, \(clients) client(s)",
                value: run.perSecond,
                unit: "round trips/s",
                target: clients == 8 ? .valueAtLeast(30_000) : nil,
                note: "\(run.calls) calls on a ledger of \(results.orders) orders, random orders"
            )
        )
        rows.append(
            Figure(
                key: "control.history.c\(clients).p99",
                label: "  p99 latency, \(clients) client(s)",
                value: run.latency.p99 * 1e3,
                unit: "ms",
                target: clients == 8 ? .valueAtMost(2) : nil
            )
        )
        if let cpu = run.daemonCPU, run.calls > 0, run.seconds > 0 {
            rows.append(
                Figure(
                    key: "control.history.c\(clients).cpu",
                    label: "  ledgerd CPU per order.history, \(clients) client(s)",
                    value: cpu / Double(run.calls) * 1e6,
                    unit: "µs",
                    note: String(
                        format: "ledgerd used %.2f cores, the client threads %.2f cores, of %d; ",
                        cpu / run.seconds,
                        (run.clientCPU ?? 0) / run.seconds,
                        ProcessInfo.processInfo.activeProcessorCount
                    )
                        + "the clients check each answer in its bytes (its id, its order id, a whole line) and "
                        + "parse \(run.fullyChecked) of them (1 in 64) in full into the protocol's types after the run"
                )
            )
        }
    }
    if let rebuild = results.rebuild {
        rows.append(
            Figure(
                key: "rebuild.seconds",
                label: "projection.rebuild of \(rebuild.orders) orders",
                value: rebuild.seconds,
                unit: "s",
                target: .valueAtMost(3),
                note: "\(rebuild.events) events replayed, timed from the control client"
            )
        )
        rows.append(
            Figure(
                key: "rebuild.eventsPerSecond",
                label: "  rebuild rate",
                value: rebuild.seconds > 0 ? Double(rebuild.events) / rebuild.seconds : 0,
                unit: "events/s"
            )
        )
    }
    if let rss = results.rssAnonBytes {
        rows.append(
            Figure(
                key: "memory.rssAnon",
                label: "daemon RssAnon with \(results.orders) orders",
                value: Double(rss) / 1e6,
                unit: "MB",
                target: .valueAtMost(200),
                note:
                    "after the control runs; \(SystemBenchmark.megabytes(results.rssAnonIdleBytes)) once the poller had loaded every pending order, before any load"
            )
        )
    }
    return rows
}

func systemJSON(
    _ rows: [Figure],
    results: SystemBenchmark.Results,
    run: BenchRun,
    config: SystemBenchConfig
) -> String {
    let root: JSONValue = .object(
        JSONObject(
            jsonPreamble(benchmark: "system", run: run) + [
                (
                    "config",
                    .object(
                        JSONObject([
                            ("orders", Format.json(Double(results.orders))),
                            ("events", Format.json(Double(results.events))),
                            ("callbackOrdersPerRun", Format.json(Double(config.callbackOrders))),
                            ("secondsPerCallbackRun", Format.json(Double(config.seconds))),
                            ("connections", .array(config.connections.map { Format.json(Double($0)) })),
                            ("controlSeconds", Format.json(Double(config.controlSeconds))),
                        ])
                    )
                ),
                ("figures", figuresJSON(rows)),
                ("targets", targetsJSON(rows)),
                ("targetsMet", .bool(rows.allSatisfy { $0.met ?? true })),
            ]
        )
    )
    return JSONWriter.write(root, options: [.sortedKeys, .prettyPrinted])
}

func systemMarkdown(
    _ rows: [Figure],
    results: SystemBenchmark.Results,
    run: BenchRun,
    config: SystemBenchConfig
) -> String {
    var lines = markdownPreamble(title: "ledger-bench system", run: run)
    lines += [
        "- ledger: \(results.orders) orders, \(results.events) events at the end; the release `ledgerd` with its defaults, "
            + "the load generator (wrk) and the daemon on the same \(run.machine.cores) cores",
        "- callback runs: \(config.seconds) s each, \(config.callbackOrders) distinct unpaid orders set aside per run",
        "",
    ]
    lines += markdownTable(rows)
    return lines.joined(separator: "\n") + "\n"
}
