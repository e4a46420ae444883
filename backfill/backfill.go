// Package backfill moves historical audit trails into cairn: checkpoints
// and pending writes from JSON Lines files (ReadJSONL) or from another
// checkpointer's database (package langgraph), published with their
// original event ids and timestamps, each thread's events in historical
// order (a parent before its children, then by created_at), since a
// thread's newest checkpoint is the one published last.
//
// Running a backfill twice adds nothing. Before publishing a thread, Run
// reads what the thread already holds through the query API, waiting for
// every event already published to the thread (min_seq=head), and skips
// events whose content is already stored: a checkpoint with the same
// content hash, a task whose write set is equal. That holds however long
// ago the first run was; within the stream's duplicate window the broker
// would also drop a repeat by its event id, and such acks count as skipped
// too. Republishing instead and relying on the projection's idempotence
// would not do: a repeated checkpoint adds a duplicates row and a repeated
// write set replaces the stored one with a higher sequence.
//
// A thread that already holds a checkpoint created after events the
// backfill would publish is refused (publishing would make older history
// the newest) unless Config.Force is set; so is a checkpoint or a write
// set stored with different content.
package backfill

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/query"
)

// Reader reads what threads already hold; *query.Client implements it.
type Reader interface {
	List(ctx context.Context, p query.ListParams) ([]query.Checkpoint, uint64, error)
	Writes(ctx context.Context, thread, ns, id, task string, m query.MinSeq) ([]query.Write, error)
}

var _ Reader = (*query.Client)(nil)

// Config configures Run.
type Config struct {
	// Force publishes into threads that already hold newer checkpoints or
	// different content for the same keys.
	Force bool
	// DryRun checks and counts, publishing nothing.
	DryRun bool
	// Progress, if set, is called at most every ProgressEvery (default one
	// second) and at the end.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// Progress is a snapshot of a running backfill.
type Progress struct {
	// Total items; Done are published (acked), skipped or rejected.
	Total, Done int64
}

// Result is what a backfill did.
type Result struct {
	// Read is the number of items after ordering.
	Read int
	// Published events were stored by the stream. Skipped events were
	// already there: stored content (checked before publishing) or a
	// broker duplicate (same event id within the stream's window).
	Published, Skipped int64
	// Rejected holds every input not backfilled, with the reason: from
	// reading and ordering, from the thread checks, and publish failures.
	Rejected []Rejected
	// Threads is the number of threads in the input; RefusedThreads those
	// refused because they hold newer or different content.
	Threads        int
	RefusedThreads []string
	Elapsed        time.Duration
}

// Run publishes src's items through pub, thread by thread in historical
// order, skipping what the threads already hold (see the package doc).
// Inputs rejected while reading (src.Rejected) are carried into the
// result. It returns once every published event has its ack.
func Run(ctx context.Context, pub *broker.AsyncPublisher, r Reader, src Source, cfg Config) (Result, error) {
	start := time.Now()
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = time.Second
	}
	ordered, rejected := Order(src.Items)
	res := Result{Read: len(ordered), Rejected: slices.Concat(src.Rejected, rejected)}
	var (
		mu                 sync.Mutex // guards res.Rejected while publishing
		published, skipped atomic.Int64
		done               atomic.Int64
	)
	total := int64(len(ordered))
	lastReport := time.Now()
	report := func(force bool) {
		if cfg.Progress != nil && (force || time.Since(lastReport) >= cfg.ProgressEvery) {
			lastReport = time.Now()
			cfg.Progress(Progress{Total: total, Done: done.Load()})
		}
	}
	reject := func(where, reason string) {
		mu.Lock()
		res.Rejected = append(res.Rejected, Rejected{Where: where, Reason: reason})
		mu.Unlock()
		done.Add(1)
	}
	for i := 0; i < len(ordered); {
		j := i
		for j < len(ordered) && ordered[j].Event.ThreadID == ordered[i].Event.ThreadID {
			j++
		}
		items := ordered[i:j]
		i = j
		res.Threads++
		plan, err := planThread(ctx, r, items, cfg.Force)
		if err != nil {
			return res, err
		}
		if plan.refused != "" {
			res.RefusedThreads = append(res.RefusedThreads, items[0].Event.ThreadID)
			for _, it := range items {
				reject(it.Where, plan.refused)
			}
			continue
		}
		for k, it := range items {
			switch {
			case plan.skip[k]:
				skipped.Add(1)
				done.Add(1)
			case plan.reject[k] != "":
				reject(it.Where, plan.reject[k])
			case cfg.DryRun:
				published.Add(1)
				done.Add(1)
			default:
				it := it
				err := pub.Publish(ctx, it.Event, func(a broker.Ack) {
					switch {
					case a.Err != nil:
						reject(it.Where, a.Err.Error())
						return
					case a.Duplicate:
						skipped.Add(1)
					default:
						published.Add(1)
					}
					done.Add(1)
				})
				if err != nil {
					if ctx.Err() != nil {
						return res, err
					}
					reject(it.Where, err.Error())
				}
			}
			report(false)
		}
	}
	for {
		fctx, cancel := context.WithTimeout(ctx, cfg.ProgressEvery)
		err := pub.Flush(fctx)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		report(true)
	}
	mu.Lock()
	res.Published, res.Skipped = published.Load(), skipped.Load()
	mu.Unlock()
	res.Elapsed = time.Since(start)
	report(true)
	return res, nil
}

