// The interop scenarios (interop/SCENARIOS.md) through the RabbitMQ .NET client that
// Mono 6.8 ships (RabbitMQ.Client 1.x, Debian's libmono-rabbitmq4.0-cil), written the
// way that client's users wrote code: IModel calls, QueueingBasicConsumer, Subscription,
// SimpleRpcClient/SimpleRpcServer, the BasicReturn event. It speaks AMQP 0-8 unless
// told otherwise, as its users' programs did; `amqp_0_9` runs a round trip in 0-9.
//
// Usage: mono Interop.exe run URL   (INTEROP_SCENARIO=name runs one scenario)

using System;
using System.Collections;
using System.Collections.Generic;
using System.Text;
using System.Threading;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.MessagePatterns;

class Fail : Exception
{
    public Fail(string message) : base(message) { }
}

class EchoServer : SimpleRpcServer
{
    public EchoServer(Subscription subscription) : base(subscription) { }

    public override byte[] HandleSimpleCall(bool isRedelivered, IBasicProperties requestProperties,
                                            byte[] body, out IBasicProperties replyProperties)
    {
        replyProperties = null;
        return Interop.B("re:" + Interop.S(body));
    }
}

static class Interop
{
    const string Client = "dotnet-mono";
    const int WaitMs = 5000;
    const int ScenarioMs = 30000;

    static string host, user, pass, vhost;
    static int port;
    static readonly List<IConnection> opened = new List<IConnection>();

    static readonly string[] Scenarios = {
        "connect", "exchange_types", "publish_consume_ack", "nack_requeue", "basic_get",
        "prefetch", "mandatory_return", "transactions", "rpc", "direct_reply_to",
        "dead_letter", "ttl", "priority", "large_message", "empty_message", "properties",
        "heartbeat", "amqp_0_9",
    };

    static int Main(string[] args)
    {
        if (args.Length != 2 || args[0] != "run")
        {
            Console.Error.WriteLine("usage: Interop.exe run URL");
            return 2;
        }
        var url = new Uri(args[1]);
        host = url.Host;
        port = url.Port > 0 ? url.Port : 5672;
        var userInfo = url.UserInfo.Split(':');
        user = userInfo.Length > 0 && userInfo[0] != "" ? Uri.UnescapeDataString(userInfo[0]) : "guest";
        pass = userInfo.Length > 1 ? Uri.UnescapeDataString(userInfo[1]) : "guest";
        var path = url.AbsolutePath.TrimStart('/');
        vhost = path == "" ? "/" : Uri.UnescapeDataString(path);

        var only = Environment.GetEnvironmentVariable("INTEROP_SCENARIO");
        foreach (var name in Scenarios)
        {
            if (!string.IsNullOrEmpty(only) && only != name) continue;
            RunOne(name);
        }
        return 0;
    }

    static void RunOne(string name)
    {
        string failure = null;
        var thread = new Thread(() =>
        {
            try { Run(name); }
            catch (Exception e) { failure = e is Fail ? e.Message : e.GetType().Name + ": " + e.Message; }
        });
        thread.IsBackground = true;
        thread.Start();
        if (!thread.Join(ScenarioMs)) failure = "timed out after " + ScenarioMs / 1000 + " s";
        lock (opened)
        {
            foreach (var c in opened)
            {
                try { c.Abort(); } catch (Exception) { }
            }
            opened.Clear();
        }
        Console.WriteLine(failure == null
            ? "PASS " + Client + " " + name
            : "FAIL " + Client + " " + name + ": " + failure.Replace('\n', ' '));
        Console.Out.Flush();
    }

