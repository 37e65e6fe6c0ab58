#!/usr/bin/env python3
"""Create an order in the ledger and print where to send the buyer.

What it shows: one JSON-RPC 2.0 call, `order.create`, over the ledger's control socket (a Unix socket that
carries one JSON object per line), the daemon's error answers (each with a stable name in `error.data.name`),
and the `payUrl` the shop redirects the buyer to. The ledger records the signed payment request before it
answers, so an order the buyer pays is always one the ledger holds.

Run it as the user ledgerd runs as (the socket is mode 0600), with Python 3 and nothing else:

    python3 create_order.py --socket /run/ledgerd/ledgerd.sock --amount 12.50 --bank 942 --product "Annual card"

Add `--order-id ID` to choose the order id (letters, digits, '_' and '-', at most 20); without it the ledger
makes one. Creating the same id again with the same fields answers the same order (`created` false).

Exit status: 0 when the order is held, 1 when the daemon answered an error, 3 when the daemon cannot be reached.
In a web shop, answer the buyer's checkout request with an HTTP redirect to the printed URL (303 See Other).
"""

import argparse
import json
import socket
import sys


def call(socket_path, method, params):
    """Sends one request on a new connection and returns its result; raises DaemonError for an error answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(socket_path)
        request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        connection.sendall(json.dumps(request, ensure_ascii=False).encode("utf-8") + b"\n")
        with connection.makefile("rb") as lines:
            for line in lines:
                message = json.loads(line)
                # Notifications carry no id; only a subscription sends them, so none are expected here.
                if message.get("id") != 1:
                    continue
                if "error" in message:
                    raise DaemonError(message["error"])
                return message["result"]
    raise ConnectionError("the daemon closed the connection without answering")


class DaemonError(Exception):
    """An error answer: JSON-RPC's code, the stable name (`invalid-order`, `order-conflict`, ...) and a message."""

    def __init__(self, error):
        self.code = error.get("code")
        self.name = (error.get("data") or {}).get("name", "unknown")
        self.message = error.get("message", "")
        super().__init__(f"{self.name} ({self.code}): {self.message}")


def main():
    parser = argparse.ArgumentParser(description="Create an order and print the URL to redirect the buyer to.")
    parser.add_argument("--socket", default="ledgerd.sock", help="the daemon's control socket (its `socket` setting)")
    parser.add_argument("--amount", required=True, help="yuan as decimal text, at most two decimals: 12.50")
    parser.add_argument("--bank", required=True, help="the gateway's bank code, such as 942")
    parser.add_argument("--product", required=True, help="the product name the gateway shows the buyer")
    parser.add_argument("--order-id", help="the shop's own order id; the ledger makes one when it is left out")
    arguments = parser.parse_args()

    params = {"amount": arguments.amount, "bankCode": arguments.bank, "productName": arguments.product}
    if arguments.order_id is not None:
        params["orderId"] = arguments.order_id
    try:
        order = call(arguments.socket, "order.create", params)
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
    except ConnectionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    except DaemonError as error:
        print(f"error: the ledger refused the order: {error}", file=sys.stderr)
        return 1

    print(f"order {order['orderId']}: {'created' if order['created'] else 'already held, the same order'}")
    print(f"redirect the buyer to: {order['payUrl']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
