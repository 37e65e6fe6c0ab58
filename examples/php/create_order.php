<?php
// Create an order in the ledger and print where to send the buyer.
//
// What it shows: one JSON-RPC 2.0 call, `order.create`, over the ledger's control socket (a Unix socket that
// carries one JSON object per line), the daemon's error answers (each with a stable name in `error.data.name`),
// and the `payUrl` the shop redirects the buyer to. The ledger records the signed payment request before it
// answers, so an order the buyer pays is always one the ledger holds.
//
// Run it as the user ledgerd runs as (the socket is mode 0600), with php-cli and nothing else:
//
//     php create_order.php --socket /run/ledgerd/ledgerd.sock --amount 12.50 --bank 942 --product "Annual card"
//
// Add `--order-id ID` to choose the order id (letters, digits, '_' and '-', at most 20); without it the ledger
// makes one. Creating the same id again with the same fields answers the same order (`created` false).
//
// Exit status: 0 when the order is held, 1 when the daemon answered an error, 2 on a usage error, 3 when the
// daemon cannot be reached. In a web shop, the checkout page calls ledger_call() the same way and answers the
// buyer with `header('Location: ' . $order['payUrl'], true, 303);`.

declare(strict_types=1);

/** An error answer: JSON-RPC's code, the stable name (`invalid-order`, `order-conflict`, ...) and a message. */
final class DaemonError extends Exception
{
    public function __construct(public readonly string $name, public readonly int $rpcCode, string $message)
    {
        parent::__construct("$name ($rpcCode): $message");
    }
}

/** A daemon that cannot be reached: the socket is missing, refuses, or closed without an answer. */
final class UnreachableError extends Exception
{
}

/** Sends one request on a new connection and returns its result; throws DaemonError for an error answer. */
function ledger_call(string $socketPath, string $method, array $params): array
{
    if (!file_exists($socketPath)) {
        throw new UnreachableError("no socket at $socketPath: is ledgerd running, and is this its `socket` setting?");
    }
    $connection = @stream_socket_client('unix://' . $socketPath, $errno, $errstr, 10);
    if ($connection === false) {
        throw new UnreachableError("cannot connect to $socketPath: $errstr (a refused socket is one ledgerd left "
            . 'behind; a denied one needs the daemon\'s user or control.allowedUids)');
    }
    $request = ['jsonrpc' => '2.0', 'id' => 1, 'method' => $method, 'params' => $params];
    fwrite($connection, json_encode($request, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE) . "\n");
    while (($line = fgets($connection)) !== false) {
        $message = json_decode($line, true, 512, JSON_THROW_ON_ERROR);
        // Notifications carry no id; only a subscription sends them, so none are expected here.
        if (($message['id'] ?? null) !== 1) {
            continue;
        }
        fclose($connection);
        if (isset($message['error'])) {
            $error = $message['error'];
            throw new DaemonError($error['data']['name'] ?? 'unknown', $error['code'] ?? 0, $error['message'] ?? '');
        }
        return $message['result'];
    }
    fclose($connection);
    throw new UnreachableError('the daemon closed the connection without answering');
}

$options = getopt('', ['socket:', 'amount:', 'bank:', 'product:', 'order-id:']);
foreach (['amount', 'bank', 'product'] as $required) {
    if (!isset($options[$required]) || !is_string($options[$required])) {
        fwrite(STDERR, "usage: php create_order.php [--socket PATH] --amount 12.50 --bank 942 --product NAME "
            . "[--order-id ID]\n");
        exit(2);
    }
}
$params = ['amount' => $options['amount'], 'bankCode' => $options['bank'], 'productName' => $options['product']];
if (isset($options['order-id'])) {
    $params['orderId'] = $options['order-id'];
}

try {
    $order = ledger_call($options['socket'] ?? 'ledgerd.sock', 'order.create', $params);
} catch (UnreachableError $error) {
    fwrite(STDERR, 'error: ' . $error->getMessage() . "\n");
    exit(3);
} catch (DaemonError $error) {
    fwrite(STDERR, 'error: the ledger refused the order: ' . $error->getMessage() . "\n");
    exit(1);
}

echo "order {$order['orderId']}: " . ($order['created'] ? 'created' : 'already held, the same order') . "\n";
echo "redirect the buyer to: {$order['payUrl']}\n";
