#!/usr/bin/env python3
"""Follow the ledger's events from a saved position, resuming after a restart without missing or repeating one.

What it shows: `events.subscribe` over the control socket. The daemon sends the backlog from `fromSequence` on,
then each event as it commits, once each and in log order, as `events.event` notifications. After handling an
event this program saves its sequence in the position file; started again, it subscribes from the saved
sequence plus one. The sequences are consecutive, so it checks that each event is the one after the last.

Run it as the user ledgerd runs as (the socket is mode 0600):

    python3 follow_events.py --socket /run/ledgerd/ledgerd.sock --position follow.position

Stop it with Ctrl-C or SIGTERM: it finishes the event in hand, saves its position and exits 0; run it again to
resume. A power cut or `kill -9` between handling an event and saving its position hands that one event over
again after the restart, so make handle() idempotent on the sequence, or store its result and the position in one
transaction of the shop's database.

Exit status: 0 when stopped, 1 on a daemon error answer or when the daemon dropped this subscriber (it fell behind;
run it again), 3 when the daemon cannot be reached or went away.
"""

import argparse
import json
import os
import signal
import socket
import sys

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class Stop(Exception):
    """Raised by the signal handler; only ever while waiting for the next event (see follow())."""


def request_stop(signum, frame):
    raise Stop()


def read_position(path):
    """The last sequence handled, 0 when nothing has been yet."""
    try:
        with open(path, "r", encoding="ascii") as file:
            return int(file.read().strip() or "0")
    except FileNotFoundError:
        return 0


def save_position(path, sequence):
    """Replaces the position file in one step: a crash leaves the old position or the new one, never half of one."""
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="ascii") as file:
        file.write(f"{sequence}\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def handle(event):
    """The shop's own work for one event; here, one line on standard output."""
    print(f"sequence {event['sequence']}: {event['type']} for order {event['orderId']}", flush=True)


def follow(socket_path, position_path):
    last = read_position(position_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(socket_path)
        request = {"jsonrpc": "2.0", "id": 1, "method": "events.subscribe", "params": {"fromSequence": last + 1}}
        connection.sendall(json.dumps(request).encode("utf-8") + b"\n")
        lines = connection.makefile("rb")
        while True:
            line = lines.readline()
            if not line:
                print(f"error: the daemon closed the connection (stopped?); run again to resume after sequence {last}",
                      file=sys.stderr)
                return 3
            message = json.loads(line)
            if message.get("id") == 1 and "error" in message:
                error = message["error"]
                name = (error.get("data") or {}).get("name", "unknown")
                print(f"error: the ledger refused the subscription: {name} ({error.get('code')}): "
                      f"{error.get('message')}", file=sys.stderr)
                return 1
            if message.get("id") == 1:
                print(f"following from sequence {message['result']['fromSequence']}", file=sys.stderr, flush=True)
            elif message.get("method") == "events.dropped":
                print(f"error: the daemon dropped this subscriber: {message['params']['reason']}; run again to "
                      f"resume after sequence {last}", file=sys.stderr)
                return 1
            elif message.get("method") == "events.event":
                event = message["params"]["event"]
                if event["sequence"] != last + 1:
                    print(f"error: expected sequence {last + 1}, the daemon sent {event['sequence']}", file=sys.stderr)
                    return 1
                # A stop request waits until the event is handled and its position saved: blocked here, a signal
                # is delivered at the unblock, where Stop leaves nothing half done.
                signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
                handle(event)
                save_position(position_path, event["sequence"])
                last = event["sequence"]
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def main():
    parser = argparse.ArgumentParser(description="Follow the ledger's events from a saved position.")
    parser.add_argument("--socket", default="ledgerd.sock", help="the daemon's control socket (its `socket` setting)")
    parser.add_argument("--position", default="follow.position", help="the file holding the last sequence handled")
    arguments = parser.parse_args()
    for signum in STOP_SIGNALS:
        signal.signal(signum, request_stop)
    try:
        return follow(arguments.socket, arguments.position)
    except Stop:
        print(f"stopped after sequence {read_position(arguments.position)}", file=sys.stderr)
        return 0
    except FileNotFoundError:
        print(f"error: no socket at {arguments.socket}: is ledgerd running, and is this its `socket` setting?",
              file=sys.stderr)
        return 3
    except ConnectionRefusedError:
        print(f"error: {arguments.socket} refuses connections: ledgerd is not running (the socket is left over)",
              file=sys.stderr)
        return 3
    except PermissionError:
        print(f"error: not allowed to connect to {arguments.socket}: run as the daemon's user, or add this user's "
              "uid to control.allowedUids", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
