<?php
// Shared helpers for the php-amqplib interop programs (scenario.php, rpc_server.php).

declare(strict_types=1);

// Debian's php-amqplib package installs its own autoloader here.
require_once '/usr/share/php/PhpAmqpLib/autoload.php';

use PhpAmqpLib\Channel\AMQPChannel;
use PhpAmqpLib\Connection\AMQPStreamConnection;
use PhpAmqpLib\Exception\AMQPTimeoutException;

const CLIENT = 'php-amqplib';
const DEFAULT_URL = 'amqp://guest:guest@127.0.0.1:5672/%2F';
const CONNECT_TIMEOUT = 5.0; // seconds: TCP connect + AMQP handshake
const READ_WRITE_TIMEOUT = 10.0; // seconds: any single socket read or write
const RPC_TIMEOUT = 5.0; // seconds: any synchronous reply (declare-ok, get-ok, ...)

final class Failure extends \RuntimeException
{
}

function check(bool $cond, string $reason): void
{
    if (!$cond) {
        throw new Failure($reason);
    }
}

/** What the scenario is doing right now, for failure messages. */
function step(?string $desc = null): string
{
    static $current = 'start';
    if ($desc !== null) {
        $current = $desc;
    }
    return $current;
}

function show($value): string
{
    if ($value instanceof \DateTimeInterface) {
        return 'DateTime(' . $value->getTimestamp() . ')';
    }
    return str_replace(["\n", '  '], [' ', ''], var_export($value, true));
}

/** host, port, user, password and vhost of an amqp:// URL. */
function parse_amqp_url(string $url): array
{
    $p = parse_url($url);
    if ($p === false || ($p['scheme'] ?? '') !== 'amqp') {
        throw new \InvalidArgumentException("not an amqp:// URL: $url");
    }
    $path = $p['path'] ?? '';
    $vhost = ($path === '' || $path === '/') ? '/' : rawurldecode(substr($path, 1));
    return [
        'host' => $p['host'] ?? '127.0.0.1',
        'port' => $p['port'] ?? 5672,
        'user' => rawurldecode($p['user'] ?? 'guest'),
        'password' => rawurldecode($p['pass'] ?? 'guest'),
        'vhost' => $vhost,
    ];
}

/** Connections opened by the running scenario, closed afterwards. */
$GLOBALS['connections'] = [];

function connect(string $url, array $options = []): AMQPStreamConnection
{
    step($options['step'] ?? 'connection handshake');
    $u = parse_amqp_url($url);
    $conn = new AMQPStreamConnection(
        $u['host'],
        $u['port'],
        $u['user'],
        $u['password'],
        $u['vhost'],
        login_method: $options['login_method'] ?? 'AMQPLAIN',
        connection_timeout: CONNECT_TIMEOUT,
        read_write_timeout: READ_WRITE_TIMEOUT,
        heartbeat: $options['heartbeat'] ?? 0,
        channel_rpc_timeout: RPC_TIMEOUT,
    );
    $GLOBALS['connections'][] = $conn;
    return $conn;
}

function close_quietly($conn): void
{
    try {
        if ($conn->isConnected()) {
            $conn->close();
        }
    } catch (\Throwable $e) {
        try {
            $conn->getIO()->close();
        } catch (\Throwable $e2) {
            // best effort only
        }
    }
}

/**
 * Dispatches incoming frames on $ch until $done() is true; fails after
 * $timeout seconds.
 */
function wait_until(AMQPChannel $ch, callable $done, float $timeout, string $what): void
{
    $deadline = microtime(true) + $timeout;
    while (!$done()) {
        $left = $deadline - microtime(true);
        if ($left <= 0) {
            throw new Failure("no $what within $timeout s");
        }
        try {
            $ch->wait(null, false, $left);
        } catch (AMQPTimeoutException $e) {
            throw new Failure("no $what within $timeout s");
        }
    }
}

/** Dispatches whatever arrives on $ch for $seconds (to prove nothing more comes). */
function wait_quietly(AMQPChannel $ch, float $seconds): void
{
    $deadline = microtime(true) + $seconds;
    while (($left = $deadline - microtime(true)) > 0) {
        try {
            $ch->wait(null, false, $left);
        } catch (AMQPTimeoutException $e) {
            return;
        }
    }
}

function unique_name(string $scenario): string
{
    return CLIENT . ".$scenario." . bin2hex(random_bytes(6));
}

function describe(\Throwable $e): string
{
    $text = $e->getMessage();
    if (!($e instanceof Failure)) {
        $class = (new \ReflectionClass($e))->getShortName();
        $code = $e->getCode() ? " (code {$e->getCode()})" : '';
        $text = "$class: $text$code (during " . step() . ')';
    }
    $text = trim(preg_replace('/\s+/', ' ', $text));
    return strlen($text) <= 300 ? $text : substr($text, 0, 297) . '...';
}
