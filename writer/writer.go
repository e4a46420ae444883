// Package writer is the projection daemon: it pulls a fleet's events from
// a durable JetStream consumer, applies them in batches through the
// projector (one store transaction per batch) and acknowledges each message
// only after its batch has committed. Invalid events and events the store
// refuses are copied to the dead-letter stream with the reason and
// terminated, while the rest keep flowing; store outages are ridden out
// with exponential backoff and no acknowledgements.
package writer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/retention"
)

// Defaults for Config.
const (
	DefaultBatchSize     = 500
	DefaultLinger        = 2 * time.Millisecond
	DefaultAckWait       = 30 * time.Second
	DefaultMaxAckPending = 5000
	DefaultMaxBackoff    = 10 * time.Second
)

// Config configures a Writer.
type Config struct {
	// Root and Fleet select the events: <root>.<fleet>.>. Defaults
	// events.DefaultRoot and events.DefaultFleet.
	Root, Fleet string
	// Prefix is the store's table prefix; it names the durable consumer
	// (broker.DurableName). Default projector.DefaultPrefix.
	Prefix string
	// Stream configures the streams created when missing.
	Stream broker.StreamConfig
	// BatchSize is the most events per transaction; default DefaultBatchSize.
	BatchSize int
	// Linger is how long a partial batch waits for more events; default
	// DefaultLinger.
	Linger time.Duration
	// AckWait is the consumer's redelivery timeout; default DefaultAckWait.
	AckWait time.Duration
	// MaxAckPending bounds unacknowledged messages; default DefaultMaxAckPending.
	MaxAckPending int
	// MaxEventBytes: larger events are dead-lettered; default
	// events.DefaultMaxEventBytes.
	MaxEventBytes int
	// MaxBackoff caps the wait between retries of a batch while the store
	// is unavailable; default DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Metrics, when not nil, records events, batches, apply latency and
	// consumer lag (see NewMetrics).
	Metrics *Metrics
	// Retention, when enabled, is a writer-side retention policy: threads
	// that get new checkpoints are evaluated every RetentionInterval
	// (default retention.DefaultInterval), all threads every
	// RetentionSweep (default retention.DefaultSweepEvery, negative for
	// never), and a thread.prune is published where the policy removes
	// something. Several writers of one prefix publish the same prune
	// events (same ids), which the stream deduplicates.
	Retention         retention.Policy
	RetentionInterval time.Duration
	RetentionSweep    time.Duration
}