    static void Run(string name)
    {
        switch (name)
        {
            case "connect": Connect(); break;
            case "exchange_types": ExchangeTypes(); break;
            case "publish_consume_ack": PublishConsumeAck(); break;
            case "nack_requeue": NackRequeue(); break;
            case "basic_get": BasicGet(); break;
            case "prefetch": Prefetch(); break;
            case "mandatory_return": MandatoryReturn(); break;
            case "transactions": Transactions(); break;
            case "rpc": Rpc(); break;
            case "direct_reply_to": DirectReplyTo(); break;
            case "dead_letter": DeadLetter(); break;
            case "ttl": Ttl(); break;
            case "priority": Priority(); break;
            case "large_message": LargeMessage(); break;
            case "empty_message": EmptyMessage(); break;
            case "properties": Properties(); break;
            case "heartbeat": Heartbeat(); break;
            case "amqp_0_9": Amqp09(); break;
            default: throw new Fail("unknown scenario");
        }
    }

    // ------------------------------------------------------------------ helpers

    static IConnection Open(IProtocol protocol = null, ushort heartbeat = 0)
    {
        var factory = new ConnectionFactory();
        factory.HostName = host;
        factory.Port = port;
        factory.UserName = user;
        factory.Password = pass;
        factory.VirtualHost = vhost;
        factory.RequestedHeartbeat = heartbeat;
        if (protocol != null) factory.Protocol = protocol;
        var connection = factory.CreateConnection();
        lock (opened) opened.Add(connection);
        return connection;
    }

    internal static byte[] B(string s) { return Encoding.UTF8.GetBytes(s); }
    internal static string S(byte[] b) { return b == null ? null : Encoding.UTF8.GetString(b); }

    static string Name(string what)
    {
        return Client + "-" + what + "-" + Guid.NewGuid().ToString("N").Substring(0, 8);
    }

    static void Check(bool ok, string what)
    {
        if (!ok) throw new Fail(what);
    }

    static void Eq(object expected, object got, string what)
    {
        if (!Equals(expected, got)) throw new Fail(what + ": expected " + expected + ", got " + got);
    }

    /// A queue that goes away with its connection (exclusive, so not when its consumer
    /// is cancelled).
    static string TempQueue(IModel ch, IDictionary arguments = null)
    {
        return ch.QueueDeclare(Name("q"), false, false, true, false, false, arguments);
    }

    static BasicDeliverEventArgs Next(QueueingBasicConsumer consumer, string what)
    {
        object delivery;
        if (!consumer.Queue.Dequeue(WaitMs, out delivery)) throw new Fail("no delivery of " + what + " within 5 s");
        return (BasicDeliverEventArgs)delivery;
    }

    static void NothingMore(QueueingBasicConsumer consumer, int ms, string what)
    {
        object delivery;
        if (consumer.Queue.Dequeue(ms, out delivery))
            throw new Fail(what + ", but got " + S(((BasicDeliverEventArgs)delivery).Body));
    }

    static QueueingBasicConsumer Consume(IModel ch, string queue, bool noAck)
    {
        var consumer = new QueueingBasicConsumer(ch);
        ch.BasicConsume(queue, noAck, null, consumer);
        return consumer;
    }

    /// Close `ch` and check from another channel that `queue` is empty: anything `ch`
    /// left unacknowledged would be back in it.
    static void EmptyOnceClosed(IConnection c, IModel ch, string queue, string after)
    {
        ch.Close();
        Check(c.CreateModel().BasicGet(queue, true) == null, "queue not empty after " + after);
    }

    /// Every message in `queue`, taken with basic.get and acknowledged.
    static List<string> Drain(IModel ch, string queue)
    {
        var bodies = new List<string>();
        for (BasicGetResult r; (r = ch.BasicGet(queue, false)) != null;)
        {
            bodies.Add(S(r.Body));
            ch.BasicAck(r.DeliveryTag, false);
        }
        return bodies;
    }

    static void Publish(IModel ch, string exchange, string key, string body, IBasicProperties props = null)
    {
        ch.BasicPublish(exchange, key, false, false, props ?? ch.CreateBasicProperties(), B(body));
    }

    static string Header(IDictionary headers, string key)
    {
        var value = headers == null ? null : headers[key];
        return value is byte[] ? S((byte[])value) : value == null ? null : value.ToString();
    }

