package langgraph_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-io/cairn/backfill"
	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/langgraph"
	"github.com/cairn-io/cairn/pipeline"
	"github.com/cairn-io/cairn/pipeline/pipelinetest"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/query"
	"github.com/cairn-io/cairn/replay"
)

// schema is the SqliteSaver schema, as the library creates it.
const schema = `
CREATE TABLE checkpoints (
  thread_id TEXT NOT NULL,
  checkpoint_ns TEXT NOT NULL DEFAULT '',
  checkpoint_id TEXT NOT NULL,
  parent_checkpoint_id TEXT,
  type TEXT,
  checkpoint BLOB,
  metadata BLOB,
  PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
);
CREATE TABLE writes (
  thread_id TEXT NOT NULL,
  checkpoint_ns TEXT NOT NULL DEFAULT '',
  checkpoint_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  channel TEXT NOT NULL,
  type TEXT,
  value BLOB,
  PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);`

// MustBuildDB writes a LangGraph-shaped database: thread "t1" with a chain
// of three (ids that sort as text in creation order, "ts" in the body), a
// fork, writes of two tasks, one msgpack checkpoint, one write set with a
// msgpack row, and one checkpoint whose body is not JSON.
func MustBuildDB(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "lg.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	stmts := []string{schema}
	ck := func(thread, ns, id, parent, typ, body, meta string) {
		p := "NULL"
		if parent != "" {
			p = "'" + parent + "'"
		}
		stmts = append(stmts, "INSERT INTO checkpoints VALUES ('"+thread+"','"+ns+"','"+id+"',"+p+",'"+typ+"',CAST('"+body+"' AS BLOB),CAST('"+meta+"' AS BLOB))")
	}
	wr := func(thread, id, task string, idx int, channel, typ, value string) {
		stmts = append(stmts, "INSERT INTO writes VALUES ('"+thread+"','','"+id+"','"+task+"',"+itoa(idx)+",'"+channel+"','"+typ+"',CAST('"+value+"' AS BLOB))")
	}
	ts := func(minute string) string {
		return `{"v":4,"id":"x","ts":"2026-11-20T14:` + minute + `:00.000Z","channel_values":{"messages":[]},"channel_versions":{},"versions_seen":{}}`
	}
	ck("t1", "", "1f0-a", "", "json", ts("00"), `{"source":"input","step":0}`)
	ck("t1", "", "1f0-b", "1f0-a", "json", ts("01"), `{"source":"loop","step":1}`)
	ck("t1", "", "1f0-c", "1f0-b", "json", ts("02"), `{"source":"loop","step":2}`)
	ck("t1", "", "1f0-d", "1f0-a", "json", ts("30"), `{"source":"fork","step":1}`)
	ck("t1", "", "1f0-e", "1f0-d", "json", `not json`, `{}`)
	ck("t2", "", "1f1-a", "", "msgpack", `binary`, `{}`)
	wr("t1", "1f0-a", "task-a", 0, "messages", "json", `{"role":"tool","content":"a"}`)
	wr("t1", "1f0-a", "task-a", 1, "status", "json", `"investigating"`)
	wr("t1", "1f0-b", "task-b", -1, "__error__", "json", `"boom"`)
	wr("t1", "1f0-c", "task-c", 0, "messages", "json", `"x"`)
	wr("t1", "1f0-c", "task-c", 1, "blob", "msgpack", `binary`)
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			tb.Fatalf("%s: %v", s, err)
		}
	}
	return path
}

func itoa(i int) string {
	if i < 0 {
		return "-" + itoa(-i)
	}
	return string(rune('0' + i))
}

func importTwice(t *testing.T, path string) (first, second backfill.Result, d projector.Dump, rep langgraph.Report) {
	t.Helper()
	p := pipelinetest.MustStart(t, pipeline.Config{})
	pub, err := broker.NewAsyncPublisher(p.JS, broker.AsyncConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	api := query.NewClient(p.QueryURL, nil)
	ctx := context.Background()
	for i, res := range []*backfill.Result{&first, &second} {
		src, r, err := langgraph.Read(ctx, path, "default")
		if err != nil {
			t.Fatal(err)
		}
		rep = r
		if *res, err = backfill.Run(ctx, pub, api, src, backfill.Config{}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			d = pipelinetest.MustDump(t, p)
		}
	}
	if c := replay.Compare(d, pipelinetest.MustDump(t, p), 10); !c.Identical {
		t.Fatalf("a second import changed the tables: %v", c.Diff)
	}
	return first, second, d, rep
}

func TestImportBuiltDatabase(t *testing.T) {
	first, second, d, rep := importTwice(t, MustBuildDB(t))
	if rep.CheckpointRows != 6 || rep.WriteRows != 5 || rep.NotJSON["checkpoints/msgpack"] != 1 || rep.NotJSON["writes/msgpack"] != 1 {
		t.Errorf("report: %+v", rep)
	}
	// 4 checkpoints and 2 write sets (task-c has a msgpack row) imported;
	// the non-JSON checkpoint and the task-c set rejected with reasons.
	if first.Published != 6 || len(first.Rejected) != 2 {
		t.Errorf("first import: %+v", first)
	}
	if second.Published != 0 || second.Skipped != 6 {
		t.Errorf("second import: published %d skipped %d, want 0 and 6", second.Published, second.Skipped)
	}
	var reasons []string
	for _, r := range first.Rejected {
		reasons = append(reasons, r.Where+": "+r.Reason)
	}
	joined := strings.Join(reasons, "\n")
	if !strings.Contains(joined, "1f0-e") || !strings.Contains(joined, "task-c") {
		t.Errorf("rejections: %s", joined)
	}
	counts := replay.Counts(d)
	if counts[1] != 4 || counts[5] != 3 || counts[6] != 1 {
		t.Errorf("counts %v: want 4 checkpoints, 3 writes, 1 live row", counts)
	}
	for _, l := range d.Live {
		// The fork was created last (14:30): it is the newest.
		if l.CheckpointID != "1f0-d" {
			t.Errorf("live: %+v, want the fork 1f0-d", l)
		}
	}
	for _, w := range d.Writes {
		if w.CheckpointID == "1f0-b" && (w.Idx != -1 || w.Channel != "__error__" || string(w.Value) != `"boom"`) {
			t.Errorf("error write: %+v", w)
		}
	}
}

func TestImportFixture(t *testing.T) {
	first, second, d, rep := importTwice(t, filepath.Join("testdata", "checkpoints.db"))
	// The fixture (see testdata/README.md): 5 + 1 fork + 2 sub + 3
	// checkpoints in JSON, one msgpack row; 2 writes per JSON checkpoint.
	if rep.CheckpointRows != 12 || rep.NotJSON["checkpoints/msgpack"] != 1 || len(rep.NotJSONRows) != 1 {
		t.Errorf("report: %+v", rep)
	}
	counts := replay.Counts(d)
	if counts[0] != 2 || counts[1] != 11 || counts[6] != 3 || counts[5] != rep.WriteRows {
		t.Errorf("counts %v (threads, checkpoints, ..., writes, live), %d write rows read", counts, rep.WriteRows)
	}
	if len(first.Rejected) != 0 || second.Published != 0 || second.Skipped != first.Published {
		t.Errorf("first %+v\nsecond %+v", first, second)
	}
	// The sub-graph namespace is its own lineage.
	var sub int
	for _, v := range d.Checkpoints {
		if v.NS == "subgraph:triage" {
			sub++
		}
	}
	if sub != 2 {
		t.Errorf("subgraph:triage: %d checkpoints, want 2", sub)
	}
}
