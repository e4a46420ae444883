package backfill

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"container/heap"
	"fmt"
	"io"
	"slices"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// Item is one historical event to backfill and where it came from.
type Item struct {
	// Where names its origin for reports: "line 12", "checkpoints row 3".
	Where string
	// Pos orders items of equal created_at as they were read.
	Pos   int
	Event *events.Event
}

// Rejected is an input that is not backfilled, and why.
type Rejected struct {
	Where  string
	Reason string
}

// Source is what a backfill publishes: its items, and the inputs rejected
// while reading them.
type Source struct {
	Items    []Item
	Rejected []Rejected
}

// MaxLineBytes is the longest JSON Lines line read: an event at the
// largest size events allow, plus room.
const MaxLineBytes = events.DefaultMaxEventBytes + 1<<20

// ReadJSONL reads JSON Lines of historical events (see docs/FLEET.md): one
// event object per line, as the event format defines it, of kind
// checkpoint.put or writes.put, with its original event_id and created_at.
// "schema" may be omitted (it is 1) and so may "fleet" (it is fleet); a
// line of another fleet is rejected. Blank lines are skipped. Input that
// starts with the gzip magic bytes is decompressed. Lines that are not
// valid events are rejected with their line number and the reason; only a
// read error fails the whole call.
func ReadJSONL(r io.Reader, fleet string, maxEventBytes int) (Source, error) {
	var src Source
	br := bufio.NewReaderSize(r, 1<<16)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return src, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 1<<16)
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 1<<16), MaxLineBytes)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		where := fmt.Sprintf("line %d", line)
		e, err := decodeLine(b, fleet, maxEventBytes)
		if err != nil {
			src.Rejected = append(src.Rejected, Rejected{Where: where, Reason: err.Error()})
			continue
		}
		src.Items = append(src.Items, Item{Where: where, Pos: line, Event: e})
	}
	if err := sc.Err(); err != nil {
		return src, fmt.Errorf("read line %d: %w", line+1, err)
	}
	return src, nil
}

// decodeLine decodes one line, filling in schema and fleet when absent.
func decodeLine(b []byte, fleet string, maxEventBytes int) (*events.Event, error) {
	members, err := events.ObjectMembers(b)
	if err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	has := make(map[string][]byte, len(members))
	for _, m := range members {
		has[m.Key] = m.Value
	}
	var head []byte
	if _, ok := has["schema"]; !ok {
		head = fmt.Appendf(head, `"schema":%d,`, events.SchemaVersion)
	}
	if _, ok := has["fleet"]; !ok {
		head = append(head, `"fleet":`...)
		head = events.AppendString(head, fleet)
		head = append(head, ',')
	}
	if len(head) > 0 {
		body := bytes.TrimSpace(b[1:])
		if len(body) > 0 && body[0] == '}' { // an empty object
			head = head[:len(head)-1]
		}
		b = slices.Concat([]byte{'{'}, head, body)
	}
	e, err := events.Decode(b, maxEventBytes)
	if err != nil {
		return nil, err
	}
	switch {
	case e.Fleet != fleet:
		return nil, fmt.Errorf("fleet %q: this backfill publishes into fleet %q", e.Fleet, fleet)
	case e.Kind != events.KindCheckpointPut && e.Kind != events.KindWritesPut:
		return nil, fmt.Errorf("kind %s: a backfill imports checkpoint.put and writes.put events only", e.Kind)
	}
	return e, nil
}

