package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/events"
)

// DefaultAttemptTimeout bounds one publish attempt (send and ack).
const DefaultAttemptTimeout = 5 * time.Second

// PublisherConfig configures NewPublisher.
type PublisherConfig struct {
	// Root and Fleet place events at <root>.<fleet>.<thread token>;
	// defaults events.DefaultRoot and events.DefaultFleet.
	Root, Fleet string
	// MaxEventBytes refuses larger events before publishing; default
	// events.DefaultMaxEventBytes.
	MaxEventBytes int
	// AttemptTimeout bounds each attempt; default DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// Logger receives retry warnings; default slog.Default().
	Logger *slog.Logger
}

// Publisher publishes events to JetStream. It is safe for concurrent use:
// publishes of different threads proceed in parallel, while publishes of one
// thread are serialised, so that at most one event per thread is
// unacknowledged and the stream holds each thread's events in the order they
// were acknowledged.
type Publisher struct {
	js    jetstream.JetStream
	cfg   PublisherConfig
	locks keyedLock
}

// NewPublisher returns a publisher on js.
func NewPublisher(js jetstream.JetStream, cfg PublisherConfig) (*Publisher, error) {
	if cfg.Root == "" {
		cfg.Root = events.DefaultRoot
	}
	if cfg.Fleet == "" {
		cfg.Fleet = events.DefaultFleet
	}
	if err := events.CheckNames(cfg.Root, cfg.Fleet); err != nil {
		return nil, err
	}
	if cfg.MaxEventBytes <= 0 {
		cfg.MaxEventBytes = events.DefaultMaxEventBytes
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = DefaultAttemptTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Publisher{js: js, cfg: cfg}, nil
}

// Fleet returns the fleet this publisher publishes into.
func (p *Publisher) Fleet() string { return p.cfg.Fleet }

// Root returns the subject root.
func (p *Publisher) Root() string { return p.cfg.Root }

// Publish validates and encodes e (an empty Fleet is set to the
// publisher's), publishes it on its thread's subject with e.EventID as the
// Nats-Msg-Id, and returns the stream sequence once the broker has
// acknowledged it. Transient failures (disconnects, timeouts, a broker that
// is restarting) are retried with the same id until ctx ends; if an earlier
// attempt did land, the stream recognises the id and returns the original
// sequence. An invalid or oversized event is an Invalid error, and nothing
// is published.
func (p *Publisher) Publish(ctx context.Context, e *events.Event) (uint64, error) {
	if e.Fleet == "" {
		e.Fleet = p.cfg.Fleet
	}
	if e.Fleet != p.cfg.Fleet {
		return 0, events.Errorf(events.Invalid, "event fleet %q: this publisher publishes into fleet %q", e.Fleet, p.cfg.Fleet)
	}
	data, err := events.Encode(e, p.cfg.MaxEventBytes)
	if err != nil {
		return 0, err
	}
	subject := events.Subject(p.cfg.Root, e.Fleet, e.ThreadID)
	if err := p.locks.lock(ctx, e.ThreadID); err != nil {
		return 0, err
	}
	defer p.locks.unlock(e.ThreadID)
	return p.PublishRaw(ctx, subject, e.EventID, data)
}

// PublishRaw publishes data on subject with msgID as the Nats-Msg-Id,
// retrying like Publish. It does not validate data: it is for tools that
// must publish bytes as they are (redrive, tests of poison input).
func (p *Publisher) PublishRaw(ctx context.Context, subject, msgID string, data []byte) (uint64, error) {
	return PublishMsg(ctx, p.js, &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}, msgID, p.cfg.AttemptTimeout, p.cfg.Logger)
}

// PublishMsg publishes msg with msgID as its Nats-Msg-Id and waits for the
// ack, retrying transient failures with backoff until ctx ends.
func PublishMsg(ctx context.Context, js jetstream.JetStream, msg *nats.Msg, msgID string, attempt time.Duration, log *slog.Logger) (uint64, error) {
	if max := js.Conn().MaxPayload(); max > 0 && int64(len(msg.Data)) > max {
		return 0, events.Errorf(events.Invalid, "event is %d bytes, over the broker's max_payload of %d bytes", len(msg.Data), max)
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 50 * time.Millisecond
	b.MaxInterval = 2 * time.Second
	b.MaxElapsedTime = 0
	var seq uint64
	failures := 0
	op := func() error {
		actx, cancel := context.WithTimeout(ctx, attempt)
		defer cancel()
		ack, err := js.PublishMsg(actx, msg, jetstream.WithMsgID(msgID))
		if err == nil {
			seq = ack.Sequence
			return nil
		}
		if ctx.Err() != nil {
			return backoff.Permanent(ctx.Err())
		}
		if errors.Is(err, nats.ErrMaxPayload) {
			return backoff.Permanent(events.Errorf(events.Invalid, "event is %d bytes, over the broker's max_payload: %w", len(msg.Data), err))
		}
		if !retryable(err) {
			return backoff.Permanent(fmt.Errorf("publish to %s: %w", msg.Subject, err))
		}
		if refused := refusedPublish(js.Conn(), msg.Subject); refused != nil {
			return backoff.Permanent(events.Errorf(events.Invalid, "publish to %s refused by the server: %w", msg.Subject, refused))
		}
		failures++
		if failures == 1 || failures%20 == 0 {
			log.Warn("publish retrying", "subject", msg.Subject, "event_id", msgID, "attempts", failures, "err", err)
		}
		return err
	}
	if err := backoff.Retry(op, backoff.WithContext(b, ctx)); err != nil {
		if ctx.Err() != nil {
			return 0, events.Errorf(events.Unavailable, "publish to %s (event %s): gave up after %d failed attempts: %w", msg.Subject, msgID, failures, ctx.Err())
		}
		return 0, err
	}
	return seq, nil
}

// refusedPublish returns the connection's last error if it is the server
// refusing publishes to subject (user permissions). The server drops such a
// message without an answer, so the attempt times out like a transient
// failure; without this check it would be retried until ctx ends. The last
// error stays until the connection reconnects.
func refusedPublish(nc *nats.Conn, subject string) error {
	err := nc.LastError()
	if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), fmt.Sprintf("Publish to %q", subject)) {
		return err
	}
	return nil
}

// keyedLock is a set of mutexes by key that honour contexts; entries are
// freed when unused, so millions of threads cost nothing at rest.
type keyedLock struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	ch   chan struct{}
	refs int
}

func (k *keyedLock) lock(ctx context.Context, key string) error {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[string]*keyedEntry)
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{ch: make(chan struct{}, 1)}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	select {
	case e.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		k.release(key, e)
		return ctx.Err()
	}
}

func (k *keyedLock) unlock(key string) {
	k.mu.Lock()
	e := k.m[key]
	k.mu.Unlock()
	<-e.ch
	k.release(key, e)
}

func (k *keyedLock) release(key string, e *keyedEntry) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e.refs--
	if e.refs == 0 {
		delete(k.m, key)
	}
}
