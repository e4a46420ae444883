package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/events"
)

// Defaults for AsyncConfig.
const (
	// DefaultMaxInFlight is how many publishes may await their ack at once.
	DefaultMaxInFlight = 1024
	// DefaultMaxQueued is how many events may be accepted and not yet
	// acknowledged (queued behind their thread or in flight) before
	// Publish blocks.
	DefaultMaxQueued = 8192
)

// AsyncConfig configures NewAsyncPublisher. The PublisherConfig fields
// mean what they mean for NewPublisher; AttemptTimeout bounds the wait for
// one attempt's ack before the event is sent again with the same id.
type AsyncConfig struct {
	PublisherConfig
	// MaxInFlight bounds unacknowledged publishes; default
	// DefaultMaxInFlight. Keep it below the JetStream context's async
	// pending limit (4,000 unless set with jetstream.WithPublishAsyncMaxPending).
	MaxInFlight int
	// MaxQueued bounds accepted, unacknowledged events; Publish blocks
	// while it is reached (backpressure). Default DefaultMaxQueued; at least
	// MaxInFlight.
	MaxQueued int
}

// Ack is the outcome of one asynchronous publish.
type Ack struct {
	// Seq is the event's stream sequence (the original one when Duplicate).
	Seq uint64
	// Duplicate: the stream already held an event with this id within its
	// duplicate window and dropped this one.
	Duplicate bool
	// Latency is the time from the first send to the ack, across retries.
	Latency time.Duration
	// Attempts is how many times the event was sent.
	Attempts int
	// Err is set when the event was not stored: invalid for the broker,
	// or the publisher was closed before an ack came.
	Err error
}

// AsyncPublisher publishes events without waiting for each ack, for
// fleets and bulk loads. Like Publisher it keeps at most one event per
// thread unacknowledged, so the stream holds each thread's events in the
// order Publish accepted them; events of different threads are in flight
// together, up to MaxInFlight. Publish blocks while MaxQueued events are
// accepted and unacknowledged, so memory stays bounded however slow the
// broker is. Transient failures (disconnects, ack timeouts) are retried
// with the same message id until Close.
//
// One goroutine collects the acks, in the order the events were sent
// (the order the broker acknowledges them in), and sends each thread's
// next event as its predecessor's ack arrives; retries wait in goroutines
// of their own.
//
// It is safe for concurrent use. Close stops it; Flush waits for every
// accepted event's outcome. Publish must not be called during or after
// Close.
type AsyncPublisher struct {
	js  jetstream.JetStream
	cfg AsyncConfig

	queued   chan struct{}   // one token per accepted, unfinished event
	inFlight chan struct{}   // one token per event sent and not finished
	sent     chan *asyncItem // events sent, in send order, awaiting their ack

	mu      sync.Mutex
	threads map[string][]*asyncItem // per busy thread, the events behind the one in flight
	open    int                     // accepted, unfinished events
	idle    chan struct{}           // closed when open drops to 0; replaced when it rises

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type asyncItem struct {
	msg      *nats.Msg
	id       string
	thread   string
	done     func(Ack)
	first    time.Time
	attempts int
	ack      jetstream.PubAckFuture
	deadline time.Time
}

// NewAsyncPublisher returns an asynchronous publisher on js.
func NewAsyncPublisher(js jetstream.JetStream, cfg AsyncConfig) (*AsyncPublisher, error) {
	// The synchronous publisher's defaults and checks, applied once.
	base, err := NewPublisher(js, cfg.PublisherConfig)
	if err != nil {
		return nil, err
	}
	cfg.PublisherConfig = base.cfg
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = DefaultMaxQueued
	}
	cfg.MaxQueued = max(cfg.MaxQueued, cfg.MaxInFlight)
	ctx, cancel := context.WithCancel(context.Background())
	p := &AsyncPublisher{
		js: js, cfg: cfg,
		queued:   make(chan struct{}, cfg.MaxQueued),
		inFlight: make(chan struct{}, cfg.MaxInFlight),
		sent:     make(chan *asyncItem, cfg.MaxInFlight),
		threads:  make(map[string][]*asyncItem),
		ctx:      ctx, cancel: cancel,
	}
	p.idle = make(chan struct{})
	close(p.idle)
	p.wg.Go(p.collect)
	return p, nil
}

