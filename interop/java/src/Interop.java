// Interop scenarios for the RabbitMQ Java client (com.rabbitmq:amqp-client), see
// interop/SCENARIOS.md. Usage:
//   java Interop run URL       every catalogue scenario, in one JVM
//   java Interop recover URL   auto_recovery (runs $INTEROP_RESTART_CMD)
// Prints `PASS java <scenario>` / `FAIL java <scenario>: <reason>` and exits 1 if any failed.

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.BuiltinExchangeType;
import com.rabbitmq.client.CancelCallback;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.DefaultConsumer;
import com.rabbitmq.client.DeliverCallback;
import com.rabbitmq.client.Delivery;
import com.rabbitmq.client.Envelope;
import com.rabbitmq.client.GetResponse;
import com.rabbitmq.client.LongString;
import com.rabbitmq.client.Recoverable;
import com.rabbitmq.client.RecoveryListener;
import com.rabbitmq.client.Return;
import com.rabbitmq.client.RpcClient;
import com.rabbitmq.client.RpcServer;

import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Date;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentSkipListSet;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;

public class Interop {
    static final String CLIENT = "java";
    /** Upper bound for one scenario; a hung broker fails it instead of the whole run. */
    static final long SCENARIO_TIMEOUT_MS = 30_000;
    /** How long to wait for something the broker should send promptly. */
    static final long WAIT_MS = 5_000;
    /** How long to watch for something the broker must not send. */
    static final long QUIET_MS = 300;

    static String url;
    /** Connections opened by the running scenario, aborted if it times out. */
    static final List<Connection> opened = new CopyOnWriteArrayList<>();
    /** The step the running scenario is at, named in failure reasons. */
    static volatile String step = "start";
    /** Set when a scenario's cleanup failed. */
    static volatile String cleanupError = null;

    /** A failed check: the message names what was expected and what was seen. */
    static class Fail extends Exception {
        Fail(String msg) { super(msg); }
    }

    interface Scenario { void run() throws Exception; }

    // ------------------------------------------------------------------ helpers

    static void step(String s) { step = s; }

    static void check(boolean ok, String what) throws Fail {
        if (!ok) throw new Fail(what);
    }

    static void expectEq(Object expected, Object seen, String what) throws Fail {
        boolean same = expected == null ? seen == null
                : (expected instanceof byte[] && seen instanceof byte[])
                        ? Arrays.equals((byte[]) expected, (byte[]) seen)
                        : expected.equals(seen);
        if (!same) throw new Fail(what + ": expected " + show(expected) + ", seen " + show(seen));
    }

    static String show(Object o) {
        if (o == null) return "null";
        if (o instanceof byte[]) {
            byte[] b = (byte[]) o;
            return b.length > 64 ? "<" + b.length + " bytes>" : "bytes" + Arrays.toString(b);
        }
        if (o instanceof String || o instanceof LongString) return "\"" + o + "\"";
        return o + " (" + o.getClass().getSimpleName() + ")";
    }

    static String uniq(String what) {
        return CLIENT + "-" + what + "-" + UUID.randomUUID().toString().substring(0, 8);
    }

    static byte[] utf8(String s) { return s.getBytes(StandardCharsets.UTF_8); }

    static String str(byte[] b) { return new String(b, StandardCharsets.UTF_8); }

    static ConnectionFactory factory() throws Exception {
        ConnectionFactory f = new ConnectionFactory();
        f.setUri(url);
        f.setConnectionTimeout(5_000);
        f.setHandshakeTimeout(5_000);
        f.setChannelRpcTimeout(10_000);
        f.setShutdownTimeout(2_000);
        f.setAutomaticRecoveryEnabled(false);
        return f;
    }

    static Connection connect(ConnectionFactory f) throws Exception {
        Connection c = f.newConnection(CLIENT + "-interop");
        opened.add(c);
        return c;
    }

    static Connection connect() throws Exception { return connect(factory()); }

    /** Deliveries pushed by a consumer callback, taken with a timeout. */
    static class Inbox {
        final BlockingQueue<Delivery> queue = new LinkedBlockingQueue<>();
        final DeliverCallback callback = (tag, d) -> queue.add(d);

        Delivery take(String what) throws Fail, InterruptedException {
            Delivery d = queue.poll(WAIT_MS, TimeUnit.MILLISECONDS);
            if (d == null) throw new Fail(what + ": no delivery within " + WAIT_MS + " ms");
            return d;
        }

        void expectNothing(String what) throws Fail, InterruptedException {
            Delivery d = queue.poll(QUIET_MS, TimeUnit.MILLISECONDS);
            if (d != null) throw new Fail(what + ": expected no delivery, got \"" + str(d.getBody()) + "\"");
        }
    }

    static final CancelCallback IGNORE_CANCEL = tag -> { };

    interface ChannelAction { void run(Channel ch) throws Exception; }

    /** Cleanup on a fresh channel, so that it also runs after a channel error. */
    static void cleanup(Connection conn, ChannelAction action) {
        if (!conn.isOpen()) return;
        try {
            Channel ch = conn.createChannel();
            action.run(ch);
            ch.close();
        } catch (Exception e) {
            // Reported after the scenario unless it already failed (which is the better reason).
            cleanupError = "cleanup after step '" + step + "': " + describe(e);
            e.printStackTrace();
        }
    }

    /** basic.get until the queue has a message, for routing that happens asynchronously. */
    static GetResponse pollGet(Channel ch, String queue, String what) throws Exception {
        long deadline = System.currentTimeMillis() + WAIT_MS;
        while (true) {
            GetResponse r = ch.basicGet(queue, true);
            if (r != null) return r;
            if (System.currentTimeMillis() > deadline) throw new Fail(what + ": queue " + queue + " stayed empty for " + WAIT_MS + " ms");
            Thread.sleep(50);
        }
    }

