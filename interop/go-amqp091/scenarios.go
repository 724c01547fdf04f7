package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ------------------------------------------------------------ helpers

// recv waits for the next delivery on a consumer's channel.
func recv(s *env, msgs <-chan amqp.Delivery, what string) (amqp.Delivery, error) {
	select {
	case d, ok := <-msgs:
		if !ok {
			return d, s.failf("waiting for %s: delivery channel closed", what)
		}
		return d, nil
	case <-time.After(waitTimeout):
		return amqp.Delivery{}, s.failf("no %s within %s", what, waitTimeout)
	}
}

// expectNone checks that nothing more arrives for a short while.
func expectNone(s *env, msgs <-chan amqp.Delivery) error {
	select {
	case d, ok := <-msgs:
		if ok {
			return s.failf("unexpected delivery %q", d.Body)
		}
		return s.failf("delivery channel closed")
	case <-time.After(quietPeriod):
		return nil
	}
}

// confirmMode puts ch in confirm mode and returns the channel its publisher
// confirms arrive on, in delivery-tag order.
//
// Confirms are read from NotifyPublish rather than from
// PublishWithDeferredConfirmWithContext's DeferredConfirmation: in amqp091-go
// 1.5.0 (Debian's) the latter registers the confirmation after the publish
// is sent, so an ack that arrives in between is dropped and Wait never
// returns (amqp091-go issue #182, fixed upstream in later releases).
func confirmMode(s *env, ch *amqp.Channel) (<-chan amqp.Confirmation, error) {
	if err := ch.Confirm(false); err != nil {
		return nil, s.wrap(err)
	}
	return ch.NotifyPublish(make(chan amqp.Confirmation, 128)), nil
}

// awaitAcks waits for the next n publisher confirms; each must be an ack.
func awaitAcks(s *env, confirms <-chan amqp.Confirmation, n int) error {
	timeout := time.After(waitTimeout)
	for i := 0; i < n; i++ {
		select {
		case c, ok := <-confirms:
			if !ok {
				return s.failf("channel closed after %d of %d confirms", i, n)
			}
			if !c.Ack {
				return s.failf("delivery tag %d was nacked", c.DeliveryTag)
			}
		case <-timeout:
			return s.failf("%d of %d publisher confirms within %s", i, n, waitTimeout)
		}
	}
	return nil
}

// publishConfirmed publishes on a channel in confirm mode and waits for the
// broker's ack.
func publishConfirmed(ctx context.Context, s *env, ch *amqp.Channel, confirms <-chan amqp.Confirmation, exchange, key string, msg amqp.Publishing) error {
	if err := ch.PublishWithContext(ctx, exchange, key, false, false, msg); err != nil {
		return s.wrap(err)
	}
	return awaitAcks(s, confirms, 1)
}

func exclusiveQueue(s *env, ch *amqp.Channel, name string, args amqp.Table) (amqp.Queue, error) {
	q, err := ch.QueueDeclare(name, false, false, true, false, args)
	return q, s.wrap(err)
}

func messageCount(s *env, ch *amqp.Channel, queue string) (int, error) {
	q, err := ch.QueueDeclarePassive(queue, false, false, true, false, nil)
	return q.Messages, s.wrap(err)
}

func xDeath(s *env, d amqp.Delivery) (amqp.Table, error) {
	deaths, ok := d.Headers["x-death"].([]interface{})
	if !ok || len(deaths) == 0 {
		return nil, s.failf("x-death header is %#v, expected a non-empty array", d.Headers["x-death"])
	}
	first, ok := deaths[0].(amqp.Table)
	if !ok {
		return nil, s.failf("x-death[0] is %T, expected a table", deaths[0])
	}
	return first, nil
}

// ------------------------------------------------------------ scenarios

func connectScenario(ctx context.Context, s *env) error {
	s.step("connection.open")
	conn, err := s.dial(0)
	if err != nil {
		return err
	}
	product, _ := conn.Properties["product"].(string)
	if product == "" {
		return s.failf("server properties name no product: %v", conn.Properties)
	}
	caps, ok := conn.Properties["capabilities"].(amqp.Table)
	if !ok {
		return s.failf("server properties have no capabilities table: %v", conn.Properties)
	}
	for _, cap := range []string{"publisher_confirms", "basic.nack", "consumer_cancel_notify", "exchange_exchange_bindings"} {
		if v, _ := caps[cap].(bool); !v {
			return s.failf("capability %s is %#v, expected true", cap, caps[cap])
		}
	}
	s.step("channel.open")
	ch, err := conn.Channel()
	if err != nil {
		return s.wrap(err)
	}
	s.step("channel.close")
	if err := ch.Close(); err != nil {
		return s.wrap(err)
	}
	s.step("connection.close")
	return s.wrap(conn.Close())
}

