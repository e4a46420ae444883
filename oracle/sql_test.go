package oracle

import (
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

func TestKeyTextEncoding(t *testing.T) {
	if got := keyText(""); got != events.EmptySentinel {
		t.Errorf("keyText(\"\") = %q, want the sentinel %q", got, events.EmptySentinel)
	}
	if got := fromKeyText(events.EmptySentinel); got != "" {
		t.Errorf("fromKeyText(sentinel) = %q, want \"\"", got)
	}
	for _, s := range []string{"", "sub:1", "  ", " x", "x ", "ns|with|pipes", "✓"} {
		if got := fromKeyText(keyText(s)); got != s {
			t.Errorf("round trip of %q gave %q", s, got)
		}
		if s != "" && keyText(s) != s {
			t.Errorf("keyText(%q) = %q, want it unchanged", s, keyText(s))
		}
	}
	// The sentinel as a namespace asked for by a reader is nothing stored.
	if storable(events.EmptySentinel) || !storable("") {
		t.Error("storable: the sentinel must not be readable as the root namespace")
	}
}

var bindRE = regexp.MustCompile(`:(\d+)`)

// checkBinds fails unless q uses :1..:n, each once, and returns n.
func checkBinds(t *testing.T, q string) int {
	t.Helper()
	var got []int
	for _, m := range bindRE.FindAllStringSubmatch(q, -1) {
		n, _ := strconv.Atoi(m[1])
		got = append(got, n)
	}
	sorted := slices.Sorted(slices.Values(got))
	for i, n := range sorted {
		if n != i+1 {
			t.Errorf("binds %v: want :1..:%d each once, in\n%s", got, len(got), q)
			break
		}
	}
	return len(got)
}

// bindColumns names the column each bind of q stands for: "col = :n" (and
// <, >=), ":n AS col", and INSERT (cols) VALUES (:1, ...).
func bindColumns(q string) map[int]string {
	out := map[int]string{}
	for _, m := range regexp.MustCompile(`(\w+)\s*(?:=|>=|<)\s*:(\d+)`).FindAllStringSubmatch(q, -1) {
		n, _ := strconv.Atoi(m[2])
		out[n] = m[1]
	}
	for _, m := range regexp.MustCompile(`:(\d+) AS (\w+)`).FindAllStringSubmatch(q, -1) {
		n, _ := strconv.Atoi(m[1])
		out[n] = m[2]
	}
	if m := regexp.MustCompile(`^INSERT INTO \w+ \(([^)]*)\) VALUES \(([^)]*)\)$`).FindStringSubmatch(q); m != nil {
		cols, vals := strings.Split(m[1], ","), strings.Split(m[2], ",")
		for i, v := range vals {
			n, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(v), ":"))
			out[n] = strings.TrimSpace(cols[i])
		}
	}
	return out
}

var (
	t0      = time.Date(2026, 11, 28, 13, 58, 0, 123456789, time.UTC)
	version = projector.Version{
		CheckpointKey: projector.CheckpointKey{ThreadID: "th", NS: "", ID: "v1"},
		ParentID:      "", State: []byte(`{"z":1,"a":12345678901234567890}`), Metadata: []byte(`{"step":1.50}`),
		CreatedAt: t0, Seq: 7, EventID: "ev-7", Hash: "h7",
	}
	writeSet = projector.WriteSet{
		TaskKey:  projector.TaskKey{ThreadID: "th", NS: "", CheckpointID: "v1", TaskID: "task"},
		TaskPath: "", Seq: 9, EventID: "ev-9", CreatedAt: t0,
		Writes: []projector.WriteRow{{
			TaskKey: projector.TaskKey{ThreadID: "th", NS: "", CheckpointID: "v1", TaskID: "task"},
			Idx:     -3, Channel: "ch", Value: []byte(`"we are investigating"`), Seq: 9,
		}},
	}
	// want is the first row's bind value per column for the samples above:
	// both empty texts stored as the sentinel, the empty parent as "".
	want = map[string]any{
		"thread_id": "th", "checkpoint_ns": " ", "checkpoint_id": "v1", "parent_checkpoint_id": "",
		"created_at": "2026-11-28T13:58:00.123456789Z", "event_id": "ev-7", "content_hash": "h7",
		"checkpoint": `{"z":1,"a":12345678901234567890}`, "metadata": `{"step":1.50}`,
		"task_id": "task", "task_path": " ", "idx": int64(-3), "channel": "ch", "value": `"we are investigating"`,
	}
)

