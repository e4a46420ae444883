// Package replay rebuilds a fleet's projection from the event stream into
// a fresh table prefix, and verifies projections against each other or
// against the stream. A replay reads with an ordered (ephemeral,
// unacknowledged) consumer, so it never touches the live writers' durable
// consumer; it applies batches through the same projector the writers use,
// so the rebuilt tables are identical to the live ones. Progress is kept in
// a JetStream key-value bucket after every committed batch: an interrupted
// replay resumes where it stopped.
package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// Defaults for Config.
const (
	DefaultBatchSize = 1000
	// DefaultProgressEvery is how often Progress is called.
	DefaultProgressEvery = time.Second
)

// Config configures Run.
type Config struct {
	// Root and Fleet select the events; defaults events.DefaultRoot and
	// events.DefaultFleet.
	Root, Fleet string
	// Prefix is the target table prefix (the store's); it names the
	// progress record. Required.
	Prefix string
	// FromSeq or FromTime (at most one) start the replay at a stream
	// sequence or at the first event stored at or after a time; neither
	// means the start of the stream. Ignored when resuming.
	FromSeq  uint64
	FromTime time.Time
	// Restart ignores a progress record and starts over from FromSeq,
	// FromTime or the start.
	Restart bool
	// BatchSize is the most events per transaction; default DefaultBatchSize.
	BatchSize int
	// MaxEventBytes as for writers; default events.DefaultMaxEventBytes.
	MaxEventBytes int
	// Progress, if set, is called at most every ProgressEvery (default
	// DefaultProgressEvery) and once at the end.
	Progress      func(Progress)
	ProgressEvery time.Duration
	Logger        *slog.Logger
}

// Progress is a snapshot of a running replay.
type Progress struct {
	// StartSeq and EndSeq bound the replay; AppliedSeq is the last stream
	// sequence committed.
	StartSeq, EndSeq, AppliedSeq uint64
	// Events counts the fleet's events read so far in this run.
	Events int64
}

// Result is what a replay did.
type Result struct {
	Progress
	// Resumed: the replay continued an earlier, interrupted one.
	Resumed bool
	// FirstSeq is the stream's first sequence when the replay started;
	// above 1, earlier events were removed by the stream's limits (MaxAge,
	// MaxBytes) and are not in the rebuilt tables.
	FirstSeq uint64
	// Outcomes of the events, as the writer counts them.
	Applied, Duplicate, Conflict, Superseded, Ignored int64
	// Invalid events do not decode (a writer dead-lettered them); Failed
	// ones the store refused. Both are skipped; Reasons has one line each,
	// up to 100.
	Invalid, Failed int64
	Reasons         []string
	Elapsed         time.Duration
}

// EventsPerSecond is the replay rate of this run.
func (r Result) EventsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Events) / r.Elapsed.Seconds()
}

