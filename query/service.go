// Package query is cairn's read side: lineage reads over a projector.Reader
// with read-your-writes (min_seq), served as an HTTP JSON API, and a Go
// client for that API. Error kinds map to HTTP statuses in one place
// (http.go); every checkpoint, metadata and write value is sent as the exact
// JSON text that was published.
package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

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
	Logger       *slog.Logger
}

// Service answers lineage reads.
type Service struct {
	store projector.Reader
	pos   Positioner
	cfg   Config
}

// NewService returns a service over store. pos may be nil, in which case
// reads that ask for min_seq fail as Unavailable.
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
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{store: store, pos: pos, cfg: cfg}
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
	if s.pos == nil {
		return events.Errorf(events.Unavailable, "read-your-writes is not available: the query service has no NATS connection")
	}
	want := m.Seq
	if m.Head {
		if threadID == "" {
			return events.Errorf(events.Invalid, "min_seq=head needs a thread")
		}
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
	if err := s.Wait(ctx, m, threadID); err != nil {
		return projector.Version{}, err
	}
	return s.store.Latest(ctx, threadID, ns)
}

// CheckpointWithWrites is a checkpoint and its pending writes.
type CheckpointWithWrites struct {
	projector.Version
	Writes []projector.WriteRow
}

// Checkpoint returns a checkpoint by id with its pending writes; with
// checkpointID "" the latest of (thread, ns).
func (s *Service) Checkpoint(ctx context.Context, k projector.CheckpointKey, m MinSeq) (CheckpointWithWrites, error) {
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
	return CheckpointWithWrites{Version: v, Writes: ws}, nil
}

// Writes returns the pending writes of a checkpoint (of one task if taskID
// is not "").
func (s *Service) Writes(ctx context.Context, k projector.CheckpointKey, taskID string, m MinSeq) ([]projector.WriteRow, error) {
	if err := s.Wait(ctx, m, k.ThreadID); err != nil {
		return nil, err
	}
	return s.store.Writes(ctx, k, taskID)
}

// Ancestors returns up to depth ancestors of a checkpoint, nearest first.
func (s *Service) Ancestors(ctx context.Context, k projector.CheckpointKey, depth int, m MinSeq) ([]projector.Version, error) {
	if depth <= 0 {
		depth = s.cfg.DefaultDepth
	}
	if depth > s.cfg.MaxDepth {
		return nil, events.Errorf(events.Invalid, "depth %d is above the maximum %d", depth, s.cfg.MaxDepth)
	}
	if err := s.Wait(ctx, m, k.ThreadID); err != nil {
		return nil, err
	}
	return s.store.Ancestors(ctx, k, depth)
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
// listing examines at most ScanLimit rows per call; when it stops early it
// returns a cursor even if the page is short.
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
	if len(filter) == 0 {
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
			if matches(v.Metadata, filter) {
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