func exchangeTypes(ctx context.Context, s *env) error {
	s.step("connection.open")
	conn, ch, err := s.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	confirms, err := confirmMode(s, ch)
	if err != nil {
		return err
	}

	ex := map[string]string{
		amqp.ExchangeDirect:  s.name("direct"),
		amqp.ExchangeFanout:  s.name("fanout"),
		amqp.ExchangeTopic:   s.name("topic"),
		amqp.ExchangeHeaders: s.name("headers"),
	}
	for _, kind := range []string{amqp.ExchangeDirect, amqp.ExchangeFanout, amqp.ExchangeTopic, amqp.ExchangeHeaders} {
		s.step("exchange.declare " + kind)
		if err := s.declareExchange(ch, ex[kind], kind); err != nil {
			return err
		}
	}

	bindings := []struct {
		label, exchange, key string
		args                 amqp.Table
	}{
		{"directRed", ex["direct"], "red", nil},
		{"directGreen", ex["direct"], "green", nil},
		{"fanout1", ex["fanout"], "ignored", nil},
		{"fanout2", ex["fanout"], "", nil},
		{"topicStar", ex["topic"], "a.*", nil},
		{"topicHash", ex["topic"], "a.#", nil},
		{"topicEnd", ex["topic"], "#.z", nil},
		{"headersAll", ex["headers"], "", amqp.Table{"x-match": "all", "color": "red", "size": "big"}},
		{"headersAny", ex["headers"], "", amqp.Table{"x-match": "any", "color": "red", "size": "big"}},
	}
	queues := map[string]string{}
	for _, b := range bindings {
		s.step("queue.declare + queue.bind " + b.label)
		q, err := exclusiveQueue(s, ch, "", nil)
		if err != nil {
			return err
		}
		if err := ch.QueueBind(q.Name, b.key, b.exchange, false, b.args); err != nil {
			return s.wrap(err)
		}
		queues[b.label] = q.Name
	}

	publishes := []struct {
		body, exchange, key string
		headers             amqp.Table
	}{
		{"d-red", ex["direct"], "red", nil},
		{"d-green", ex["direct"], "green", nil},
		{"d-blue", ex["direct"], "blue", nil},
		{"f-1", ex["fanout"], "anything", nil},
		{"t-a.b", ex["topic"], "a.b", nil},
		{"t-a.b.c", ex["topic"], "a.b.c", nil},
		{"t-a", ex["topic"], "a", nil},
		{"t-x.z", ex["topic"], "x.z", nil},
		{"t-a.z", ex["topic"], "a.z", nil},
		{"t-b.a", ex["topic"], "b.a", nil},
		{"h-both", ex["headers"], "", amqp.Table{"color": "red", "size": "big"}},
		{"h-color", ex["headers"], "", amqp.Table{"color": "red", "size": "small"}},
		{"h-none", ex["headers"], "", amqp.Table{"color": "blue"}},
	}
	s.step("basic.publish to every exchange")
	for _, p := range publishes {
		err := ch.PublishWithContext(ctx, p.exchange, p.key, false, false, amqp.Publishing{Body: []byte(p.body), Headers: p.headers})
		if err != nil {
			return s.wrap(err)
		}
	}
	s.step("waiting for publisher confirms")
	if err := awaitAcks(s, confirms, len(publishes)); err != nil {
		return err
	}

	expected := map[string][]string{
		"directRed":   {"d-red"},
		"directGreen": {"d-green"},
		"fanout1":     {"f-1"},
		"fanout2":     {"f-1"},
		"topicStar":   {"t-a.b", "t-a.z"},
		"topicHash":   {"t-a", "t-a.b", "t-a.b.c", "t-a.z"},
		"topicEnd":    {"t-a.z", "t-x.z"},
		"headersAll":  {"h-both"},
		"headersAny":  {"h-both", "h-color"},
	}
	for _, b := range bindings {
		s.step("basic.get from " + b.label)
		got := []string{}
		for {
			d, ok, err := ch.Get(queues[b.label], true)
			if err != nil {
				return s.wrap(err)
			}
			if !ok {
				break
			}
			got = append(got, string(d.Body))
			if len(got) > 20 {
				return s.failf("queue never runs empty")
			}
		}
		sort.Strings(got)
		if !reflect.DeepEqual(got, expected[b.label]) {
			return s.failf("queue %s got %q, expected %q", b.label, got, expected[b.label])
		}
	}
	for _, kind := range []string{amqp.ExchangeDirect, amqp.ExchangeFanout, amqp.ExchangeTopic, amqp.ExchangeHeaders} {
		s.step("exchange.delete " + kind)
		if err := s.deleteExchange(ch, ex[kind]); err != nil {
			return err
		}
	}
	s.step("connection.close")
	return s.wrap(conn.Close())
}

func publishConsumeAck(ctx context.Context, s *env) error {
	const n = 100
	s.step("connection.open")
	conn, ch, err := s.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	s.step("queue.declare")
	q, err := exclusiveQueue(s, ch, s.name("q"), nil)
	if err != nil {
		return err
	}
	s.step("basic.publish x100")
	for i := 0; i < n; i++ {
		msg := amqp.Publishing{Body: []byte(fmt.Sprintf("message %d", i)), MessageId: fmt.Sprint(i)}
		if err := ch.PublishWithContext(ctx, "", q.Name, false, false, msg); err != nil {
			return s.wrap(err)
		}
	}
	s.step("basic.consume")
	tag := s.name("consumer")
	msgs, err := ch.Consume(q.Name, tag, false, false, false, false, nil)
	if err != nil {
		return s.wrap(err)
	}
	var lastTag uint64
	for i := 0; i < n; i++ {
		s.step(fmt.Sprintf("waiting for delivery %d", i))
		d, err := recv(s, msgs, "delivery")
		if err != nil {
			return err
		}
		if want := fmt.Sprintf("message %d", i); string(d.Body) != want {
			return s.failf("body %q, expected %q", d.Body, want)
		}
		if d.ConsumerTag != tag {
			return s.failf("consumer tag %q, expected %q", d.ConsumerTag, tag)
		}
		if d.Redelivered {
			return s.failf("redelivered is set")
		}
		if d.DeliveryTag <= lastTag {
			return s.failf("delivery tag %d after %d", d.DeliveryTag, lastTag)
		}
		lastTag = d.DeliveryTag
		if err := d.Ack(false); err != nil {
			return s.wrap(err)
		}
	}
	s.step("basic.cancel")
	if err := ch.Cancel(tag, false); err != nil {
		return s.wrap(err)
	}
	if d, ok := <-msgs; ok {
		return s.failf("delivery %q beyond the %d published", d.Body, n)
	}
	s.step("queue.declare passive after acking all")
	count, err := messageCount(s, ch, q.Name)
	if err != nil {
		return err
	}
	if count != 0 {
		return s.failf("queue holds %d messages after all were acked, expected 0", count)
	}
	s.step("connection.close")
	return s.wrap(conn.Close())
}

