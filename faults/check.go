// Package faults is cairn's fault suite: real processes (the writer,
// nats-server, a private PostgreSQL) broken on purpose while agents publish,
// and a checker that compares every projected table with what the broker
// acknowledged. Each scenario keeps its own record of every event the
// broker acknowledged (event and stream sequence), computes the expected
// tables from it with projector.Expect, and reports rows that are lost,
// extra or mismatched; nothing acknowledged may be lost and nothing may be
// applied twice.
//
// The scenarios are tests in this package, gated by CAIRN_FAULTS=1 because
// they take minutes; the exported helpers build and run the binaries and
// servers as processes.
package faults

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/cairn-io/cairn/projector"
)

// MaxDiffs bounds how many differences a Report describes.
const MaxDiffs = 20

// DeadLetter is one message of the dead-letter stream as the checker sees
// it.
type DeadLetter struct {
	// StreamSeq is the sequence of the dead event in the event stream.
	StreamSeq uint64
	Subject   string
	Reason    string
}

// Want is what a scenario expects to find.
type Want struct {
	// Tables is projector.Expect of every acknowledged valid event.
	Tables projector.Dump
	// DeadLetters maps the stream sequence of each event published to be
	// dead-lettered to a substring its reason must contain.
	DeadLetters map[uint64]string
}

// Got is what a scenario found: the store's Dump and the dead letters.
type Got struct {
	Tables      projector.Dump
	DeadLetters []DeadLetter
}

// Report counts the differences between Want and Got, row by row key.
type Report struct {
	// Lost: rows (or dead letters) expected and missing.
	Lost int
	// Extra: rows, conflicts, duplicates or dead letters that should not
	// exist.
	Extra int
	// Mismatched: rows whose key is expected but whose content differs,
	// and dead letters whose reason does not name their problem.
	Mismatched int
	// Diffs describes up to MaxDiffs of the differences.
	Diffs []string
}

// OK reports whether nothing is lost, extra or mismatched.
func (r Report) OK() bool { return r.Lost == 0 && r.Extra == 0 && r.Mismatched == 0 }

// Summary is the one line a scenario prints, e.g.
// "faults: scenario=kill9 store=sqlite events=20000 lost=0 extra=0 mismatched=0".
func (r Report) Summary(scenario, store string, events int) string {
	return fmt.Sprintf("faults: scenario=%s store=%s events=%d lost=%d extra=%d mismatched=%d",
		scenario, store, events, r.Lost, r.Extra, r.Mismatched)
}

func (r *Report) note(format string, args ...any) {
	if len(r.Diffs) < MaxDiffs {
		r.Diffs = append(r.Diffs, fmt.Sprintf(format, args...))
	}
}

// Check compares got with want, table by table and row key by row key.
func Check(want Want, got Got) Report {
	var r Report
	wantRows, _ := rowsByKey(want.Tables)
	gotRows, repeated := rowsByKey(got.Tables)
	for _, key := range repeated {
		r.Extra++
		r.note("extra: a second row at %s", key)
	}
	for _, key := range slices.Sorted(maps.Keys(wantRows)) {
		g, ok := gotRows[key]
		switch {
		case !ok:
			r.Lost++
			r.note("lost: %s", wantRows[key])
		case g != wantRows[key]:
			r.Mismatched++
			r.note("mismatched: want %s, got %s", wantRows[key], g)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(gotRows)) {
		if _, ok := wantRows[key]; !ok {
			r.Extra++
			r.note("extra: %s", gotRows[key])
		}
	}

	seen := make(map[uint64]bool, len(got.DeadLetters))
	for _, dl := range got.DeadLetters {
		reason, expected := want.DeadLetters[dl.StreamSeq]
		switch {
		case !expected || seen[dl.StreamSeq]:
			r.Extra++
			r.note("extra: dead letter of stream seq %d on %s: %s", dl.StreamSeq, dl.Subject, dl.Reason)
		case !strings.Contains(dl.Reason, reason):
			r.Mismatched++
			r.note("mismatched: dead letter of stream seq %d: reason %q does not contain %q", dl.StreamSeq, dl.Reason, reason)
		}
		seen[dl.StreamSeq] = true
	}
	for _, seq := range slices.Sorted(maps.Keys(want.DeadLetters)) {
		if !seen[seq] {
			r.Lost++
			r.note("lost: no dead letter for stream seq %d (want a reason containing %q)", seq, want.DeadLetters[seq])
		}
	}
	return r
}

// rowsByKey renders each row of d in canonical form (projector.Dump.Lines)
// keyed by its table and primary key. Keys that occur more than once are
// returned separately; a database cannot hold them.
func rowsByKey(d projector.Dump) (rows map[string]string, repeated []string) {
	rows = make(map[string]string)
	add := func(key string, one projector.Dump) {
		if _, dup := rows[key]; dup {
			repeated = append(repeated, key)
			return
		}
		rows[key] = one.Lines()[0]
	}
	for _, t := range d.Threads {
		add(rowKey("threads", t.ID), projector.Dump{Threads: []projector.Thread{t}})
	}
	for _, v := range d.Checkpoints {
		add(rowKey("checkpoints", v.ThreadID, v.NS, v.ID), projector.Dump{Checkpoints: []projector.Version{v}})
	}
	for _, v := range d.Conflicts {
		add(rowKey("conflicts", v.ThreadID, v.NS, v.ID, seqText(v.Seq)), projector.Dump{Conflicts: []projector.Version{v}})
	}
	for _, v := range d.Duplicates {
		add(rowKey("duplicates", v.ThreadID, v.NS, v.ID, seqText(v.Seq)), projector.Dump{Duplicates: []projector.Version{v}})
	}
	for _, s := range d.WriteSets {
		add(rowKey("write_sets", s.ThreadID, s.NS, s.CheckpointID, s.TaskID), projector.Dump{WriteSets: []projector.WriteSet{s}})
	}
	for _, w := range d.Writes {
		add(rowKey("writes", w.ThreadID, w.NS, w.CheckpointID, w.TaskID, strconv.FormatInt(w.Idx, 10)), projector.Dump{Writes: []projector.WriteRow{w}})
	}
	for _, l := range d.Live {
		add(rowKey("live", l.ThreadID, l.NS), projector.Dump{Live: []projector.LiveRow{l}})
	}
	return rows, repeated
}

func rowKey(table string, parts ...string) string {
	return table + " " + strconv.Quote(strings.Join(parts, "\x00"))
}

func seqText(seq uint64) string { return strconv.FormatUint(seq, 10) }
