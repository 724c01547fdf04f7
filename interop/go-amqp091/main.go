// Warren interop scenarios (interop/SCENARIOS.md) written with
// github.com/rabbitmq/amqp091-go: Go channels for deliveries, returns,
// confirms and cancellations, contexts for publish timeouts.
//
// Usage: go-amqp091 [AMQP_URL] [scenario ...]
//
// Prints one line per scenario, `PASS go-amqp091 <scenario>` or
// `FAIL go-amqp091 <scenario>: <reason>`, and exits 1 if any failed.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const (
	client          = "go-amqp091"
	defaultURL      = "amqp://guest:guest@127.0.0.1:5672/%2F"
	scenarioTimeout = 15 * time.Second // watchdog for a whole scenario
	waitTimeout     = 5 * time.Second  // longest wait for one delivery, return or confirm
	quietPeriod     = 300 * time.Millisecond
)

type scenario struct {
	name string
	run  func(ctx context.Context, s *env) error
}

var scenarios = []scenario{
	{"connect", connectScenario},
	{"exchange_types", exchangeTypes},
	{"publish_consume_ack", publishConsumeAck},
	{"nack_requeue", nackRequeue},
	{"basic_get", basicGet},
	{"prefetch", prefetch},
	{"publisher_confirms", publisherConfirms},
	{"mandatory_return", mandatoryReturn},
	{"transactions", transactions},
	{"rpc", rpc},
	{"direct_reply_to", directReplyTo},
	{"dead_letter", deadLetter},
	{"ttl", ttl},
	{"priority", priority},
	{"large_message", largeMessage},
	{"empty_message", emptyMessage},
	{"properties", properties},
	{"cancel_notify", cancelNotify},
	{"heartbeat", heartbeat},
}

// env is one scenario's run: its current step, its connections (with the
// sockets under them, to cut a hung broker off) and its exchanges.
type env struct {
	url      string
	scenario string

	mu        sync.Mutex
	current   string
	conns     []*amqp.Connection
	sockets   []net.Conn
	exchanges map[string]bool
}

func (s *env) step(desc string) {
	s.mu.Lock()
	s.current = desc
	s.mu.Unlock()
}

func (s *env) currentStep() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// failf is a check failure: it names the step that was running.
func (s *env) failf(format string, args ...interface{}) error {
	return fmt.Errorf("%s: %s", s.currentStep(), fmt.Sprintf(format, args...))
}

// wrap names the step in an error returned by the library.
func (s *env) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", s.currentStep(), err)
}

func (s *env) name(what string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s.%s.%s.%s", client, s.scenario, what, hex.EncodeToString(b))
}

func (s *env) dial(heartbeat time.Duration) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(client + " " + s.scenario)
	cfg := amqp.Config{
		Heartbeat:  heartbeat,
		Locale:     "en_US",
		Properties: props,
		Dial: func(network, addr string) (net.Conn, error) {
			conn, err := amqp.DefaultDial(5*time.Second)(network, addr)
			if err == nil {
				s.mu.Lock()
				s.sockets = append(s.sockets, conn)
				s.mu.Unlock()
			}
			return conn, err
		},
	}
	if heartbeat == 0 {
		cfg.Heartbeat = 10 * time.Second // amqp.Dial's default
	}
	conn, err := amqp.DialConfig(s.url, cfg)
	if err != nil {
		return nil, s.wrap(err)
	}
	s.mu.Lock()
	s.conns = append(s.conns, conn)
	s.mu.Unlock()
	return conn, nil
}

func (s *env) connect() (*amqp.Connection, *amqp.Channel, error) {
	conn, err := s.dial(0)
	if err != nil {
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, nil, s.wrap(err)
	}
	return conn, ch, nil
}

func (s *env) declareExchange(ch *amqp.Channel, name, kind string) error {
	s.mu.Lock()
	s.exchanges[name] = true
	s.mu.Unlock()
	return s.wrap(ch.ExchangeDeclare(name, kind, false, false, false, false, nil))
}

func (s *env) deleteExchange(ch *amqp.Channel, name string) error {
	if err := ch.ExchangeDelete(name, false, false); err != nil {
		return s.wrap(err)
	}
	s.mu.Lock()
	delete(s.exchanges, name)
	s.mu.Unlock()
	return nil
}

// teardown deletes exchanges the scenario left and closes its connections,
// cutting the socket of any that does not close within 2 s.
func (s *env) teardown() {
	s.mu.Lock()
	var leftover []string
	for name := range s.exchanges {
		leftover = append(leftover, name)
	}
	s.mu.Unlock()
	if len(leftover) > 0 {
		done := make(chan struct{})
		go func() {
			defer close(done)
			if conn, err := amqp.DialConfig(s.url, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)}); err == nil {
				if ch, err := conn.Channel(); err == nil {
					for _, name := range leftover {
						_ = ch.ExchangeDelete(name, false, false)
					}
				}
				_ = conn.Close()
			}
		}()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
		}
	}
	s.mu.Lock()
	conns, sockets := s.conns, s.sockets
	s.mu.Unlock()
	for _, conn := range conns {
		if conn.IsClosed() {
			continue
		}
		closed := make(chan struct{})
		go func(c *amqp.Connection) { _ = c.Close(); close(closed) }(conn)
		select {
		case <-closed:
		case <-time.After(2 * time.Second):
		}
	}
	for _, sock := range sockets {
		_ = sock.Close()
	}
}

func main() {
	url := defaultURL
	if len(os.Args) > 1 && os.Args[1] != "" {
		url = os.Args[1]
	}
	only := map[string]bool{}
	for _, name := range os.Args[min(2, len(os.Args)):] {
		only[name] = true
	}
	failed := 0
	for _, sc := range scenarios {
		if len(only) > 0 && !only[sc.name] {
			continue
		}
		if err := runScenario(url, sc); err != nil {
			failed++
			fmt.Printf("FAIL %s %s: %s\n", client, sc.name, oneLine(err.Error()))
		} else {
			fmt.Printf("PASS %s %s\n", client, sc.name)
		}
	}
	if failed > 0 {
		os.Exit(1)
	}
}

func runScenario(url string, sc scenario) (err error) {
	s := &env{url: url, scenario: sc.name, current: "start", exchanges: map[string]bool{}}
	defer s.teardown()
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	result := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				result <- s.failf("panic: %v", r)
			}
		}()
		result <- sc.run(ctx, s)
	}()
	select {
	case err = <-result:
		return err
	case <-ctx.Done():
		return fmt.Errorf("timed out after %s during %s", scenarioTimeout, s.currentStep())
	}
}

func oneLine(text string) string {
	text = strings.Join(strings.Fields(text), " ")
	if len(text) > 400 {
		text = text[:397] + "..."
	}
	return text
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}