func nackRequeue(ctx context.Context, s *env) error {
	s.step("connection.open")
	conn, ch, err := s.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	s.step("queue.declare")
	q, err := exclusiveQueue(s, ch, s.name("q"), nil)
	if err != nil {
		return err
	}
	if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: []byte("nack me")}); err != nil {
		return s.wrap(err)
	}
	s.step("basic.consume")
	msgs, err := ch.Consume(q.Name, "", false, false, false, false, nil)
	if err != nil {
		return s.wrap(err)
	}
	s.step("first delivery")
	first, err := recv(s, msgs, "delivery")
	if err != nil {
		return err
	}
	if string(first.Body) != "nack me" || first.Redelivered {
		return s.failf("first delivery %q redelivered=%v, expected \"nack me\" redelivered=false", first.Body, first.Redelivered)
	}
	if err := first.Nack(false, true); err != nil {
		return s.wrap(err)
	}
	s.step("delivery after nack with requeue")
	second, err := recv(s, msgs, "redelivery")
	if err != nil {
		return err
	}
	if string(second.Body) != "nack me" || !second.Redelivered {
		return s.failf("requeued delivery %q redelivered=%v, expected \"nack me\" redelivered=true", second.Body, second.Redelivered)
	}
	if second.DeliveryTag == first.DeliveryTag {
		return s.failf("requeued delivery reuses delivery tag %d", first.DeliveryTag)
	}
	if err := second.Reject(false); err != nil {
		return s.wrap(err)
	}
	s.step("after reject without requeue")
	if err := expectNone(s, msgs); err != nil {
		return err
	}
	count, err := messageCount(s, ch, q.Name)
	if err != nil {
		return err
	}
	if count != 0 {
		return s.failf("queue holds %d messages after reject without requeue, expected 0", count)
	}
	s.step("connection.close")
	return s.wrap(conn.Close())
}

func basicGet(ctx context.Context, s *env) error {
	s.step("connection.open")
	conn, ch, err := s.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	confirms, err := confirmMode(s, ch)
	if err != nil {
		return err
	}
	s.step("queue.declare")
	q, err := exclusiveQueue(s, ch, s.name("q"), nil)
	if err != nil {
		return err
	}
	s.step("get-empty on a fresh queue")
	if d, ok, err := ch.Get(q.Name, false); err != nil || ok {
		return s.failf("basic.get on an empty queue: ok=%v body=%q err=%v", ok, d.Body, err)
	}
	s.step("publish 3 + confirms")
	for _, body := range []string{"one", "two", "three"} {
		if err := publishConfirmed(ctx, s, ch, confirms, "", q.Name, amqp.Publishing{Body: []byte(body)}); err != nil {
			return err
		}
	}

	s.step("basic.get with manual ack")
	m1, ok, err := ch.Get(q.Name, false)
	if err != nil {
		return s.wrap(err)
	}
	if !ok || string(m1.Body) != "one" {
		return s.failf("got ok=%v %q, expected \"one\"", ok, m1.Body)
	}
	if m1.MessageCount != 2 || m1.Redelivered || m1.Exchange != "" || m1.RoutingKey != q.Name {
		return s.failf("message count %d redelivered %v exchange %q routing key %q, expected 2 false \"\" %q", m1.MessageCount, m1.Redelivered, m1.Exchange, m1.RoutingKey, q.Name)
	}
	if err := m1.Ack(false); err != nil {
		return s.wrap(err)
	}

	s.step("basic.get with auto-ack")
	m2, ok, err := ch.Get(q.Name, true)
	if err != nil {
		return s.wrap(err)
	}
	if !ok || string(m2.Body) != "two" || m2.MessageCount != 1 {
		return s.failf("got ok=%v %q count %d, expected \"two\" count 1", ok, m2.Body, m2.MessageCount)
	}
	s.step("basic.get the last message, then get-empty")
	m3, ok, err := ch.Get(q.Name, true)
	if err != nil {
		return s.wrap(err)
	}
	if !ok || string(m3.Body) != "three" || m3.MessageCount != 0 {
		return s.failf("got ok=%v %q count %d, expected \"three\" count 0", ok, m3.Body, m3.MessageCount)
	}
	if d, ok, err := ch.Get(q.Name, false); err != nil || ok {
		return s.failf("basic.get on the drained queue: ok=%v body=%q err=%v", ok, d.Body, err)
	}
	s.step("queue.declare passive")
	count, err := messageCount(s, ch, q.Name)
	if err != nil {
		return err
	}
	if count != 0 {
		return s.failf("queue holds %d messages, expected 0 (the acked get came back?)", count)
	}
	s.step("connection.close")
	return s.wrap(conn.Close())
}

