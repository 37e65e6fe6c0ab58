#!/usr/bin/env python3
"""Writes the committed seed corpus (Fuzz/corpus/TARGET/) from scratch: a few well-formed inputs per target, so the
fuzzer starts inside the formats instead of spending its first minutes finding them. Event records follow the
layout documented in Sources/LedgerCore/Events/EventCodec.swift; notifications are signed as gateway-protocol.md §2
says, with the key the notify target verifies with. Run from anywhere; found crashes are added beside these by hand.
"""
import hashlib
import os
import struct
import urllib.parse

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
FUZZ_KEY = "fuzz-merchant-key-7Qx2"  # NotificationOracle.key in fuzz-notify


def write(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def form(pairs):
    return "&".join(urllib.parse.quote_plus(k, safe="*-._") + "=" + urllib.parse.quote_plus(v, safe="*-._") for k, v in pairs)


def sign(pairs, key):
    signed = {"memberid", "orderid", "amount", "transaction_id", "datetime", "returncode"}
    chosen = sorted((k, v) for k, v in pairs if k in signed and v != "")
    text = "".join(f"{k}={v}&" for k, v in chosen) + "key=" + key
    return hashlib.md5(text.encode()).hexdigest().upper()


def notification(attach=None, **overrides):
    pairs = [("memberid", "10086"), ("orderid", "ORD20261127000001"), ("amount", "100.00"),
             ("transaction_id", "2026112710000512345"), ("datetime", "20261127100000"), ("returncode", "00")]
    pairs = [(k, overrides.get(k, v)) for k, v in pairs]
    if attach is not None:
        pairs.append(("attach", attach))
    return pairs + [("sign", sign(pairs, FUZZ_KEY))]


# form: bodies for the strict decoder
write("form", "notification", form(notification()))
write("form", "attach-reframing", form(notification(attach="a=1&b=2 测试")))
write("form", "escapes", "a=%41%62%E6%B5%8B+c&b=&c&&d=%2B%25")
write("form", "repeated", "a=1&b=2&a=3")
write("form", "bad-escape", "a=%4&b=%zz&c=%")
write("form", "bad-utf8", "a=%FF%FE")

# notify: signed notifications and near misses
write("notify", "valid", form(notification()))
write("notify", "valid-attach", form(notification(attach="order=1&note=中文")))
write("notify", "not-success", form(notification(returncode="11")))
write("notify", "odd-amount", form(notification(amount="1e3")))
write("notify", "lowercase-sign", form([(k, v.lower() if k == "sign" else v) for k, v in notification()]))
write("notify", "missing-sign", form(notification()[:-1]))

# control: byte 0 picks the line limit (8 + 4 * byte), byte 1 seeds the piece sizes, the rest is the stream
lines = [
    b'{"jsonrpc":"2.0","id":1,"method":"order.get","params":{"orderId":"ORD20261127000001"}}',
    b'{"jsonrpc":"2.0","method":"events.subscribe","params":{"fromSequence":1}}',
    b'{"jsonrpc":"2.0","id":"a\\u00e9\\ud83d\\ude00","method":"order.list","params":{"status":"paid","limit":10}}',
    b'[{"jsonrpc":"2.0","id":2,"method":"ledger.stats"}]',
    b'{"jsonrpc":"1.0","id":null,"method":7}',
    b'{"jsonrpc":"2.0","id":3,"method":"x","extra":true}',
    b'{"jsonrpc":"2.0","id":4,"method":"order.create","params":{"amount":"1.00","bankCode":"940","productName":"t"}}',
    b'{"truncated":',
]
write("control", "requests", bytes([255, 1]) + b"\n".join(lines) + b"\n")
write("control", "crlf-and-blank", bytes([64, 2]) + b"\r\n\n" + lines[0] + b"\r\n" + lines[1])
write("control", "too-long", bytes([4, 3]) + lines[6] + b"\n" + lines[0] + b"\n")
write("control", "deep", bytes([200, 4]) + b'{"jsonrpc":"2.0","id":5,"method":"m","params":[[[[[[[[[[1]]]]]]]]]]}\n')


# event: records in the stored binary layout, each with its SHA-256
def leb(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def text(s):
    data = s.encode() if isinstance(s, str) else s
    return leb(len(data)) + data


def optional(s):
    return b"\x00" if s is None else b"\x01" + text(s)


def fields(pairs):
    return leb(len(pairs)) + b"".join(text(k) + text(v) for k, v in pairs)


def event(tag, sequence, order_id, payload, previous=b"\x00" * 32):
    body = struct.pack(">BBQq", 1, tag, sequence, 1_795_744_800_000 + sequence) + previous + text(order_id) + payload
    return body + hashlib.sha256(body).digest()


created = (b"\x00" + text("https://gateway.example.cn/Pay_Index.html") + text("10086") + text("2026-11-27 10:00:00")
           + text("940") + text("https://shop.example.com/notify") + text("https://shop.example.com/return")
           + text("100.00") + text("测试商品") + optional("note") + optional(None) + optional(None)
           + optional("https://shop.example.com/p/1") + text("0123456789ABCDEF0123456789ABCDEF"))
write("event", "order-created", event(1, 1, "ORD20261127000001", created))
pairs = notification(attach="a=1")
callback = b"\x01\x00" + text("203.0.113.7:51234") + text(form(pairs)) + fields(pairs)
write("event", "callback-received", event(2, 2, "ORD20261127000001", callback, previous=b"\x11" * 32))
reply = [("memberid", "10086"), ("orderid", "ORD20261127000001"), ("amount", "100.00"), ("trade_state", "SUCCESS"),
         ("sign", "0123456789ABCDEF0123456789ABCDEF")]
query = struct.pack(">IQBH", 1, 1500, 0, 200) + text(b'{"status":"1"}') + b"\x01\x01\x04\x02" + fields(reply)
write("event", "query-reply", event(3, 3, "ORD20261127000001", query))
write("event", "query-gateway-error", event(3, 4, "ORD1", struct.pack(">IQBH", 2, 9, 1, 500) + text(b"<html>") + b"\x02" + text("HTTP 500")))
write("event", "query-transport-error", event(3, 5, "ORD1", struct.pack(">IQBH", 3, 0, 0, 0) + text(b"") + b"\x04" + text("timed out")))