// TestCalls checks every write the store sends: the binds of its SQL are
// :1..:n, it passes n values, each a slice of the call's row count, and the
// value at each bind is the one for the column it names.
func TestCalls(t *testing.T) {
	st := newStatements("cairn")
	// Per case, the values that differ from want.
	own := map[string]map[string]any{
		"putThreads":       {"watermark": int64(3), "last_seq": int64(9)},
		"putCheckpoints":   {"seq": int64(7)},
		"putConflicts":     {"seq": int64(7)},
		"putDuplicates":    {"seq": int64(7)},
		"deleteVersions":   {"seq": int64(7)},
		"replaceWriteSets": {"seq": int64(9), "event_id": "ev-9"},
		"truncate":         {"seq": int64(5)},
		"raiseLive":        {"seq": int64(7)},
	}
	cases := map[string][]call{
		"lockThreads":       {st.lockThreadsCall([]string{"th", "tz"})},
		"putThreads":        {st.putThreadsCall([]projector.Thread{{ID: "th", Watermark: 3, LastSeq: 9}})},
		"putCheckpoints":    st.putCheckpointsCalls([]projector.Version{version}),
		"deleteCheckpoints": {st.deleteCheckpointsCall([]projector.CheckpointKey{version.CheckpointKey})},
		"putConflicts":      st.putConflictsCalls([]projector.Version{version}),
		"putDuplicates":     {st.putDuplicatesCall([]projector.Version{version})},
		"deleteVersions":    st.deleteVersionsCalls([]projector.VersionRef{{CheckpointKey: version.CheckpointKey, Seq: 7}}),
		"replaceWriteSets":  st.replaceWriteSetsCalls([]projector.WriteSet{writeSet}),
		"truncate":          st.truncateCalls("th", 5),
		"refreshLive":       st.refreshLiveCalls([]string{"th"}),
		"raiseLive":         {st.raiseLiveCall([]projector.LiveRow{{ThreadID: "th", NS: "", CheckpointID: "v1", Seq: 7}})},
	}
	for name, calls := range cases {
		for _, c := range calls {
			n := checkBinds(t, c.query)
			if len(c.args) != n {
				t.Errorf("%s: %d binds, %d values:\n%s", name, n, len(c.args), c.query)
				continue
			}
			cols := bindColumns(c.query)
			for i, a := range c.args {
				v := reflect.ValueOf(a)
				if v.Kind() == reflect.Slice {
					if v.Len() != c.rows {
						t.Errorf("%s: bind :%d has %d elements, want %d", name, i+1, v.Len(), c.rows)
						continue
					}
					v = v.Index(0)
				}
				col := cols[i+1]
				exp, ok := own[name][col]
				if !ok {
					exp, ok = want[col]
				}
				if !ok {
					t.Errorf("%s: bind :%d names no known column (%q)", name, i+1, col)
				} else if !reflect.DeepEqual(v.Interface(), exp) {
					t.Errorf("%s: bind :%d (%s) = %#v, want %#v", name, i+1, col, v.Interface(), exp)
				}
			}
		}
	}
}

func TestLockThreadsLocksInOrder(t *testing.T) {
	q := newStatements("cairn").lockThreads
	for _, want := range []string{"MERGE INTO cairn_threads", "WHEN MATCHED THEN UPDATE SET", "WHEN NOT MATCHED THEN INSERT"} {
		if !strings.Contains(q, want) {
			t.Errorf("lockThreads lacks %q:\n%s", want, q)
		}
	}
	// One id per array element, so the elements are locked in bind order.
	c := newStatements("cairn").lockThreadsCall([]string{"a", "b", "c"})
	if c.rows != 3 || !slices.Equal(c.args[0].([]string), []string{"a", "b", "c"}) {
		t.Errorf("lock call: %+v", c)
	}
}

func TestRaiseLiveOnlyRaises(t *testing.T) {
	q := newStatements("cairn").raiseLive
	for _, want := range []string{
		"MERGE INTO cairn_live l",
		"ON (l.thread_id = s.thread_id AND l.checkpoint_ns = s.checkpoint_ns)",
		"WHEN MATCHED THEN UPDATE SET l.checkpoint_id = s.checkpoint_id, l.seq = s.seq WHERE s.seq > l.seq",
		"WHEN NOT MATCHED THEN INSERT (thread_id, checkpoint_ns, checkpoint_id, seq)",
	} {
		if !strings.Contains(q, want) {
			t.Errorf("raiseLive lacks %q:\n%s", want, q)
		}
	}
	// One row per array element, the namespaces encoded.
	c := newStatements("cairn").raiseLiveCall([]projector.LiveRow{
		{ThreadID: "a", NS: "", CheckpointID: "v2", Seq: 12}, {ThreadID: "a", NS: "sub", CheckpointID: "w1", Seq: 13},
	})
	if c.rows != 2 || !slices.Equal(c.args[1].([]string), []string{" ", "sub"}) || !slices.Equal(c.args[3].([]int64), []int64{12, 13}) {
		t.Errorf("raise call: %+v", c)
	}
	if c := newStatements("cairn").raiseLiveCall(nil); c.rows != 0 {
		t.Errorf("no rows: got a call of %d rows", c.rows)
	}
}