    /** Every message in a queue (auto-ack gets), as body strings. */
    static List<String> drain(Channel ch, String queue) throws Exception {
        List<String> out = new ArrayList<>();
        GetResponse r;
        while ((r = ch.basicGet(queue, true)) != null) out.add(str(r.getBody()));
        Collections.sort(out);
        return out;
    }

    // ------------------------------------------------------------------ scenarios

    static void connectScenario() throws Exception {
        step("open connection");
        Connection conn = connect();
        Map<String, Object> props = conn.getServerProperties();
        step("server properties");
        Object product = props.get("product");
        check(product != null && product.toString().length() > 0, "server-properties.product: expected a name, seen " + show(product));
        Object caps = props.get("capabilities");
        check(caps instanceof Map, "server-properties.capabilities: expected a table, seen " + show(caps));
        @SuppressWarnings("unchecked")
        Map<String, Object> capabilities = (Map<String, Object>) caps;
        for (String cap : new String[] {"publisher_confirms", "basic.nack", "consumer_cancel_notify", "exchange_exchange_bindings"}) {
            expectEq(Boolean.TRUE, capabilities.get(cap), "capabilities." + cap);
        }
        step("open channel");
        Channel ch = conn.createChannel();
        check(ch.isOpen(), "channel open: expected open, seen closed");
        step("close channel");
        ch.close();
        check(!ch.isOpen(), "channel after close: expected closed, seen open");
        step("close connection");
        conn.close(5_000);
        check(!conn.isOpen(), "connection after close: expected closed, seen open");
        check(conn.getCloseReason().isInitiatedByApplication(), "close reason: expected initiated by the application, seen " + conn.getCloseReason());
    }

    static void exchangeTypes() throws Exception {
        Connection conn = connect();
        Channel ch = conn.createChannel();
        String direct = uniq("direct"), fanout = uniq("fanout"), topic = uniq("topic"), headers = uniq("headers");
        step("declare exchanges");
        ch.exchangeDeclare(direct, BuiltinExchangeType.DIRECT);
        ch.exchangeDeclare(fanout, BuiltinExchangeType.FANOUT);
        ch.exchangeDeclare(topic, BuiltinExchangeType.TOPIC);
        ch.exchangeDeclare(headers, BuiltinExchangeType.HEADERS);
        try {
            step("declare and bind queues");
            Map<String, String> q = new LinkedHashMap<>();
            for (String n : new String[] {"red", "green", "fan1", "fan2", "star", "hash", "all", "any"}) {
                q.put(n, ch.queueDeclare().getQueue()); // server-named, exclusive, auto-delete
            }
            ch.queueBind(q.get("red"), direct, "red");
            ch.queueBind(q.get("green"), direct, "green");
            ch.queueBind(q.get("fan1"), fanout, "");
            ch.queueBind(q.get("fan2"), fanout, "ignored");
            ch.queueBind(q.get("star"), topic, "*.orange.*");
            ch.queueBind(q.get("hash"), topic, "lazy.#");
            Map<String, Object> all = new HashMap<>();
            all.put("x-match", "all");
            all.put("format", "pdf");
            all.put("type", "report");
            ch.queueBind(q.get("all"), headers, "", all);
            Map<String, Object> any = new HashMap<>(all);
            any.put("x-match", "any");
            ch.queueBind(q.get("any"), headers, "", any);

            step("publish");
            ch.confirmSelect();
            ch.basicPublish(direct, "red", null, utf8("d-red"));
            ch.basicPublish(direct, "green", null, utf8("d-green"));
            ch.basicPublish(direct, "blue", null, utf8("d-blue"));
            ch.basicPublish(fanout, "whatever", null, utf8("f-1"));
            for (String key : new String[] {"quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox.jumps", "lazy", "lazy.brown.fox", "quick.brown.fox", "orange"}) {
                ch.basicPublish(topic, key, null, utf8("t-" + key));
            }
            String[][] hs = {{"pdf", "report"}, {"pdf", null}, {null, "report"}, {"zip", "log"}, {"pdf", "log"}};
            for (String[] h : hs) {
                Map<String, Object> m = new HashMap<>();
                if (h[0] != null) m.put("format", h[0]);
                if (h[1] != null) m.put("type", h[1]);
                ch.basicPublish(headers, "", new AMQP.BasicProperties.Builder().headers(m).build(), utf8("h-" + h[0] + "-" + h[1]));
            }
            step("wait for confirms");
            ch.waitForConfirmsOrDie(WAIT_MS);

            Map<String, List<String>> expected = new LinkedHashMap<>();
            expected.put("red", List.of("d-red"));
            expected.put("green", List.of("d-green"));
            expected.put("fan1", List.of("f-1"));
            expected.put("fan2", List.of("f-1"));
            expected.put("star", List.of("t-lazy.orange.elephant", "t-quick.orange.rabbit"));
            expected.put("hash", List.of("t-lazy", "t-lazy.brown.fox", "t-lazy.orange.elephant"));
            expected.put("all", List.of("h-pdf-report"));
            expected.put("any", List.of("h-null-report", "h-pdf-log", "h-pdf-null", "h-pdf-report"));
            for (Map.Entry<String, List<String>> e : expected.entrySet()) {
                step("check queue bound as '" + e.getKey() + "'");
                expectEq(e.getValue(), drain(ch, q.get(e.getKey())), "messages in the queue bound as '" + e.getKey() + "'");
            }
        } finally {
            cleanup(conn, c -> { for (String x : new String[] {direct, fanout, topic, headers}) c.exchangeDelete(x); });
        }
        conn.close();
    }

