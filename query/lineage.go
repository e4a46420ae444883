package query

import (
	"context"
	"strconv"
	"time"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// Page is one page of a newest-first listing. NextBeforeSeq, when not zero,
// continues it (pass it as BeforeSeq); a page shorter than its limit is the
// last.
type Page[T any] struct {
	Items         []T
	NextBeforeSeq uint64
}

func pageOf[T any](items []T, limit int, seqOf func(T) uint64) Page[T] {
	p := Page[T]{Items: items}
	if len(items) == limit && limit > 0 {
		p.NextBeforeSeq = seqOf(items[len(items)-1])
	}
	return p
}

// ThreadsParams selects threads for Threads.
type ThreadsParams struct {
	Prefix    string // thread ids starting with it; "" for all
	BeforeSeq uint64 // threads whose last activity is below it
	Limit     int
	MinSeq    MinSeq
}

// TreeParams selects the checkpoints of one thread for Tree.
type TreeParams struct {
	ThreadID  string
	NS        string
	AllNS     bool
	BeforeSeq uint64
	Limit     int
	MinSeq    MinSeq
}

// ChildrenParams selects the children of one checkpoint for Children.
type ChildrenParams struct {
	projector.CheckpointKey
	BeforeSeq uint64
	Limit     int
	MinSeq    MinSeq
}

// ForksParams selects the forks of a thread (or of one of its checkpoints)
// for Forks.
type ForksParams struct {
	ThreadID     string
	NS           string
	AllNS        bool
	CheckpointID string // "" for forks of any checkpoint
	BeforeSeq    uint64
	Limit        int
	MinSeq       MinSeq
}

func (s *Service) lineage() (projector.Lineage, error) {
	if s.lin == nil {
		return nil, events.Errorf(events.NotFound, "lineage reads (threads, tree, children, forks, diff) are not available: the store (%T) does not implement them", s.store)
	}
	return s.lin, nil
}

func (s *Service) listLimit(limit, def, maxLimit int) (int, error) {
	if limit <= 0 {
		limit = def
	}
	if limit > maxLimit {
		return 0, events.Errorf(events.Invalid, "limit %d is above the maximum %d", limit, maxLimit)
	}
	return limit, nil
}

// Threads lists the threads that hold checkpoints, newest activity first,
// within the caller's scope.
func (s *Service) Threads(ctx context.Context, p ThreadsParams) (Page[projector.ThreadSummary], error) {
	var none Page[projector.ThreadSummary]
	lin, err := s.lineage()
	if err != nil {
		return none, err
	}
	limit, err := s.listLimit(p.Limit, s.cfg.DefaultLimit, s.cfg.MaxLimit)
	if err != nil {
		return none, err
	}
	if err := s.Wait(ctx, p.MinSeq, ""); err != nil {
		return none, err
	}
	prefixes, ok := scopeFrom(ctx).narrow(p.Prefix)
	if !ok {
		return none, nil
	}
	ts, err := lin.Threads(ctx, projector.ThreadQuery{Prefixes: prefixes, BeforeSeq: p.BeforeSeq, Limit: limit})
	if err != nil {
		return none, err
	}
	return pageOf(ts, limit, func(t projector.ThreadSummary) uint64 { return t.LastSeq }), nil
}

// Tree returns the checkpoints of a thread without their state, newest
// first: each with its parent, so that forks within the thread (several
// children of one parent) show as branches, and with the origin its
// metadata records when it was forked from another thread.
func (s *Service) Tree(ctx context.Context, p TreeParams) (Page[projector.Node], error) {
	return s.nodes(ctx, p.ThreadID, p.MinSeq, p.Limit, s.cfg.DefaultTreeLimit, s.cfg.MaxTreeLimit,
		func(lin projector.Lineage, limit int) ([]projector.Node, error) {
			return lin.Nodes(ctx, projector.NodeQuery{ThreadID: p.ThreadID, NS: p.NS, AllNS: p.AllNS, BeforeSeq: p.BeforeSeq, Limit: limit})
		})
}

// Children returns the checkpoints of the thread whose parent is the given
// checkpoint, newest first. The parent need not be stored (it may have
// been pruned, or not projected yet).
func (s *Service) Children(ctx context.Context, p ChildrenParams) (Page[projector.Node], error) {
	return s.nodes(ctx, p.ThreadID, p.MinSeq, p.Limit, s.cfg.DefaultLimit, s.cfg.MaxLimit,
		func(lin projector.Lineage, limit int) ([]projector.Node, error) {
			return lin.Nodes(ctx, projector.NodeQuery{ThreadID: p.ThreadID, NS: p.NS, ByParent: true, ParentID: p.ID, BeforeSeq: p.BeforeSeq, Limit: limit})
		})
}

// Forks returns the checkpoints, in the caller's scope and in any thread,
// whose metadata records an origin in the given thread (and namespace, and
// checkpoint when given), newest first.
func (s *Service) Forks(ctx context.Context, p ForksParams) (Page[projector.Node], error) {
	return s.nodes(ctx, p.ThreadID, p.MinSeq, p.Limit, s.cfg.DefaultLimit, s.cfg.MaxLimit,
		func(lin projector.Lineage, limit int) ([]projector.Node, error) {
			q := projector.ForkQuery{ThreadID: p.ThreadID, NS: p.NS, AllNS: p.AllNS, CheckpointID: p.CheckpointID, BeforeSeq: p.BeforeSeq, Limit: limit}
			if sc := scopeFrom(ctx); !sc.all() {
				q.Prefixes = sc.prefixes
			}
			return lin.Forks(ctx, q)
		})
}

// nodes answers a page of nodes about one thread: it checks that the store
// serves lineage reads and the limit (def when 0, at most maxLimit), the
// caller's scope and min_seq, then fetches.
func (s *Service) nodes(ctx context.Context, threadID string, m MinSeq, limit, def, maxLimit int,
	fetch func(lin projector.Lineage, limit int) ([]projector.Node, error)) (Page[projector.Node], error) {
	var none Page[projector.Node]
	lin, err := s.lineage()
	if err != nil {
		return none, err
	}
	if limit, err = s.listLimit(limit, def, maxLimit); err != nil {
		return none, err
	}
	if err := s.ready(ctx, threadID, m); err != nil {
		return none, err
	}
	ns, err := fetch(lin, limit)
	if err != nil {
		return none, err
	}
	return pageOf(ns, limit, func(n projector.Node) uint64 { return n.Seq }), nil
}

// ready checks the caller's scope for a thread, then waits for min_seq.
func (s *Service) ready(ctx context.Context, threadID string, m MinSeq) error {
	if err := checkScope(ctx, threadID); err != nil {
		return err
	}
	return s.Wait(ctx, m, threadID)
}

// Diff compares two checkpoints of a thread's namespace, from → to.
func (s *Service) Diff(ctx context.Context, threadID, ns, from, to string, m MinSeq) (Diff, error) {
	if err := s.ready(ctx, threadID, m); err != nil {
		return Diff{}, err
	}
	a, err := s.store.Checkpoint(ctx, projector.CheckpointKey{ThreadID: threadID, NS: ns, ID: from})
	if err != nil {
		return Diff{}, err
	}
	b, err := s.store.Checkpoint(ctx, projector.CheckpointKey{ThreadID: threadID, NS: ns, ID: to})
	if err != nil {
		return Diff{}, err
	}
	return diffVersions(a, b), nil
}

// ---- HTTP ----

func (s *Service) getThreads(ctx context.Context, p params) ([]byte, error) {
	var tp ThreadsParams
	var err error
	if tp.Prefix, _, err = p.str("prefix"); err != nil {
		return nil, err
	}
	if tp.BeforeSeq, tp.Limit, tp.MinSeq, err = p.pageParams(); err != nil {
		return nil, err
	}
	page, err := s.Threads(ctx, tp)
	if err != nil {
		return nil, err
	}
	b := []byte(`{"threads":[`)
	for i, t := range page.Items {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendThread(b, t)
	}
	b = append(b, ']')
	return appendNext(b, page.NextBeforeSeq), nil
}

// pageParams reads before_seq, limit and min_seq.
func (p params) pageParams() (before uint64, limit int, m MinSeq, err error) {
	if before, err = p.uint("before_seq"); err != nil {
		return
	}
	if limit, err = p.positive("limit"); err != nil {
		return
	}
	m, err = p.minSeq()
	return
}

func (s *Service) getTree(ctx context.Context, p params) ([]byte, error) {
	var tp TreeParams
	var err error
	if tp.ThreadID, err = p.id("thread"); err != nil {
		return nil, err
	}
	var given bool
	if tp.NS, given, err = p.str("ns"); err != nil {
		return nil, err
	}
	tp.AllNS = !given
	if tp.BeforeSeq, tp.Limit, tp.MinSeq, err = p.pageParams(); err != nil {
		return nil, err
	}
	page, err := s.Tree(ctx, tp)
	if err != nil {
		return nil, err
	}
	size := 64
	for _, n := range page.Items {
		size += len(n.Metadata) + len(n.ThreadID) + len(n.NS) + len(n.ID) + len(n.ParentID) + 200
	}
	b := append(make([]byte, 0, size), `{"thread_id":`...)
	b = events.AppendString(b, tp.ThreadID)
	b = append(b, `,"nodes":`...)
	b = appendNodes(b, page.Items)
	return appendNext(b, page.NextBeforeSeq), nil
}

func (s *Service) getChildren(ctx context.Context, p params) ([]byte, error) {
	var cp ChildrenParams
	var err error
	if cp.CheckpointKey, err = p.key(); err != nil {
		return nil, err
	}
	if cp.BeforeSeq, cp.Limit, cp.MinSeq, err = p.pageParams(); err != nil {
		return nil, err
	}
	page, err := s.Children(ctx, cp)
	if err != nil {
		return nil, err
	}
	b := append([]byte(`{"children":`), appendNodes(nil, page.Items)...)
	return appendNext(b, page.NextBeforeSeq), nil
}

func (s *Service) getForks(ctx context.Context, p params) ([]byte, error) {
	var fp ForksParams
	var err error
	if fp.ThreadID, err = p.id("thread"); err != nil {
		return nil, err
	}
	var given bool
	if fp.NS, given, err = p.str("ns"); err != nil {
		return nil, err
	}
	if fp.CheckpointID, _, err = p.str("checkpoint"); err != nil {
		return nil, err
	}
	// ns absent: every namespace, or the root one for a checkpoint.
	fp.AllNS = !given && fp.CheckpointID == ""
	if fp.BeforeSeq, fp.Limit, fp.MinSeq, err = p.pageParams(); err != nil {
		return nil, err
	}
	page, err := s.Forks(ctx, fp)
	if err != nil {
		return nil, err
	}
	b := append([]byte(`{"forks":`), appendNodes(nil, page.Items)...)
	return appendNext(b, page.NextBeforeSeq), nil
}

func (s *Service) getDiff(ctx context.Context, p params) ([]byte, error) {
	thread, err := p.id("thread")
	if err != nil {
		return nil, err
	}
	ns, _, err := p.str("ns")
	if err != nil {
		return nil, err
	}
	// from and to are required checkpoint ids.
	from, to := p.q.Get("from"), p.q.Get("to")
	if err := checkParam("from", from, false); err != nil {
		return nil, err
	}
	if err := checkParam("to", to, false); err != nil {
		return nil, err
	}
	m, err := p.minSeq()
	if err != nil {
		return nil, err
	}
	d, err := s.Diff(ctx, thread, ns, from, to, m)
	if err != nil {
		return nil, err
	}
	return appendDiff(nil, d), nil
}

// appendNext closes a page object with its cursor.
func appendNext(b []byte, next uint64) []byte {
	b = append(b, `,"next_before_seq":`...)
	if next == 0 {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendUint(b, next, 10)
	}
	return append(b, '}')
}

func appendThread(b []byte, t projector.ThreadSummary) []byte {
	b = append(b, `{"thread_id":`...)
	b = events.AppendString(b, t.ID)
	b = append(b, `,"checkpoints":`...)
	b = strconv.AppendInt(b, t.Checkpoints, 10)
	b = append(b, `,"namespaces":[`...)
	for i, ns := range t.Namespaces {
		if i > 0 {
			b = append(b, ',')
		}
		b = events.AppendString(b, ns)
	}
	b = append(b, `],"latest":{"checkpoint_ns":`...)
	b = events.AppendString(b, t.Latest.NS)
	b = append(b, `,"checkpoint_id":`...)
	b = events.AppendString(b, t.Latest.CheckpointID)
	b = append(b, `,"created_at":`...)
	b = events.AppendString(b, t.LatestCreatedAt.UTC().Format(time.RFC3339Nano))
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, t.Latest.Seq, 10)
	b = append(b, `},"last_seq":`...)
	b = strconv.AppendUint(b, t.LastSeq, 10)
	return append(b, '}')
}

func appendNodes(b []byte, ns []projector.Node) []byte {
	b = append(b, '[')
	for i, n := range ns {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendNode(b, n)
	}
	return append(b, ']')
}

// appendNode writes one node: a checkpoint without its state, with the
// origin its metadata records (or null).
func appendNode(b []byte, n projector.Node) []byte {
	b = appendKeyFields(b, n.CheckpointKey)
	b = appendParent(b, n.ParentID)
	b = append(b, `,"metadata":`...)
	b = append(b, n.Metadata...)
	b = append(b, `,"created_at":`...)
	b = events.AppendString(b, n.CreatedAt.UTC().Format(time.RFC3339Nano))
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, n.Seq, 10)
	b = append(b, `,"forked_from":`...)
	if o, ok := projector.ForkedFrom(n.Metadata); ok {
		b = append(appendKeyFields(b, o), '}')
	} else {
		b = append(b, "null"...)
	}
	return append(b, '}')
}
