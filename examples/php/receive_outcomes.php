<?php
// Receive the order outcomes the ledger forwards, verify each, and store each once.
//
// What it shows: the page behind ledgerd's `forward.url`. For each POST it
//   1. checks `Ledger-Signature: t=SECONDS,v1=HEX[,v1=HEX]`: HEX is HMAC-SHA256(secret, t . "." . raw body) in
//      lowercase hex; any one `v1` may match (two are sent while a secret is rotated), compared in constant time
//      (hash_equals), and `t` must be within TOLERANCE_SECONDS of this clock, so an old request replayed is refused;
//   2. answers 400 to anything that does not verify: the ledger counts it as a failed delivery and shows it in
//      `ledgerctl forward status`, and nothing is stored;
//   3. deduplicates on `Ledger-Event-Id` (the same outcome sent again, after a retry or a restart, has the same id);
//   4. appends the outcome to the store file and syncs it to disk, and only then answers 200: a 2xx tells the ledger
//      the outcome is safe, so answering before storing could lose it.
//
// It is an ordinary PHP page: put it behind the shop's web server, or try it with PHP's built-in server:
//
//     LEDGER_SECRET_FILE=shop.secret LEDGER_STORE=outcomes.jsonl php -S 127.0.0.1:8080 receive_outcomes.php
//     LEDGERD_FORWARD_URL=http://127.0.0.1:8080/ledger-hook LEDGERD_FORWARD_SECRET_FILE=ledger.secret ledgerd run
//
// The secret file holds the secret on one line; during a rotation, two lines (both are accepted). The store holds
// one JSON object per line, each outcome once. Requests may run in parallel (several PHP workers), so the duplicate
// check and the append happen under an exclusive lock on the store; a shop's own database does the same with a
// unique key on the event id.

declare(strict_types=1);

// How far the signature's timestamp may be from this clock, either way, in seconds (the ledger's README: 5 minutes).
const TOLERANCE_SECONDS = 300;
// The largest body accepted; a forwarded outcome is well under 1 KiB.
const BODY_BYTES_MAX = 65536;

/** Answers and ends the request; the line also goes to the server's log. */
function answer(int $status, string $text): never
{
    error_log("$status $text");
    http_response_code($status);
    header('Content-Type: text/plain; charset=utf-8');
    echo $text, "\n";
    exit;
}

/** Why the request does not verify, or null when one of its `v1` signatures matches under one secret. */
function signature_problem(string $header, string $body, array $secrets, int $now): ?string
{
    $timestamp = null;
    $signatures = [];
    foreach (explode(',', $header) as $part) {
        [$key, $value] = array_pad(explode('=', $part, 2), 2, '');
        if ($key === 't' && ctype_digit($value) && $timestamp === null) {
            $timestamp = $value;
        } elseif ($key === 'v1') {
            $signatures[] = $value;
        }
    }
    if ($timestamp === null || $signatures === []) {
        return 'the Ledger-Signature header is not t=SECONDS,v1=HEX';
    }
    if (abs($now - (int)$timestamp) > TOLERANCE_SECONDS) {
        return "the signature's timestamp is outside the tolerance (a replay, or a clock that is off)";
    }
    foreach ($secrets as $secret) {
        $expected = hash_hmac('sha256', $timestamp . '.' . $body, $secret);
        foreach ($signatures as $signature) {
            // hash_equals takes the same time wherever the strings differ, so the answer leaks nothing.
            if (hash_equals($expected, $signature)) {
                return null;
            }
        }
    }
    return 'no v1 signature matches the body';
}

if ($_SERVER['REQUEST_METHOD'] !== 'POST') {
    answer(405, 'only POST is served here');
}
$secretFile = getenv('LEDGER_SECRET_FILE');
$storePath = getenv('LEDGER_STORE') ?: 'outcomes.jsonl';
$secrets = $secretFile === false ? false : @file($secretFile, FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES);
if ($secrets === false || $secrets === []) {
    // A receiver without its secret cannot tell a real outcome from a forged one; the ledger tries again later.
    answer(500, 'the receiver has no secret: set LEDGER_SECRET_FILE to a readable file holding it');
}
$secrets = array_map('trim', $secrets);

if ((int)($_SERVER['CONTENT_LENGTH'] ?? 0) > BODY_BYTES_MAX) {
    answer(413, 'the body is too large');
}
// The raw bytes as received: the signature is over them, not over a re-encoded copy.
$body = file_get_contents('php://input');
$problem = signature_problem($_SERVER['HTTP_LEDGER_SIGNATURE'] ?? '', $body, $secrets, time());
if ($problem !== null) {
    answer(400, "refused: $problem");
}
$outcome = json_decode($body, true);
if (!is_array($outcome)) {
    answer(400, 'refused: the body is not a JSON object');
}
// The header is not signed, the body is: the id to deduplicate on must be the signed one.
$eventId = $_SERVER['HTTP_LEDGER_EVENT_ID'] ?? null;
if ($eventId !== ($outcome['id'] ?? null)) {
    answer(400, "refused: Ledger-Event-Id does not match the signed body's id");
}

$store = @fopen($storePath, 'c+');
if ($store === false || !flock($store, LOCK_EX)) {
    // Not stored, so not acknowledged: the ledger tries again on its schedule.
    answer(500, "cannot store $eventId: cannot open $storePath");
}
$endsWithNewline = true;
while (($line = fgets($store)) !== false) {
    $endsWithNewline = str_ends_with($line, "\n");
    $stored = json_decode($line, true);
    if (is_array($stored) && ($stored['id'] ?? null) === $eventId) {
        flock($store, LOCK_UN);
        answer(200, "duplicate $eventId: already stored");
    }
}
// A line cut short by a crash was never acknowledged (the ledger sends it again); the next line starts afresh.
$line = ($endsWithNewline ? '' : "\n") . json_encode($outcome, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE) . "\n";
$written = fwrite($store, $line) === strlen($line) && fflush($store) && fsync($store);
flock($store, LOCK_UN);
fclose($store);
if (!$written) {
    answer(500, "cannot store $eventId: writing $storePath failed");
}
// The shop's own work goes here: mark the order paid, ship it, or flag it for review.
answer(200, "stored $eventId: order " . ($outcome['orderId'] ?? '?') . ' is ' . ($outcome['state'] ?? '?'));