func (c *Config) setDefaults() error {
	if c.Root == "" {
		c.Root = events.DefaultRoot
	}
	if c.Fleet == "" {
		c.Fleet = events.DefaultFleet
	}
	if err := events.CheckNames(c.Root, c.Fleet); err != nil {
		return err
	}
	if c.Prefix == "" {
		c.Prefix = projector.DefaultPrefix
	}
	if err := projector.CheckPrefix(c.Prefix); err != nil {
		return err
	}
	c.Stream.Root = c.Root
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Linger <= 0 {
		c.Linger = DefaultLinger
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = DefaultMaxAckPending
	}
	if c.MaxEventBytes <= 0 {
		c.MaxEventBytes = events.DefaultMaxEventBytes
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Stats counts what a writer has done since it started.
type Stats struct {
	Applied, Duplicate, Conflict, Superseded, Ignored atomic.Int64
	DeadLettered, Batches, Retries                    atomic.Int64
}

// Writer projects one fleet into one store.
type Writer struct {
	js    jetstream.JetStream
	proj  *projector.Projector
	cfg   Config
	log   *slog.Logger
	Stats Stats

	retain *retention.Enforcer // applies Config.Retention; nil when not enabled
}

// New returns a writer; Run starts it.
func New(js jetstream.JetStream, store projector.Store, cfg Config) (*Writer, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := cfg.Retention.Check(); err != nil {
		return nil, err
	}
	w := &Writer{js: js, proj: projector.New(store), cfg: cfg, log: cfg.Logger}
	if cfg.Retention.Enabled() {
		pub, err := broker.NewPublisher(js, broker.PublisherConfig{Root: cfg.Root, Fleet: cfg.Fleet, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		w.retain, err = retention.NewEnforcer(retention.EnforcerConfig{
			Policy:   cfg.Retention,
			Pruner:   retention.Pruner{Reader: store, Publisher: pub},
			Interval: cfg.RetentionInterval, SweepEvery: cfg.RetentionSweep, Logger: cfg.Logger,
		})
		if err != nil {
			return nil, err
		}
	}
	return w, nil
}

// Config returns the writer's configuration with defaults applied.
func (w *Writer) Config() Config { return w.cfg }

// EnsureConsumer creates the streams and the fleet's durable consumer if
// they are missing and returns the consumer.
func (w *Writer) EnsureConsumer(ctx context.Context) (jetstream.Consumer, error) {
	st, err := broker.EnsureStreams(ctx, w.js, w.cfg.Stream)
	if err != nil {
		return nil, err
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       broker.DurableName(w.cfg.Fleet, w.cfg.Prefix),
		Description:   fmt.Sprintf("cairn writer: fleet %s into prefix %s", w.cfg.Fleet, w.cfg.Prefix),
		FilterSubject: events.FleetFilter(w.cfg.Root, w.cfg.Fleet),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       w.cfg.AckWait,
		MaxDeliver:    -1, // never drop an event because a store was down
		MaxAckPending: w.cfg.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer: %w", err)
	}
	return cons, nil
}

// Run consumes and projects until ctx is cancelled. It returns nil on
// cancellation. Nothing is acknowledged that is not committed: messages in
// hand when ctx ends are negatively acknowledged for redelivery.
func (w *Writer) Run(ctx context.Context) error {
	cons, err := w.EnsureConsumer(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	w.log.Info("writer started", "fleet", w.cfg.Fleet, "prefix", w.cfg.Prefix, "consumer", broker.DurableName(w.cfg.Fleet, w.cfg.Prefix))
	if w.retain != nil {
		rctx, stopRetain := context.WithCancel(ctx)
		var rwg sync.WaitGroup
		rwg.Go(func() { _ = w.retain.Run(rctx) })
		defer rwg.Wait()
		defer stopRetain()
	}
	in := make(chan jetstream.Msg, w.cfg.BatchSize)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case in <- m:
		case <-ctx.Done():
			_ = m.Nak()
		}
	}, jetstream.PullMaxMessages(w.cfg.BatchSize), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		w.log.Debug("consume", "err", err)
	}))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	var stopOnce sync.Once
	stop := func(drain bool) {
		stopOnce.Do(func() {
			if drain {
				cc.Drain()
			} else {
				cc.Stop()
			}
			<-cc.Closed()
		})
	}
	defer stop(false)

	// Two stages: a decoder collects and decodes the next batch while the
	// current one is applied. It stops when ctx ends (leaving the messages
	// it holds in rest) or when dctx is cancelled after a failure.
	dctx, stopDecoder := context.WithCancel(ctx)
	defer stopDecoder()
	batches := make(chan *decoded)
	var rest []jetstream.Msg // read once batches is closed
	go func() {
		defer close(batches)
		for {
			msgs, ok := w.collect(dctx, in)
			if !ok {
				rest = msgs
				return
			}
			select {
			case batches <- w.decode(msgs):
			case <-dctx.Done():
				rest = msgs
				return
			}
		}
	}()
	// held are the messages of batches that ctx cut short. They are
	// negatively acknowledged only once the subscription is gone: a nak
	// while it is live redelivers the message to this stopping writer, and
	// one in flight when it unsubscribes waits out AckWait on the server.
	var held []jetstream.Msg
	for b := range batches {
		if ctx.Err() != nil {
			held = append(held, b.msgs...)
			continue // the decoder sees ctx done and stops
		}
		if err := w.process(ctx, b); err != nil {
			if ctx.Err() != nil {
				held = append(held, b.msgs...)
				continue
			}
			stopDecoder()
			for range batches { // wait for the decoder to stop
			}
			return err
		}
	}
	// Drain, not stop: messages the client holds go through the handler,
	// which naks them now that ctx is done.
	stop(true)
	w.nakAll(held)
	w.nakAll(rest)
	for {
		select {
		case m := <-in:
			_ = m.Nak()
		default:
			// Naks are sent asynchronously: make sure they reach the server
			// before the caller closes the connection, or the next writer
			// waits AckWait for those events.
			if err := w.js.Conn().FlushTimeout(5 * time.Second); err != nil {
				w.log.Warn("flush negative acknowledgements", "err", err)
			}
			w.log.Info("writer stopped")
			return nil
		}
	}
}

