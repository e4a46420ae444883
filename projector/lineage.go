package projector

import (
	"context"
	"encoding/json"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cairn-io/cairn/events"
)

// Lineage is the read side of lineage views: which threads exist, the
// checkpoint tree of a thread, and the forks other threads made from it. A
// store implements it next to Reader (it is not part of Store, so a store
// can land without it); the query service type-asserts. Reads see committed
// data only; every list is newest first by a sequence and pages with a
// BeforeSeq cursor, so a walk stays correct while new events arrive.
type Lineage interface {
	// Threads returns the threads that hold at least one checkpoint,
	// newest activity first: by Thread.LastSeq, the highest sequence of any
	// of the thread's events. LastSeq is unique per thread (one stream
	// sequence is one event of one thread), so it is also the cursor.
	Threads(ctx context.Context, q ThreadQuery) ([]ThreadSummary, error)
	// Nodes returns checkpoints of one thread without their state, newest
	// first by seq.
	Nodes(ctx context.Context, q NodeQuery) ([]Node, error)
	// Forks returns checkpoints, of any thread, whose metadata records an
	// origin (see ForkedFrom) in q.ThreadID, newest first by seq.
	Forks(ctx context.Context, q ForkQuery) ([]Node, error)
}

// ThreadQuery selects threads for Lineage.Threads.
type ThreadQuery struct {
	// Prefixes keeps threads whose id starts with any of them (byte-wise);
	// none keeps every thread.
	Prefixes []string
	// BeforeSeq keeps threads whose LastSeq is below it; 0 for no bound.
	BeforeSeq uint64
	// Limit is the most threads returned; must be > 0.
	Limit int
}

// ThreadSummary describes one thread for a listing.
type ThreadSummary struct {
	ID string
	// LastSeq is the highest sequence of any of the thread's events
	// (checkpoints, writes, prunes): its latest activity.
	LastSeq uint64
	// Checkpoints counts the thread's checkpoints in every namespace.
	Checkpoints int64
	// Namespaces holds each namespace with a checkpoint, sorted byte-wise.
	Namespaces []string
	// Latest is the newest checkpoint of the thread across namespaces (the
	// live row with the highest seq) and LatestCreatedAt its created_at.
	Latest          LiveRow
	LatestCreatedAt time.Time
}

// ThreadRow is what a store reads for a threads listing: one row per
// thread and namespace (a live row), rows of one thread next to each other.
// GroupThreads folds them into summaries.
type ThreadRow struct {
	ThreadID string
	LastSeq  uint64
	// Live is the namespace's newest checkpoint, LiveCreatedAt its
	// created_at, and Checkpoints the namespace's checkpoint count.
	Live          LiveRow
	LiveCreatedAt time.Time
	Checkpoints   int64
}

// GroupThreads folds consecutive rows of each thread into its summary,
// keeping the order of the threads. Namespaces keep the rows' order.
func GroupThreads(rows []ThreadRow) []ThreadSummary {
	var out []ThreadSummary
	for _, r := range rows {
		if len(out) == 0 || out[len(out)-1].ID != r.ThreadID {
			out = append(out, ThreadSummary{ID: r.ThreadID, LastSeq: r.LastSeq})
		}
		t := &out[len(out)-1]
		t.Checkpoints += r.Checkpoints
		t.Namespaces = append(t.Namespaces, r.Live.NS)
		if r.Live.Seq > t.Latest.Seq {
			t.Latest, t.LatestCreatedAt = r.Live, r.LiveCreatedAt
		}
	}
	return out
}

// NodeQuery selects checkpoints of one thread for Lineage.Nodes.
type NodeQuery struct {
	ThreadID string // required
	NS       string // the namespace when AllNS is false
	AllNS    bool   // true for every namespace
	// ByParent keeps only the children of ParentID in NS (AllNS must be
	// false): the checkpoints whose parent_checkpoint_id is ParentID. The
	// parent itself need not be stored.
	ByParent  bool
	ParentID  string
	BeforeSeq uint64 // only seq below it; 0 for no bound
	Limit     int    // at most this many; must be > 0
}

// Node is a checkpoint without its state: what a tree or a fork list needs.
type Node struct {
	CheckpointKey
	ParentID  string
	Metadata  json.RawMessage // the exact published text
	CreatedAt time.Time
	Seq       uint64
}

// ForkQuery selects forks for Lineage.Forks: checkpoints whose metadata
// records an origin in ThreadID.
type ForkQuery struct {
	ThreadID string // the origin thread; required
	// NS is the origin namespace when AllNS is false.
	NS    string
	AllNS bool
	// CheckpointID, when not "", keeps forks of that origin checkpoint
	// only (AllNS must be false).
	CheckpointID string
	// Prefixes keeps forks in threads whose id starts with any of them;
	// none keeps every thread.
	Prefixes  []string
	BeforeSeq uint64 // only forks with seq below it; 0 for no bound
	Limit     int    // at most this many; must be > 0
}

