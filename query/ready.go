package query

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// ReadyTimeout bounds each check of /readyz.
const ReadyTimeout = 2 * time.Second

// Lag is how far projection is behind the fleet's events.
type Lag struct {
	// Known is false while no writer has created its consumer yet.
	Known bool
	// Events not yet committed or dead-lettered by the writers.
	Events uint64
	// Seconds since the oldest of those events was stored; 0 when none.
	Seconds float64
	// AckFloor is the consumer's ack floor (every event at or below it is
	// done); LastSeq the stream's last sequence.
	AckFloor, LastSeq uint64
}

// LagProber measures projection lag. A failure means NATS cannot be asked.
type LagProber interface {
	Lag(ctx context.Context) (Lag, error)
}

// ConsumerLag measures the lag of the writers' durable consumer of one
// fleet and table prefix on JetStream.
type ConsumerLag struct {
	stream   jetstream.Stream
	consumer string
	filter   string
}

var _ LagProber = (*ConsumerLag)(nil)

// NewConsumerLag returns a LagProber for the consumer of (fleet, prefix)
// on root's event stream.
func NewConsumerLag(ctx context.Context, js jetstream.JetStream, root, fleet, prefix string) (*ConsumerLag, error) {
	st, err := js.Stream(ctx, broker.StreamName(root))
	if err != nil {
		return nil, events.Errorf(events.Unavailable, "look up stream %s: %w", broker.StreamName(root), err)
	}
	return &ConsumerLag{stream: st, consumer: broker.DurableName(fleet, prefix), filter: events.FleetFilter(root, fleet)}, nil
}

// Lag implements LagProber.
func (c *ConsumerLag) Lag(ctx context.Context) (Lag, error) {
	info, err := c.stream.Info(ctx)
	if err != nil {
		return Lag{}, events.Errorf(events.Unavailable, "stream info: %w", err)
	}
	l := Lag{LastSeq: info.State.LastSeq}
	cons, err := c.stream.Consumer(ctx, c.consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return l, nil
	}
	if err != nil {
		return Lag{}, events.Errorf(events.Unavailable, "consumer %s: %w", c.consumer, err)
	}
	ci := cons.CachedInfo()
	l.Known, l.AckFloor = true, ci.AckFloor.Stream
	l.Events = ci.NumPending + uint64(ci.NumAckPending)
	if l.AckFloor >= l.LastSeq {
		return l, nil
	}
	// The fleet's first event above the floor is the oldest not done. The
	// server updates its pending counts a moment after a publish, so this
	// event also says there is at least one.
	msg, err := c.stream.GetMsg(ctx, l.AckFloor+1, jetstream.WithGetMsgSubject(c.filter))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return l, nil
	}
	if err != nil {
		return Lag{}, events.Errorf(events.Unavailable, "oldest pending event: %w", err)
	}
	l.Events = max(l.Events, 1)
	l.Seconds = max(time.Since(msg.Time).Seconds(), 0)
	return l, nil
}

// serveReady answers /readyz: 200 when the store answers and, if the
// service has NATS, NATS does too; 503 otherwise. The body reports each
// check and the projection lag. Failures are logged, not sent: /readyz
// needs no token.
func (s *Service) serveReady(w http.ResponseWriter, r *http.Request) {
	ready := true
	b := []byte(`{"store":`)
	ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
	defer cancel()
	if _, err := s.store.List(ctx, projector.ListQuery{AllNS: true, Limit: 1}); err != nil {
		s.cfg.Logger.Warn("readiness: store check failed", "err", err)
		ready = false
		b = append(b, `"unreachable"`...)
	} else {
		b = append(b, `"ok"`...)
	}
	b = append(b, `,"nats":`...)
	switch {
	case s.cfg.Lag == nil:
		b = append(b, `"not configured","lag":null`...)
	default:
		lctx, lcancel := context.WithTimeout(r.Context(), ReadyTimeout)
		l, err := s.cfg.Lag.Lag(lctx)
		lcancel()
		if err != nil {
			s.cfg.Logger.Warn("readiness: NATS check failed", "err", err)
			ready = false
			b = append(b, `"unreachable","lag":null`...)
			break
		}
		b = append(b, `"ok","lag":`...)
		b = appendLag(b, l)
	}
	status := http.StatusOK
	if ready {
		b = append(b, `,"status":"ready"}`...)
	} else {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
		b = append(b, `,"status":"not ready"}`...)
	}
	writeBody(w, status, b)
}

func appendLag(b []byte, l Lag) []byte {
	if !l.Known {
		b = append(b, `{"events":null,"seconds":null,"applied_seq":null,"last_seq":`...)
		b = strconv.AppendUint(b, l.LastSeq, 10)
		return append(b, `,"note":"no writer has started yet"}`...)
	}
	b = append(b, `{"events":`...)
	b = strconv.AppendUint(b, l.Events, 10)
	b = append(b, `,"seconds":`...)
	b = strconv.AppendFloat(b, l.Seconds, 'f', 3, 64)
	b = append(b, `,"applied_seq":`...)
	b = strconv.AppendUint(b, l.AckFloor, 10)
	b = append(b, `,"last_seq":`...)
	b = strconv.AppendUint(b, l.LastSeq, 10)
	return append(b, '}')
}