    // ---------------------------------------------------------------- scenarios

    static void Connect()
    {
        var c = Open();
        Eq(8, c.Protocol.MajorVersion, "protocol major version");
        Eq(0, c.Protocol.MinorVersion, "protocol minor version");
        var product = c.ServerProperties["product"] as byte[];
        Check(product != null && product.Length > 0, "server properties name no product");
        // 0-8 has none of 0-9-1's capabilities: the table is there, empty.
        var capabilities = c.ServerProperties["capabilities"] as IDictionary;
        Check(capabilities != null, "no capabilities table in the server properties");
        Eq(0, capabilities.Count, "capabilities offered to a 0-8 client");
        var ch = c.CreateModel();
        Check(ch.IsOpen, "channel not open");
        ch.Close();
        Check(!ch.IsOpen, "channel still open after close");
        c.Close();
        Check(!c.IsOpen, "connection still open after close");
    }

    static void ExchangeTypes()
    {
        var c = Open();
        var ch = c.CreateModel();
        var direct = Name("direct");
        var fanout = Name("fanout");
        var topic = Name("topic");
        var headers = Name("headers");
        ch.ExchangeDeclare(direct, ExchangeType.Direct);
        ch.ExchangeDeclare(fanout, ExchangeType.Fanout);
        ch.ExchangeDeclare(topic, ExchangeType.Topic);
        ch.ExchangeDeclare(headers, "headers");

        var d1 = TempQueue(ch);
        var d2 = TempQueue(ch);
        ch.QueueBind(d1, direct, "k1", false, null);
        ch.QueueBind(d2, direct, "k2", false, null);
        var f1 = TempQueue(ch);
        var f2 = TempQueue(ch);
        ch.QueueBind(f1, fanout, "", false, null);
        ch.QueueBind(f2, fanout, "", false, null);
        var star = TempQueue(ch);
        var hash = TempQueue(ch);
        ch.QueueBind(star, topic, "a.*", false, null);
        ch.QueueBind(hash, topic, "a.#", false, null);
        var all = TempQueue(ch);
        var any = TempQueue(ch);
        ch.QueueBind(all, headers, "", false, new Hashtable { { "x-match", "all" }, { "a", "1" }, { "b", "2" } });
        ch.QueueBind(any, headers, "", false, new Hashtable { { "x-match", "any" }, { "a", "1" }, { "b", "2" } });

        Publish(ch, direct, "k1", "to-k1");
        Publish(ch, fanout, "whatever", "to-all");
        Publish(ch, topic, "a.b", "a.b");
        Publish(ch, topic, "a.b.c", "a.b.c");
        var onlyA = ch.CreateBasicProperties();
        onlyA.Headers = new Hashtable { { "a", "1" } };
        Publish(ch, headers, "", "only-a", onlyA);
        var both = ch.CreateBasicProperties();
        both.Headers = new Hashtable { { "a", "1" }, { "b", "2" } };
        Publish(ch, headers, "", "a-and-b", both);

        Eq("to-k1", string.Join(",", Drain(ch, d1)), "direct k1 queue");
        Eq("", string.Join(",", Drain(ch, d2)), "direct k2 queue");
        Eq("to-all", string.Join(",", Drain(ch, f1)), "fanout queue 1");
        Eq("to-all", string.Join(",", Drain(ch, f2)), "fanout queue 2");
        Eq("a.b", string.Join(",", Drain(ch, star)), "topic a.*");
        Eq("a.b,a.b.c", string.Join(",", Drain(ch, hash)), "topic a.#");
        Eq("a-and-b", string.Join(",", Drain(ch, all)), "headers x-match all");
        Eq("only-a,a-and-b", string.Join(",", Drain(ch, any)), "headers x-match any");

        foreach (var x in new[] { direct, fanout, topic, headers }) ch.ExchangeDelete(x, false, false);
        c.Close();
    }