    static void publishConsumeAck() throws Exception {
        Connection conn = connect();
        Channel ch = conn.createChannel();
        String queue = uniq("pca");
        step("declare queue");
        ch.queueDeclare(queue, false, true, false, null);
        step("publish 100");
        for (int i = 0; i < 100; i++) ch.basicPublish("", queue, null, utf8("msg-" + i));
        step("consume");
        Inbox inbox = new Inbox();
        String tag = ch.basicConsume(queue, false, inbox.callback, IGNORE_CANCEL);
        for (int i = 0; i < 100; i++) {
            step("delivery " + i);
            Delivery d = inbox.take("delivery " + i);
            expectEq("msg-" + i, str(d.getBody()), "body of delivery " + i);
            expectEq(false, d.getEnvelope().isRedeliver(), "redelivered flag of delivery " + i);
            expectEq((long) i + 1, d.getEnvelope().getDeliveryTag(), "delivery tag of delivery " + i);
            ch.basicAck(d.getEnvelope().getDeliveryTag(), false);
        }
        inbox.expectNothing("after 100 deliveries");
        step("cancel consumer");
        ch.basicCancel(tag);
        step("passive declare");
        AMQP.Queue.DeclareOk ok = ch.queueDeclarePassive(queue);
        expectEq(0, ok.getMessageCount(), "message count after acking all");
        expectEq(0, ok.getConsumerCount(), "consumer count after cancel");
        conn.close();
    }

    static void nackRequeue() throws Exception {
        Connection conn = connect();
        Channel ch = conn.createChannel();
        // Exclusive but not auto-delete: it must outlive the consumer for the final check.
        String queue = ch.queueDeclare(uniq("nack"), false, true, false, null).getQueue();
        step("publish");
        ch.basicPublish("", queue, null, utf8("nack-me"));
        Inbox inbox = new Inbox();
        step("consume");
        String tag = ch.basicConsume(queue, false, inbox.callback, IGNORE_CANCEL);
        Delivery first = inbox.take("first delivery");
        expectEq(false, first.getEnvelope().isRedeliver(), "redelivered on first delivery");
        step("nack with requeue");
        ch.basicNack(first.getEnvelope().getDeliveryTag(), false, true);
        Delivery second = inbox.take("delivery after nack with requeue");
        expectEq("nack-me", str(second.getBody()), "body after requeue");
        expectEq(true, second.getEnvelope().isRedeliver(), "redelivered after nack with requeue");
        step("reject without requeue");
        ch.basicReject(second.getEnvelope().getDeliveryTag(), false);
        inbox.expectNothing("after reject without requeue");
        ch.basicCancel(tag);
        step("passive declare");
        expectEq(0, ch.queueDeclarePassive(queue).getMessageCount(), "message count after reject without requeue");
        conn.close();
    }

    static void basicGet() throws Exception {
        Connection conn = connect();
        Channel ch = conn.createChannel();
        String queue = ch.queueDeclare().getQueue();
        step("get-empty on an empty queue");
        expectEq(null, ch.basicGet(queue, true), "basic.get on an empty queue");
        step("publish 3");
        ch.confirmSelect();
        for (int i = 1; i <= 3; i++) ch.basicPublish("", queue, null, utf8("get-" + i));
        ch.waitForConfirmsOrDie(WAIT_MS);
        step("get with auto-ack");
        GetResponse r1 = ch.basicGet(queue, true);
        check(r1 != null, "first basic.get: expected a message, seen get-empty");
        expectEq("get-1", str(r1.getBody()), "first basic.get body");
        expectEq(2, r1.getMessageCount(), "message count of first basic.get");
        step("get with manual ack, then reject with requeue");
        GetResponse r2 = ch.basicGet(queue, false);
        check(r2 != null, "second basic.get: expected a message, seen get-empty");
        expectEq("get-2", str(r2.getBody()), "second basic.get body");
        expectEq(1, r2.getMessageCount(), "message count of second basic.get");
        expectEq(false, r2.getEnvelope().isRedeliver(), "redelivered of second basic.get");
        ch.basicReject(r2.getEnvelope().getDeliveryTag(), true);
        step("get the requeued message");
        GetResponse r3 = ch.basicGet(queue, false);
        check(r3 != null, "third basic.get: expected a message, seen get-empty");
        expectEq("get-2", str(r3.getBody()), "third basic.get body (requeued to the head)");
        expectEq(true, r3.getEnvelope().isRedeliver(), "redelivered of the requeued message");
        expectEq(1, r3.getMessageCount(), "message count of third basic.get");
        check(r3.getEnvelope().getDeliveryTag() != r2.getEnvelope().getDeliveryTag(), "delivery tag of requeued message: expected a new tag, seen the same " + r2.getEnvelope().getDeliveryTag());
        ch.basicAck(r3.getEnvelope().getDeliveryTag(), false);
        step("get the last one");
        GetResponse r4 = ch.basicGet(queue, false);
        check(r4 != null, "fourth basic.get: expected a message, seen get-empty");
        expectEq("get-3", str(r4.getBody()), "fourth basic.get body");
        expectEq(0, r4.getMessageCount(), "message count of fourth basic.get");
        ch.basicAck(r4.getEnvelope().getDeliveryTag(), false);
        step("get-empty after draining");
        expectEq(null, ch.basicGet(queue, false), "basic.get on the drained queue");
        expectEq(0, ch.queueDeclarePassive(queue).getMessageCount(), "message count at the end");
        conn.close();
    }