func prefetch(ctx context.Context, s *env) error {
	s.step("connection.open")
	conn, ch, err := s.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	confirms, err := confirmMode(s, ch)
	if err != nil {
		return err
	}
	s.step("queue.declare")
	q, err := exclusiveQueue(s, ch, s.name("q"), nil)
	if err != nil {
		return err
	}
	s.step("publish 20 + confirms")
	for i := 0; i < 20; i++ {
		if err := publishConfirmed(ctx, s, ch, confirms, "", q.Name, amqp.Publishing{Body: []byte(fmt.Sprintf("m%d", i))}); err != nil {
			return err
		}
	}
	s.step("basic.qos 5")
	if err := ch.Qos(5, 0, false); err != nil {
		return s.wrap(err)
	}
	s.step("basic.consume")
	msgs, err := ch.Consume(q.Name, "", false, false, false, false, nil)
	if err != nil {
		return s.wrap(err)
	}
	var held []amqp.Delivery
	for i := 0; i < 5; i++ {
		s.step(fmt.Sprintf("delivery %d of the first 5", i+1))
		d, err := recv(s, msgs, "delivery")
		if err != nil {
			return err
		}
		held = append(held, d)
	}
	s.step("nothing beyond the prefetch of 5")
	if err := expectNone(s, msgs); err != nil {
		return err
	}
	if err := held[0].Ack(false); err != nil {
		return s.wrap(err)
	}
	s.step("delivery after acking one")
	sixth, err := recv(s, msgs, "delivery")
	if err != nil {
		return err
	}
	if string(sixth.Body) != "m5" {
		return s.failf("body %q, expected \"m5\"", sixth.Body)
	}
	s.step("nothing beyond one more")
	if err := expectNone(s, msgs); err != nil {
		return err
	}
	s.step("connection.close")
	return s.wrap(conn.Close())
}

func publisherConfirms(ctx context.Context, s *env) error {
	const n = 100
	s.step("connection.open")
	conn, ch, err := s.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	s.step("confirm.select")
	confirms, err := confirmMode(s, ch)
	if err != nil {
		return err
	}
	s.step("queue.declare")
	q, err := exclusiveQueue(s, ch, s.name("q"), nil)
	if err != nil {
		return err
	}
	s.step("publish 100")
	for i := 0; i < n; i++ {
		if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: []byte(fmt.Sprintf("confirm %d", i))}); err != nil {
			return s.wrap(err)
		}
	}
	timeout := time.After(waitTimeout)
	for i := 1; i <= n; i++ {
		s.step(fmt.Sprintf("waiting for confirm %d of %d", i, n))
		select {
		case c := <-confirms:
			if c.DeliveryTag != uint64(i) || !c.Ack {
				return s.failf("confirmation %+v, expected ack of delivery tag %d", c, i)
			}
		case <-timeout:
			return s.failf("only %d of %d confirms within %s", i-1, n, waitTimeout)
		}
	}
	s.step("queue.declare passive")
	count, err := messageCount(s, ch, q.Name)
	if err != nil {
		return err
	}
	if count != n {
		return s.failf("queue holds %d messages, expected %d", count, n)
	}
	s.step("connection.close")
	return s.wrap(conn.Close())
}

func mandatoryReturn(ctx context.Context, s *env) error {
	s.step("connection.open")
	conn, ch, err := s.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	confirms, err := confirmMode(s, ch)
	if err != nil {
		return err
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	key := s.name("unrouted")

	s.step("basic.publish mandatory to an unbound key")
	err = ch.PublishWithContext(ctx, "amq.direct", key, true, false, amqp.Publishing{Body: []byte("come back"), MessageId: "ret-1"})
	if err != nil {
		return s.wrap(err)
	}
	s.step("waiting for the publish confirm")
	if err := awaitAcks(s, confirms, 1); err != nil {
		return err
	}
	s.step("basic.return")
	select {
	case r := <-returns:
		if r.ReplyCode != 312 || r.ReplyText != "NO_ROUTE" {
			return s.failf("reply %d %q, expected 312 \"NO_ROUTE\"", r.ReplyCode, r.ReplyText)
		}
		if r.Exchange != "amq.direct" || r.RoutingKey != key {
			return s.failf("returned from %q/%q, expected amq.direct/%q", r.Exchange, r.RoutingKey, key)
		}
		if string(r.Body) != "come back" || r.MessageId != "ret-1" {
			return s.failf("returned body %q message id %q", r.Body, r.MessageId)
		}
	default:
		// The return travels before the ack on the same channel, so it is
		// already here once the confirm arrived.
		return s.failf("no basic.return before the basic.ack")
	}
	s.step("connection.close")
	return s.wrap(conn.Close())
}

func transactions(ctx context.Context, s *env) error {
	s.step("connection.open")
	conn, ch, err := s.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	s.step("queue.declare")
	q, err := exclusiveQueue(s, ch, s.name("q"), nil)
	if err != nil {
		return err
	}
	s.step("tx.select")
	if err := ch.Tx(); err != nil {
		return s.wrap(err)
	}
	s.step("publish + tx.rollback")
	if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: []byte("rolled back")}); err != nil {
		return s.wrap(err)
	}
	if err := ch.TxRollback(); err != nil {
		return s.wrap(err)
	}
	if d, ok, err := ch.Get(q.Name, true); err != nil || ok {
		return s.failf("basic.get after rollback: ok=%v body=%q err=%v, expected get-empty", ok, d.Body, err)
	}
	s.step("publish + tx.commit")
	if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: []byte("committed")}); err != nil {
		return s.wrap(err)
	}
	if err := ch.TxCommit(); err != nil {
		return s.wrap(err)
	}
	d, ok, err := ch.Get(q.Name, true)
	if err != nil {
		return s.wrap(err)
	}
	if !ok || string(d.Body) != "committed" || d.MessageCount != 0 {
		return s.failf("basic.get after commit: ok=%v body=%q count=%d, expected \"committed\" count 0", ok, d.Body, d.MessageCount)
	}
	s.step("connection.close")
	return s.wrap(conn.Close())
}