    static void PublishConsumeAck()
    {
        var c = Open();
        var ch = c.CreateModel();
        var q = TempQueue(ch);
        for (int i = 0; i < 100; i++) Publish(ch, "", q, "m" + i);
        var consumer = Consume(ch, q, false);
        for (int i = 0; i < 100; i++)
        {
            var d = Next(consumer, "m" + i);
            Eq("m" + i, S(d.Body), "body of delivery " + i);
            Eq((ulong)(i + 1), d.DeliveryTag, "delivery tag of m" + i);
            ch.BasicAck(d.DeliveryTag, false);
        }
        ch.BasicCancel(consumer.ConsumerTag);
        EmptyOnceClosed(c, ch, q, "every message was acked");
        c.Close();
    }

    static void NackRequeue()
    {
        var c = Open();
        var ch = c.CreateModel();
        var q = TempQueue(ch);
        Publish(ch, "", q, "bounce");
        var consumer = Consume(ch, q, false);
        var first = Next(consumer, "the message");
        Check(!first.Redelivered, "first delivery marked redelivered");
        ch.BasicReject(first.DeliveryTag, true);
        var second = Next(consumer, "the requeued message");
        Eq("bounce", S(second.Body), "requeued body");
        Check(second.Redelivered, "requeued delivery not marked redelivered");
        ch.BasicReject(second.DeliveryTag, false);
        NothingMore(consumer, 500, "a message rejected without requeue is gone");
        EmptyOnceClosed(c, ch, q, "reject without requeue");
        c.Close();
    }

    static void BasicGet()
    {
        var c = Open();
        var ch = c.CreateModel();
        var q = TempQueue(ch);
        Check(ch.BasicGet(q, false) == null, "get on an empty queue returned a message");
        foreach (var body in new[] { "g1", "g2", "g3" }) Publish(ch, "", q, body);
        var r1 = ch.BasicGet(q, false);
        Eq("g1", S(r1.Body), "first get");
        Eq(2u, r1.MessageCount, "message count after the first get");
        ch.BasicReject(r1.DeliveryTag, true);
        var again = ch.BasicGet(q, false);
        Eq("g1", S(again.Body), "requeued get comes back first");
        Check(again.Redelivered, "requeued get not marked redelivered");
        Check(again.DeliveryTag != r1.DeliveryTag, "requeued get kept its delivery tag");
        ch.BasicAck(again.DeliveryTag, false);
        var r2 = ch.BasicGet(q, true);
        Eq("g2", S(r2.Body), "no-ack get");
        Eq(1u, r2.MessageCount, "message count after the no-ack get");
        var r3 = ch.BasicGet(q, true);
        Eq(0u, r3.MessageCount, "message count after the last get");
        Check(ch.BasicGet(q, true) == null, "get-empty expected once the queue is drained");
        c.Close();
    }

    static void Prefetch()
    {
        var c = Open();
        var ch = c.CreateModel();
        var q = TempQueue(ch);
        for (int i = 0; i < 20; i++) Publish(ch, "", q, "p" + i);
        ch.BasicQos(0, 5, false);
        var consumer = Consume(ch, q, false);
        var got = new List<BasicDeliverEventArgs>();
        for (int i = 0; i < 5; i++) got.Add(Next(consumer, "message " + i + " of the prefetch window"));
        NothingMore(consumer, 500, "no sixth delivery with prefetch 5 and nothing acked");
        ch.BasicAck(got[0].DeliveryTag, false);
        Eq("p5", S(Next(consumer, "the message the ack let through").Body), "next after the ack");
        NothingMore(consumer, 500, "exactly one more delivery after one ack");
        c.Close();
    }

    static void MandatoryReturn()
    {
        var c = Open();
        var ch = c.CreateModel();
        var returned = new ManualResetEvent(false);
        BasicReturnEventArgs got = null;
        ch.BasicReturn += (model, args) =>
        {
            got = args;
            returned.Set();
        };
        var key = Name("nowhere");
        ch.BasicPublish("amq.direct", key, true, false, ch.CreateBasicProperties(), B("lost"));
        Check(returned.WaitOne(WaitMs), "no basic.return within 5 s");
        Eq((ushort)312, got.ReplyCode, "reply code");
        Eq("NO_ROUTE", got.ReplyText, "reply text");
        Eq("amq.direct", got.Exchange, "exchange");
        Eq(key, got.RoutingKey, "routing key");
        Eq("lost", S(got.Body), "body");
        c.Close();
    }