// Order returns each thread's items in historical order, threads in the
// order they first appear: by created_at (then input position), except
// that a checkpoint comes after its parent and a write set after its
// checkpoint when those are among the items. Items whose parent links form
// a cycle are rejected. Repeated event ids are kept once when their events
// are equal and rejected when they differ.
func Order(items []Item) (ordered []Item, rejected []Rejected) {
	var threads []string
	byThread := make(map[string][]Item)
	seen := make(map[string]Item)
	for _, it := range items {
		if prev, ok := seen[it.Event.EventID]; ok {
			if !sameEvent(prev.Event, it.Event) {
				rejected = append(rejected, Rejected{Where: it.Where, Reason: fmt.Sprintf("event_id %q is also used by %s for a different event", it.Event.EventID, prev.Where)})
			}
			continue
		}
		seen[it.Event.EventID] = it
		t := it.Event.ThreadID
		if _, ok := byThread[t]; !ok {
			threads = append(threads, t)
		}
		byThread[t] = append(byThread[t], it)
	}
	for _, t := range threads {
		o, r := orderThread(byThread[t])
		ordered = append(ordered, o...)
		rejected = append(rejected, r...)
	}
	return ordered, rejected
}

func sameEvent(a, b *events.Event) bool {
	ea, err1 := events.Encode(a, 0)
	eb, err2 := events.Encode(b, 0)
	return err1 == nil && err2 == nil && bytes.Equal(ea, eb)
}

// orderThread orders one thread's items: Kahn's algorithm over the parent
// and checkpoint links, taking the earliest ready item first.
func orderThread(items []Item) ([]Item, []Rejected) {
	ckptIdx := make(map[[2]string]int) // (ns, checkpoint id) -> index of its first put
	for i, it := range items {
		if c := it.Event.Checkpoint; c != nil {
			k := [2]string{c.NS, c.ID}
			if _, ok := ckptIdx[k]; !ok {
				ckptIdx[k] = i
			}
		}
	}
	deps := make([]int, len(items))
	children := make([][]int, len(items))
	for i, it := range items {
		var dep [2]string
		switch {
		case it.Event.Checkpoint != nil && it.Event.Checkpoint.ParentID != "":
			dep = [2]string{it.Event.Checkpoint.NS, it.Event.Checkpoint.ParentID}
		case it.Event.Writes != nil:
			dep = [2]string{it.Event.Writes.NS, it.Event.Writes.CheckpointID}
		default:
			continue
		}
		if j, ok := ckptIdx[dep]; ok && j != i {
			deps[i]++
			children[j] = append(children[j], i)
		}
	}
	q := &readyQueue{items: items}
	for i := range items {
		if deps[i] == 0 {
			heap.Push(q, i)
		}
	}
	out := make([]Item, 0, len(items))
	for q.Len() > 0 {
		i := heap.Pop(q).(int)
		out = append(out, items[i])
		for _, c := range children[i] {
			if deps[c]--; deps[c] == 0 {
				heap.Push(q, c)
			}
		}
	}
	var rejected []Rejected
	for i, d := range deps {
		if d > 0 {
			rejected = append(rejected, Rejected{Where: items[i].Where, Reason: fmt.Sprintf("thread %q: parent links form a cycle", items[i].Event.ThreadID)})
		}
	}
	return out, rejected
}

// readyQueue is a min-heap of item indexes by (created_at, position).
type readyQueue struct {
	items []Item
	idx   []int
}

func (q *readyQueue) Len() int { return len(q.idx) }
func (q *readyQueue) Less(a, b int) bool {
	x, y := q.items[q.idx[a]], q.items[q.idx[b]]
	return cmp.Or(x.Event.CreatedAt.Compare(y.Event.CreatedAt), cmp.Compare(x.Pos, y.Pos)) < 0
}
func (q *readyQueue) Swap(a, b int) { q.idx[a], q.idx[b] = q.idx[b], q.idx[a] }
func (q *readyQueue) Push(x any)    { q.idx = append(q.idx, x.(int)) }
func (q *readyQueue) Pop() any {
	n := len(q.idx)
	v := q.idx[n-1]
	q.idx = q.idx[:n-1]
	return v
}

// contentHash is the projector's content identity of a checkpoint event.
func contentHash(c *events.Checkpoint) string {
	return projector.ContentHash(c.ParentID, bytes.TrimSpace(c.State), bytes.TrimSpace(c.Metadata))
}
