<?php
// Follow the ledger's events from a saved position, resuming after a restart without missing or repeating one.
//
// What it shows: `events.subscribe` over the control socket. The daemon sends the backlog from `fromSequence` on,
// then each event as it commits, once each and in log order, as `events.event` notifications. After handling an
// event this program saves its sequence in the position file; started again, it subscribes from the saved
// sequence plus one. The sequences are consecutive, so it checks that each event is the one after the last.
//
// Run it as the user ledgerd runs as (the socket is mode 0600), with php-cli (its pcntl functions stop it cleanly):
//
//     php follow_events.php --socket /run/ledgerd/ledgerd.sock --position follow.position
//
// Stop it with Ctrl-C or SIGTERM: it finishes the event in hand, saves its position and exits 0; run it again to
// resume. A power cut or `kill -9` between handling an event and saving its position hands that one event over
// again after the restart, so make handle_event() idempotent on the sequence, or store its result and the position
// in one transaction of the shop's database.
//
// Exit status: 0 when stopped, 1 on a daemon error answer or when the daemon dropped this subscriber (it fell
// behind; run it again), 3 when the daemon cannot be reached or went away.

declare(strict_types=1);

const STOP_SIGNALS = [SIGINT, SIGTERM];

/** The last sequence handled, 0 when nothing has been yet. */
function read_position(string $path): int
{
    $text = @file_get_contents($path);
    return $text === false ? 0 : (int)trim($text);
}

/** Replaces the position file in one step: a crash leaves the old position or the new one, never half of one. */
function save_position(string $path, int $sequence): void
{
    $temporary = $path . '.tmp';
    $file = fopen($temporary, 'w');
    if ($file === false || fwrite($file, "$sequence\n") === false || !fflush($file) || !fsync($file)
        || !fclose($file) || !rename($temporary, $path)) {
        throw new RuntimeException("cannot save the position to $path");
    }
}

/** The shop's own work for one event; here, one line on standard output. */
function handle_event(array $event): void
{
    echo "sequence {$event['sequence']}: {$event['type']} for order {$event['orderId']}\n";
}

$options = getopt('', ['socket:', 'position:']);
$socketPath = $options['socket'] ?? 'ledgerd.sock';
$positionPath = $options['position'] ?? 'follow.position';

// A stop request only sets a flag, and only where the loop asks for it (pcntl_signal_dispatch), which is never
// between handling an event and saving its position. Without restarting the interrupted wait (the third
// argument), a signal ends the wait for the next event at once.
$stop = false;
foreach (STOP_SIGNALS as $signal) {
    pcntl_signal($signal, function () use (&$stop) { $stop = true; }, false);
}

if (!file_exists($socketPath)) {
    fwrite(STDERR, "error: no socket at $socketPath: is ledgerd running, and is this its `socket` setting?\n");
    exit(3);
}
$connection = @stream_socket_client('unix://' . $socketPath, $errno, $errstr, 10);
if ($connection === false) {
    fwrite(STDERR, "error: cannot connect to $socketPath: $errstr (a refused socket is one ledgerd left behind; a "
        . "denied one needs the daemon's user or control.allowedUids)\n");
    exit(3);
}
$last = read_position($positionPath);
$request = ['jsonrpc' => '2.0', 'id' => 1, 'method' => 'events.subscribe', 'params' => ['fromSequence' => $last + 1]];
fwrite($connection, json_encode($request) . "\n");

while (true) {
    pcntl_signal_dispatch();
    if ($stop) {
        break;
    }
    // Wait in select rather than in fgets: a signal interrupts select (false), and a second without an event (0)
    // comes back here to look at the flag again. Lines already buffered count as readable.
    $readable = [$connection];
    $none = null;
    $ready = @stream_select($readable, $none, $none, 1);
    if ($ready === false) {
        pcntl_signal_dispatch();
        if ($stop) {
            break;
        }
        fwrite(STDERR, "error: waiting for the daemon failed: " . (error_get_last()['message'] ?? 'unknown') . "\n");
        exit(3);
    }
    if ($ready === 0) {
        continue;
    }
    $line = fgets($connection);
    if ($line === false) {
        fwrite(STDERR, "error: the daemon closed the connection (stopped?); run again to resume after sequence "
            . "$last\n");
        exit(3);
    }
    $message = json_decode($line, true, 512, JSON_THROW_ON_ERROR);
    if (($message['id'] ?? null) === 1 && isset($message['error'])) {
        $error = $message['error'];
        $name = $error['data']['name'] ?? 'unknown';
        fwrite(STDERR, "error: the ledger refused the subscription: $name ({$error['code']}): {$error['message']}\n");
        exit(1);
    }
    if (($message['id'] ?? null) === 1) {
        fwrite(STDERR, "following from sequence {$message['result']['fromSequence']}\n");
    } elseif (($message['method'] ?? null) === 'events.dropped') {
        fwrite(STDERR, "error: the daemon dropped this subscriber: {$message['params']['reason']}; run again to "
            . "resume after sequence $last\n");
        exit(1);
    } elseif (($message['method'] ?? null) === 'events.event') {
        $event = $message['params']['event'];
        if ($event['sequence'] !== $last + 1) {
            fwrite(STDERR, "error: expected sequence " . ($last + 1) . ", the daemon sent {$event['sequence']}\n");
            exit(1);
        }
        handle_event($event);
        save_position($positionPath, $event['sequence']);
        $last = $event['sequence'];
    }
}
fwrite(STDERR, "stopped after sequence $last\n");
