package query

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"time"
)

// ThreadInfo is a thread as the threads listing returns it.
type ThreadInfo struct {
	ThreadID    string   `json:"thread_id"`
	Checkpoints int64    `json:"checkpoints"`
	Namespaces  []string `json:"namespaces"`
	Latest      struct {
		NS        string    `json:"checkpoint_ns"`
		ID        string    `json:"checkpoint_id"`
		CreatedAt time.Time `json:"created_at"`
		Seq       uint64    `json:"seq"`
	} `json:"latest"`
	LastSeq uint64 `json:"last_seq"`
}

// Ref is a checkpoint's key as the API writes it.
type Ref struct {
	ThreadID string `json:"thread_id"`
	NS       string `json:"checkpoint_ns"`
	ID       string `json:"checkpoint_id"`
}

// Node is a checkpoint without its state, as trees, children and forks
// return it.
type Node struct {
	ThreadID   string          `json:"thread_id"`
	NS         string          `json:"checkpoint_ns"`
	ID         string          `json:"checkpoint_id"`
	ParentID   *string         `json:"parent_checkpoint_id"`
	Metadata   json.RawMessage `json:"metadata"`
	CreatedAt  time.Time       `json:"created_at"`
	Seq        uint64          `json:"seq"`
	ForkedFrom *Ref            `json:"forked_from"`
}

// MessageChange is a message added or removed between two checkpoints.
type MessageChange struct {
	Path    string          `json:"path"`
	Role    string          `json:"role"`
	Message json.RawMessage `json:"message"`
}

// DiffResult is a diff as the API returns it.
type DiffResult struct {
	ThreadID string `json:"thread_id"`
	NS       string `json:"checkpoint_ns"`
	From     struct {
		ID  string `json:"checkpoint_id"`
		Seq uint64 `json:"seq"`
	} `json:"from"`
	To struct {
		ID  string `json:"checkpoint_id"`
		Seq uint64 `json:"seq"`
	} `json:"to"`
	Changes  []Change `json:"changes"`
	Messages struct {
		Added   []MessageChange `json:"added"`
		Removed []MessageChange `json:"removed"`
	} `json:"messages"`
	MetadataChanges []Change `json:"metadata_changes"`
	Truncated       bool     `json:"truncated"`
}

// pageQuery sets before_seq, limit and min_seq.
func pageQuery(q url.Values, before uint64, limit int, m MinSeq) url.Values {
	if before > 0 {
		q.Set("before_seq", strconv.FormatUint(before, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	m.set(q)
	return q
}

func next(n *uint64) uint64 {
	if n == nil {
		return 0
	}
	return *n
}

// Threads returns one page of threads, newest activity first, and the
// cursor of the next page (0 when there is none).
func (c *Client) Threads(ctx context.Context, p ThreadsParams) ([]ThreadInfo, uint64, error) {
	q := url.Values{}
	if p.Prefix != "" {
		q.Set("prefix", p.Prefix)
	}
	var out struct {
		Threads []ThreadInfo `json:"threads"`
		Next    *uint64      `json:"next_before_seq"`
	}
	err := c.get(ctx, "/v1/threads", pageQuery(q, p.BeforeSeq, p.Limit, p.MinSeq), &out)
	return out.Threads, next(out.Next), err
}

// Tree returns one page of a thread's checkpoint tree, newest first.
func (c *Client) Tree(ctx context.Context, p TreeParams) ([]Node, uint64, error) {
	q := url.Values{}
	if !p.AllNS {
		q.Set("ns", p.NS)
	}
	var out struct {
		Nodes []Node  `json:"nodes"`
		Next  *uint64 `json:"next_before_seq"`
	}
	err := c.get(ctx, threadPath(p.ThreadID, "tree"), pageQuery(q, p.BeforeSeq, p.Limit, p.MinSeq), &out)
	return out.Nodes, next(out.Next), err
}

// Children returns one page of the children of a checkpoint, newest first.
func (c *Client) Children(ctx context.Context, p ChildrenParams) ([]Node, uint64, error) {
	q := url.Values{"ns": {p.NS}}
	var out struct {
		Children []Node  `json:"children"`
		Next     *uint64 `json:"next_before_seq"`
	}
	err := c.get(ctx, threadPath(p.ThreadID, "checkpoints", p.ID, "children"), pageQuery(q, p.BeforeSeq, p.Limit, p.MinSeq), &out)
	return out.Children, next(out.Next), err
}

// Forks returns one page of the checkpoints forked from a thread, newest
// first.
func (c *Client) Forks(ctx context.Context, p ForksParams) ([]Node, uint64, error) {
	q := url.Values{}
	if !p.AllNS {
		q.Set("ns", p.NS)
	}
	if p.CheckpointID != "" {
		q.Set("checkpoint", p.CheckpointID)
	}
	var out struct {
		Forks []Node  `json:"forks"`
		Next  *uint64 `json:"next_before_seq"`
	}
	err := c.get(ctx, threadPath(p.ThreadID, "forks"), pageQuery(q, p.BeforeSeq, p.Limit, p.MinSeq), &out)
	return out.Forks, next(out.Next), err
}

// Diff compares two checkpoints of a thread's namespace.
func (c *Client) Diff(ctx context.Context, thread, ns, from, to string, m MinSeq) (DiffResult, error) {
	q := url.Values{"ns": {ns}, "from": {from}, "to": {to}}
	m.set(q)
	var out DiffResult
	err := c.get(ctx, threadPath(thread, "diff"), q, &out)
	return out, err
}
