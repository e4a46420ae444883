package query

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-io/cairn/events"
)

// DefaultRetryFor is how long Client keeps retrying reads answered with
// 503 (projection not caught up yet, store briefly unavailable).
const DefaultRetryFor = 30 * time.Second

// Client calls the HTTP API of a query service.
type Client struct {
	base string
	hc   *http.Client
	// RetryFor bounds retries of 503 answers; default DefaultRetryFor.
	RetryFor time.Duration
	// Token, when not "", is sent as the bearer token.
	Token string
}

// NewClient returns a client for the service at baseURL (for example
// http://127.0.0.1:8181). hc nil means a client with a 60-second timeout.
func NewClient(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: hc, RetryFor: DefaultRetryFor}
}

// Checkpoint is a checkpoint as the API returns it. State and Metadata are
// the exact JSON text published.
type Checkpoint struct {
	ThreadID      string          `json:"thread_id"`
	NS            string          `json:"checkpoint_ns"`
	ID            string          `json:"checkpoint_id"`
	ParentID      string          `json:"-"`
	State         json.RawMessage `json:"checkpoint"`
	Metadata      json.RawMessage `json:"metadata"`
	CreatedAt     time.Time       `json:"created_at"`
	Seq           uint64          `json:"seq"`
	EventID       string          `json:"event_id"`
	PendingWrites []Write         `json:"pending_writes,omitempty"`
	// ParentPruned is set on single-checkpoint reads: the parent was
	// removed by a prune or a delete (not merely never stored).
	ParentPruned bool `json:"parent_pruned,omitempty"`
}

// UnmarshalJSON decodes a null parent as "".
func (c *Checkpoint) UnmarshalJSON(b []byte) error {
	type plain Checkpoint
	var w struct {
		plain
		Parent *string `json:"parent_checkpoint_id"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = Checkpoint(w.plain)
	if w.Parent != nil {
		c.ParentID = *w.Parent
	}
	return nil
}

// Write is a pending write as the API returns it.
type Write struct {
	TaskID   string          `json:"task_id"`
	TaskPath string          `json:"task_path"`
	Idx      int64           `json:"idx"`
	Channel  string          `json:"channel"`
	Value    json.RawMessage `json:"value"`
	Seq      uint64          `json:"seq"`
}

func threadPath(thread string, rest ...string) string {
	p := "/v1/threads/" + pathSegment(thread)
	for _, r := range rest {
		p += "/" + pathSegment(r)
	}
	return p
}

// pathSegment escapes an id as one path segment. The ids "." and ".." are
// escaped too: as they are, URL resolution removes them as dot segments and
// the request reaches another endpoint ("/v1/threads/../checkpoints" is
// "/v1/checkpoints").
func pathSegment(id string) string {
	switch id {
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	return url.PathEscape(id)
}

func (m MinSeq) set(q url.Values) {
	switch {
	case m.Head:
		q.Set("min_seq", "head")
	case m.Seq > 0:
		q.Set("min_seq", strconv.FormatUint(m.Seq, 10))
	}
}

// Latest returns the newest checkpoint of (thread, ns) with its writes.
func (c *Client) Latest(ctx context.Context, thread, ns string, m MinSeq) (Checkpoint, error) {
	q := url.Values{"ns": {ns}}
	m.set(q)
	var out Checkpoint
	err := c.get(ctx, threadPath(thread, "latest"), q, &out)
	return out, err
}

// Checkpoint returns a checkpoint by id with its pending writes.
func (c *Client) Checkpoint(ctx context.Context, thread, ns, id string, m MinSeq) (Checkpoint, error) {
	q := url.Values{"ns": {ns}}
	m.set(q)
	var out Checkpoint
	err := c.get(ctx, threadPath(thread, "checkpoints", id), q, &out)
	return out, err
}

// Writes returns the pending writes of a checkpoint, of one task if task
// is not "".
func (c *Client) Writes(ctx context.Context, thread, ns, id, task string, m MinSeq) ([]Write, error) {
	q := url.Values{"ns": {ns}}
	if task != "" {
		q.Set("task", task)
	}
	m.set(q)
	var out struct {
		Writes []Write `json:"writes"`
	}
	err := c.get(ctx, threadPath(thread, "checkpoints", id, "writes"), q, &out)
	return out.Writes, err
}

// Ancestors returns up to depth ancestors of a checkpoint, nearest first.
func (c *Client) Ancestors(ctx context.Context, thread, ns, id string, depth int, m MinSeq) ([]Checkpoint, error) {
	q := url.Values{"ns": {ns}}
	if depth > 0 {
		q.Set("depth", strconv.Itoa(depth))
	}
	m.set(q)
	var out struct {
		Ancestors []Checkpoint `json:"ancestors"`
	}
	err := c.get(ctx, threadPath(thread, "checkpoints", id, "ancestors"), q, &out)
	return out.Ancestors, err
}

// List returns one page of checkpoints, newest first, and the cursor of
// the next page (0 when there is none).
func (c *Client) List(ctx context.Context, p ListParams) ([]Checkpoint, uint64, error) {
	q := url.Values{}
	path := "/v1/checkpoints"
	if p.ThreadID != "" {
		path = threadPath(p.ThreadID, "checkpoints")
	}
	if !p.AllNS {
		q.Set("ns", p.NS)
	}
	if len(p.Filter) > 0 {
		q.Set("filter", string(p.Filter))
	}
	if p.Before != "" {
		q.Set("before", p.Before)
	}
	if p.BeforeSeq > 0 {
		q.Set("before_seq", strconv.FormatUint(p.BeforeSeq, 10))
	}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	p.MinSeq.set(q)
	var out struct {
		Checkpoints []Checkpoint `json:"checkpoints"`
		Next        *uint64      `json:"next_before_seq"`
	}
	if err := c.get(ctx, path, q, &out); err != nil {
		return nil, 0, err
	}
	var next uint64
	if out.Next != nil {
		next = *out.Next
	}
	return out.Checkpoints, next, nil
}

// get fetches path and decodes the JSON answer into out. Error answers
// become *events.Error with the service's code; 503 answers are retried
// (honouring Retry-After) for up to RetryFor.
func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	deadline := time.Now().Add(c.RetryFor)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return events.Errorf(events.Invalid, "query request: %w", err)
		}
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return events.Errorf(events.Unavailable, "query service at %s: %w", c.base, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
		resp.Body.Close()
		if err != nil {
			return events.Errorf(events.Unavailable, "read answer from %s: %w", c.base, err)
		}
		if resp.StatusCode == http.StatusOK {
			dec := json.NewDecoder(bytes.NewReader(body))
			if err := dec.Decode(out); err != nil {
				return fmt.Errorf("decode answer of %s: %w", path, err)
			}
			return nil
		}
		apiErr := decodeError(resp.StatusCode, body)
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return apiErr
		}
		wait := time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			wait = min(time.Duration(s)*time.Second, 5*time.Second)
		}
		select {
		case <-ctx.Done():
			return apiErr
		case <-time.After(max(wait, 50*time.Millisecond)):
		}
	}
}

func decodeError(status int, body []byte) error {
	var e struct {
		Code    events.Code `json:"code"`
		Message string      `json:"message"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Code == "" {
		return events.Errorf(events.Internal, "query service answered %d: %.200s", status, body)
	}
	return &events.Error{Code: e.Code, Message: e.Message}
}
