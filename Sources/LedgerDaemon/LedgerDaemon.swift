// The daemon: the Ledger actor, HTTP endpoints, the query poller, the control socket, configuration.