    static void Transactions()
    {
        var c = Open();
        var ch = c.CreateModel();
        var q = TempQueue(ch);
        ch.TxSelect();
        Publish(ch, "", q, "rolled back");
        ch.TxRollback();
        Check(ch.BasicGet(q, true) == null, "a rolled back publish arrived");
        Publish(ch, "", q, "committed");
        ch.TxCommit();
        var r = ch.BasicGet(q, true);
        Check(r != null, "a committed publish did not arrive");
        Eq("committed", S(r.Body), "committed body");
        c.Close();
    }

    static void Rpc()
    {
        var c = Open();
        var serverCh = c.CreateModel();
        // Subscription declares the queue it is given (shared, as its users had it).
        var requests = Name("rpc");
        var server = new EchoServer(new Subscription(serverCh, requests));
        var loop = new Thread(() =>
        {
            try { server.MainLoop(); } catch (Exception) { }
        });
        loop.IsBackground = true;
        loop.Start();
        var client = new SimpleRpcClient(c.CreateModel(), requests);
        client.TimeoutMilliseconds = WaitMs;
        for (int i = 0; i < 3; i++)
        {
            var reply = client.Call(B("ping" + i));
            Check(reply != null, "no answer to call " + i + " within 5 s");
            Eq("re:ping" + i, S(reply), "answer to call " + i);
        }
        client.Close();
        server.Close();
        c.CreateModel().QueueDelete(requests, false, false, false);
        c.Close();
    }

    static void DirectReplyTo()
    {
        var c = Open();
        var serverCh = c.CreateModel();
        var requests = TempQueue(serverCh);
        var serverConsumer = Consume(serverCh, requests, false);
        var ch = c.CreateModel();
        var replies = Consume(ch, "amq.rabbitmq.reply-to", true);
        var props = ch.CreateBasicProperties();
        props.ReplyTo = "amq.rabbitmq.reply-to";
        props.CorrelationId = "call-1";
        Publish(ch, "", requests, "question", props);
        var request = Next(serverConsumer, "the request");
        Check(request.BasicProperties.ReplyTo.StartsWith("amq.rabbitmq.reply-to."),
              "reply-to not rewritten: " + request.BasicProperties.ReplyTo);
        var answerProps = serverCh.CreateBasicProperties();
        answerProps.CorrelationId = request.BasicProperties.CorrelationId;
        Publish(serverCh, "", request.BasicProperties.ReplyTo, "answer", answerProps);
        serverCh.BasicAck(request.DeliveryTag, false);
        var answer = Next(replies, "the answer");
        Eq("answer", S(answer.Body), "answer body");
        Eq("call-1", answer.BasicProperties.CorrelationId, "answer correlation id");
        c.Close();
    }

    static IDictionary FirstDeath(BasicGetResult r)
    {
        var deaths = r.BasicProperties.Headers == null ? null : r.BasicProperties.Headers["x-death"] as IList;
        Check(deaths != null && deaths.Count > 0, "no x-death header");
        return (IDictionary)deaths[0];
    }

