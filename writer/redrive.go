package writer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
)

// RedriveConfig configures Redrive.
type RedriveConfig struct {
	Root, Fleet string // defaults events.DefaultRoot, events.DefaultFleet
	// MaxEventBytes is the limit the events are checked against; default
	// events.DefaultMaxEventBytes.
	MaxEventBytes int
	// DryRun reports what would be redriven without publishing or deleting.
	DryRun bool
	Logger *slog.Logger
}

// RedriveResult counts what Redrive did.
type RedriveResult struct {
	Redriven int // republished and removed from the dead-letter stream
	// StillInvalid are dead letters that this build still cannot decode;
	// they stay where they are. Reasons holds one line per such letter.
	StillInvalid int
	Reasons      []string
}

// Redrive puts a fleet's dead letters back on their original subjects once
// their cause is fixed (an upgrade that understands a new kind, a store
// that now accepts the event). Each dead letter that now decodes is
// republished as it was, with message id "redrive-<dead-letter seq>", and
// then deleted from the dead-letter stream; dead letters that still do not
// decode stay. Running it twice republishes nothing twice: a letter is
// deleted only after its publish was acknowledged, and a repeat of that
// publish within the stream's duplicate window is discarded by the broker.
// A redriven event gets a new stream sequence, so it counts as the newest
// event of its thread.
func Redrive(ctx context.Context, js jetstream.JetStream, cfg RedriveConfig) (RedriveResult, error) {
	var res RedriveResult
	if cfg.Root == "" {
		cfg.Root = events.DefaultRoot
	}
	if cfg.Fleet == "" {
		cfg.Fleet = events.DefaultFleet
	}
	if err := events.CheckNames(cfg.Root, cfg.Fleet); err != nil {
		return res, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	dlq, err := js.Stream(ctx, broker.DLQStreamName(cfg.Root))
	if err != nil {
		return res, fmt.Errorf("dead-letter stream %s: %w", broker.DLQStreamName(cfg.Root), err)
	}
	info, err := dlq.Info(ctx)
	if err != nil {
		return res, fmt.Errorf("dead-letter stream info: %w", err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return res, nil
	}
	filter := broker.DLQSubject(cfg.Root, events.FleetFilter(cfg.Root, cfg.Fleet))
	cons, err := dlq.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return res, fmt.Errorf("read dead letters: %w", err)
	}
	for {
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			return res, fmt.Errorf("read dead letters: %w", err)
		}
		n := 0
		done := false
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return res, fmt.Errorf("dead letter metadata: %w", err)
			}
			if md.Sequence.Stream > last {
				done = true
				continue
			}
			if err := redriveOne(ctx, js, dlq, cfg, m, md.Sequence.Stream, &res); err != nil {
				return res, err
			}
			if md.Sequence.Stream == last {
				done = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return res, fmt.Errorf("read dead letters: %w", err)
		}
		if done || n == 0 {
			return res, nil
		}
	}
}

func redriveOne(ctx context.Context, js jetstream.JetStream, dlq jetstream.Stream, cfg RedriveConfig, m jetstream.Msg, seq uint64, res *RedriveResult) error {
	subject := m.Headers().Get(HeaderSubject)
	e, err := events.Decode(m.Data(), cfg.MaxEventBytes)
	if err == nil && subject == "" {
		err = fmt.Errorf("dead letter has no %s header", HeaderSubject)
	}
	if err == nil {
		err = events.CheckSubject(cfg.Root, subject, e)
	}
	if err != nil {
		res.StillInvalid++
		res.Reasons = append(res.Reasons, fmt.Sprintf("dead letter %d: %v", seq, err))
		return nil
	}
	if cfg.DryRun {
		res.Redriven++
		return nil
	}
	msg := nats.NewMsg(subject)
	msg.Data = m.Data()
	for k, vs := range m.Headers() {
		if strings.HasPrefix(k, "Cairn-") {
			continue // our own bookkeeping, and the original Nats-* headers
		}
		for _, v := range vs {
			msg.Header.Add(k, v)
		}
	}
	id := fmt.Sprintf("redrive-%s-%d", broker.DLQStreamName(cfg.Root), seq)
	if _, err := broker.PublishMsg(ctx, js, msg, id, broker.DefaultAttemptTimeout, cfg.Logger); err != nil {
		return fmt.Errorf("redrive dead letter %d: %w", seq, err)
	}
	if err := dlq.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("remove redriven dead letter %d: %w", seq, err)
	}
	res.Redriven++
	cfg.Logger.Info("dead letter redriven", "dlq_seq", seq, "subject", subject, "event_id", e.EventID)
	return nil
}