// Fleet returns the fleet this publisher publishes into.
func (p *AsyncPublisher) Fleet() string { return p.cfg.Fleet }

// Publish validates and encodes e (an empty Fleet is set to the
// publisher's) and hands it to the broker behind any unacknowledged event
// of its thread; done, if not nil, is called once with the outcome, from
// another goroutine (it must not block for long: it holds up other acks).
// Publish returns once the event is accepted: it blocks while MaxQueued
// events are unfinished, or until ctx ends. An invalid or oversized event
// is an Invalid error and done is not called.
func (p *AsyncPublisher) Publish(ctx context.Context, e *events.Event, done func(Ack)) error {
	if e.Fleet == "" {
		e.Fleet = p.cfg.Fleet
	}
	if e.Fleet != p.cfg.Fleet {
		return events.Errorf(events.Invalid, "event fleet %q: this publisher publishes into fleet %q", e.Fleet, p.cfg.Fleet)
	}
	data, err := events.Encode(e, p.cfg.MaxEventBytes)
	if err != nil {
		return err
	}
	if max := p.js.Conn().MaxPayload(); max > 0 && int64(len(data)) > max {
		return events.Errorf(events.Invalid, "event is %d bytes, over the broker's max_payload of %d bytes", len(data), max)
	}
	if p.ctx.Err() != nil {
		return events.Errorf(events.Unavailable, "async publisher closed")
	}
	select {
	case p.queued <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.ctx.Done():
		return events.Errorf(events.Unavailable, "async publisher closed")
	}
	it := &asyncItem{
		msg:    &nats.Msg{Subject: events.Subject(p.cfg.Root, e.Fleet, e.ThreadID), Data: data},
		id:     e.EventID,
		thread: e.ThreadID,
		done:   done,
	}
	p.mu.Lock()
	if p.open == 0 {
		p.idle = make(chan struct{})
	}
	p.open++
	behind, busy := p.threads[it.thread]
	if busy {
		p.threads[it.thread] = append(behind, it)
		p.mu.Unlock()
		return nil
	}
	p.threads[it.thread] = nil
	p.mu.Unlock()
	select {
	case p.inFlight <- struct{}{}:
		p.transmit(it)
	default:
		// Accepted: wait for a slot without holding up the caller (at
		// most MaxQueued such waits).
		p.wg.Go(func() {
			select {
			case p.inFlight <- struct{}{}:
				p.transmit(it)
			case <-p.ctx.Done():
				p.finish(it, p.closedAck(it, nil), false)
			}
		})
	}
	return nil
}

// transmit sends it, which holds an in-flight token, and queues it for
// its ack; on a send error it schedules a retry.
func (p *AsyncPublisher) transmit(it *asyncItem) {
	if p.ctx.Err() != nil {
		p.finish(it, p.closedAck(it, nil), true)
		return
	}
	if it.attempts == 0 {
		it.first = time.Now()
	}
	it.attempts++
	// A fresh message each attempt: the client adds the message id header.
	msg := &nats.Msg{Subject: it.msg.Subject, Data: it.msg.Data, Header: nats.Header{}}
	f, err := p.js.PublishMsgAsync(msg, jetstream.WithMsgID(it.id))
	if err != nil {
		p.failed(it, err)
		return
	}
	it.ack, it.deadline = f, time.Now().Add(p.cfg.AttemptTimeout)
	p.sent <- it // never blocks: at most MaxInFlight tokens exist
}

// collect takes sent events in send order and waits for each one's ack.
// After Close it finishes what is left and returns once nothing is open.
func (p *AsyncPublisher) collect() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case it := <-p.sent:
			timer.Reset(time.Until(it.deadline))
			select {
			case ack := <-it.ack.Ok():
				p.finish(it, Ack{Seq: ack.Sequence, Duplicate: ack.Duplicate, Latency: time.Since(it.first), Attempts: it.attempts}, true)
			case err := <-it.ack.Err():
				p.failed(it, err)
			case <-timer.C:
				p.failed(it, jetstream.ErrAsyncPublishTimeout)
			case <-p.ctx.Done():
				p.finish(it, p.closedAck(it, nil), true)
			}
		case <-p.ctx.Done():
			p.drain()
			return
		}
	}
}