    static void prefetch() throws Exception {
        Connection conn = connect();
        Channel ch = conn.createChannel();
        String queue = ch.queueDeclare().getQueue();
        step("publish 20");
        ch.confirmSelect();
        for (int i = 0; i < 20; i++) ch.basicPublish("", queue, null, utf8("p-" + i));
        ch.waitForConfirmsOrDie(WAIT_MS);
        step("basic.qos 5 and consume");
        Channel consumerCh = conn.createChannel();
        consumerCh.basicQos(5);
        Inbox inbox = new Inbox();
        consumerCh.basicConsume(queue, false, inbox.callback, IGNORE_CANCEL);
        List<Delivery> got = new ArrayList<>();
        for (int i = 0; i < 5; i++) got.add(inbox.take("delivery " + (i + 1) + " of 5"));
        inbox.expectNothing("a 6th delivery with 5 unacked and prefetch 5");
        step("ack one");
        consumerCh.basicAck(got.get(0).getEnvelope().getDeliveryTag(), false);
        Delivery sixth = inbox.take("the delivery let through by one ack");
        expectEq("p-5", str(sixth.getBody()), "body of the 6th delivery");
        inbox.expectNothing("a 7th delivery after one ack");
        step("ack all");
        consumerCh.basicAck(sixth.getEnvelope().getDeliveryTag(), true);
        for (int i = 6; i < 20; i++) {
            Delivery d = inbox.take("delivery " + (i + 1) + " after acking all");
            consumerCh.basicAck(d.getEnvelope().getDeliveryTag(), false);
        }
        conn.close();
    }

    static void publisherConfirms() throws Exception {
        Connection conn = connect();
        Channel ch = conn.createChannel();
        String queue = ch.queueDeclare().getQueue();
        step("confirm.select");
        ch.confirmSelect();
        ConcurrentSkipListSet<Long> outstanding = new ConcurrentSkipListSet<>();
        List<Long> nacked = new CopyOnWriteArrayList<>();
        CountDownLatch allAcked = new CountDownLatch(1);
        ch.addConfirmListener((seq, multiple) -> {
            if (multiple) outstanding.headSet(seq, true).clear(); else outstanding.remove(seq);
            if (outstanding.isEmpty()) allAcked.countDown();
        }, (seq, multiple) -> nacked.add(seq));
        step("publish 100");
        for (int i = 0; i < 100; i++) {
            outstanding.add(ch.getNextPublishSeqNo());
            ch.basicPublish("", queue, null, utf8("c-" + i));
        }
        expectEq(101L, ch.getNextPublishSeqNo(), "next publish sequence number after 100");
        step("wait for confirms");
        ch.waitForConfirmsOrDie(WAIT_MS);
        check(allAcked.await(WAIT_MS, TimeUnit.MILLISECONDS), "confirm listener: expected acks for all 100, still outstanding " + outstanding);
        expectEq(List.of(), nacked, "nacked sequence numbers");
        expectEq(100, ch.queueDeclarePassive(queue).getMessageCount(), "messages in the queue");
        conn.close();
    }

    static void mandatoryReturn() throws Exception {
        Connection conn = connect();
        Channel ch = conn.createChannel();
        String key = uniq("no-route");
        BlockingQueue<Return> returns = new LinkedBlockingQueue<>();
        ch.addReturnListener(returns::add);
        step("publish mandatory to an unbound key");
        ch.confirmSelect();
        ch.basicPublish("amq.direct", key, true, new AMQP.BasicProperties.Builder().messageId("m1").build(), utf8("bounce"));
        step("wait for confirm");
        ch.waitForConfirmsOrDie(WAIT_MS);
        step("basic.return");
        // RabbitMQ sends basic.return before the basic.ack of a returned message.
        Return r = returns.poll(WAIT_MS, TimeUnit.MILLISECONDS);
        check(r != null, "basic.return: expected one before the confirm, seen none");
        expectEq(312, r.getReplyCode(), "reply code");
        expectEq("NO_ROUTE", r.getReplyText(), "reply text");
        expectEq("amq.direct", r.getExchange(), "exchange");
        expectEq(key, r.getRoutingKey(), "routing key");
        expectEq("bounce", str(r.getBody()), "body");
        expectEq("m1", r.getProperties().getMessageId(), "message id");
        conn.close();
    }

    static void transactions() throws Exception {
        Connection conn = connect();
        Channel tx = conn.createChannel();
        Channel other = conn.createChannel();
        String queue = tx.queueDeclare().getQueue();
        step("tx.select");
        tx.txSelect();
        step("publish, then roll back");
        tx.basicPublish("", queue, null, utf8("rolled-back"));
        expectEq(null, other.basicGet(queue, true), "basic.get before rollback (uncommitted publish)");
        tx.txRollback();
        expectEq(null, other.basicGet(queue, true), "basic.get after rollback");
        step("publish, then commit");
        tx.basicPublish("", queue, null, utf8("committed"));
        expectEq(null, other.basicGet(queue, true), "basic.get before commit");
        tx.txCommit();
        GetResponse r = other.basicGet(queue, true);
        check(r != null, "basic.get after commit: expected the message, seen get-empty");
        expectEq("committed", str(r.getBody()), "body after commit");
        expectEq(null, other.basicGet(queue, true), "second basic.get after commit");
        conn.close();
    }

    /** A server answering "reply:<body>"; records what the requests carried. */
    static class EchoServer extends RpcServer {
        final List<AMQP.BasicProperties> requests = new CopyOnWriteArrayList<>();

        EchoServer(Channel ch, String queue) throws java.io.IOException { super(ch, queue); }

        @Override
        public byte[] handleCall(Delivery request, AMQP.BasicProperties replyProperties) {
            requests.add(request.getProperties());
            return utf8("reply:" + str(request.getBody()));
        }
    }