// record is the progress record stored in the bucket, one per fleet and
// target prefix.
type record struct {
	Fleet      string    `json:"fleet"`
	Prefix     string    `json:"prefix"`
	StartSeq   uint64    `json:"start_seq"`
	AppliedSeq uint64    `json:"applied_seq"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// BucketName returns the name of the key-value bucket holding replay
// progress records for a subject root.
func BucketName(root string) string { return broker.StreamName(root) + "_REPLAY" }

func recordKey(fleet, prefix string) string { return fleet + "." + prefix }

// Run replays the fleet's events from the start (or cfg.FromSeq /
// cfg.FromTime, or where an interrupted replay into the same prefix
// stopped) up to the stream's last sequence when it started, into store,
// whose prefix must be cfg.Prefix. The prefix must be fresh (no
// checkpoints) unless a progress record for it exists, and must not be the
// prefix of a live writer. Running it again on a finished replay applies
// what arrived since.
func Run(ctx context.Context, js jetstream.JetStream, store projector.Store, cfg Config) (Result, error) {
	var res Result
	if err := cfg.setDefaults(); err != nil {
		return res, err
	}
	start := time.Now()
	st, err := js.Stream(ctx, broker.StreamName(cfg.Root))
	if err != nil {
		return res, fmt.Errorf("event stream %s: %w", broker.StreamName(cfg.Root), err)
	}
	if _, err := st.Consumer(ctx, broker.DurableName(cfg.Fleet, cfg.Prefix)); err == nil {
		return res, events.Errorf(events.Conflict, "prefix %q is the prefix of a live writer of fleet %s (consumer %s): replay into a fresh prefix",
			cfg.Prefix, cfg.Fleet, broker.DurableName(cfg.Fleet, cfg.Prefix))
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return res, fmt.Errorf("look up consumer: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      BucketName(cfg.Root),
		Description: "cairn replay progress, by fleet and target prefix",
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return res, fmt.Errorf("replay progress bucket: %w", err)
	}
	key := recordKey(cfg.Fleet, cfg.Prefix)
	rec, found, err := loadRecord(ctx, kv, key)
	if err != nil {
		return res, err
	}
	newest, err := store.List(ctx, projector.ListQuery{AllNS: true, Limit: 1})
	if err != nil {
		return res, fmt.Errorf("look into prefix %q: %w", cfg.Prefix, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return res, fmt.Errorf("stream info: %w", err)
	}
	res.FirstSeq, res.EndSeq = info.State.FirstSeq, info.State.LastSeq

	switch {
	case found && !cfg.Restart:
		res.Resumed = true
		res.StartSeq = rec.AppliedSeq + 1
	case !found && len(newest) > 0 && !cfg.Restart:
		return res, events.Errorf(events.Conflict, "prefix %q already has checkpoints and no replay record: replay into a fresh prefix", cfg.Prefix)
	case cfg.FromSeq > 0:
		res.StartSeq = cfg.FromSeq
	case !cfg.FromTime.IsZero():
		seq, ok, err := firstAtOrAfter(ctx, st, cfg.FromTime, events.FleetFilter(cfg.Root, cfg.Fleet))
		if err != nil {
			return res, err
		}
		if !ok {
			res.StartSeq = res.EndSeq + 1
		} else {
			res.StartSeq = seq
		}
	default:
		res.StartSeq = 1
	}
	res.StartSeq = max(res.StartSeq, 1)
	if !found || cfg.Restart {
		rec = record{Fleet: cfg.Fleet, Prefix: cfg.Prefix, StartSeq: res.StartSeq, AppliedSeq: res.StartSeq - 1}
	}
	res.AppliedSeq = rec.AppliedSeq
	if err := saveRecord(ctx, kv, key, rec); err != nil {
		return res, err
	}
	if res.StartSeq > res.EndSeq {
		res.Elapsed = time.Since(start)
		cfg.report(res.Progress)
		return res, nil
	}
	// Is there any event of the fleet in range? An ordered consumer on an
	// empty range would wait for new events.
	first, err := st.GetMsg(ctx, res.StartSeq, jetstream.WithGetMsgSubject(events.FleetFilter(cfg.Root, cfg.Fleet)))
	if errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && first.Sequence > res.EndSeq) {
		rec.AppliedSeq = res.EndSeq
		res.AppliedSeq = res.EndSeq
		res.Elapsed = time.Since(start)
		cfg.report(res.Progress)
		return res, saveRecord(ctx, kv, key, rec)
	}
	if err != nil {
		return res, fmt.Errorf("first event at or after %d: %w", res.StartSeq, err)
	}
	cfg.Logger.Info("replay started", "fleet", cfg.Fleet, "prefix", cfg.Prefix, "from_seq", res.StartSeq, "to_seq", res.EndSeq, "resumed", res.Resumed)

	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.FleetFilter(cfg.Root, cfg.Fleet)},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    res.StartSeq,
	})
	if err != nil {
		return res, fmt.Errorf("ordered consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * cfg.BatchSize))
	if err != nil {
		return res, fmt.Errorf("read stream: %w", err)
	}
	defer it.Stop()

	// Two stages: a reader fetches and decodes the next batch while the
	// current one is applied.
	rctx, cancelRead := context.WithCancel(ctx)
	defer cancelRead()
	chunks := make(chan chunk, 2)
	readErr := make(chan error, 1)
	go func() {
		defer close(chunks)
		readErr <- readChunks(rctx, it, cfg, res.EndSeq, chunks)
	}()
	proj := projector.New(store)
	lastReport := time.Now()
	var applyErr error
	for c := range chunks {
		if applyErr != nil {
			continue // drain until the reader stops
		}
		res.Events += c.events
		res.Invalid += c.invalid
		for _, r := range c.reasons {
			res.reason(r)
		}
		if len(c.recs) > 0 {
			out, _, err := proj.ApplyRetrying(ctx, c.recs, projector.RetryPolicy{
				OnFailure: func(failures int, err error) {
					if failures == 1 || failures%20 == 0 {
						cfg.Logger.Warn("store unavailable, retrying batch", "events", len(c.recs), "failed_attempts", failures, "err", err)
					}
				},
			})
			if err != nil {
				applyErr = err
				cancelRead()
				continue
			}
			res.count(c.recs, out)
		}
		rec.AppliedSeq, res.AppliedSeq = c.last, c.last
		if err := saveRecord(ctx, kv, key, rec); err != nil {
			applyErr = err
			cancelRead()
			continue
		}
		if time.Since(lastReport) >= cfg.ProgressEvery {
			lastReport = time.Now()
			cfg.report(res.Progress)
		}
	}
	if err := <-readErr; applyErr == nil && err != nil {
		applyErr = err
	}
	if applyErr != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		return res, applyErr
	}
	// Everything up to the end is done, including other fleets' messages
	// after the fleet's last one.
	rec.AppliedSeq, res.AppliedSeq = res.EndSeq, res.EndSeq
	if err := saveRecord(ctx, kv, key, rec); err != nil {
		return res, err
	}
	res.Elapsed = time.Since(start)
	cfg.report(res.Progress)
	cfg.Logger.Info("replay finished", "prefix", cfg.Prefix, "events", res.Events, "elapsed", res.Elapsed)
	return res, nil
}

func (c *Config) setDefaults() error {
	if c.Root == "" {
		c.Root = events.DefaultRoot
	}
	if c.Fleet == "" {
		c.Fleet = events.DefaultFleet
	}
	if err := events.CheckNames(c.Root, c.Fleet); err != nil {
		return events.Errorf(events.Invalid, "%v", err)
	}
	if err := projector.CheckPrefix(c.Prefix); err != nil {
		return err
	}
	if c.FromSeq > 0 && !c.FromTime.IsZero() {
		return events.Errorf(events.Invalid, "replay: give a start sequence or a start time, not both")
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.MaxEventBytes <= 0 {
		c.MaxEventBytes = events.DefaultMaxEventBytes
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = DefaultProgressEvery
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

func (c *Config) report(p Progress) {
	if c.Progress != nil {
		c.Progress(p)
	}
}

func (r *Result) count(recs []projector.Record, out projector.Result) {
	for i, o := range out.Outcomes {
		switch o {
		case projector.Applied:
			r.Applied++
		case projector.Duplicate:
			r.Duplicate++
		case projector.Conflict:
			r.Conflict++
		case projector.Superseded:
			r.Superseded++
		case projector.Ignored:
			r.Ignored++
		case projector.Failed:
			r.Failed++
			r.reason(fmt.Sprintf("stream seq %d: store refused the event: %v", recs[i].Seq, out.Errors[i]))
		}
	}
}

func (r *Result) reason(s string) {
	if len(r.Reasons) < 100 {
		r.Reasons = append(r.Reasons, s)
	}
}

// firstAtOrAfter finds the sequence of the fleet's first event stored at
// or after t.
func firstAtOrAfter(ctx context.Context, st jetstream.Stream, t time.Time, filter string) (uint64, bool, error) {
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &t,
		HeadersOnly:    true,
	})
	if err != nil {
		return 0, false, fmt.Errorf("find the first event at %s: %w", t.Format(time.RFC3339), err)
	}
	batch, err := cons.FetchNoWait(1)
	if err != nil {
		return 0, false, fmt.Errorf("find the first event at %s: %w", t.Format(time.RFC3339), err)
	}
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			return 0, false, fmt.Errorf("message metadata: %w", err)
		}
		return md.Sequence.Stream, true, nil
	}
	if err := batch.Error(); err != nil {
		return 0, false, fmt.Errorf("find the first event at %s: %w", t.Format(time.RFC3339), err)
	}
	return 0, false, nil
}

func loadRecord(ctx context.Context, kv jetstream.KeyValue, key string) (record, bool, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, fmt.Errorf("read replay progress %s: %w", key, err)
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return record{}, false, fmt.Errorf("replay progress %s: %w", key, err)
	}
	return r, true, nil
}

func saveRecord(ctx context.Context, kv jetstream.KeyValue, key string, r record) error {
	r.UpdatedAt = time.Now().UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("save replay progress %s: %w", key, err)
	}
	return nil
}

// Forget removes the progress record of a prefix (after its tables were
// dropped, for example).
func Forget(ctx context.Context, js jetstream.JetStream, root, fleet, prefix string) error {
	kv, err := js.KeyValue(ctx, BucketName(root))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("replay progress bucket: %w", err)
	}
	if err := kv.Delete(ctx, recordKey(fleet, prefix)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("forget replay progress: %w", err)
	}
	return nil
}

// chunk is one batch read from the stream: the records that decoded, and
// the last stream sequence it covers.
type chunk struct {
	recs            []projector.Record
	last            uint64
	events, invalid int64
	reasons         []string
}

// readChunks reads the fleet's messages up to end (or the last one the
// consumer has) into chunks of cfg.BatchSize events.
func readChunks(ctx context.Context, it jetstream.MessagesContext, cfg Config, end uint64, out chan<- chunk) error {
	var c chunk
	send := func() error {
		select {
		case out <- c:
			c = chunk{}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read stream: %w", err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("message metadata: %w", err)
		}
		seq := md.Sequence.Stream
		if seq > end {
			break
		}
		c.events++
		e, derr := events.Decode(m.Data(), cfg.MaxEventBytes)
		if derr == nil {
			derr = events.CheckSubject(cfg.Root, m.Subject(), e)
		}
		if derr != nil {
			c.invalid++
			c.reasons = append(c.reasons, fmt.Sprintf("stream seq %d: %v", seq, derr))
		} else {
			c.recs = append(c.recs, projector.Record{Seq: seq, Event: e})
		}
		c.last = seq
		done := seq >= end || md.NumPending == 0
		if len(c.recs) >= cfg.BatchSize || done {
			if err := send(); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
	}
	if c.last > 0 {
		return send()
	}
	return nil
}
