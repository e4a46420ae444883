package retention

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/query"
)

// Pruner resolves policies and publishes thread.prune events.
type Pruner struct {
	// Reader lists stored checkpoints; Publisher publishes the prunes into
	// its fleet.
	Reader    Lister
	Publisher *broker.Publisher
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Outcome is what pruning one thread did.
type Outcome struct {
	ThreadID string
	// Below is the watermark; 0 when the policy keeps everything.
	Below uint64
	// Pruned: a prune event was published (or would be, in a dry run) at
	// stream sequence Seq (0 in a dry run).
	Pruned bool
	Seq    uint64
}

func (pr *Pruner) now() time.Time {
	if pr.Now != nil {
		return pr.Now()
	}
	return time.Now()
}

// Prune resolves p for a thread and, when that would remove anything,
// publishes the prune (unless dryRun).
func (pr *Pruner) Prune(ctx context.Context, threadID string, p Policy, dryRun bool) (Outcome, error) {
	out := Outcome{ThreadID: threadID}
	below, ok, err := Resolve(ctx, pr.Reader, threadID, p, pr.now())
	if err != nil || !ok {
		return out, err
	}
	out.Below = below
	return pr.PruneBelow(ctx, threadID, below, dryRun)
}

// PruneBelow publishes a prune of a thread below a stream sequence (unless
// dryRun).
func (pr *Pruner) PruneBelow(ctx context.Context, threadID string, below uint64, dryRun bool) (Outcome, error) {
	out := Outcome{ThreadID: threadID, Below: below, Pruned: true}
	if dryRun {
		return out, nil
	}
	seq, err := pr.Publisher.Publish(ctx, PruneEvent(pr.Publisher.Fleet(), threadID, below, pr.now()))
	if err != nil {
		return Outcome{ThreadID: threadID, Below: below}, fmt.Errorf("prune %q below %d: %w", threadID, below, err)
	}
	out.Seq = seq
	return out, nil
}

// Threads returns every thread that has a stored checkpoint, by paging
// through all checkpoints newest first. It costs a scan of the checkpoint
// table: use it for sweeps, not per request.
func Threads(ctx context.Context, r Lister) ([]string, error) {
	seen := make(map[string]bool)
	var before uint64
	for {
		vs, err := r.List(ctx, projector.ListQuery{AllNS: true, BeforeSeq: before, Limit: pageSize})
		if err != nil {
			return nil, fmt.Errorf("list threads: %w", err)
		}
		for _, v := range vs {
			seen[v.ThreadID] = true
		}
		if len(vs) < pageSize {
			return slices.Sorted(maps.Keys(seen)), nil
		}
		before = vs[len(vs)-1].Seq
	}
}

// Defaults for EnforcerConfig.
const (
	DefaultInterval   = 10 * time.Second
	DefaultSweepEvery = time.Hour
	// maxTouched bounds the set of threads waiting for evaluation; beyond
	// it, threads are left to the next sweep.
	maxTouched = 100_000
)

// EnforcerConfig configures NewEnforcer.
type EnforcerConfig struct {
	Policy Policy
	Pruner Pruner
	// Interval is how often threads that got new checkpoints are
	// evaluated; default DefaultInterval.
	Interval time.Duration
	// SweepEvery is how often every thread is evaluated (idle threads age
	// too); default DefaultSweepEvery, negative for never.
	SweepEvery time.Duration
	Logger     *slog.Logger
}

// Enforcer applies a policy continuously: threads reported through Touch
// are evaluated every Interval, all threads every SweepEvery. It is safe
// for concurrent use.
type Enforcer struct {
	cfg     EnforcerConfig
	mu      sync.Mutex
	touched map[string]bool
	// Pruned counts the prune events published.
	pruned int64
}

// NewEnforcer returns an enforcer; Run runs it.
func NewEnforcer(cfg EnforcerConfig) (*Enforcer, error) {
	if err := cfg.Policy.Check(); err != nil {
		return nil, err
	}
	if cfg.Pruner.Reader == nil || cfg.Pruner.Publisher == nil {
		return nil, fmt.Errorf("retention: an enforcer needs a reader and a publisher")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.SweepEvery == 0 {
		cfg.SweepEvery = DefaultSweepEvery
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Enforcer{cfg: cfg, touched: make(map[string]bool)}, nil
}

// Touch marks threads for evaluation at the next interval. It does not
// block.
func (e *Enforcer) Touch(threadIDs []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range threadIDs {
		if len(e.touched) >= maxTouched {
			return
		}
		e.touched[id] = true
	}
}

// Pruned returns how many prune events the enforcer has published.
func (e *Enforcer) Pruned() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pruned
}

// Run evaluates until ctx ends, then returns nil. Failures are logged and
// the threads concerned evaluated again later: retention must never stop
// the projection.
func (e *Enforcer) Run(ctx context.Context) error {
	tick := time.NewTicker(e.cfg.Interval)
	defer tick.Stop()
	var sweep <-chan time.Time
	if e.cfg.SweepEvery > 0 {
		st := time.NewTicker(e.cfg.SweepEvery)
		defer st.Stop()
		sweep = st.C
	}
	e.cfg.Logger.Info("retention enforcing", "policy", e.cfg.Policy.String())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			e.mu.Lock()
			ids := slices.Sorted(maps.Keys(e.touched))
			clear(e.touched)
			e.mu.Unlock()
			e.evaluate(ctx, ids)
		case <-sweep:
			ids, err := Threads(ctx, e.cfg.Pruner.Reader)
			if err != nil {
				if ctx.Err() == nil {
					e.cfg.Logger.Warn("retention sweep", "err", err)
				}
				continue
			}
			e.evaluate(ctx, ids)
		}
	}
}

func (e *Enforcer) evaluate(ctx context.Context, ids []string) {
	for _, id := range ids {
		out, err := e.cfg.Pruner.Prune(ctx, id, e.cfg.Policy, false)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			e.cfg.Logger.Warn("retention: prune failed, will retry", "thread_id", id, "err", err)
			e.Touch([]string{id})
			continue
		}
		if out.Pruned {
			e.mu.Lock()
			e.pruned++
			e.mu.Unlock()
			e.cfg.Logger.Info("thread pruned", "thread_id", id, "below_seq", out.Below, "stream_seq", out.Seq)
		}
	}
}

// QueryLister lists through the query API, waiting (read-your-writes) for
// the thread's head, or for Seq when listing across threads.
type QueryLister struct {
	Client *query.Client
	// Seq, when listing across threads, is a stream sequence the listing
	// must reflect; 0 for none.
	Seq uint64
}

var _ Lister = QueryLister{}

// List implements Lister.
func (q QueryLister) List(ctx context.Context, lq projector.ListQuery) ([]projector.Version, error) {
	m := query.MinSeq{Seq: q.Seq}
	if lq.ThreadID != "" {
		m = query.MinSeq{Head: true}
	}
	cps, _, err := q.Client.List(ctx, query.ListParams{
		ThreadID: lq.ThreadID, NS: lq.NS, AllNS: lq.AllNS, BeforeSeq: lq.BeforeSeq, Limit: lq.Limit, MinSeq: m,
	})
	if err != nil {
		return nil, err
	}
	out := make([]projector.Version, len(cps))
	for i, c := range cps {
		out[i] = projector.Version{
			CheckpointKey: projector.CheckpointKey{ThreadID: c.ThreadID, NS: c.NS, ID: c.ID},
			ParentID:      c.ParentID, State: c.State, Metadata: c.Metadata,
			CreatedAt: c.CreatedAt, Seq: c.Seq, EventID: c.EventID,
		}
	}
	return out, nil
}