// ForkKey is the metadata key that records a cross-thread fork. Stores
// index the checkpoints whose metadata text contains it (quoted, as every
// JSON encoder writes an object key) to find forks without reading every
// row.
const ForkKey = "forked_from"

// ForkMarker is ForkKey as it appears in metadata text.
const ForkMarker = `"` + ForkKey + `"`

// ForkedFrom returns the origin a checkpoint's metadata records, if any:
// a top-level member
//
//	"forked_from": {"thread_id": "...", "checkpoint_ns": "...", "checkpoint_id": "..."}
//
// whose thread_id and checkpoint_id are valid ids (non-empty, at most
// events.MaxIDBytes bytes, no control characters); checkpoint_ns may be
// absent, null or "" for the root namespace. Other members of the object
// are ignored. Anything else (no such member, another type, a bad id) is no
// origin: lineage stops there.
func ForkedFrom(metadata []byte) (CheckpointKey, bool) {
	if !strings.Contains(string(metadata), ForkMarker) {
		return CheckpointKey{}, false
	}
	ms, err := events.ObjectMembers(metadata)
	if err != nil {
		return CheckpointKey{}, false
	}
	for _, m := range ms {
		if m.Key != ForkKey {
			continue
		}
		inner, err := events.ObjectMembers(m.Value)
		if err != nil {
			return CheckpointKey{}, false
		}
		var k CheckpointKey
		var haveThread, haveID bool
		for _, f := range inner {
			var dst *string
			switch f.Key {
			case "thread_id":
				dst, haveThread = &k.ThreadID, true
			case "checkpoint_ns":
				if string(f.Value) == "null" {
					continue
				}
				dst = &k.NS
			case "checkpoint_id":
				dst, haveID = &k.ID, true
			default:
				continue
			}
			if json.Unmarshal(f.Value, dst) != nil {
				return CheckpointKey{}, false
			}
		}
		if !haveThread || !haveID || !validID(k.ThreadID) || !validID(k.ID) || (k.NS != "" && !validID(k.NS)) {
			return CheckpointKey{}, false
		}
		return k, true
	}
	return CheckpointKey{}, false
}

func validID(s string) bool {
	if s == "" || len(s) > events.MaxIDBytes || !utf8.ValidString(s) {
		return false
	}
	return strings.IndexFunc(s, unicode.IsControl) < 0
}

// HasPrefix reports whether id starts with any of prefixes, or whether
// prefixes is empty.
func HasPrefix(id string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}

// ScanForks implements Lineage.Forks for a store. candidates returns, newest
// first, up to limit checkpoints with seq below beforeSeq (0: no bound)
// whose metadata text contains ForkMarker; ScanForks keeps those whose
// ForkedFrom matches q, fetching more until it has q.Limit or the
// candidates run out. The rule of what counts as a fork thus lives here,
// once, and every store only has to find the candidates quickly.
func ScanForks(ctx context.Context, q ForkQuery, candidates func(ctx context.Context, beforeSeq uint64, limit int) ([]Node, error)) ([]Node, error) {
	if q.ThreadID == "" {
		return nil, events.Errorf(events.Invalid, "forks: no thread")
	}
	if q.Limit <= 0 {
		return nil, events.Errorf(events.Invalid, "forks: limit must be positive")
	}
	if q.CheckpointID != "" && q.AllNS {
		return nil, events.Errorf(events.Invalid, "forks: a checkpoint needs its namespace")
	}
	batch := max(q.Limit*4, 256)
	before := q.BeforeSeq
	var out []Node
	for {
		ns, err := candidates(ctx, before, batch)
		if err != nil {
			return nil, err
		}
		for _, n := range ns {
			if !HasPrefix(n.ThreadID, q.Prefixes) {
				continue
			}
			o, ok := ForkedFrom(n.Metadata)
			if !ok || o.ThreadID != q.ThreadID || (!q.AllNS && o.NS != q.NS) || (q.CheckpointID != "" && o.ID != q.CheckpointID) {
				continue
			}
			out = append(out, n)
			if len(out) == q.Limit {
				return out, nil
			}
		}
		if len(ns) < batch {
			return out, nil
		}
		before = ns[len(ns)-1].Seq
	}
}

// CheckNodeQuery validates q for stores.
func CheckNodeQuery(q NodeQuery) error {
	switch {
	case q.ThreadID == "":
		return events.Errorf(events.Invalid, "nodes: no thread")
	case q.Limit <= 0:
		return events.Errorf(events.Invalid, "nodes: limit must be positive")
	case q.ByParent && q.AllNS:
		return events.Errorf(events.Invalid, "nodes: children need their namespace")
	}
	return nil
}