    static void rpcWith(boolean directReplyTo) throws Exception {
        Connection serverConn = connect();
        Connection clientConn = connect();
        Channel sch = serverConn.createChannel();
        step("server: declare request queue");
        String requests = sch.queueDeclare(uniq("rpc-req"), false, true, true, null).getQueue();
        EchoServer server = new EchoServer(sch, requests);
        Thread loop = new Thread(() -> {
            try { server.mainloop(); } catch (Exception ignored) { }
        }, "rpc-server");
        loop.setDaemon(true);
        loop.start();
        try {
            Channel cch = clientConn.createChannel();
            RpcClient client;
            String replyQueue;
            if (directReplyTo) {
                step("client: RpcClient on amq.rabbitmq.reply-to");
                replyQueue = "amq.rabbitmq.reply-to";
                client = new RpcClient(cch, "", requests, (int) WAIT_MS);
            } else {
                step("client: declare reply queue");
                replyQueue = cch.queueDeclare().getQueue();
                client = new RpcClient(cch, "", requests, replyQueue, (int) WAIT_MS);
            }
            for (int i = 0; i < 3; i++) {
                step("call " + i);
                RpcClient.Response resp;
                try {
                    resp = client.doCall(null, utf8("req-" + i));
                } catch (TimeoutException e) {
                    throw new Fail("call " + i + ": no reply within " + WAIT_MS + " ms");
                }
                expectEq("reply:req-" + i, str(resp.getBody()), "reply body of call " + i);
                AMQP.BasicProperties req = server.requests.get(i);
                check(req.getCorrelationId() != null, "request correlation_id: expected set, seen null");
                expectEq(req.getCorrelationId(), resp.getProperties().getCorrelationId(), "reply correlation_id of call " + i);
                String replyTo = req.getReplyTo();
                if (directReplyTo) {
                    check(replyTo != null && replyTo.startsWith("amq.rabbitmq.reply-to."),
                            "reply_to seen by the server: expected amq.rabbitmq.reply-to.<token>, seen " + show(replyTo));
                } else {
                    expectEq(replyQueue, replyTo, "reply_to seen by the server");
                }
            }
            step("close client");
            client.close();
        } finally {
            server.terminateMainloop();
            serverConn.close(5_000);
            loop.join(WAIT_MS);
        }
        clientConn.close();
    }

    static void rpc() throws Exception { rpcWith(false); }

    static void directReplyTo() throws Exception { rpcWith(true); }

    @SuppressWarnings("unchecked")
    static Map<String, Object> firstDeath(AMQP.BasicProperties props) throws Fail {
        Map<String, Object> h = props.getHeaders();
        check(h != null && h.get("x-death") instanceof List, "x-death header: expected an array, seen " + (h == null ? "no headers" : show(h.get("x-death"))));
        List<Object> deaths = (List<Object>) h.get("x-death");
        check(!deaths.isEmpty() && deaths.get(0) instanceof Map, "x-death: expected a table as first entry, seen " + deaths);
        return (Map<String, Object>) deaths.get(0);
    }

    static void checkDeath(AMQP.BasicProperties props, String reason, String queue) throws Fail {
        Map<String, Object> death = firstDeath(props);
        expectEq(1L, death.get("count"), "x-death[0].count");
        expectEq(reason, String.valueOf(death.get("reason")), "x-death[0].reason");
        expectEq(queue, String.valueOf(death.get("queue")), "x-death[0].queue");
        // What RabbitMQ 3.10 also records: where the message was published and when it died.
        expectEq("", String.valueOf(death.get("exchange")), "x-death[0].exchange");
        check(death.get("routing-keys") instanceof List, "x-death[0].routing-keys: expected an array, seen " + show(death.get("routing-keys")));
        expectEq(List.of(queue), ((List<?>) death.get("routing-keys")).stream().map(String::valueOf).collect(java.util.stream.Collectors.toList()), "x-death[0].routing-keys");
        check(death.get("time") instanceof Date, "x-death[0].time: expected a timestamp, seen " + show(death.get("time")));
        Map<String, Object> h = props.getHeaders();
        expectEq(reason, String.valueOf(h.get("x-first-death-reason")), "x-first-death-reason header");
        expectEq(queue, String.valueOf(h.get("x-first-death-queue")), "x-first-death-queue header");
        expectEq("", String.valueOf(h.get("x-first-death-exchange")), "x-first-death-exchange header");
    }

    static void deadLetter() throws Exception {
        Connection conn = connect();
        Channel ch = conn.createChannel();
        String dlx = uniq("dlx");
        step("declare dead-letter exchange and queues");
        ch.exchangeDeclare(dlx, BuiltinExchangeType.DIRECT);
        try {
            String dlq = ch.queueDeclare().getQueue();
            ch.queueBind(dlq, dlx, "dead");
            Map<String, Object> args = new HashMap<>();
            args.put("x-dead-letter-exchange", dlx);
            args.put("x-dead-letter-routing-key", "dead");
            String queue = ch.queueDeclare(uniq("dl-src"), false, true, true, args).getQueue();
            step("publish");
            ch.basicPublish("", queue, new AMQP.BasicProperties.Builder().messageId("dl-1").build(), utf8("doomed"));
            step("consume and reject");
            Inbox inbox = new Inbox();
            ch.basicConsume(queue, false, inbox.callback, IGNORE_CANCEL);
            Delivery d = inbox.take("delivery from the source queue");
            ch.basicReject(d.getEnvelope().getDeliveryTag(), false);
            step("get from the dead-letter queue");
            GetResponse r = pollGet(ch, dlq, "dead-lettered message");
            expectEq("doomed", str(r.getBody()), "dead-lettered body");
            expectEq("dl-1", r.getProps().getMessageId(), "dead-lettered message id");
            expectEq("dead", r.getEnvelope().getRoutingKey(), "routing key of the dead-lettered message");
            checkDeath(r.getProps(), "rejected", queue);
        } finally {
            cleanup(conn, c -> c.exchangeDelete(dlx));
        }
        conn.close();
    }

