package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/events"
)

// DurableName returns the name of the durable consumer through which the
// writers of one fleet project into one table prefix. Writers sharing it
// share the work; a different prefix (a replay) gets its own.
func DurableName(fleet, prefix string) string { return "cairn-writer-" + fleet + "-" + prefix }

// Position answers read-your-writes questions about a fleet's writer
// consumer: has every event at or below a sequence been committed (or
// dead-lettered)? With several writers the highest applied sequence says
// nothing about lower ones; the consumer's ack floor does: every message of
// the consumer at or below it is acknowledged (writers acknowledge only
// after commit) or terminated (dead-lettered).
type Position struct {
	stream   jetstream.Stream
	consumer string
	root     string
	fleet    string

	// mu serialises scans for the fleet's first unacknowledged message and
	// guards next: the sequence the last scan found (0 for none). While the
	// ack floor stays below it, no event of the fleet lies between the
	// floor and next and next itself is unacknowledged, so the answer needs
	// no new scan. A scan from an old floor can walk many messages of other
	// fleets; this keeps it to one per advance of the floor.
	mu   sync.Mutex
	next uint64
}

// NewPosition returns a Position for the durable consumer of (fleet,
// prefix) on the root's event stream.
func NewPosition(ctx context.Context, js jetstream.JetStream, root, fleet, prefix string) (*Position, error) {
	st, err := js.Stream(ctx, StreamName(root))
	if err != nil {
		return nil, classify(fmt.Errorf("look up stream %s: %w", StreamName(root), err))
	}
	return &Position{stream: st, consumer: DurableName(fleet, prefix), root: root, fleet: fleet}, nil
}

// Covered reports whether every event of the fleet with a stream sequence
// at or below seq is committed or dead-lettered, and returns the ack floor.
func (p *Position) Covered(ctx context.Context, seq uint64) (bool, uint64, error) {
	cons, err := p.stream.Consumer(ctx, p.consumer)
	if err != nil {
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return false, 0, events.Errorf(events.Unavailable, "no writer has started yet (consumer %s not found)", p.consumer)
		}
		return false, 0, classify(fmt.Errorf("consumer %s: %w", p.consumer, err))
	}
	info := cons.CachedInfo()
	if info == nil {
		if info, err = cons.Info(ctx); err != nil {
			return false, 0, classify(fmt.Errorf("consumer %s info: %w", p.consumer, err))
		}
	}
	floor := info.AckFloor.Stream
	if floor >= seq {
		return true, floor, nil
	}
	// Messages of other fleets do not count: find the fleet's first message
	// above the floor. It is unacknowledged (or the floor would be past it);
	// if it lies above seq, everything at or below seq is done.
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next > floor {
		return p.next > seq, floor, nil
	}
	next, err := p.stream.GetMsg(ctx, floor+1, jetstream.WithGetMsgSubject(events.FleetFilter(p.root, p.fleet)))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		last, lerr := p.lastSeq(ctx)
		if lerr != nil {
			return false, floor, lerr
		}
		return seq <= last, floor, nil
	case err != nil:
		return false, floor, classify(fmt.Errorf("next message after %d: %w", floor, err))
	}
	p.next = next.Sequence
	return next.Sequence > seq, floor, nil
}

func (p *Position) lastSeq(ctx context.Context) (uint64, error) {
	info, err := p.stream.Info(ctx)
	if err != nil {
		return 0, classify(fmt.Errorf("stream info: %w", err))
	}
	return info.State.LastSeq, nil
}

// Head returns the sequence of the last event on a thread's subject, 0 if
// the thread has none. A restarted agent that holds no sequence reads its
// own writes by waiting for its thread's head.
func (p *Position) Head(ctx context.Context, threadID string) (uint64, error) {
	msg, err := p.stream.GetLastMsgForSubject(ctx, events.Subject(p.root, p.fleet, threadID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, classify(fmt.Errorf("head of thread %q: %w", threadID, err))
	}
	return msg.Sequence, nil
}
