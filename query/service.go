// Package query is cairn's read side: lineage reads over a projector.Reader
// (and projector.Lineage, for threads, trees, forks and diffs) with
// read-your-writes (min_seq), served as an HTTP JSON API described by an
// OpenAPI document, as a NATS micro service and as a web page, and a Go
// client for the API. Error kinds map to HTTP statuses in one place
// (http.go); every checkpoint, metadata and write value is sent as the exact
// JSON text that was published. Bearer tokens scoped to thread-id prefixes
// guard the HTTP API; an out-of-scope thread reads as a missing one.
package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// Defaults for Config.
const (
	DefaultLimit        = 100
	DefaultMaxLimit     = 1000
	DefaultDepth        = 100
	DefaultMaxDepth     = 10000
	DefaultWaitTimeout  = 5 * time.Second
	DefaultPollInterval = 5 * time.Millisecond
	// DefaultScanLimit bounds how many rows one filtered list request
	// examines before it returns a cursor instead of more matches.
	DefaultScanLimit = 10000
	// DefaultTreeLimit and DefaultMaxTreeLimit bound the nodes of one tree
	// page.
	DefaultTreeLimit    = 1000
	DefaultMaxTreeLimit = 10000
)

// Positioner tells the service how far projection has got, for
// read-your-writes. *broker.Position implements it.
type Positioner interface {
	// Covered reports whether every event at or below seq is committed or
	// dead-lettered, and the position reached so far.
	Covered(ctx context.Context, seq uint64) (bool, uint64, error)
	// Head returns the sequence of the last event on a thread's subject.
	Head(ctx context.Context, threadID string) (uint64, error)
}

// Config configures a Service. Zero fields take the defaults.
type Config struct {
	DefaultLimit, MaxLimit int
	DefaultDepth, MaxDepth int
	// WaitTimeout bounds a read-your-writes wait; a read still uncovered
	// after it fails as Unavailable (HTTP 503 with Retry-After).
	WaitTimeout  time.Duration
	PollInterval time.Duration
	ScanLimit    int
	// DefaultTreeLimit and MaxTreeLimit bound the nodes of a tree page;
	// defaults DefaultTreeLimit and DefaultMaxTreeLimit.
	DefaultTreeLimit, MaxTreeLimit int
	// Tokens, when not empty, guard the /v1 API: each request needs one as
	// a bearer token and reads only its threads. Empty serves everyone.
	Tokens []Token
	// Lag reports projection lag for /readyz and /metrics; nil when the
	// service has no NATS connection.
	Lag LagProber
	// Registry receives the service's metrics and is what /metrics serves;
	// nil means a new registry of the service's own. Register other
	// collectors (a writer's, in one process) in it to serve them too.
	Registry *prometheus.Registry
	Logger   *slog.Logger
}

// Service answers lineage reads.
type Service struct {
	store   projector.Reader
	lin     projector.Lineage // nil when the store does not implement it
	pos     Positioner
	cfg     Config
	tokens  *tokenSet // nil: no auth
	metrics *metrics
	routes  []Route
}