    static void ttl() throws Exception {
        Connection conn = connect();
        Channel ch = conn.createChannel();
        ch.confirmSelect();
        step("queue with x-message-ttl");
        String ttlQueue = ch.queueDeclare(uniq("ttl"), false, true, true, Map.of("x-message-ttl", 200)).getQueue();
        step("queue without ttl");
        String plain = ch.queueDeclare().getQueue();
        step("dead-letter setup");
        String dlx = uniq("ttl-dlx");
        ch.exchangeDeclare(dlx, BuiltinExchangeType.FANOUT);
        try {
            String dlq = ch.queueDeclare().getQueue();
            ch.queueBind(dlq, dlx, "");
            Map<String, Object> args = new HashMap<>();
            args.put("x-message-ttl", 200);
            args.put("x-dead-letter-exchange", dlx);
            String dlSource = ch.queueDeclare(uniq("ttl-dl"), false, true, true, args).getQueue();
            step("publish");
            ch.basicPublish("", ttlQueue, null, utf8("queue-ttl"));
            ch.basicPublish("", plain, new AMQP.BasicProperties.Builder().expiration("200").build(), utf8("message-ttl"));
            ch.basicPublish("", plain, null, utf8("keeps"));
            ch.basicPublish("", dlSource, null, utf8("expires-to-dlx"));
            ch.waitForConfirmsOrDie(WAIT_MS);
            step("still there before the ttl");
            expectEq(1, ch.queueDeclarePassive(ttlQueue).getMessageCount(), "messages in the x-message-ttl queue right after publishing");
            Thread.sleep(600);
            step("expired after the ttl");
            expectEq(null, ch.basicGet(ttlQueue, true), "basic.get on the x-message-ttl queue after 600 ms");
            GetResponse r = ch.basicGet(plain, true);
            check(r != null, "basic.get on the queue without ttl: expected the message without expiration, seen get-empty");
            expectEq("keeps", str(r.getBody()), "first message left in the queue without ttl (the one with expiration 200 must be gone)");
            step("expired message dead-lettered");
            GetResponse dead = pollGet(ch, dlq, "expired message in the dead-letter queue");
            expectEq("expires-to-dlx", str(dead.getBody()), "dead-lettered body");
            checkDeath(dead.getProps(), "expired", dlSource);
        } finally {
            cleanup(conn, c -> c.exchangeDelete(dlx));
        }
        conn.close();
    }

    static void priority() throws Exception {
        Connection conn = connect();
        Channel ch = conn.createChannel();
        step("declare x-max-priority queue");
        String queue = ch.queueDeclare(uniq("prio"), false, true, true, Map.of("x-max-priority", 10)).getQueue();
        step("publish priorities 1, 5, 9");
        ch.confirmSelect();
        for (int p : new int[] {1, 5, 9}) {
            ch.basicPublish("", queue, new AMQP.BasicProperties.Builder().priority(p).build(), utf8("prio-" + p));
        }
        ch.waitForConfirmsOrDie(WAIT_MS);
        step("consume");
        Inbox inbox = new Inbox();
        ch.basicConsume(queue, true, inbox.callback, IGNORE_CANCEL);
        List<String> order = new ArrayList<>();
        for (int i = 0; i < 3; i++) order.add(str(inbox.take("delivery " + (i + 1) + " of 3").getBody()));
        expectEq(List.of("prio-9", "prio-5", "prio-1"), order, "delivery order");
        conn.close();
    }

    static void largeMessage() throws Exception {
        Connection conn = connect();
        Channel ch = conn.createChannel();
        String queue = ch.queueDeclare().getQueue();
        byte[] body = new byte[5 * 1024 * 1024];
        new Random(42).nextBytes(body);
        step("publish 5 MiB");
        ch.basicPublish("", queue, null, body);
        step("consume");
        Inbox inbox = new Inbox();
        ch.basicConsume(queue, true, inbox.callback, IGNORE_CANCEL);
        Delivery d = inbox.take("5 MiB delivery");
        expectEq(body.length, d.getBody().length, "body length");
        check(Arrays.equals(body, d.getBody()), "body: expected the same bytes, seen different bytes");
        conn.close();
    }

    static void emptyMessage() throws Exception {
        Connection conn = connect();
        Channel ch = conn.createChannel();
        String queue = ch.queueDeclare().getQueue();
        AMQP.BasicProperties props = new AMQP.BasicProperties.Builder()
                .contentType("text/plain").messageId("empty-1").headers(Map.of("k", "v")).build();
        step("publish empty body");
        ch.basicPublish("", queue, props, new byte[0]);
        step("consume");
        Inbox inbox = new Inbox();
        ch.basicConsume(queue, true, inbox.callback, IGNORE_CANCEL);
        Delivery d = inbox.take("empty delivery");
        expectEq(0, d.getBody().length, "body length");
        expectEq("text/plain", d.getProperties().getContentType(), "content type");
        expectEq("empty-1", d.getProperties().getMessageId(), "message id");
        check(d.getProperties().getHeaders() != null, "headers: expected a table, seen none");
        expectEq("v", String.valueOf(d.getProperties().getHeaders().get("k")), "header k");
        conn.close();
    }

    static void checkField(String path, Object expected, Object seen) throws Fail {
        if (expected instanceof String) {
            check(seen instanceof LongString, path + ": expected a string (LongString), seen " + show(seen));
            expectEq(expected, seen.toString(), path);
        } else if (expected instanceof Map) {
            check(seen instanceof Map, path + ": expected a table, seen " + show(seen));
            Map<?, ?> e = (Map<?, ?>) expected, s = (Map<?, ?>) seen;
            expectEq(new TreeSet<>(e.keySet()), new TreeSet<>(s.keySet()), path + " keys");
            for (Object k : e.keySet()) checkField(path + "." + k, e.get(k), s.get(k));
        } else if (expected instanceof List) {
            check(seen instanceof List, path + ": expected an array, seen " + show(seen));
            List<?> e = (List<?>) expected, s = (List<?>) seen;
            expectEq(e.size(), s.size(), path + " length");
            for (int i = 0; i < e.size(); i++) checkField(path + "[" + i + "]", e.get(i), s.get(i));
        } else {
            // Same Java type means the same AMQP field type came back.
            if (expected != null && seen != null) {
                expectEq(expected.getClass().getSimpleName(), seen.getClass().getSimpleName(), path + " type");
            }
            expectEq(expected, seen, path);
        }
    }