// startRPCServer consumes requestQueue on its own connection and answers each
// request, upper-cased, to its reply_to with its correlation id. The reply_to
// values it saw come out on seen.
func startRPCServer(ctx context.Context, s *env, requestQueue string, seen chan<- string) error {
	conn, ch, err := s.connect()
	if err != nil {
		return err
	}
	if _, err := exclusiveQueue(s, ch, requestQueue, nil); err != nil {
		return err
	}
	if err := ch.Qos(1, 0, false); err != nil {
		return s.wrap(err)
	}
	requests, err := ch.Consume(requestQueue, "", false, false, false, false, nil)
	if err != nil {
		return s.wrap(err)
	}
	go func() {
		defer conn.Close()
		for req := range requests {
			seen <- req.ReplyTo
			reply := amqp.Publishing{Body: bytes.ToUpper(req.Body), CorrelationId: req.CorrelationId}
			if err := ch.PublishWithContext(ctx, "", req.ReplyTo, false, false, reply); err != nil {
				return
			}
			_ = req.Ack(false)
		}
	}()
	return nil
}

// rpcCalls sends three requests with the given reply_to and matches the
// replies arriving on replies by correlation id.
func rpcCalls(ctx context.Context, s *env, ch *amqp.Channel, requestQueue, replyTo string, replies <-chan amqp.Delivery) error {
	pending := map[string]string{}
	for i, word := range []string{"alpha", "beta", "gamma"} {
		id := fmt.Sprintf("%s-%d", s.name("corr"), i)
		pending[id] = word
		req := amqp.Publishing{Body: []byte(word), ReplyTo: replyTo, CorrelationId: id}
		if err := ch.PublishWithContext(ctx, "", requestQueue, false, false, req); err != nil {
			return s.wrap(err)
		}
	}
	for len(pending) > 0 {
		s.step(fmt.Sprintf("waiting for %d RPC replies", len(pending)))
		reply, err := recv(s, replies, "RPC reply")
		if err != nil {
			return err
		}
		word, ok := pending[reply.CorrelationId]
		if !ok {
			return s.failf("reply with unknown correlation id %q", reply.CorrelationId)
		}
		if string(reply.Body) != strings.ToUpper(word) {
			return s.failf("reply %q, expected %q", reply.Body, strings.ToUpper(word))
		}
		delete(pending, reply.CorrelationId)
	}
	return nil
}

func rpc(ctx context.Context, s *env) error {
	requestQueue := s.name("requests")
	seen := make(chan string, 10)
	s.step("server: connect, declare, consume")
	if err := startRPCServer(ctx, s, requestQueue, seen); err != nil {
		return err
	}
	s.step("client: connect, declare reply queue")
	conn, ch, err := s.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	q, err := exclusiveQueue(s, ch, "", nil)
	if err != nil {
		return err
	}
	if q.Name == "" {
		return s.failf("server-named queue has an empty name")
	}
	replies, err := ch.Consume(q.Name, "", true, false, false, false, nil)
	if err != nil {
		return s.wrap(err)
	}
	if err := rpcCalls(ctx, s, ch, requestQueue, q.Name, replies); err != nil {
		return err
	}
	for i := 0; i < 3; i++ {
		if r := <-seen; r != q.Name {
			return s.failf("server saw reply_to %q, expected %q", r, q.Name)
		}
	}
	s.step("connection.close")
	return s.wrap(conn.Close())
}

func directReplyTo(ctx context.Context, s *env) error {
	const replyTo = "amq.rabbitmq.reply-to"
	requestQueue := s.name("requests")
	seen := make(chan string, 10)
	s.step("server: connect, declare, consume")
	if err := startRPCServer(ctx, s, requestQueue, seen); err != nil {
		return err
	}
	s.step("client: consume amq.rabbitmq.reply-to (auto-ack)")
	conn, ch, err := s.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	replies, err := ch.Consume(replyTo, "", true, false, false, false, nil)
	if err != nil {
		return s.wrap(err)
	}
	if err := rpcCalls(ctx, s, ch, requestQueue, replyTo, replies); err != nil {
		return err
	}
	for i := 0; i < 3; i++ {
		if r := <-seen; !strings.HasPrefix(r, replyTo+".") {
			return s.failf("server saw reply_to %q, expected %s.<suffix>", r, replyTo)
		}
	}
	s.step("connection.close")
	return s.wrap(conn.Close())
}

