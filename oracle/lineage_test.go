package oracle

import (
	"context"
	"errors"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// checkBindOrder fails unless the binds of q appear in the text as :1, :2,
// ... in that order: godror binds by position, so the nth bind in the text
// takes the nth value whatever its number.
func checkBindOrder(t *testing.T, q string) {
	t.Helper()
	for i, m := range bindRE.FindAllStringSubmatch(q, -1) {
		if n, _ := strconv.Atoi(m[1]); n != i+1 {
			t.Errorf("bind %d in the text is :%d, want :%d:\n%s", i+1, n, i+1, q)
			return
		}
	}
}

// checkLineageSQL checks what every lineage statement must be: binds
// :1..:n in text order, as many values, FETCH FIRST for the limit (bound,
// last), and nothing of other dialects.
func checkLineageSQL(t *testing.T, q string, args []any) {
	t.Helper()
	if n := checkBinds(t, q); n != len(args) {
		t.Errorf("%d binds, %d values:\n%s", n, len(args), q)
	}
	checkBindOrder(t, q)
	if !regexp.MustCompile(`ORDER BY [a-z_.]*seq DESC FETCH FIRST :\d+ ROWS ONLY`).MatchString(q) {
		t.Errorf("no newest-first FETCH FIRST:\n%s", q)
	}
	for _, bad := range []string{"$1", "LIMIT", "RECURSIVE", "ON CONFLICT", "unnest", "starts_with", "strpos", "instr(", "''", ";", "{{"} {
		if strings.Contains(q, bad) {
			t.Errorf("statement contains %q:\n%s", bad, q)
		}
	}
}

func TestThreadsQuery(t *testing.T) {
	const tail = `
  ORDER BY t.last_seq DESC FETCH FIRST :%d ROWS ONLY
)
SELECT p.thread_id, p.last_seq, l.checkpoint_ns, l.checkpoint_id, l.seq, c.created_at,
  (SELECT COUNT(*) FROM cairn_checkpoints n WHERE n.thread_id = l.thread_id AND n.checkpoint_ns = l.checkpoint_ns)
FROM listed p
JOIN cairn_live l ON l.thread_id = p.thread_id
JOIN cairn_checkpoints c ON c.thread_id = l.thread_id AND c.checkpoint_ns = l.checkpoint_ns AND c.checkpoint_id = l.checkpoint_id
ORDER BY p.last_seq DESC, l.checkpoint_ns`
	head := "WITH listed AS (\n  SELECT t.thread_id, t.last_seq FROM cairn_threads t\n  WHERE EXISTS (SELECT 1 FROM cairn_live l WHERE l.thread_id = t.thread_id)"
	q, args := threadsQuery("cairn", projector.ThreadQuery{Limit: 10})
	if want := head + strings.Replace(tail, "%d", "1", 1); q != want {
		t.Errorf("no bounds:\ngot  %s\nwant %s", q, want)
	}
	if !reflect.DeepEqual(args, []any{10}) {
		t.Errorf("no bounds: args %#v", args)
	}

	q, args = threadsQuery("cairn", projector.ThreadQuery{BeforeSeq: 42, Prefixes: []string{"inc", "o'x ✓"}, Limit: 5})
	checkLineageSQL(t, q, args)
	// Two prefixes are padded to 8, repeating the last; each is bound twice.
	wantWhere := " AND t.last_seq < :1 AND (SUBSTR(t.thread_id, 1, LENGTH(:2)) = :3 OR SUBSTR(t.thread_id, 1, LENGTH(:4)) = :5 OR "
	if !strings.HasPrefix(q, head+wantWhere) || strings.Count(q, "SUBSTR(t.thread_id, 1, LENGTH(") != 8 {
		t.Errorf("prefixes:\n%s", q)
	}
	wantArgs := []any{int64(42), "inc", "inc"}
	for range 7 {
		wantArgs = append(wantArgs, "o'x ✓", "o'x ✓")
	}
	if wantArgs = append(wantArgs, 5); !reflect.DeepEqual(args, wantArgs) {
		t.Errorf("prefixes: args %#v, want %#v", args, wantArgs)
	}
	if strings.Contains(q, "inc") || strings.Contains(q, "o'x") {
		t.Errorf("a prefix is in the SQL text, not bound:\n%s", q)
	}

	// "" is a prefix of every id; bound, Oracle would read it as NULL and
	// match nothing, so it drops the condition.
	q, args = threadsQuery("cairn", projector.ThreadQuery{Prefixes: []string{"a", ""}, Limit: 3})
	if strings.Contains(q, "SUBSTR") || !reflect.DeepEqual(args, []any{3}) {
		t.Errorf("prefix \"\": %#v\n%s", args, q)
	}

	// More than 256 prefixes: chunks of 256 and 64, all in one statement.
	many := make([]string, 300)
	for i := range many {
		many[i] = "p" + strconv.Itoa(i)
	}
	q, args = threadsQuery("cairn", projector.ThreadQuery{Prefixes: many, Limit: 1})
	checkLineageSQL(t, q, args)
	if got := strings.Count(q, "SUBSTR("); got != 256+64 {
		t.Errorf("300 prefixes: %d conditions, want 320", got)
	}
}

func TestNodesQuery(t *testing.T) {
	const sel = "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, created_at, seq, metadata FROM cairn_checkpoints WHERE "
	cases := []struct {
		q     projector.NodeQuery
		where string
		args  []any
	}{
		{projector.NodeQuery{ThreadID: "t", AllNS: true, Limit: 100},
			"thread_id = :1 ORDER BY seq DESC FETCH FIRST :2 ROWS ONLY", []any{"t", 100}},
		// The root namespace is bound as the sentinel.
		{projector.NodeQuery{ThreadID: "t", NS: "", Limit: 7},
			"thread_id = :1 AND checkpoint_ns = :2 ORDER BY seq DESC FETCH FIRST :3 ROWS ONLY", []any{"t", " ", 7}},
		{projector.NodeQuery{ThreadID: "t", NS: "sub", BeforeSeq: 9, Limit: 2},
			"thread_id = :1 AND checkpoint_ns = :2 AND seq < :3 ORDER BY seq DESC FETCH FIRST :4 ROWS ONLY", []any{"t", "sub", int64(9), 2}},
		{projector.NodeQuery{ThreadID: "t", ByParent: true, ParentID: "v2", BeforeSeq: 5, Limit: 1},
			"thread_id = :1 AND checkpoint_ns = :2 AND parent_checkpoint_id = :3 AND seq < :4 ORDER BY seq DESC FETCH FIRST :5 ROWS ONLY",
			[]any{"t", " ", "v2", int64(5), 1}},
	}
	for _, c := range cases {
		q, args, ok := nodesQuery("cairn", c.q)
		if !ok {
			t.Errorf("%+v: nothing to send", c.q)
			continue
		}
		if want := sel + c.where; q != want {
			t.Errorf("%+v:\ngot  %s\nwant %s", c.q, q, want)
		}
		if !reflect.DeepEqual(args, c.args) {
			t.Errorf("%+v: args %#v, want %#v", c.q, args, c.args)
		}
		checkLineageSQL(t, q, args)
	}
	// Nothing can match: no statement.
	for _, q := range []projector.NodeQuery{
		{ThreadID: "t", NS: events.EmptySentinel, Limit: 1},
		{ThreadID: "t", ByParent: true, ParentID: "", Limit: 1},
	} {
		if _, _, ok := nodesQuery("cairn", q); ok {
			t.Errorf("%+v: a statement is sent for a query nothing can match", q)
		}
	}
	if _, _, ok := nodesQuery("cairn", projector.NodeQuery{ThreadID: "t", AllNS: true, Limit: 1}); !ok {
		t.Error("every namespace: no statement")
	}
}

func TestForkCandidatesQuery(t *testing.T) {
	const sel = "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, created_at, seq, metadata FROM cairn_checkpoints WHERE " +
		"JSON_VALUE(metadata, '$.forked_from.thread_id' RETURNING VARCHAR2(512 BYTE) NULL ON ERROR NULL ON EMPTY) = :1"
	cases := []struct {
		before uint64
		rest   string
		args   []any
	}{
		{0, " ORDER BY seq DESC FETCH FIRST :2 ROWS ONLY", []any{"origin ✓", 256}},
		{11, " AND seq < :2 ORDER BY seq DESC FETCH FIRST :3 ROWS ONLY", []any{"origin ✓", int64(11), 256}},
	}
	for _, c := range cases {
		q, args := forkCandidatesQuery("cairn", "origin ✓", c.before, 256)
		if q != sel+c.rest {
			t.Errorf("before %d:\ngot  %s\nwant %s", c.before, q, sel+c.rest)
		}
		if !reflect.DeepEqual(args, c.args) {
			t.Errorf("before %d: args %#v, want %#v", c.before, args, c.args)
		}
		checkLineageSQL(t, q, args)
	}
}

// TestForkIndexMatchesQuery checks that migration 0002 indexes exactly the
// expression the fork query compares: Oracle uses a JSON_VALUE index only
// for the same path, RETURNING type and error handling.
func TestForkIndexMatchesQuery(t *testing.T) {
	var ddl []string
	for _, m := range migrations {
		if m.name == "0002_lineage.sql" {
			ddl = ddlStatements("cairn", m)
		}
	}
	var index string
	for _, s := range ddl {
		if strings.HasPrefix(s, "CREATE INDEX IF NOT EXISTS cairn_checkpoints_forks ON cairn_checkpoints") {
			index = strings.Join(strings.Fields(s), " ")
		}
	}
	if want := "(" + forkOrigin + ", seq)"; !strings.HasSuffix(index, want) {
		t.Errorf("forks index %q does not end with %q", index, want)
	}
	for _, want := range []string{"cairn_threads_last_seq ON cairn_threads (last_seq)",
		"cairn_checkpoints_parent ON cairn_checkpoints (thread_id, checkpoint_ns, parent_checkpoint_id, seq)"} {
		if !strings.Contains(strings.Join(ddl, "\n"), want) {
			t.Errorf("migration 0002 lacks the index %s", want)
		}
	}
	if q, _ := forkCandidatesQuery("cairn", "t", 0, 1); !strings.Contains(q, "WHERE "+forkOrigin+" = :1") {
		t.Errorf("fork query does not compare the indexed expression:\n%s", q)
	}
}

// TestLineageChecksFirst runs the reads' argument checks, which need no
// database: the store has none here, so any statement sent would panic.
func TestLineageChecksFirst(t *testing.T) {
	s := &DB{prefix: "cairn"}
	ctx := context.Background()
	if _, err := s.Threads(ctx, projector.ThreadQuery{}); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("threads, limit 0: got %v, want invalid", err)
	}
	for _, q := range []projector.NodeQuery{{AllNS: true, Limit: 1}, {ThreadID: "t", Limit: 0}, {ThreadID: "t", AllNS: true, ByParent: true, Limit: 1}} {
		if _, err := s.Nodes(ctx, q); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("nodes %+v: got %v, want invalid", q, err)
		}
	}
	for _, q := range []projector.NodeQuery{{ThreadID: "t", NS: events.EmptySentinel, Limit: 1}, {ThreadID: "t", ByParent: true, Limit: 1}} {
		if ns, err := s.Nodes(ctx, q); ns != nil || err != nil {
			t.Errorf("nodes %+v: got %v, %v, want nothing", q, ns, err)
		}
	}
	for _, q := range []projector.ForkQuery{{AllNS: true, Limit: 1}, {ThreadID: "t", AllNS: true}, {ThreadID: "t", AllNS: true, CheckpointID: "v1", Limit: 1}} {
		if _, err := s.Forks(ctx, q); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("forks %+v: got %v, want invalid", q, err)
		}
	}
}