    static void properties() throws Exception {
        ConnectionFactory f = factory();
        Connection conn = connect(f);
        Channel ch = conn.createChannel();
        String queue = ch.queueDeclare().getQueue();
        Map<String, Object> nested = new LinkedHashMap<>();
        nested.put("inner", "value");
        nested.put("n", 7);
        Map<String, Object> headers = new LinkedHashMap<>();
        headers.put("string", "héllo wörld");
        headers.put("int", 123456789);
        headers.put("negative-int", -42);
        headers.put("long", 1234567890123L);
        headers.put("short", (short) -1234);
        headers.put("byte", (byte) -7);
        headers.put("true", true);
        headers.put("false", false);
        headers.put("float", 1.5f);
        headers.put("double", 2.718281828459045);
        headers.put("decimal", new BigDecimal("123.45"));
        headers.put("timestamp", new Date(1_700_000_000_000L));
        headers.put("table", nested);
        headers.put("array", Arrays.asList("a", 1, true, Arrays.asList("nested", 2L), Map.of("k", "v")));
        headers.put("empty-array", new ArrayList<>());
        headers.put("bytes", new byte[] {0, 1, 2, (byte) 0xff});
        headers.put("void", null);
        Date timestamp = new Date(1_700_000_123_000L);
        AMQP.BasicProperties props = new AMQP.BasicProperties.Builder()
                .contentType("application/json")
                .contentEncoding("utf-8")
                .headers(headers)
                .deliveryMode(2)
                .priority(7)
                .correlationId("corr-1")
                .replyTo("reply-queue")
                .expiration("60000")
                .messageId("msg-1")
                .timestamp(timestamp)
                .type("interop.test")
                .userId(f.getUsername())
                .appId("java-interop")
                .build();
        step("publish");
        ch.basicPublish("", queue, props, utf8("{}"));
        step("consume");
        Inbox inbox = new Inbox();
        ch.basicConsume(queue, true, inbox.callback, IGNORE_CANCEL);
        AMQP.BasicProperties got = inbox.take("delivery with properties").getProperties();
        step("compare properties");
        expectEq("application/json", got.getContentType(), "content_type");
        expectEq("utf-8", got.getContentEncoding(), "content_encoding");
        expectEq(2, got.getDeliveryMode(), "delivery_mode");
        expectEq(7, got.getPriority(), "priority");
        expectEq("corr-1", got.getCorrelationId(), "correlation_id");
        expectEq("reply-queue", got.getReplyTo(), "reply_to");
        expectEq("60000", got.getExpiration(), "expiration");
        expectEq("msg-1", got.getMessageId(), "message_id");
        expectEq(timestamp, got.getTimestamp(), "timestamp");
        expectEq("interop.test", got.getType(), "type");
        expectEq(f.getUsername(), got.getUserId(), "user_id");
        expectEq("java-interop", got.getAppId(), "app_id");
        step("compare headers");
        checkField("headers", headers, got.getHeaders());
        conn.close();
    }

    static void cancelNotify() throws Exception {
        Connection conn = connect();
        Channel consumerCh = conn.createChannel();
        Channel deleterCh = conn.createChannel();
        String queue = uniq("cancel");
        step("declare queue");
        consumerCh.queueDeclare(queue, false, false, false, null);
        BlockingQueue<String> cancelled = new LinkedBlockingQueue<>();
        step("consume");
        String tag = consumerCh.basicConsume(queue, false, new DefaultConsumer(consumerCh) {
            @Override
            public void handleCancel(String consumerTag) { cancelled.add(consumerTag); }
        });
        step("delete the queue from another channel");
        deleterCh.queueDelete(queue);
        step("wait for basic.cancel");
        String seen = cancelled.poll(WAIT_MS, TimeUnit.MILLISECONDS);
        check(seen != null, "handleCancel: expected a basic.cancel from the broker within " + WAIT_MS + " ms, seen none");
        expectEq(tag, seen, "cancelled consumer tag");
        check(consumerCh.isOpen(), "consumer channel after basic.cancel: expected open, seen closed");
        conn.close();
    }

    static void heartbeat() throws Exception {
        ConnectionFactory f = factory();
        f.setRequestedHeartbeat(1);
        step("connect with heartbeat 1 s");
        Connection conn = connect(f);
        expectEq(1, conn.getHeartbeat(), "negotiated heartbeat");
        Channel ch = conn.createChannel();
        String queue = ch.queueDeclare().getQueue();
        step("idle for 3.5 s");
        Thread.sleep(3_500);
        check(conn.isOpen(), "connection after 3.5 s idle: expected open, seen closed: " + conn.getCloseReason());
        step("publish and get after idling");
        ch.confirmSelect();
        ch.basicPublish("", queue, null, utf8("still-alive"));
        ch.waitForConfirmsOrDie(WAIT_MS);
        GetResponse r = ch.basicGet(queue, true);
        check(r != null, "basic.get after idling: expected the message, seen get-empty");
        expectEq("still-alive", str(r.getBody()), "body");
        conn.close();
    }

    // ------------------------------------------------------------------ recovery

