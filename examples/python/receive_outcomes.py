#!/usr/bin/env python3
"""Receive the order outcomes the ledger forwards, verify each, and store each once.

What it shows: a small HTTP server for ledgerd's `forward.url`. For each POST it
  1. checks `Ledger-Signature: t=SECONDS,v1=HEX[,v1=HEX]`: HEX is HMAC-SHA256(secret, t + "." + raw body) in
     lowercase hex; any one `v1` may match (two are sent while a secret is rotated), compared in constant time,
     and `t` must be within TOLERANCE_SECONDS of this clock, so an old request replayed is refused;
  2. answers 400 to anything that does not verify: the ledger counts it as a failed delivery and shows it in
     `ledgerctl forward status`, and nothing is stored;
  3. deduplicates on `Ledger-Event-Id` (the same outcome sent again, after a retry or a restart, has the same id);
  4. appends the outcome to the store file and syncs it to disk, and only then answers 200: a 2xx tells the ledger
     the outcome is safe, so answering before storing could lose it.

Run it, then start ledgerd with the same secret:

    python3 receive_outcomes.py --listen 127.0.0.1:8080 --secret-file shop.secret --store outcomes.jsonl
    LEDGERD_FORWARD_URL=http://127.0.0.1:8080/ledger-hook LEDGERD_FORWARD_SECRET_FILE=ledger.secret ledgerd run

The secret file holds the secret on one line; during a rotation, two lines (both are accepted). The store holds
one JSON object per line, each outcome once. This server handles one request at a time, which is what makes the
duplicate check and the append one step; a shop's own database does the same with a unique key on the event id.
"""

import argparse
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

# How far the signature's timestamp may be from this clock, either way, in seconds (the ledger's README: 5 minutes).
TOLERANCE_SECONDS = 300
# The largest body accepted; a forwarded outcome is well under 1 KiB.
BODY_BYTES_MAX = 65536


def signature_problem(header, body, secrets, now):
    """Why the request does not verify, or None when one of its `v1` signatures matches under one secret."""
    timestamp = None
    signatures = []
    for part in header.split(","):
        key, _, value = part.partition("=")
        if key == "t" and value.isdigit() and timestamp is None:
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        return "the Ledger-Signature header is not t=SECONDS,v1=HEX"
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return "the signature's timestamp is outside the tolerance (a replay, or a clock that is off)"
    signed = timestamp.encode("ascii") + b"." + body
    for secret in secrets:
        expected = hmac.new(secret, signed, hashlib.sha256).hexdigest()
        # compare_digest takes the same time wherever the strings differ, so the answer leaks nothing.
        if any(hmac.compare_digest(expected, signature) for signature in signatures):
            return None
    return "no v1 signature matches the body"


class Store:
    """The outcomes file: one JSON object per line, each event id once, and the ids already in it."""

    def __init__(self, path):
        self.path = path
        self.ids = set()
        if os.path.exists(path):
            with open(path, "rb") as existing:
                content = existing.read()
            for line in content.splitlines():
                try:
                    self.ids.add(json.loads(line)["id"])
                except (ValueError, KeyError, TypeError):
                    # A line cut short by a crash: that outcome was never acknowledged, so the ledger sends it again.
                    pass
            if content and not content.endswith(b"\n"):
                with open(path, "ab") as store:
                    store.write(b"\n")

    def add(self, outcome):
        """Appends the outcome and waits until it is on disk."""
        line = json.dumps(outcome, ensure_ascii=False, separators=(",", ":")) + "\n"
        with open(self.path, "ab") as store:
            store.write(line.encode("utf-8"))
            store.flush()
            os.fsync(store.fileno())
        self.ids.add(outcome["id"])


class Receiver(BaseHTTPRequestHandler):
    # Set in main() before the server starts.
    secrets = []
    store = None

    def do_POST(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            return self.answer(411, "a Content-Length is required")
        if int(length) > BODY_BYTES_MAX:
            return self.answer(413, "the body is too large")
        # The raw bytes as received: the signature is over them, not over a re-encoded copy.
        body = self.rfile.read(int(length))
        problem = signature_problem(self.headers.get("Ledger-Signature", ""), body, self.secrets, int(time.time()))
        if problem is not None:
            return self.answer(400, f"refused: {problem}")
        try:
            outcome = json.loads(body)
        except ValueError:
            outcome = None
        if not isinstance(outcome, dict):
            return self.answer(400, "refused: the body is not a JSON object")
        # The header is not signed, the body is: the id to deduplicate on must be the signed one.
        event_id = self.headers.get("Ledger-Event-Id")
        if event_id != outcome.get("id"):
            return self.answer(400, "refused: Ledger-Event-Id does not match the signed body's id")
        if event_id in self.store.ids:
            return self.answer(200, f"duplicate {event_id}: already stored")
        try:
            self.store.add(outcome)
        except OSError as error:
            # Not stored, so not acknowledged: the ledger tries again on its schedule.
            return self.answer(500, f"cannot store {event_id}: {error}")
        # The shop's own work goes here: mark the order paid, ship it, or flag it for review.
        return self.answer(200, f"stored {event_id}: order {outcome.get('orderId')} is {outcome.get('state')}")

    def answer(self, status, text):
        print(f"{status} {text}", flush=True)
        data = (text + "\n").encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        # Each request is printed once, with its outcome, by answer().
        pass


def main():
    parser = argparse.ArgumentParser(description="Receive, verify and store the ledger's forwarded outcomes.")
    parser.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to listen on")
    parser.add_argument("--secret-file", required=True, help="the shared secret, one per line (two while rotating)")
    parser.add_argument("--store", default="outcomes.jsonl", help="the file the outcomes are appended to")
    arguments = parser.parse_args()

    try:
        with open(arguments.secret_file, "rb") as file:
            Receiver.secrets = [line.strip() for line in file.read().splitlines() if line.strip()]
    except OSError as error:
        print(f"error: cannot read the secret file: {error}", file=sys.stderr)
        return 1
    if not Receiver.secrets:
        print(f"error: {arguments.secret_file} holds no secret", file=sys.stderr)
        return 1
    try:
        Receiver.store = Store(arguments.store)
    except OSError as error:
        print(f"error: cannot read the store: {error}", file=sys.stderr)
        return 1
    host, _, port = arguments.listen.rpartition(":")
    try:
        server = HTTPServer((host, int(port)), Receiver)
    except (OSError, ValueError) as error:
        print(f"error: cannot listen on {arguments.listen}: {error}", file=sys.stderr)
        return 1
    print(f"listening on http://{arguments.listen}/, storing to {arguments.store}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