func deadLetter(ctx context.Context, s *env) error {
	s.step("connection.open")
	conn, ch, err := s.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	dlx := s.name("dlx")
	s.step("declare dead-letter exchange and queue")
	if err := s.declareExchange(ch, dlx, amqp.ExchangeDirect); err != nil {
		return err
	}
	dlq, err := exclusiveQueue(s, ch, s.name("dlq"), nil)
	if err != nil {
		return err
	}
	if err := ch.QueueBind(dlq.Name, "dead", dlx, false, nil); err != nil {
		return s.wrap(err)
	}
	s.step("declare the source queue")
	src, err := exclusiveQueue(s, ch, s.name("source"), amqp.Table{
		"x-dead-letter-exchange":    dlx,
		"x-dead-letter-routing-key": "dead",
	})
	if err != nil {
		return err
	}
	if err := ch.PublishWithContext(ctx, "", src.Name, false, false, amqp.Publishing{Body: []byte("doomed"), MessageId: "dl-1"}); err != nil {
		return s.wrap(err)
	}
	s.step("consume the source queue")
	msgs, err := ch.Consume(src.Name, "", false, false, false, false, nil)
	if err != nil {
		return s.wrap(err)
	}
	d, err := recv(s, msgs, "delivery")
	if err != nil {
		return err
	}
	if err := d.Reject(false); err != nil {
		return s.wrap(err)
	}
	s.step("consume the dead-letter queue")
	dead, err := ch.Consume(dlq.Name, "", true, false, false, false, nil)
	if err != nil {
		return s.wrap(err)
	}
	dl, err := recv(s, dead, "dead-lettered message")
	if err != nil {
		return err
	}
	if string(dl.Body) != "doomed" || dl.MessageId != "dl-1" {
		return s.failf("dead-lettered message %q id %q", dl.Body, dl.MessageId)
	}
	if dl.Exchange != dlx || dl.RoutingKey != "dead" {
		return s.failf("dead-lettered via %q/%q, expected %q/dead", dl.Exchange, dl.RoutingKey, dlx)
	}
	death, err := xDeath(s, dl)
	if err != nil {
		return err
	}
	want := amqp.Table{"count": int64(1), "reason": "rejected", "queue": src.Name, "exchange": "", "routing-keys": []interface{}{src.Name}}
	for k, v := range want {
		if !sameValue(death[k], v) {
			return s.failf("x-death[0].%s is %T %#v, expected %T %#v", k, death[k], death[k], v, v)
		}
	}
	s.step("source queue is empty")
	count, err := messageCount(s, ch, src.Name)
	if err != nil {
		return err
	}
	if count != 0 {
		return s.failf("source queue holds %d messages", count)
	}
	s.step("exchange.delete")
	if err := s.deleteExchange(ch, dlx); err != nil {
		return err
	}
	s.step("connection.close")
	return s.wrap(conn.Close())
}

func ttl(ctx context.Context, s *env) error {
	const ttlMs = 300
	s.step("connection.open")
	conn, ch, err := s.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	confirms, err := confirmMode(s, ch)
	if err != nil {
		return err
	}
	dlx := s.name("dlx")
	s.step("declare dead-letter exchange and queue")
	if err := s.declareExchange(ch, dlx, amqp.ExchangeFanout); err != nil {
		return err
	}
	dlq, err := exclusiveQueue(s, ch, s.name("dlq"), nil)
	if err != nil {
		return err
	}
	if err := ch.QueueBind(dlq.Name, "", dlx, false, nil); err != nil {
		return s.wrap(err)
	}
	s.step("declare a queue with x-message-ttl and a plain one")
	ttlQ, err := exclusiveQueue(s, ch, s.name("ttl"), amqp.Table{"x-message-ttl": int32(ttlMs), "x-dead-letter-exchange": dlx})
	if err != nil {
		return err
	}
	plainQ, err := exclusiveQueue(s, ch, s.name("plain"), amqp.Table{"x-dead-letter-exchange": dlx})
	if err != nil {
		return err
	}
	dead, err := ch.Consume(dlq.Name, "", true, false, false, false, nil)
	if err != nil {
		return s.wrap(err)
	}
	s.step("publish to both")
	start := time.Now()
	if err := publishConfirmed(ctx, s, ch, confirms, "", ttlQ.Name, amqp.Publishing{Body: []byte("queue ttl")}); err != nil {
		return err
	}
	if err := publishConfirmed(ctx, s, ch, confirms, "", plainQ.Name, amqp.Publishing{Body: []byte("message ttl"), Expiration: fmt.Sprint(ttlMs)}); err != nil {
		return err
	}
	got := map[string]amqp.Delivery{}
	for i := 0; i < 2; i++ {
		s.step(fmt.Sprintf("waiting for expired message %d of 2", i+1))
		d, err := recv(s, dead, "expired message")
		if err != nil {
			return err
		}
		if elapsed := time.Since(start); elapsed < (ttlMs-50)*time.Millisecond {
			return s.failf("%q dead-lettered after %s, before its %d ms TTL", d.Body, elapsed, ttlMs)
		}
		got[string(d.Body)] = d
	}
	for body, queue := range map[string]string{"queue ttl": ttlQ.Name, "message ttl": plainQ.Name} {
		d, ok := got[body]
		if !ok {
			return s.failf("%q was not dead-lettered", body)
		}
		death, err := xDeath(s, d)
		if err != nil {
			return err
		}
		want := amqp.Table{"count": int64(1), "reason": "expired", "queue": queue}
		if body == "message ttl" {
			want["original-expiration"] = fmt.Sprint(ttlMs)
			if d.Expiration != "" {
				return s.failf("dead-lettered message kept expiration %q", d.Expiration)
			}
		}
		for k, v := range want {
			if !sameValue(death[k], v) {
				return s.failf("%s: x-death[0].%s is %T %#v, expected %T %#v", body, k, death[k], death[k], v, v)
			}
		}
	}
	s.step("both queues are empty")
	for _, queue := range []string{ttlQ.Name, plainQ.Name} {
		count, err := messageCount(s, ch, queue)
		if err != nil {
			return err
		}
		if count != 0 {
			return s.failf("%s holds %d messages after the TTL", queue, count)
		}
	}
	s.step("exchange.delete")
	if err := s.deleteExchange(ch, dlx); err != nil {
		return err
	}
	s.step("connection.close")
	return s.wrap(conn.Close())
}