func TestNoPostgresSyntax(t *testing.T) {
	st := newStatements("cairn")
	all := []string{st.lockThreads, st.putThreads, st.deleteCheckpoint, st.insertCheckpoint, st.deleteConflict, st.insertConflict,
		st.deleteDuplicate, st.mergeDuplicate, st.keysWithVersions, st.deleteWrites, st.mergeWriteSet, st.insertWrite,
		st.deleteLive, st.insertLive, st.raiseLive, st.latest, st.checkpoint, st.writes, st.writesOfTask, st.ancestors}
	all = append(all, st.truncate...)
	q, _ := listQuery("cairn", projector.ListQuery{ThreadID: "t", Limit: 5})
	all = append(all, q, selectThreads("cairn", 8), selectVersions("cairn", "conflicts", 8), selectWriteSets("cairn", 8))
	for _, q := range all {
		checkBinds(t, q)
		for _, pg := range []string{"$1", "ON CONFLICT", "unnest", "LIMIT", "RECURSIVE", "DISTINCT ON", "''", ";", "{{"} {
			if strings.Contains(q, pg) {
				t.Errorf("statement contains %q:\n%s", pg, q)
			}
		}
	}
	if !strings.HasPrefix(st.ancestors, "WITH anc (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, hops) AS (") {
		t.Errorf("ancestors: want a recursive WITH with a column list:\n%s", st.ancestors)
	}
}

func TestListQuery(t *testing.T) {
	cases := []struct {
		q         projector.ListQuery
		where     string
		args      []any
		fetchBind string
	}{
		{projector.ListQuery{ThreadID: "t", NS: "", Limit: 10}, " WHERE thread_id = :1 AND checkpoint_ns = :2", []any{"t", " ", 10}, ":3"},
		{projector.ListQuery{ThreadID: "t", AllNS: true, BeforeSeq: 42, Limit: 5}, " WHERE thread_id = :1 AND seq < :2", []any{"t", int64(42), 5}, ":3"},
		{projector.ListQuery{AllNS: true, Limit: 100}, "", []any{100}, ":1"},
		{projector.ListQuery{NS: "sub", BeforeSeq: 3, Limit: 1}, " WHERE checkpoint_ns = :1 AND seq < :2", []any{"sub", int64(3), 1}, ":3"},
	}
	for _, c := range cases {
		q, args := listQuery("cairn", c.q)
		want := "SELECT " + versionCols + " FROM cairn_checkpoints" + c.where + " ORDER BY seq DESC FETCH FIRST " + c.fetchBind + " ROWS ONLY"
		if q != want {
			t.Errorf("%+v:\ngot  %s\nwant %s", c.q, q, want)
		}
		if !reflect.DeepEqual(args, c.args) {
			t.Errorf("%+v: args %#v, want %#v", c.q, args, c.args)
		}
	}
}

func TestChunksPadInLists(t *testing.T) {
	cases := []struct {
		n    int
		want []chunk
	}{
		{0, nil},
		{1, []chunk{{0, 1, 1}}},
		{2, []chunk{{0, 2, 8}}},
		{9, []chunk{{0, 9, 64}}},
		{256, []chunk{{0, 256, 256}}},
		{300, []chunk{{0, 256, 256}, {256, 300, 64}}},
	}
	for _, c := range cases {
		if got := chunks(c.n); !slices.Equal(got, c.want) {
			t.Errorf("chunks(%d) = %v, want %v", c.n, got, c.want)
		}
	}
	keys := []projector.TaskKey{{ThreadID: "a", NS: "", CheckpointID: "v1", TaskID: "x"}, {ThreadID: "b", NS: "n", CheckpointID: "v2", TaskID: "y"}}
	calls := selectWriteSetsCalls("cairn", keys)
	if len(calls) != 1 || len(calls[0].args) != 8*4 || checkBinds(t, calls[0].query) != 32 {
		t.Fatalf("one chunk of 8 tuples of 4 binds expected, got %d calls", len(calls))
	}
	if !strings.Contains(calls[0].query, "WHERE (thread_id, checkpoint_ns, checkpoint_id, task_id) IN ((:1, :2, :3, :4), (:5, :6, :7, :8),") {
		t.Errorf("tuple IN list: %s", calls[0].query)
	}
	wantArgs := []any{"a", " ", "v1", "x", "b", "n", "v2", "y", "b", "n", "v2", "y"} // padded with the last key
	if !reflect.DeepEqual(calls[0].args[:12], wantArgs) || !reflect.DeepEqual(calls[0].args[28:], wantArgs[4:8]) {
		t.Errorf("args %v", calls[0].args)
	}
	if q := selectThreads("cairn", 3); !strings.HasSuffix(q, "WHERE thread_id IN (:1, :2, :3)") {
		t.Errorf("single-column IN list: %s", q)
	}
	if q := selectVersions("cairn", "duplicates", 1); strings.Contains(q, "metadata") {
		t.Errorf("duplicates have no payload columns: %s", q)
	}
}
