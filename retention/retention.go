// Package retention bounds what a thread keeps. A Policy (keep the latest
// N checkpoints of a thread, or those younger than a maximum age, or both:
// a checkpoint is kept when either rule keeps it) resolves, per thread, to
// a stream-sequence watermark; pruning publishes a thread.prune event with
// that watermark, and the writers remove everything the thread's events
// below it produced. Nothing is deleted behind the stream's back: a replay
// of the stream gives the same tables, prunes included. An Enforcer applies
// a policy continuously for a writer; Prune and Sweep serve `agent prune`.
package retention

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// Policy is a retention policy. The zero Policy keeps everything.
type Policy struct {
	// KeepLast keeps the thread's newest KeepLast checkpoints (by stream
	// sequence, across namespaces); 0 disables the rule.
	KeepLast int
	// MaxAge keeps checkpoints whose created_at is within MaxAge of now;
	// 0 disables the rule. The newest checkpoint is always kept.
	MaxAge time.Duration
}

// Enabled reports whether the policy prunes anything at all.
func (p Policy) Enabled() bool { return p.KeepLast > 0 || p.MaxAge > 0 }

// String describes the policy.
func (p Policy) String() string {
	switch {
	case p.KeepLast > 0 && p.MaxAge > 0:
		return fmt.Sprintf("keep the last %d checkpoints and those younger than %s", p.KeepLast, p.MaxAge)
	case p.KeepLast > 0:
		return fmt.Sprintf("keep the last %d checkpoints", p.KeepLast)
	case p.MaxAge > 0:
		return fmt.Sprintf("keep checkpoints younger than %s (and the newest)", p.MaxAge)
	}
	return "keep everything"
}

// Check validates the policy.
func (p Policy) Check() error {
	if p.KeepLast < 0 || p.MaxAge < 0 {
		return events.Errorf(events.Invalid, "retention: keep-last and max-age must not be negative")
	}
	return nil
}

// Lister lists checkpoints newest first; projector.Reader implements it,
// and so does QueryLister over the query API.
type Lister interface {
	List(ctx context.Context, q projector.ListQuery) ([]projector.Version, error)
}

const pageSize = 1000

// Resolve returns the watermark the policy gives a thread: below is the
// sequence of the oldest checkpoint it keeps, and ok is true when at least
// one stored checkpoint lies below it (so that a prune would remove
// something). A prune removes everything the thread's events below the
// watermark produced, pending writes included.
func Resolve(ctx context.Context, r Lister, threadID string, p Policy, now time.Time) (below uint64, ok bool, err error) {
	if err := p.Check(); err != nil || !p.Enabled() {
		return 0, false, err
	}
	limit := pageSize
	if p.MaxAge == 0 {
		limit = p.KeepLast + 1 // enough to know whether anything is older
	}
	cutoff := now.Add(-p.MaxAge)
	var (
		n                     int
		keepLastFrom, ageFrom uint64 // the oldest checkpoint each rule keeps
		oldest                uint64
		before                uint64
	)
	for {
		vs, err := r.List(ctx, projector.ListQuery{ThreadID: threadID, AllNS: true, BeforeSeq: before, Limit: limit})
		if err != nil {
			return 0, false, fmt.Errorf("list checkpoints of %q: %w", threadID, err)
		}
		for _, v := range vs {
			n++
			if n == 1 {
				ageFrom = v.Seq // the newest is always kept
			}
			if n == p.KeepLast {
				keepLastFrom = v.Seq
			}
			if p.MaxAge > 0 && !v.CreatedAt.Before(cutoff) {
				ageFrom = v.Seq
			}
			oldest = v.Seq
		}
		if len(vs) < limit || p.MaxAge == 0 {
			break
		}
		before = vs[len(vs)-1].Seq
	}
	if n == 0 {
		return 0, false, nil
	}
	switch {
	case p.KeepLast > 0 && p.MaxAge > 0:
		if keepLastFrom == 0 { // fewer than KeepLast: the rule keeps them all
			return 0, false, nil
		}
		below = min(keepLastFrom, ageFrom)
	case p.KeepLast > 0:
		if keepLastFrom == 0 {
			return 0, false, nil
		}
		below = keepLastFrom
	default:
		below = ageFrom
	}
	return below, oldest < below, nil
}

// PruneEvent returns the thread.prune event that prunes a thread below a
// sequence. Its event id is derived from the fleet, thread and watermark,
// so that two enforcers pruning the same thread to the same watermark
// publish one event (the broker drops the repeat within its window).
func PruneEvent(fleet, threadID string, below uint64, now time.Time) *events.Event {
	h := sha256.New()
	h.Write([]byte(fleet))
	h.Write([]byte{0})
	h.Write([]byte(threadID))
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatUint(below, 10)))
	return &events.Event{
		Kind:      events.KindThreadPrune,
		EventID:   "prune-" + hex.EncodeToString(h.Sum(nil))[:32],
		Fleet:     fleet,
		ThreadID:  threadID,
		CreatedAt: now.UTC(),
		Prune:     &events.Prune{BelowSeq: below},
	}
}

// ParentPruned reports whether a read of checkpoint v should say that its
// parent was pruned; see projector.ParentPruned, which the query service
// uses.
func ParentPruned(v projector.Version, parentStored bool, t projector.Thread) bool {
	return projector.ParentPruned(v, parentStored, t)
}