// NewService returns a service over store. pos may be nil, in which case
// reads that ask for min_seq fail as Unavailable. If store implements
// projector.Lineage, the service also answers threads, tree, children,
// forks and diff reads; otherwise those answer not found.
func NewService(store projector.Reader, pos Positioner, cfg Config) *Service {
	if cfg.DefaultLimit <= 0 {
		cfg.DefaultLimit = DefaultLimit
	}
	if cfg.MaxLimit <= 0 {
		cfg.MaxLimit = DefaultMaxLimit
	}
	if cfg.DefaultDepth <= 0 {
		cfg.DefaultDepth = DefaultDepth
	}
	if cfg.MaxDepth <= 0 {
		cfg.MaxDepth = DefaultMaxDepth
	}
	if cfg.WaitTimeout <= 0 {
		cfg.WaitTimeout = DefaultWaitTimeout
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.ScanLimit <= 0 {
		cfg.ScanLimit = DefaultScanLimit
	}
	if cfg.DefaultTreeLimit <= 0 {
		cfg.DefaultTreeLimit = DefaultTreeLimit
	}
	if cfg.MaxTreeLimit <= 0 {
		cfg.MaxTreeLimit = DefaultMaxTreeLimit
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{store: store, pos: pos, cfg: cfg, tokens: newTokenSet(cfg.Tokens)}
	s.lin, _ = store.(projector.Lineage)
	s.metrics = newMetrics(cfg.Registry, cfg.Lag)
	s.routes = s.newRoutes()
	return s
}

// MinSeq is a read-your-writes requirement: none (zero value), a stream
// sequence, or the head of the read's thread.
type MinSeq struct {
	Seq  uint64
	Head bool
}

// UnavailableError is returned when a read-your-writes wait times out. It
// carries the position reached.
type UnavailableError struct {
	Want, Applied uint64
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("events up to seq %d are not all projected yet (projected through %d)", e.Want, e.Applied)
}

// Unwrap returns an Unavailable *events.Error, so that events.ErrorCode
// reports Unavailable and errors.Is(err, events.ErrUnavailable) is true.
func (e *UnavailableError) Unwrap() error {
	return &events.Error{Code: events.Unavailable, Message: e.Error()}
}

// Wait blocks until every event up to m is committed or dead-lettered, or
// the configured timeout passes. threadID resolves a head requirement.
func (s *Service) Wait(ctx context.Context, m MinSeq, threadID string) error {
	if m == (MinSeq{}) {
		return nil
	}
	if m.Head && threadID == "" {
		return events.Errorf(events.Invalid, "min_seq=head needs a thread")
	}
	if s.pos == nil {
		return events.Errorf(events.Unavailable, "read-your-writes is not available: the query service has no NATS connection")
	}
	want := m.Seq
	if m.Head {
		head, err := s.pos.Head(ctx, threadID)
		if err != nil {
			return err
		}
		if head == 0 {
			return nil
		}
		want = head
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WaitTimeout)
	defer cancel()
	var applied uint64
	var lastErr error
	for {
		ok, floor, err := s.pos.Covered(ctx, want)
		if err == nil && ok {
			return nil
		}
		applied, lastErr = max(applied, floor), err
		select {
		case <-ctx.Done():
			// A broker that cannot answer, or a projection that has not
			// caught up, is worth retrying; any other failure is not.
			if lastErr != nil && events.ErrorCode(lastErr) != events.Unavailable &&
				!errors.Is(lastErr, context.DeadlineExceeded) && !errors.Is(lastErr, context.Canceled) {
				return lastErr
			}
			return &UnavailableError{Want: want, Applied: applied}
		case <-time.After(s.cfg.PollInterval):
		}
	}
}

// Latest returns the newest checkpoint of (thread, ns).
func (s *Service) Latest(ctx context.Context, threadID, ns string, m MinSeq) (projector.Version, error) {
	if err := checkScope(ctx, threadID); err != nil {
		return projector.Version{}, err
	}
	if err := s.Wait(ctx, m, threadID); err != nil {
		return projector.Version{}, err
	}
	return s.store.Latest(ctx, threadID, ns)
}

// CheckpointWithWrites is a checkpoint and its pending writes.
type CheckpointWithWrites struct {
	projector.Version
	Writes []projector.WriteRow
	// ParentPruned says the checkpoint names a parent that a thread.prune
	// or thread.delete removed (projector.ParentPruned), as opposed to one
	// that was never stored.
	ParentPruned bool
}

// Checkpoint returns a checkpoint by id with its pending writes; with
// checkpointID "" the latest of (thread, ns).
func (s *Service) Checkpoint(ctx context.Context, k projector.CheckpointKey, m MinSeq) (CheckpointWithWrites, error) {
	if err := checkScope(ctx, k.ThreadID); err != nil {
		return CheckpointWithWrites{}, err
	}
	if err := s.Wait(ctx, m, k.ThreadID); err != nil {
		return CheckpointWithWrites{}, err
	}
	var v projector.Version
	var err error
	if k.ID == "" {
		v, err = s.store.Latest(ctx, k.ThreadID, k.NS)
	} else {
		v, err = s.store.Checkpoint(ctx, k)
	}
	if err != nil {
		return CheckpointWithWrites{}, err
	}
	ws, err := s.store.Writes(ctx, v.CheckpointKey, "")
	if err != nil {
		return CheckpointWithWrites{}, err
	}
	pruned, err := s.parentPruned(ctx, v)
	if err != nil {
		return CheckpointWithWrites{}, err
	}
	return CheckpointWithWrites{Version: v, Writes: ws, ParentPruned: pruned}, nil
}

// parentPruned reports whether v's parent was removed by its thread's
// watermark. Stores that cannot read a thread's row answer false.
func (s *Service) parentPruned(ctx context.Context, v projector.Version) (bool, error) {
	tr, ok := s.store.(projector.ThreadReader)
	if !ok || v.ParentID == "" {
		return false, nil
	}
	th, err := tr.Thread(ctx, v.ThreadID)
	if err != nil || th.Watermark == 0 || v.Seq < th.Watermark {
		if errors.Is(err, events.ErrNotFound) {
			err = nil
		}
		return false, err
	}
	_, err = s.store.Checkpoint(ctx, projector.CheckpointKey{ThreadID: v.ThreadID, NS: v.NS, ID: v.ParentID})
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, events.ErrNotFound):
		return projector.ParentPruned(v, false, th), nil
	}
	return false, err
}