func priority(ctx context.Context, s *env) error {
	s.step("connection.open")
	conn, ch, err := s.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	confirms, err := confirmMode(s, ch)
	if err != nil {
		return err
	}
	s.step("queue.declare x-max-priority 10")
	q, err := exclusiveQueue(s, ch, s.name("q"), amqp.Table{"x-max-priority": int32(10)})
	if err != nil {
		return err
	}
	s.step("publish priorities 1, 5, 9")
	for _, p := range []uint8{1, 5, 9} {
		if err := publishConfirmed(ctx, s, ch, confirms, "", q.Name, amqp.Publishing{Body: []byte(fmt.Sprint("priority ", p)), Priority: p}); err != nil {
			return err
		}
	}
	s.step("basic.consume")
	msgs, err := ch.Consume(q.Name, "", true, false, false, false, nil)
	if err != nil {
		return s.wrap(err)
	}
	var order []uint8
	for i := 0; i < 3; i++ {
		d, err := recv(s, msgs, "delivery")
		if err != nil {
			return err
		}
		order = append(order, d.Priority)
	}
	if !reflect.DeepEqual(order, []uint8{9, 5, 1}) {
		return s.failf("priorities arrived as %v, expected [9 5 1]", order)
	}
	s.step("connection.close")
	return s.wrap(conn.Close())
}

func largeMessage(ctx context.Context, s *env) error {
	body := make([]byte, 5*1024*1024)
	_, _ = rand.Read(body)
	s.step("connection.open")
	conn, ch, err := s.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	confirms, err := confirmMode(s, ch)
	if err != nil {
		return err
	}
	s.step("queue.declare")
	q, err := exclusiveQueue(s, ch, s.name("q"), nil)
	if err != nil {
		return err
	}
	s.step("publish 5 MiB + confirm")
	if err := publishConfirmed(ctx, s, ch, confirms, "", q.Name, amqp.Publishing{Body: body, ContentType: "application/octet-stream"}); err != nil {
		return err
	}
	s.step("basic.consume")
	msgs, err := ch.Consume(q.Name, "", false, false, false, false, nil)
	if err != nil {
		return s.wrap(err)
	}
	d, err := recv(s, msgs, "delivery")
	if err != nil {
		return err
	}
	if len(d.Body) != len(body) {
		return s.failf("body is %d bytes, expected %d", len(d.Body), len(body))
	}
	if !bytes.Equal(d.Body, body) {
		return s.failf("body differs from the one sent")
	}
	if err := d.Ack(false); err != nil {
		return s.wrap(err)
	}
	s.step("connection.close")
	return s.wrap(conn.Close())
}

func emptyMessage(ctx context.Context, s *env) error {
	s.step("connection.open")
	conn, ch, err := s.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	confirms, err := confirmMode(s, ch)
	if err != nil {
		return err
	}
	s.step("queue.declare")
	q, err := exclusiveQueue(s, ch, s.name("q"), nil)
	if err != nil {
		return err
	}
	s.step("publish an empty body + confirm")
	msg := amqp.Publishing{ContentType: "text/plain", MessageId: "empty-1", Headers: amqp.Table{"kind": "empty"}}
	if err := publishConfirmed(ctx, s, ch, confirms, "", q.Name, msg); err != nil {
		return err
	}
	s.step("basic.get")
	d, ok, err := ch.Get(q.Name, true)
	if err != nil {
		return s.wrap(err)
	}
	if !ok {
		return s.failf("got get-empty")
	}
	if len(d.Body) != 0 {
		return s.failf("body is %d bytes, expected 0", len(d.Body))
	}
	if d.ContentType != "text/plain" || d.MessageId != "empty-1" || !sameValue(d.Headers, msg.Headers) {
		return s.failf("content type %q message id %q headers %#v", d.ContentType, d.MessageId, d.Headers)
	}
	s.step("connection.close")
	return s.wrap(conn.Close())
}

// headerValues holds every field-table type amqp091-go encodes, each with the
// Go type it decodes to.
func headerValues() amqp.Table {
	return amqp.Table{
		"string":       "héllo wörld ✓",
		"empty-string": "",
		"bool-true":    true,
		"bool-false":   false,
		"int8":         int8(-5),
		"uint8":        byte(200),
		"int16":        int16(-300),
		"int32":        int32(-70000),
		"int64":        int64(1<<40 + 7),
		"float32":      float32(1.5),
		"float64":      float64(3.25),
		"decimal":      amqp.Decimal{Scale: 2, Value: 12345},
		"timestamp":    time.Unix(1700000000, 0),
		"bytes":        []byte{0, 1, 0xfe, 0xff},
		"void":         nil,
		"array":        []interface{}{int32(1), "two", true, nil, []interface{}{int64(3), "four"}, amqp.Table{"k": "v"}},
		"empty-array":  []interface{}{},
		"table":        amqp.Table{"nested": "yes", "deeper": amqp.Table{"n": int16(-2)}},
		"empty-table":  amqp.Table{},
	}
}

// sameValue compares decoded field values, Go types included.
func sameValue(got, want interface{}) bool {
	switch w := want.(type) {
	case time.Time:
		g, ok := got.(time.Time)
		return ok && g.Equal(w)
	case amqp.Table:
		g, ok := got.(amqp.Table)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, v := range w {
			gv, present := g[k]
			if !present || !sameValue(gv, v) {
				return false
			}
		}
		return true
	case []interface{}:
		g, ok := got.([]interface{})
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !sameValue(g[i], w[i]) {
				return false
			}
		}
		return true
	case []byte:
		g, ok := got.([]byte)
		return ok && bytes.Equal(g, w)
	}
	return reflect.TypeOf(got) == reflect.TypeOf(want) && got == want
}