// plan is what to do with one thread's items.
type plan struct {
	skip    []bool
	reject  []string
	refused string // non-empty: refuse the whole thread, with this reason
}

// planThread reads the thread's stored checkpoints and the write sets the
// items touch, and decides per item.
func planThread(ctx context.Context, r Reader, items []Item, force bool) (plan, error) {
	thread := items[0].Event.ThreadID
	p := plan{skip: make([]bool, len(items)), reject: make([]string, len(items))}
	stored := make(map[projector.CheckpointKey]query.Checkpoint)
	var newest *query.Checkpoint
	m := query.MinSeq{Head: true}
	var before uint64
	for {
		page, next, err := r.List(ctx, query.ListParams{ThreadID: thread, AllNS: true, BeforeSeq: before, Limit: 1000, MinSeq: m})
		if err != nil {
			return p, fmt.Errorf("read thread %q: %w", thread, err)
		}
		for _, c := range page {
			stored[projector.CheckpointKey{ThreadID: thread, NS: c.NS, ID: c.ID}] = c
			if newest == nil {
				c := c
				newest = &c
			}
		}
		if next == 0 {
			break
		}
		before, m = next, query.MinSeq{}
	}
	writeSets := make(map[[2]string]map[string][]query.Write) // (ns, checkpoint) -> task -> writes
	var oldestNew time.Time
	for k, it := range items {
		e := it.Event
		switch e.Kind {
		case events.KindCheckpointPut:
			c := e.Checkpoint
			have, ok := stored[projector.CheckpointKey{ThreadID: thread, NS: c.NS, ID: c.ID}]
			switch {
			case ok && (have.EventID == e.EventID || projector.ContentHash(have.ParentID, bytes.TrimSpace(have.State), bytes.TrimSpace(have.Metadata)) == contentHash(c)):
				p.skip[k] = true
				continue
			case ok && !force:
				p.reject[k] = fmt.Sprintf("checkpoint %q (namespace %q) is already stored with different content (event %s)", c.ID, c.NS, have.EventID)
				continue
			}
		case events.KindWritesPut:
			w := e.Writes
			key := [2]string{w.NS, w.CheckpointID}
			tasks, ok := writeSets[key]
			if !ok {
				ws, err := r.Writes(ctx, thread, w.NS, w.CheckpointID, "", query.MinSeq{})
				if err != nil {
					return p, fmt.Errorf("read writes of %q/%q: %w", thread, w.CheckpointID, err)
				}
				tasks = make(map[string][]query.Write)
				for _, x := range ws {
					tasks[x.TaskID] = append(tasks[x.TaskID], x)
				}
				writeSets[key] = tasks
			}
			have, ok := tasks[w.TaskID]
			switch {
			case ok && sameWrites(have, w):
				p.skip[k] = true
				continue
			case ok && !force:
				p.reject[k] = fmt.Sprintf("task %q of checkpoint %q already has a different write set", w.TaskID, w.CheckpointID)
				continue
			}
		}
		if oldestNew.IsZero() || e.CreatedAt.Before(oldestNew) {
			oldestNew = e.CreatedAt
		}
	}
	if !force && newest != nil && !oldestNew.IsZero() && newest.CreatedAt.After(oldestNew) {
		p.refused = fmt.Sprintf("thread %q already has newer events (checkpoint %q created %s, after %s); use --force to backfill anyway",
			thread, newest.ID, newest.CreatedAt.UTC().Format(time.RFC3339), oldestNew.UTC().Format(time.RFC3339))
	}
	return p, nil
}

// sameWrites reports whether a stored write set equals the event's.
func sameWrites(have []query.Write, w *events.Writes) bool {
	if len(have) != len(w.Writes) {
		return false
	}
	want := slices.Clone(w.Writes)
	slices.SortFunc(want, func(a, b events.Write) int { return int(a.Idx - b.Idx) })
	for i, x := range have { // stored rows come ordered by idx
		y := want[i]
		if x.Idx != y.Idx || x.Channel != y.Channel || x.TaskPath != w.TaskPath || !bytes.Equal(bytes.TrimSpace(x.Value), bytes.TrimSpace(y.Value)) {
			return false
		}
	}
	return true
}