    static void autoRecovery() throws Exception {
        String restart = System.getenv("INTEROP_RESTART_CMD");
        check(restart != null && !restart.isEmpty(), "INTEROP_RESTART_CMD: expected a command, seen none");
        ConnectionFactory f = factory();
        f.setAutomaticRecoveryEnabled(true);
        f.setTopologyRecoveryEnabled(true);
        f.setNetworkRecoveryInterval(500);
        f.setRequestedHeartbeat(5);
        step("connect");
        Connection conn = connect(f);
        BlockingQueue<String> recovered = new LinkedBlockingQueue<>();
        ((Recoverable) conn).addRecoveryListener(new RecoveryListener() {
            public void handleRecovery(Recoverable r) { recovered.add("recovered"); }
            public void handleRecoveryStarted(Recoverable r) { }
        });
        Channel ch = conn.createChannel();
        String queue = uniq("recovery");
        step("declare durable queue");
        ch.queueDeclare(queue, true, false, false, null);
        try {
            Inbox inbox = new Inbox();
            step("consume");
            ch.basicConsume(queue, false, (tag, d) -> {
                inbox.queue.add(d);
                ch.basicAck(d.getEnvelope().getDeliveryTag(), false);
            }, IGNORE_CANCEL);
            step("publish before restart");
            ch.basicPublish("", queue, null, utf8("before"));
            expectEq("before", str(inbox.take("delivery before restart").getBody()), "body before restart");

            step("restart the broker ($INTEROP_RESTART_CMD)");
            Process p = new ProcessBuilder("bash", "-c", "{ " + restart + "\n} 1>&2")
                    .redirectErrorStream(false)
                    .redirectError(ProcessBuilder.Redirect.INHERIT)
                    .start();
            p.getOutputStream().close();
            check(p.waitFor(60, TimeUnit.SECONDS), "restart command: still running after 60 s");
            expectEq(0, p.exitValue(), "restart command exit code");

            step("wait for automatic recovery");
            check(recovered.poll(20, TimeUnit.SECONDS) != null, "RecoveryListener.handleRecovery: expected within 20 s, seen none (connection open: " + conn.isOpen() + ")");

            step("publish after recovery");
            ch.basicPublish("", queue, null, utf8("after"));
            expectEq("after", str(inbox.take("delivery after recovery (recovered consumer)").getBody()), "body after recovery");
        } finally {
            cleanup(conn, c -> c.queueDelete(queue));
        }
        conn.close();
    }

    // ------------------------------------------------------------------ main

    static boolean runScenario(String name, Scenario s) {
        opened.clear();
        step = "start";
        cleanupError = null;
        ExecutorService ex = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "scenario-" + name);
            t.setDaemon(true);
            return t;
        });
        String failure = null;
        Future<?> fut = ex.submit(() -> { s.run(); return null; });
        try {
            fut.get(SCENARIO_TIMEOUT_MS, TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            failure = "timed out after " + SCENARIO_TIMEOUT_MS + " ms at step '" + step + "'";
            fut.cancel(true);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof Fail) {
                failure = step + ": " + c.getMessage();
            } else {
                failure = "step '" + step + "': " + describe(c);
                c.printStackTrace();
            }
        } catch (InterruptedException e) {
            failure = "interrupted";
        } finally {
            ex.shutdownNow();
            for (Connection c : opened) {
                if (c.isOpen()) c.abort(2_000);
            }
        }
        if (failure == null && cleanupError != null) failure = cleanupError;
        if (failure == null) {
            System.out.println("PASS " + CLIENT + " " + name);
        } else {
            System.out.println("FAIL " + CLIENT + " " + name + ": " + failure.replace('\n', ' '));
        }
        System.out.flush();
        return failure == null;
    }

    static String describe(Throwable t) {
        StringBuilder sb = new StringBuilder(t.toString());
        Throwable c = t.getCause();
        while (c != null && c != t) {
            sb.append(" / caused by ").append(c);
            t = c;
            c = c.getCause();
        }
        return sb.toString();
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2 || !(args[0].equals("run") || args[0].equals("recover"))) {
            System.err.println("usage: Interop run|recover URL");
            System.exit(2);
        }
        url = args[1];
        Map<String, Scenario> scenarios = new LinkedHashMap<>();
        if (args[0].equals("run")) {
            scenarios.put("connect", Interop::connectScenario);
            scenarios.put("exchange_types", Interop::exchangeTypes);
            scenarios.put("publish_consume_ack", Interop::publishConsumeAck);
            scenarios.put("nack_requeue", Interop::nackRequeue);
            scenarios.put("basic_get", Interop::basicGet);
            scenarios.put("prefetch", Interop::prefetch);
            scenarios.put("publisher_confirms", Interop::publisherConfirms);
            scenarios.put("mandatory_return", Interop::mandatoryReturn);
            scenarios.put("transactions", Interop::transactions);
            scenarios.put("rpc", Interop::rpc);
            scenarios.put("direct_reply_to", Interop::directReplyTo);
            scenarios.put("dead_letter", Interop::deadLetter);
            scenarios.put("ttl", Interop::ttl);
            scenarios.put("priority", Interop::priority);
            scenarios.put("large_message", Interop::largeMessage);
            scenarios.put("empty_message", Interop::emptyMessage);
            scenarios.put("properties", Interop::properties);
            scenarios.put("cancel_notify", Interop::cancelNotify);
            scenarios.put("heartbeat", Interop::heartbeat);
        } else {
            scenarios.put("auto_recovery", Interop::autoRecovery);
        }
        String only = System.getenv("INTEROP_SCENARIO"); // e.g. "ttl" while developing
        boolean ok = true;
        for (Map.Entry<String, Scenario> e : scenarios.entrySet()) {
            if (only != null && !only.isEmpty() && !only.equals(e.getKey())) continue;
            ok &= runScenario(e.getKey(), e.getValue());
        }
        System.exit(ok ? 0 : 1);
    }
}