func properties(ctx context.Context, s *env) error {
	uri, err := amqp.ParseURI(s.url)
	if err != nil {
		return s.wrap(err)
	}
	sent := amqp.Publishing{
		ContentType:     "application/json",
		ContentEncoding: "gzip",
		Headers:         headerValues(),
		DeliveryMode:    amqp.Persistent,
		Priority:        7,
		CorrelationId:   "corr-42",
		ReplyTo:         "reply-here",
		Expiration:      "60000",
		MessageId:       "msg-42",
		Timestamp:       time.Unix(1700000000, 0),
		Type:            "interop.properties",
		UserId:          uri.Username,
		AppId:           "warren-interop",
		Body:            []byte(`{"all":"properties"}`),
	}
	s.step("connection.open")
	conn, ch, err := s.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	confirms, err := confirmMode(s, ch)
	if err != nil {
		return err
	}
	s.step("queue.declare")
	q, err := exclusiveQueue(s, ch, s.name("q"), nil)
	if err != nil {
		return err
	}
	s.step("publish with every property + confirm")
	if err := publishConfirmed(ctx, s, ch, confirms, "", q.Name, sent); err != nil {
		return err
	}
	s.step("basic.consume")
	msgs, err := ch.Consume(q.Name, "", true, false, false, false, nil)
	if err != nil {
		return s.wrap(err)
	}
	d, err := recv(s, msgs, "delivery")
	if err != nil {
		return err
	}
	fields := []struct {
		name      string
		got, want interface{}
	}{
		{"content type", d.ContentType, sent.ContentType},
		{"content encoding", d.ContentEncoding, sent.ContentEncoding},
		{"delivery mode", d.DeliveryMode, sent.DeliveryMode},
		{"priority", d.Priority, sent.Priority},
		{"correlation id", d.CorrelationId, sent.CorrelationId},
		{"reply to", d.ReplyTo, sent.ReplyTo},
		{"expiration", d.Expiration, sent.Expiration},
		{"message id", d.MessageId, sent.MessageId},
		{"timestamp", d.Timestamp, sent.Timestamp},
		{"type", d.Type, sent.Type},
		{"user id", d.UserId, sent.UserId},
		{"app id", d.AppId, sent.AppId},
		{"body", d.Body, sent.Body},
	}
	for _, f := range fields {
		if !sameValue(f.got, f.want) {
			return s.failf("%s came back as %#v, sent %#v", f.name, f.got, f.want)
		}
	}
	for k, v := range sent.Headers {
		got, present := d.Headers[k]
		if !present {
			return s.failf("header %s missing", k)
		}
		if !sameValue(got, v) {
			return s.failf("header %s came back as %T %#v, sent %T %#v", k, got, got, v, v)
		}
	}
	for k, v := range d.Headers {
		if _, present := sent.Headers[k]; !present {
			return s.failf("unexpected header %s = %#v", k, v)
		}
	}
	s.step("connection.close")
	return s.wrap(conn.Close())
}

func cancelNotify(ctx context.Context, s *env) error {
	s.step("connection.open")
	conn, ch, err := s.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	s.step("queue.declare")
	q, err := exclusiveQueue(s, ch, s.name("q"), nil)
	if err != nil {
		return err
	}
	cancels := ch.NotifyCancel(make(chan string, 1))
	tag := s.name("consumer")
	s.step("basic.consume")
	msgs, err := ch.Consume(q.Name, tag, false, false, false, false, nil)
	if err != nil {
		return s.wrap(err)
	}
	s.step("queue.delete from another channel")
	other, err := conn.Channel()
	if err != nil {
		return s.wrap(err)
	}
	if _, err := other.QueueDelete(q.Name, false, false, false); err != nil {
		return s.wrap(err)
	}
	s.step("waiting for basic.cancel")
	select {
	case got := <-cancels:
		if got != tag {
			return s.failf("basic.cancel for consumer %q, expected %q", got, tag)
		}
	case <-time.After(waitTimeout):
		return s.failf("no basic.cancel within %s", waitTimeout)
	}
	s.step("delivery channel closes after the cancel")
	select {
	case d, ok := <-msgs:
		if ok {
			return s.failf("unexpected delivery %q", d.Body)
		}
	case <-time.After(waitTimeout):
		return s.failf("delivery channel still open %s after basic.cancel", waitTimeout)
	}
	s.step("consumer channel still usable")
	if _, err := exclusiveQueue(s, ch, "", nil); err != nil {
		return err
	}
	s.step("connection.close")
	return s.wrap(conn.Close())
}

func heartbeat(ctx context.Context, s *env) error {
	s.step("connection.open with a 1 s heartbeat")
	conn, err := s.dial(time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if conn.Config.Heartbeat != time.Second {
		return s.failf("negotiated heartbeat %s, expected 1s", conn.Config.Heartbeat)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	ch, err := conn.Channel()
	if err != nil {
		return s.wrap(err)
	}
	q, err := exclusiveQueue(s, ch, s.name("q"), nil)
	if err != nil {
		return err
	}
	s.step("idle for 2.5 heartbeat intervals")
	select {
	case err := <-closed:
		return s.failf("connection closed while idle: %v", err)
	case <-time.After(2500 * time.Millisecond):
	}
	s.step("publish + basic.get after the idle period")
	if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: []byte("still here")}); err != nil {
		return s.wrap(err)
	}
	d, ok, err := ch.Get(q.Name, true)
	if err != nil {
		return s.wrap(err)
	}
	if !ok || string(d.Body) != "still here" {
		return s.failf("basic.get after idling: ok=%v body=%q", ok, d.Body)
	}
	s.step("connection.close")
	return s.wrap(conn.Close())
}