// collect waits for one message, then gathers what else arrives within the
// linger time, up to the batch size. ok is false when ctx ended.
func (w *Writer) collect(ctx context.Context, in <-chan jetstream.Msg) (batch []jetstream.Msg, ok bool) {
	select {
	case m := <-in:
		batch = append(batch, m)
	case <-ctx.Done():
		return nil, false
	}
	timer := time.NewTimer(w.cfg.Linger)
	defer timer.Stop()
	for len(batch) < w.cfg.BatchSize {
		select {
		case m := <-in:
			batch = append(batch, m)
		case <-timer.C:
			return batch, true
		case <-ctx.Done():
			return batch, false
		}
	}
	return batch, true
}

func (w *Writer) nakAll(msgs []jetstream.Msg) {
	for _, m := range msgs {
		_ = m.Nak()
	}
}

// decoded is a batch of messages, decoded.
type decoded struct {
	msgs    []jetstream.Msg // all of them, in order
	recs    []projector.Record
	valid   []jetstream.Msg // the messages of recs, same index
	invalid []invalidMsg
	newest  *jetstream.MsgMetadata // of the last message, for metrics
}

// invalidMsg is a message that is not a valid event, with the reason.
type invalidMsg struct {
	msg jetstream.Msg
	seq uint64 // its stream sequence; 0 when it has no JetStream metadata
	err error
}

// decode decodes msgs into records; it does no I/O.
func (w *Writer) decode(msgs []jetstream.Msg) *decoded {
	b := &decoded{msgs: msgs, recs: make([]projector.Record, 0, len(msgs)), valid: make([]jetstream.Msg, 0, len(msgs))}
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			// Not a JetStream message: cannot happen on a pull consumer.
			b.invalid = append(b.invalid, invalidMsg{msg: m, err: err})
			continue
		}
		seq := md.Sequence.Stream
		b.newest = md
		e, err := events.Decode(m.Data(), w.cfg.MaxEventBytes)
		if err == nil {
			err = events.CheckSubject(w.cfg.Root, m.Subject(), e)
		}
		if err != nil {
			b.invalid = append(b.invalid, invalidMsg{m, seq, err})
			continue
		}
		b.recs = append(b.recs, projector.Record{Seq: seq, Event: e})
		b.valid = append(b.valid, m)
	}
	return b
}

// process dead-letters a batch's invalid messages, applies its events in
// one transaction (retrying while the store is unavailable), then
// acknowledges them and dead-letters those the store refused.
func (w *Writer) process(ctx context.Context, b *decoded) error {
	for _, inv := range b.invalid {
		if inv.seq == 0 {
			w.log.Error("message without metadata", "subject", inv.msg.Subject(), "err", inv.err)
			_ = inv.msg.Term()
			continue
		}
		if err := w.deadLetter(ctx, inv.msg, inv.seq, inv.err); err != nil {
			return err
		}
		w.cfg.Metrics.outcome(OutcomeInvalid)
	}
	recs, newest := b.recs, b.newest
	if len(recs) == 0 {
		return nil
	}
	res, err := w.applyWithRetry(ctx, recs)
	if err != nil {
		return err
	}
	w.Stats.Batches.Add(1)
	w.cfg.Metrics.batchDone(len(recs), newest.Timestamp, newest.NumPending)
	for i, m := range b.valid {
		seq := recs[i].Seq
		switch res.Outcomes[i] {
		case projector.Failed:
			if err := w.deadLetter(ctx, m, seq, fmt.Errorf("store refused the event: %w", res.Errors[i])); err != nil {
				return err
			}
			w.cfg.Metrics.outcome(OutcomeRefused)
			continue
		case projector.Applied:
			w.Stats.Applied.Add(1)
		case projector.Duplicate:
			w.Stats.Duplicate.Add(1)
		case projector.Conflict:
			w.Stats.Conflict.Add(1)
			w.log.Warn("checkpoint conflict recorded", "thread_id", recs[i].Event.ThreadID, "stream_seq", seq, "event_id", recs[i].Event.EventID)
		case projector.Superseded:
			w.Stats.Superseded.Add(1)
		case projector.Ignored:
			w.Stats.Ignored.Add(1)
		}
		w.cfg.Metrics.outcome(res.Outcomes[i].String())
		// Committed: acknowledge. A lost ack means a redelivery, which the
		// projection recognises by its sequence and ignores.
		_ = m.Ack()
	}
	if w.retain != nil {
		var grown []string
		for i, r := range recs {
			if res.Outcomes[i] == projector.Applied && r.Event.Kind == events.KindCheckpointPut {
				grown = append(grown, r.Event.ThreadID)
			}
		}
		w.retain.Touch(grown)
	}
	return nil
}