// Writes returns the pending writes of a checkpoint (of one task if taskID
// is not "").
func (s *Service) Writes(ctx context.Context, k projector.CheckpointKey, taskID string, m MinSeq) ([]projector.WriteRow, error) {
	if err := checkScope(ctx, k.ThreadID); err != nil {
		return nil, err
	}
	if err := s.Wait(ctx, m, k.ThreadID); err != nil {
		return nil, err
	}
	return s.store.Writes(ctx, k, taskID)
}

// Ancestors returns up to depth ancestors of a checkpoint, nearest first.
// Where a thread's lineage ends at a root whose metadata records a
// forked_from origin (projector.ForkedFrom), it continues into the origin's
// thread; see AncestorsWithin to stay in the thread.
func (s *Service) Ancestors(ctx context.Context, k projector.CheckpointKey, depth int, m MinSeq) ([]projector.Version, error) {
	return s.ancestors(ctx, k, depth, true, m)
}

// AncestorsWithin is Ancestors without following forks into other threads.
func (s *Service) AncestorsWithin(ctx context.Context, k projector.CheckpointKey, depth int, m MinSeq) ([]projector.Version, error) {
	return s.ancestors(ctx, k, depth, false, m)
}

func (s *Service) ancestors(ctx context.Context, k projector.CheckpointKey, depth int, followForks bool, m MinSeq) ([]projector.Version, error) {
	if depth <= 0 {
		depth = s.cfg.DefaultDepth
	}
	if depth > s.cfg.MaxDepth {
		return nil, events.Errorf(events.Invalid, "depth %d is above the maximum %d", depth, s.cfg.MaxDepth)
	}
	if err := checkScope(ctx, k.ThreadID); err != nil {
		return nil, err
	}
	if err := s.Wait(ctx, m, k.ThreadID); err != nil {
		return nil, err
	}
	out, err := s.store.Ancestors(ctx, k, depth)
	if err != nil || !followForks {
		return out, err
	}
	// Cross into origins while depth allows: from the last checkpoint of
	// the walk (the start itself if it has no ancestors) when it is a root
	// that records where it was forked from. An origin out of the caller's
	// scope, missing, or already visited ends the lineage.
	var seen map[projector.CheckpointKey]bool // built at the first crossing
	for len(out) < depth {
		var last projector.Version
		if len(out) > 0 {
			last = out[len(out)-1]
		} else if last, err = s.store.Checkpoint(ctx, k); err != nil {
			return nil, err
		}
		if last.ParentID != "" {
			return out, nil // the walk ended at a parent that is not stored
		}
		origin, ok := projector.ForkedFrom(last.Metadata)
		if !ok || !scopeFrom(ctx).allows(origin.ThreadID) {
			return out, nil
		}
		if seen == nil {
			seen = map[projector.CheckpointKey]bool{k: true}
			for _, v := range out {
				seen[v.CheckpointKey] = true
			}
		}
		if seen[origin] {
			return out, nil
		}
		v, err := s.store.Checkpoint(ctx, origin)
		if errors.Is(err, events.ErrNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		seen[origin] = true
		if len(out) == depth {
			return out, nil
		}
		more, err := s.store.Ancestors(ctx, origin, depth-len(out))
		if err != nil {
			return nil, err
		}
		for _, v := range more {
			if seen[v.CheckpointKey] {
				return out, nil
			}
			seen[v.CheckpointKey] = true
			out = append(out, v)
		}
	}
	return out, nil
}

// ListParams selects checkpoints for List.
type ListParams struct {
	ThreadID string // "" for every thread
	NS       string
	AllNS    bool
	// Filter is a JSON object; a checkpoint matches when its metadata has
	// every key with an equal JSON value (events.JSONEqual: 1 ≠ "1").
	Filter []byte
	// Before is a checkpoint id of the listed thread; only older
	// checkpoints are listed. BeforeSeq bounds by stream sequence.
	Before    string
	BeforeSeq uint64
	Limit     int
	MinSeq    MinSeq
}

// ListResult is one page of checkpoints, newest first. NextBeforeSeq, when
// not zero, continues the listing (pass it as BeforeSeq).
type ListResult struct {
	Checkpoints   []projector.Version
	NextBeforeSeq uint64
}

// List returns checkpoints newest first (by stream sequence). A filtered
// listing, or one across threads for a caller scoped to some, examines at
// most ScanLimit rows per call; when it stops early it returns a cursor
// even if the page is short.
func (s *Service) List(ctx context.Context, p ListParams) (ListResult, error) {
	if p.Limit <= 0 {
		p.Limit = s.cfg.DefaultLimit
	}
	if p.Limit > s.cfg.MaxLimit {
		return ListResult{}, events.Errorf(events.Invalid, "limit %d is above the maximum %d", p.Limit, s.cfg.MaxLimit)
	}
	var filter []events.Member
	if len(p.Filter) > 0 {
		var err error
		if filter, err = events.ObjectMembers(p.Filter); err != nil {
			return ListResult{}, events.Errorf(events.Invalid, "filter must be a JSON object: %v", err)
		}
	}
	sc := scopeFrom(ctx)
	if p.ThreadID != "" {
		if err := checkScope(ctx, p.ThreadID); err != nil {
			return ListResult{}, err
		}
	}
	if err := s.Wait(ctx, p.MinSeq, p.ThreadID); err != nil {
		return ListResult{}, err
	}
	before := p.BeforeSeq
	if p.Before != "" {
		if p.ThreadID == "" {
			return ListResult{}, events.Errorf(events.Invalid, "before=<checkpoint id> needs a thread")
		}
		ns := p.NS
		v, err := s.store.Checkpoint(ctx, projector.CheckpointKey{ThreadID: p.ThreadID, NS: ns, ID: p.Before})
		if err != nil {
			return ListResult{}, fmt.Errorf("before: %w", err)
		}
		if before == 0 || v.Seq < before {
			before = v.Seq
		}
	}
	q := projector.ListQuery{ThreadID: p.ThreadID, NS: p.NS, AllNS: p.AllNS, BeforeSeq: before}
	// Without a filter, and with every listed thread in scope, one page of
	// the store is the answer; otherwise scan and keep what passes.
	restricted := p.ThreadID == "" && !sc.all()
	if len(filter) == 0 && !restricted {
		q.Limit = p.Limit
		vs, err := s.store.List(ctx, q)
		if err != nil {
			return ListResult{}, err
		}
		res := ListResult{Checkpoints: vs}
		if len(vs) == p.Limit {
			res.NextBeforeSeq = vs[len(vs)-1].Seq
		}
		return res, nil
	}
	var res ListResult
	scanned := 0
	q.Limit = min(max(p.Limit*4, 64), s.cfg.ScanLimit)
	for {
		vs, err := s.store.List(ctx, q)
		if err != nil {
			return ListResult{}, err
		}
		for _, v := range vs {
			scanned++
			if sc.allows(v.ThreadID) && matches(v.Metadata, filter) {
				res.Checkpoints = append(res.Checkpoints, v)
				if len(res.Checkpoints) == p.Limit {
					res.NextBeforeSeq = v.Seq
					return res, nil
				}
			}
			if scanned >= s.cfg.ScanLimit {
				res.NextBeforeSeq = v.Seq
				return res, nil
			}
		}
		if len(vs) < q.Limit {
			return res, nil
		}
		q.BeforeSeq = vs[len(vs)-1].Seq
	}
}

func matches(metadata []byte, filter []events.Member) bool {
	if len(filter) == 0 {
		return true
	}
	ms, err := events.ObjectMembers(metadata)
	if err != nil {
		return false
	}
	have := make(map[string][]byte, len(ms))
	for _, m := range ms {
		have[m.Key] = m.Value
	}
	for _, f := range filter {
		v, ok := have[f.Key]
		if !ok || !events.JSONEqual(v, f.Value) {
			return false
		}
	}
	return true
}