    static BasicGetResult GetWithin(IModel ch, string queue, string what)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(WaitMs);
        while (DateTime.UtcNow < deadline)
        {
            var r = ch.BasicGet(queue, true);
            if (r != null) return r;
            Thread.Sleep(20);
        }
        throw new Fail("no " + what + " within 5 s");
    }

    static void DeadLetter()
    {
        var c = Open();
        var ch = c.CreateModel();
        var dlx = Name("dlx");
        ch.ExchangeDeclare(dlx, ExchangeType.Direct);
        var dlq = TempQueue(ch);
        ch.QueueBind(dlq, dlx, "dead", false, null);
        var q = TempQueue(ch, new Hashtable { { "x-dead-letter-exchange", dlx }, { "x-dead-letter-routing-key", "dead" } });
        Publish(ch, "", q, "doomed");
        var r = ch.BasicGet(q, false);
        ch.BasicReject(r.DeliveryTag, false);
        var dead = GetWithin(ch, dlq, "dead letter");
        Eq("doomed", S(dead.Body), "dead-lettered body");
        var death = FirstDeath(dead);
        Eq("1", Convert.ToString(death["count"]), "x-death count");
        Eq("rejected", Header(death, "reason"), "x-death reason");
        Eq(q, Header(death, "queue"), "x-death queue");
        ch.ExchangeDelete(dlx, false, false);
        c.Close();
    }

    static void Ttl()
    {
        var c = Open();
        var ch = c.CreateModel();
        var queueTtl = TempQueue(ch, new Hashtable { { "x-message-ttl", 200 } });
        Publish(ch, "", queueTtl, "short-lived");
        var plain = TempQueue(ch);
        var expiring = ch.CreateBasicProperties();
        expiring.Expiration = "200";
        Publish(ch, "", plain, "expiring", expiring);
        Thread.Sleep(600);
        Check(ch.BasicGet(queueTtl, true) == null, "message outlived the queue's x-message-ttl");
        Check(ch.BasicGet(plain, true) == null, "message outlived its expiration");

        var dlx = Name("dlx");
        ch.ExchangeDeclare(dlx, ExchangeType.Fanout);
        var dlq = TempQueue(ch);
        ch.QueueBind(dlq, dlx, "", false, null);
        var q = TempQueue(ch, new Hashtable { { "x-message-ttl", 100 }, { "x-dead-letter-exchange", dlx } });
        Publish(ch, "", q, "expired");
        var dead = GetWithin(ch, dlq, "expired message in the dead-letter queue");
        Eq("expired", S(dead.Body), "expired body");
        Eq("expired", Header(FirstDeath(dead), "reason"), "x-death reason");
        ch.ExchangeDelete(dlx, false, false);
        c.Close();
    }

    static void Priority()
    {
        var c = Open();
        var ch = c.CreateModel();
        var q = TempQueue(ch, new Hashtable { { "x-max-priority", 10 } });
        foreach (byte p in new byte[] { 1, 5, 9 })
        {
            var props = ch.CreateBasicProperties();
            props.Priority = p;
            Publish(ch, "", q, "p" + p, props);
        }
        var consumer = Consume(ch, q, true);
        foreach (var expected in new[] { "p9", "p5", "p1" })
            Eq(expected, S(Next(consumer, expected).Body), "priority order");
        c.Close();
    }

    static void LargeMessage()
    {
        var c = Open();
        var ch = c.CreateModel();
        var q = TempQueue(ch);
        var body = new byte[5 * 1024 * 1024];
        new Random(7).NextBytes(body);
        ch.BasicPublish("", q, false, false, ch.CreateBasicProperties(), body);
        var r = GetWithin(ch, q, "the 5 MiB message");
        Eq(body.Length, r.Body.Length, "body length");
        for (int i = 0; i < body.Length; i++)
            if (body[i] != r.Body[i]) throw new Fail("body differs at octet " + i);
        c.Close();
    }

    static void EmptyMessage()
    {
        var c = Open();
        var ch = c.CreateModel();
        var q = TempQueue(ch);
        var props = ch.CreateBasicProperties();
        props.ContentType = "text/plain";
        props.Headers = new Hashtable { { "empty", "yes" } };
        ch.BasicPublish("", q, false, false, props, new byte[0]);
        var r = ch.BasicGet(q, true);
        Check(r != null, "the empty message did not arrive");
        Eq(0, r.Body.Length, "body length");
        Eq("text/plain", r.BasicProperties.ContentType, "content type");
        Eq("yes", Header(r.BasicProperties.Headers, "empty"), "header");
        c.Close();
    }

    static void Properties()
    {
        var c = Open();
        var ch = c.CreateModel();
        var q = TempQueue(ch);
        var p = ch.CreateBasicProperties();
        p.ContentType = "application/json";
        p.ContentEncoding = "utf-8";
        p.DeliveryMode = 2;
        p.Priority = 7;
        p.CorrelationId = "corr-1";
        p.ReplyTo = "replies";
        p.Expiration = "60000";
        p.MessageId = "msg-1";
        p.Timestamp = new AmqpTimestamp(1700000000);
        p.Type = "order.created";
        p.UserId = user;
        p.AppId = "interop";
        // Every value type this client writes in a 0-8 table: long strings, 32-bit
        // integers, decimals, timestamps and nested tables.
        p.Headers = new Hashtable {
            { "string", "text" },
            { "int", 123456 },
            { "negative", -42 },
            { "decimal", 3.14m },
            { "timestamp", new AmqpTimestamp(1600000000) },
            { "table", new Hashtable { { "inner", "value" }, { "n", 7 } } },
        };
        ch.BasicPublish("", q, false, false, p, B("props"));
        var r = ch.BasicGet(q, true);
        Check(r != null, "the message did not arrive");
        var g = r.BasicProperties;
        Eq("application/json", g.ContentType, "content type");
        Eq("utf-8", g.ContentEncoding, "content encoding");
        Eq((byte)2, g.DeliveryMode, "delivery mode");
        Eq((byte)7, g.Priority, "priority");
        Eq("corr-1", g.CorrelationId, "correlation id");
        Eq("replies", g.ReplyTo, "reply to");
        Eq("60000", g.Expiration, "expiration");
        Eq("msg-1", g.MessageId, "message id");
        Eq(1700000000L, g.Timestamp.UnixTime, "timestamp");
        Eq("order.created", g.Type, "type");
        Eq(user, g.UserId, "user id");
        Eq("interop", g.AppId, "app id");
        var h = g.Headers;
        Check(h != null, "no headers");
        Eq("text", Header(h, "string"), "string header");
        Eq(123456, h["int"], "int header (type included)");
        Eq(-42, h["negative"], "negative int header");
        Eq(3.14m, h["decimal"], "decimal header");
        Check(h["timestamp"] is AmqpTimestamp, "timestamp header type: " + h["timestamp"]);
        Eq(1600000000L, ((AmqpTimestamp)h["timestamp"]).UnixTime, "timestamp header");
        var inner = h["table"] as IDictionary;
        Check(inner != null, "nested table header type: " + h["table"]);
        Eq("value", Header(inner, "inner"), "nested table string");
        Eq(7, inner["n"], "nested table int");
        c.Close();
    }

    static void Heartbeat()
    {
        var c = Open(null, 1);
        Eq((ushort)1, c.Heartbeat, "negotiated heartbeat");
        var ch = c.CreateModel();
        var q = TempQueue(ch);
        Thread.Sleep(3500);
        Check(c.IsOpen, "connection closed while idle with heartbeats: " + c.CloseReason);
        Publish(ch, "", q, "still here");
        var r = ch.BasicGet(q, true);
        Check(r != null, "publish after the idle spell did not arrive");
        c.Close();
    }

    static void Amqp09()
    {
        var c = Open(Protocols.AMQP_0_9);
        Eq(0, c.Protocol.MajorVersion, "protocol major version");
        Eq(9, c.Protocol.MinorVersion, "protocol minor version");
        var ch = c.CreateModel();
        var q = TempQueue(ch);
        for (int i = 0; i < 10; i++) Publish(ch, "", q, "n" + i);
        var consumer = Consume(ch, q, false);
        for (int i = 0; i < 10; i++)
        {
            var d = Next(consumer, "n" + i);
            Eq("n" + i, S(d.Body), "body in 0-9");
            ch.BasicAck(d.DeliveryTag, false);
        }
        ch.Close();
        c.Close();
    }
}