// applyWithRetry applies recs, retrying with exponential backoff while the
// store is unavailable. It returns only on success or when ctx ends.
func (w *Writer) applyWithRetry(ctx context.Context, recs []projector.Record) (projector.Result, error) {
	var lastLog time.Time
	start := time.Now()
	res, failures, err := w.proj.ApplyRetrying(ctx, recs, projector.RetryPolicy{
		MaxBackoff: w.cfg.MaxBackoff,
		OnFailure: func(failures int, err error) {
			w.Stats.Retries.Add(1)
			w.cfg.Metrics.retried()
			// One line at the first failure, then at most one every 30 seconds.
			if failures == 1 || time.Since(lastLog) > 30*time.Second {
				w.log.Warn("store unavailable, retrying batch", "events", len(recs), "failed_attempts", failures, "err", err)
				lastLog = time.Now()
			}
			start = time.Now()
		},
	})
	if err != nil {
		return res, err
	}
	w.cfg.Metrics.applyTook(time.Since(start))
	if failures > 0 {
		w.log.Info("store available again", "failed_attempts", failures)
	}
	return res, nil
}

// Dead-letter headers.
const (
	HeaderReason    = "Cairn-Reason"
	HeaderSubject   = "Cairn-Subject"
	HeaderStreamSeq = "Cairn-Stream-Seq"
	HeaderFailedAt  = "Cairn-Failed-At"
	// HeaderPayloadOmitted is set on a dead letter that carries no payload
	// because the event, with the dead-letter headers added, would exceed
	// the broker's max_payload; the event stays in the event stream at
	// HeaderStreamSeq.
	HeaderPayloadOmitted = "Cairn-Payload-Omitted"
	// HeaderOriginalPrefix prefixes the original Nats-* headers, which would
	// otherwise act on the dead-letter stream (Nats-Msg-Id would dedupe).
	HeaderOriginalPrefix = "Cairn-Original-"
)

// deadLetter copies m (payload and headers) to the dead-letter stream with
// the reason, then terminates it. The copy's message id is derived from the
// stream sequence, so a redelivery of the same message is not copied twice.
func (w *Writer) deadLetter(ctx context.Context, m jetstream.Msg, seq uint64, cause error) error {
	reason := headerSafe(cause.Error())
	dl := nats.NewMsg(broker.DLQSubject(w.cfg.Root, m.Subject()))
	dl.Data = m.Data()
	for k, vs := range m.Headers() {
		name := k
		if strings.HasPrefix(strings.ToLower(k), "nats-") {
			name = HeaderOriginalPrefix + k
		}
		for _, v := range vs {
			dl.Header.Add(name, v)
		}
	}
	dl.Header.Set(HeaderReason, reason)
	dl.Header.Set(HeaderSubject, m.Subject())
	dl.Header.Set(HeaderStreamSeq, fmt.Sprint(seq))
	dl.Header.Set(HeaderFailedAt, time.Now().UTC().Format(time.RFC3339Nano))
	id := fmt.Sprintf("dlq-%s-%d", broker.StreamName(w.cfg.Root), seq)
	_, err := broker.PublishMsg(ctx, w.js, dl, id, broker.DefaultAttemptTimeout, w.log)
	if errors.Is(err, events.ErrInvalid) {
		// Over the broker's max_payload with our headers: an event that
		// only just fit. Dead-letter it without its payload rather than
		// stop the writer on it for good.
		dl.Data = nil
		dl.Header.Set(HeaderPayloadOmitted, fmt.Sprintf("%d bytes, over the broker's max_payload with these headers", len(m.Data())))
		_, err = broker.PublishMsg(ctx, w.js, dl, id, broker.DefaultAttemptTimeout, w.log)
	}
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("dead-letter stream seq %d: %w", seq, err)
	}
	w.Stats.DeadLettered.Add(1)
	w.log.Warn("event dead-lettered", "stream_seq", seq, "subject", m.Subject(), "reason", reason)
	if err := m.TermWithReason(reason); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		w.log.Debug("term", "stream_seq", seq, "err", err)
	}
	return nil
}

// headerSafe makes s usable as a header value: no control characters, at
// most 1,000 bytes.
func headerSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) > 1000 {
		s = strings.ToValidUTF8(s[:1000], "")
	}
	return s
}
