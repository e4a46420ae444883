package projector

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strconv"

	"github.com/cairn-io/cairn/events"
)

// Dump is every projected table of one prefix, for comparisons: the
// conformance suite compares stores with each other and with Expect, and
// `writer verify` compares two prefixes. Payloads are compared byte for byte.
type Dump struct {
	Threads     []Thread
	Checkpoints []Version // winners
	Conflicts   []Version
	Duplicates  []Version // without payload
	WriteSets   []WriteSet
	Writes      []WriteRow
	Live        []LiveRow
}

// LiveRow is a row of the live table: the newest checkpoint of a thread's
// namespace.
type LiveRow struct {
	ThreadID     string
	NS           string
	CheckpointID string
	Seq          uint64
}

// Lines renders the dump as sorted lines of canonical text, one per row,
// each starting with its table's name.
func (d Dump) Lines() []string {
	var out []string
	add := func(table string, b []byte) { out = append(out, table+" "+string(b)+"}") }
	for _, t := range d.Threads {
		b := fields(nil, "thread_id", t.ID)
		b = uintField(b, "watermark", t.Watermark)
		add("threads", uintField(b, "last_seq", t.LastSeq))
	}
	version := func(table string, v Version) {
		b := keyFields(v.CheckpointKey)
		b = fields(b, "parent_checkpoint_id", v.ParentID)
		if v.State != nil {
			b = rawField(b, "checkpoint", v.State)
			b = rawField(b, "metadata", v.Metadata)
		}
		b = fields(b, "created_at", v.CreatedAt.UTC().Format(events.TimeFormat), "event_id", v.EventID, "hash", v.Hash)
		add(table, uintField(b, "seq", v.Seq))
	}
	for _, v := range d.Checkpoints {
		version("checkpoints", v)
	}
	for _, v := range d.Conflicts {
		version("conflicts", v)
	}
	for _, v := range d.Duplicates {
		v.State, v.Metadata = nil, nil
		version("duplicates", v)
	}
	for _, s := range d.WriteSets {
		b := taskFields(s.TaskKey)
		b = fields(b, "task_path", s.TaskPath, "event_id", s.EventID, "created_at", s.CreatedAt.UTC().Format(events.TimeFormat))
		add("write_sets", uintField(b, "seq", s.Seq))
	}
	for _, w := range d.Writes {
		b := taskFields(w.TaskKey)
		b = fields(b, "task_path", w.TaskPath)
		b = append(b, `,"idx":`...)
		b = strconv.AppendInt(b, w.Idx, 10)
		b = fields(b, "channel", w.Channel)
		b = rawField(b, "value", w.Value)
		add("writes", uintField(b, "seq", w.Seq))
	}
	for _, l := range d.Live {
		b := fields(nil, "thread_id", l.ThreadID, "checkpoint_ns", l.NS, "checkpoint_id", l.CheckpointID)
		add("live", uintField(b, "seq", l.Seq))
	}
	slices.Sort(out)
	return out
}

// Checksum is a SHA-256 over the dump's lines.
func (d Dump) Checksum() string {
	h := sha256.New()
	for _, l := range d.Lines() {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// DiffLines returns up to max lines that are in one dump and not the other,
// each prefixed with "-" (only in a) or "+" (only in b).
func DiffLines(a, b Dump, max int) []string {
	la, lb := a.Lines(), b.Lines()
	var out []string
	i, j := 0, 0
	for (i < len(la) || j < len(lb)) && len(out) < max {
		switch {
		case j >= len(lb) || (i < len(la) && la[i] < lb[j]):
			out = append(out, "- "+la[i])
			i++
		case i >= len(la) || lb[j] < la[i]:
			out = append(out, "+ "+lb[j])
			j++
		default:
			i++
			j++
		}
	}
	return out
}

func fields(b []byte, kv ...string) []byte {
	for i := 0; i+1 < len(kv); i += 2 {
		if len(b) == 0 {
			b = append(b, '{')
		} else {
			b = append(b, ',')
		}
		b = events.AppendString(b, kv[i])
		b = append(b, ':')
		b = events.AppendString(b, kv[i+1])
	}
	return b
}

func rawField(b []byte, k string, raw []byte) []byte {
	b = append(b, ',')
	b = events.AppendString(b, k)
	b = append(b, ':')
	return append(b, raw...)
}

func uintField(b []byte, k string, n uint64) []byte {
	b = append(b, ',')
	b = events.AppendString(b, k)
	b = append(b, ':')
	return strconv.AppendUint(b, n, 10)
}

func keyFields(k CheckpointKey) []byte {
	return fields(nil, "thread_id", k.ThreadID, "checkpoint_ns", k.NS, "checkpoint_id", k.ID)
}

func taskFields(k TaskKey) []byte {
	return fields(nil, "thread_id", k.ThreadID, "checkpoint_ns", k.NS, "checkpoint_id", k.CheckpointID, "task_id", k.TaskID)
}

// Expect computes, directly from the rules, the tables that applying recs
// (in any order, any batches, with any duplicates) must produce. It is the
// reference the conformance suite and the fault suite compare stores with.
func Expect(recs []Record) (Dump, error) {
	bySeq := make(map[uint64]Record)
	for _, r := range recs {
		bySeq[r.Seq] = r
	}
	threads := make(map[string]Thread)
	for _, r := range bySeq {
		t := threads[r.Event.ThreadID]
		t.ID = r.Event.ThreadID
		t.Watermark = max(t.Watermark, watermarkOf(r))
		t.LastSeq = max(t.LastSeq, r.Seq)
		threads[t.ID] = t
	}
	var d Dump
	versions := make(map[CheckpointKey][]Version)
	sets := make(map[TaskKey]Record)
	for _, r := range bySeq {
		if r.Seq < threads[r.Event.ThreadID].Watermark {
			continue
		}
		switch r.Event.Kind {
		case events.KindCheckpointPut:
			v := versionOf(r)
			versions[v.CheckpointKey] = append(versions[v.CheckpointKey], v)
		case events.KindWritesPut:
			tk := taskKeyOf(r)
			if cur, ok := sets[tk]; !ok || r.Seq > cur.Seq {
				sets[tk] = r
			}
		}
	}
	live := make(map[[2]string]LiveRow)
	for _, vs := range versions {
		w, conflicts, dups, err := partition(vs, 0)
		if err != nil {
			return Dump{}, err
		}
		d.Checkpoints = append(d.Checkpoints, *w)
		d.Conflicts = append(d.Conflicts, conflicts...)
		d.Duplicates = append(d.Duplicates, dups...)
		lk := [2]string{w.ThreadID, w.NS}
		if cur, ok := live[lk]; !ok || w.Seq > cur.Seq {
			live[lk] = LiveRow{ThreadID: w.ThreadID, NS: w.NS, CheckpointID: w.ID, Seq: w.Seq}
		}
	}
	for _, r := range sets {
		ws := writeSetOf(r)
		d.Writes = append(d.Writes, ws.Writes...)
		ws.Writes = nil
		d.WriteSets = append(d.WriteSets, ws)
	}
	d.Threads = slices.SortedFunc(maps.Values(threads), func(a, b Thread) int { return cmp.Compare(a.ID, b.ID) })
	d.Live = slices.Collect(maps.Values(live))
	return d, nil
}
