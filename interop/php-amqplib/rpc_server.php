<?php
// RPC server worker for the rpc and direct_reply_to scenarios, run as its own
// process (the way PHP RPC servers run): consumes the request queue and
// answers every request to its reply_to with the same correlation_id.
//
// Usage: php rpc_server.php URL QUEUE COUNT SECONDS
// Prints "READY" once it consumes, "REPLY_TO <name>" per answered request,
// and exits after COUNT requests or SECONDS seconds.

declare(strict_types=1);

require_once __DIR__ . '/common.php';

use PhpAmqpLib\Message\AMQPMessage;

[$_, $url, $queue, $count, $seconds] = $argv;
$count = (int)$count;
$deadline = microtime(true) + (float)$seconds;

try {
    $conn = connect($url);
    $ch = $conn->channel();
    // passive, durable, exclusive, auto_delete
    $ch->queue_declare($queue, false, false, true, false);
    $ch->basic_qos(0, 10, false);
    $served = 0;
    $ch->basic_consume($queue, '', false, false, false, false, function (AMQPMessage $request) use ($ch, &$served) {
        $reply = new AMQPMessage('reply to ' . $request->getBody(), [
            'correlation_id' => $request->get('correlation_id'),
        ]);
        $ch->basic_publish($reply, '', $request->get('reply_to'));
        $request->ack();
        $served++;
        fwrite(STDOUT, 'REPLY_TO ' . $request->get('reply_to') . "\n");
    });
    fwrite(STDOUT, "READY\n");
    while ($served < $count && ($left = $deadline - microtime(true)) > 0) {
        $ch->wait(null, false, $left);
    }
    $ch->close();
    $conn->close();
    exit(0);
} catch (\Throwable $e) {
    fwrite(STDOUT, 'ERROR ' . describe($e) . "\n");
    exit(1);
}