// drain finishes, after Close, every event still open.
func (p *AsyncPublisher) drain() {
	for {
		select {
		case it := <-p.sent:
			p.finish(it, p.closedAck(it, nil), true)
			continue
		default:
		}
		p.mu.Lock()
		idle := p.idle
		p.mu.Unlock()
		select {
		case it := <-p.sent:
			p.finish(it, p.closedAck(it, nil), true)
		case <-idle:
			return
		}
	}
}

// failed handles a failed attempt: a transient error is retried after a
// backoff (the event keeps its in-flight token and its thread's turn);
// any other finishes the event with the error.
func (p *AsyncPublisher) failed(it *asyncItem, err error) {
	if !retryable(err) && !errors.Is(err, jetstream.ErrAsyncPublishTimeout) && !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
		if errors.Is(err, nats.ErrMaxPayload) {
			err = events.Errorf(events.Invalid, "event is %d bytes, over the broker's max_payload: %w", len(it.msg.Data), err)
		}
		p.finish(it, Ack{Attempts: it.attempts, Err: fmt.Errorf("publish to %s (event %s): %w", it.msg.Subject, it.id, err)}, true)
		return
	}
	if refused := refusedPublish(p.js.Conn(), it.msg.Subject); refused != nil {
		// The server drops a publish it refuses for permissions without an
		// answer: retrying would wait forever.
		p.finish(it, Ack{Attempts: it.attempts, Err: events.Errorf(events.Invalid, "publish to %s refused by the server: %w", it.msg.Subject, refused)}, true)
		return
	}
	if it.attempts == 1 || it.attempts%20 == 0 {
		p.cfg.Logger.Warn("publish retrying", "subject", it.msg.Subject, "event_id", it.id, "attempts", it.attempts, "err", err)
	}
	wait := min(50*time.Millisecond<<min(it.attempts-1, 6), 2*time.Second)
	p.wg.Go(func() {
		select {
		case <-time.After(wait):
			p.transmit(it)
		case <-p.ctx.Done():
			p.finish(it, p.closedAck(it, err), true)
		}
	})
}

func (p *AsyncPublisher) closedAck(it *asyncItem, cause error) Ack {
	if cause != nil {
		return Ack{Attempts: it.attempts, Err: events.Errorf(events.Unavailable, "publish event %s: publisher closed after %d attempts: %w", it.id, it.attempts, cause)}
	}
	return Ack{Attempts: it.attempts, Err: events.Errorf(events.Unavailable, "publish event %s: publisher closed", it.id)}
}

// finish reports it's outcome and sends its thread's next event, which
// takes over its in-flight token (holding says whether it has one).
func (p *AsyncPublisher) finish(it *asyncItem, ack Ack, holding bool) {
	for it != nil {
		if it.done != nil {
			it.done(ack)
		}
		p.mu.Lock()
		var next *asyncItem
		if behind := p.threads[it.thread]; len(behind) > 0 {
			next = behind[0]
			behind[0] = nil
			p.threads[it.thread] = behind[1:]
		} else {
			delete(p.threads, it.thread)
		}
		p.open--
		if p.open == 0 {
			close(p.idle)
		}
		p.mu.Unlock()
		<-p.queued
		switch {
		case next == nil:
			if holding {
				<-p.inFlight
			}
			return
		case p.ctx.Err() != nil:
			it, ack = next, p.closedAck(next, nil)
		case !holding:
			// Only after Close can an event finish without a token, and
			// then the branch above is taken.
			it, ack = next, p.closedAck(next, nil)
		default:
			p.transmit(next)
			return
		}
	}
}

// Flush waits until every accepted event has its outcome, or ctx ends.
func (p *AsyncPublisher) Flush(ctx context.Context) error {
	p.mu.Lock()
	idle := p.idle
	p.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops retrying: events without an ack get an Unavailable outcome,
// and so do events still queued behind them. It waits until every accepted
// event has had its done call.
func (p *AsyncPublisher) Close() {
	p.cancel()
	p.wg.Wait()
}
