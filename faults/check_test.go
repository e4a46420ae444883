package faults_test

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-io/cairn/faults"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/projector/storetest"
)

// expected returns the tables of a random mix of events, checked to hold
// rows of every table the corruptions below touch.
func expected(t *testing.T) projector.Dump {
	t.Helper()
	d, err := projector.Expect(storetest.RandomRecords(rand.New(rand.NewPCG(1, 2)), 400))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Checkpoints) < 2 || len(d.Writes) == 0 || len(d.Live) == 0 || len(d.Conflicts) == 0 {
		t.Fatalf("random records gave %d checkpoints, %d writes, %d live rows, %d conflicts; want some of each",
			len(d.Checkpoints), len(d.Writes), len(d.Live), len(d.Conflicts))
	}
	return d
}

// clone copies a dump deeply enough for the corruptions below.
func clone(d projector.Dump) projector.Dump {
	return projector.Dump{
		Threads: slices.Clone(d.Threads), Checkpoints: slices.Clone(d.Checkpoints), Conflicts: slices.Clone(d.Conflicts),
		Duplicates: slices.Clone(d.Duplicates), WriteSets: slices.Clone(d.WriteSets), Writes: slices.Clone(d.Writes), Live: slices.Clone(d.Live),
	}
}

func TestCheckAgreesWithItself(t *testing.T) {
	want := expected(t)
	dls := []faults.DeadLetter{{StreamSeq: 7, Subject: "cairn.default.x", Reason: "event is not strict JSON: duplicate object key"}}
	rep := faults.Check(faults.Want{Tables: want, DeadLetters: map[uint64]string{7: "duplicate object key"}}, faults.Got{Tables: clone(want), DeadLetters: dls})
	if !rep.OK() || len(rep.Diffs) != 0 {
		t.Errorf("identical tables: got %+v, want nothing lost, extra or mismatched", rep)
	}
	if got, want := rep.Summary("kill9", "sqlite", 20000), "faults: scenario=kill9 store=sqlite events=20000 lost=0 extra=0 mismatched=0"; got != want {
		t.Errorf("summary: got %q, want %q", got, want)
	}
}

func TestCheckReportsEachKind(t *testing.T) {
	want := expected(t)
	for _, tt := range []struct {
		name                    string
		corrupt                 func(d *projector.Dump)
		lost, extra, mismatched int
		diffContains            string
	}{
		{"a checkpoint row removed", func(d *projector.Dump) { d.Checkpoints = d.Checkpoints[1:] }, 1, 0, 0, "lost: checkpoints"},
		{"a write row removed", func(d *projector.Dump) { d.Writes = d.Writes[:len(d.Writes)-1] }, 1, 0, 0, "lost: writes"},
		{"a writes row added", func(d *projector.Dump) {
			w := d.Writes[0]
			w.Idx = 1 << 40
			d.Writes = append(d.Writes, w)
		}, 0, 1, 0, "extra: writes"},
		{"a conflict added", func(d *projector.Dump) {
			v := d.Checkpoints[0]
			v.Seq += 1 << 40
			v.State = json.RawMessage(`{"other":true}`)
			d.Conflicts = append(d.Conflicts, v)
		}, 0, 1, 0, "extra: conflicts"},
		{"a row stored twice", func(d *projector.Dump) { d.Live = append(d.Live, d.Live[0]) }, 0, 1, 0, "extra: a second row at live"},
		{"a checkpoint's content altered", func(d *projector.Dump) {
			d.Checkpoints[0].State = json.RawMessage(`{"altered":true}`)
		}, 0, 0, 1, "mismatched: want checkpoints"},
		{"a live row pointing elsewhere", func(d *projector.Dump) { d.Live[0].Seq++ }, 0, 0, 1, "mismatched: want live"},
		{"one of each", func(d *projector.Dump) {
			d.Checkpoints = d.Checkpoints[1:]
			w := d.Writes[0]
			w.Idx = -1 << 40
			d.Writes = append(d.Writes, w)
			d.Checkpoints[0].EventID = "someone-else"
		}, 1, 1, 1, "lost: checkpoints"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := clone(want)
			tt.corrupt(&got)
			rep := faults.Check(faults.Want{Tables: want}, faults.Got{Tables: got})
			if rep.Lost != tt.lost || rep.Extra != tt.extra || rep.Mismatched != tt.mismatched {
				t.Errorf("got lost=%d extra=%d mismatched=%d, want %d %d %d; diffs:\n%s",
					rep.Lost, rep.Extra, rep.Mismatched, tt.lost, tt.extra, tt.mismatched, strings.Join(rep.Diffs, "\n"))
			}
			if rep.OK() {
				t.Error("OK() on a corrupted table")
			}
			if !slices.ContainsFunc(rep.Diffs, func(s string) bool { return strings.HasPrefix(s, tt.diffContains) }) {
				t.Errorf("no difference starting with %q in:\n%s", tt.diffContains, strings.Join(rep.Diffs, "\n"))
			}
		})
	}
}

func TestCheckDeadLetters(t *testing.T) {
	tables := expected(t)
	want := faults.Want{Tables: tables, DeadLetters: map[uint64]string{10: "not strict JSON", 11: "unknown kind"}}
	for _, tt := range []struct {
		name                    string
		got                     []faults.DeadLetter
		lost, extra, mismatched int
	}{
		{"as expected", []faults.DeadLetter{{StreamSeq: 10, Reason: "event is not strict JSON: x"}, {StreamSeq: 11, Reason: `kind: unknown kind "k"`}}, 0, 0, 0},
		{"one missing", []faults.DeadLetter{{StreamSeq: 10, Reason: "event is not strict JSON: x"}}, 1, 0, 0},
		{"an unexpected one", []faults.DeadLetter{{StreamSeq: 10, Reason: "event is not strict JSON"}, {StreamSeq: 11, Reason: "unknown kind"}, {StreamSeq: 12, Reason: "store refused the event"}}, 0, 1, 0},
		{"twice", []faults.DeadLetter{{StreamSeq: 10, Reason: "not strict JSON"}, {StreamSeq: 10, Reason: "not strict JSON"}, {StreamSeq: 11, Reason: "unknown kind"}}, 0, 1, 0},
		{"the wrong reason", []faults.DeadLetter{{StreamSeq: 10, Reason: "not strict JSON"}, {StreamSeq: 11, Reason: "checkpoint: must be a JSON object"}}, 0, 0, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep := faults.Check(want, faults.Got{Tables: clone(tables), DeadLetters: tt.got})
			if rep.Lost != tt.lost || rep.Extra != tt.extra || rep.Mismatched != tt.mismatched {
				t.Errorf("got lost=%d extra=%d mismatched=%d, want %d %d %d; diffs:\n%s",
					rep.Lost, rep.Extra, rep.Mismatched, tt.lost, tt.extra, tt.mismatched, strings.Join(rep.Diffs, "\n"))
			}
		})
	}
	// No dead letters wanted: any is extra.
	rep := faults.Check(faults.Want{Tables: tables}, faults.Got{Tables: tables, DeadLetters: []faults.DeadLetter{{StreamSeq: 3, Reason: "x"}}})
	if rep.Extra != 1 {
		t.Errorf("an unexpected dead letter: extra=%d, want 1", rep.Extra)
	}
}
