package oracle

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// This file (and lineage.go, for the lineage reads) builds every statement
// the store sends, with its bind values, as pure functions of the validated
// prefix and the rows, so that tests can check the SQL where Oracle differs
// from PostgreSQL: no empty strings (the sentinel), MERGE instead of ON
// CONFLICT, array binding instead of unnest, padded IN lists, FETCH FIRST
// instead of LIMIT, WITH without RECURSIVE.
// Bind variables are positional (:1, :2, ...) and each appears once: godror
// binds by position, so a repeated name would need its value passed twice.

// keyText encodes text for a key column where Oracle cannot hold "" (it
// stores an empty string as NULL): "" becomes events.EmptySentinel. events/
// rejects the sentinel as a namespace or task path, so the encoding is one
// to one.
func keyText(s string) string {
	if s == "" {
		return events.EmptySentinel
	}
	return s
}

// fromKeyText decodes keyText.
func fromKeyText(s string) string {
	if s == events.EmptySentinel {
		return ""
	}
	return s
}

// binds returns ":first, :first+1, ..." for n variables.
func binds(first, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(":" + strconv.Itoa(first+i))
	}
	return b.String()
}

// chunkSizes are the IN-list lengths the store sends: a list is cut into
// chunks of at most the largest and each chunk is padded (by repeating its
// last element, which changes no result) up to the next size, so that the
// shared pool sees a handful of statement texts, not one per batch size.
var chunkSizes = []int{1, 8, 64, 256}

// chunk is the half-open range [lo, hi) of a list, sent padded to size.
type chunk struct{ lo, hi, size int }

// chunks cuts n elements into chunks.
func chunks(n int) []chunk {
	maxSize := chunkSizes[len(chunkSizes)-1]
	var out []chunk
	for lo := 0; lo < n; lo += maxSize {
		hi := min(lo+maxSize, n)
		size := maxSize
		for _, s := range chunkSizes {
			if s >= hi-lo {
				size = s
				break
			}
		}
		out = append(out, chunk{lo, hi, size})
	}
	return out
}

// inList returns "(c1, c2, ...) IN ((:k, :k+1), ...)" for rows tuples of
// len(cols) binds from :first; a single column gives "c1 IN (:k, ...)".
func inList(cols []string, rows, first int) string {
	if len(cols) == 1 {
		return cols[0] + " IN (" + binds(first, rows) + ")"
	}
	var b strings.Builder
	b.WriteString("(" + strings.Join(cols, ", ") + ") IN (")
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(" + binds(first+r*len(cols), len(cols)) + ")")
	}
	b.WriteString(")")
	return b.String()
}

// padded returns the tuples of c flattened into bind values, each tuple
// given by tuple(i), padded to c.size by repeating the last.
func padded(c chunk, tuple func(i int) []any) []any {
	var args []any
	for i := range c.size {
		args = append(args, tuple(min(c.lo+i, c.hi-1))...)
	}
	return args
}

var (
	keyCols  = []string{"thread_id", "checkpoint_ns", "checkpoint_id"}
	taskCols = []string{"thread_id", "checkpoint_ns", "checkpoint_id", "task_id"}
)

// versionCols are the columns scanVersion reads; the CLOBs come last, as
// they do in every INSERT (see maxTextBind).
const (
	versionMeta = `thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, created_at, seq, event_id, content_hash`
	versionCols = versionMeta + `, checkpoint, metadata`
	writeCols   = `thread_id, checkpoint_ns, checkpoint_id, task_id, idx, task_path, channel, seq, value`
	writeSetCol = `thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, seq, event_id, created_at`
)

// maxTextBind is the longest JSON text bound as a string. godror sizes a
// string bind at 4 bytes per byte (for character set expansion), and a bind
// buffer over 32,767 bytes becomes a LONG bind, which Oracle refuses in
// places (ORA-01461); longer texts are bound as temporary CLOBs
// (godror.Lob{IsClob: true}). Either way the bytes stored are the text's.
const maxTextBind = 32767 / 4

// jsonColumn returns the bind value of a column of JSON texts for array
// binding: []string when every text fits a string bind, else []godror.Lob
// for all of them (a column has one bind type).
func jsonColumn(texts []string) any {
	for _, t := range texts {
		if len(t) > maxTextBind {
			return clobColumn(texts)
		}
	}
	return texts
}

// statements are the fixed statements of one prefix, built once by Open.
type statements struct {
	// Threads.
	lockThreads, putThreads string
	// Checkpoints, conflicts, duplicates.
	deleteCheckpoint, insertCheckpoint string
	deleteConflict, insertConflict     string
	deleteDuplicate, mergeDuplicate    string
	keysWithVersions                   string
	// Write sets.
	deleteWrites, mergeWriteSet, insertWrite string
	// Live rows.
	deleteLive, insertLive, raiseLive string
	// Truncate, per table.
	truncate []string
	// Reads.
	latest, checkpoint, writes, writesOfTask, ancestors string
}

// truncateTables are the tables Truncate empties below a sequence.
var truncateTables = []string{"checkpoints", "conflicts", "duplicates", "write_sets", "writes"}

func newStatements(prefix string) statements {
	p := func(q string) string { return expand(prefix, q) }
	st := statements{
		// Creates the missing thread rows and locks every row, both per
		// array element in bind order; the caller sorts the ids, so two
		// writers lock overlapping threads in the same order and cannot
		// deadlock. The no-op UPDATE is what takes the row lock of an
		// existing thread. Idempotent: a row that exists is left as it is.
		lockThreads: p(`MERGE INTO {{p}}_threads t
USING (SELECT :1 AS thread_id FROM dual) s
ON (t.thread_id = s.thread_id)
WHEN MATCHED THEN UPDATE SET t.last_seq = t.last_seq
WHEN NOT MATCHED THEN INSERT (thread_id, watermark, last_seq) VALUES (s.thread_id, 0, 0)`),
		// Upsert by id: the row ends with the given values however often it runs.
		putThreads: p(`MERGE INTO {{p}}_threads t
USING (SELECT :1 AS thread_id, :2 AS watermark, :3 AS last_seq FROM dual) s
ON (t.thread_id = s.thread_id)
WHEN MATCHED THEN UPDATE SET t.watermark = s.watermark, t.last_seq = s.last_seq
WHEN NOT MATCHED THEN INSERT (thread_id, watermark, last_seq) VALUES (s.thread_id, s.watermark, s.last_seq)`),

		// Rows with JSON are replaced by key with DELETE then INSERT (both
		// array-bound) rather than MERGE: in INSERT ... VALUES the JSON
		// binds go straight into the CLOB columns, where Oracle takes long
		// text, while MERGE's USING (SELECT :n FROM dual) would make them
		// expressions limited to a VARCHAR2. Deleting a missing key and
		// inserting what was deleted are idempotent, and the thread lock
		// keeps every other writer off these keys meanwhile.
		deleteCheckpoint: p(`DELETE FROM {{p}}_checkpoints WHERE thread_id = :1 AND checkpoint_ns = :2 AND checkpoint_id = :3`),
		insertCheckpoint: p(`INSERT INTO {{p}}_checkpoints (` + versionCols + `) VALUES (` + binds(1, 10) + `)`),
		deleteConflict:   p(`DELETE FROM {{p}}_conflicts WHERE thread_id = :1 AND checkpoint_ns = :2 AND checkpoint_id = :3 AND seq = :4`),
		insertConflict:   p(`INSERT INTO {{p}}_conflicts (` + versionCols + `) VALUES (` + binds(1, 10) + `)`),
		deleteDuplicate:  p(`DELETE FROM {{p}}_duplicates WHERE thread_id = :1 AND checkpoint_ns = :2 AND checkpoint_id = :3 AND seq = :4`),
		// Insert-if-absent: a duplicate row's content is fixed by its key
		// and seq, so an existing row is already right.
		mergeDuplicate: p(`MERGE INTO {{p}}_duplicates d
USING (SELECT :1 AS thread_id, :2 AS checkpoint_ns, :3 AS checkpoint_id, :4 AS seq, :5 AS parent_checkpoint_id,
  :6 AS created_at, :7 AS event_id, :8 AS content_hash FROM dual) s
ON (d.thread_id = s.thread_id AND d.checkpoint_ns = s.checkpoint_ns AND d.checkpoint_id = s.checkpoint_id AND d.seq = s.seq)
WHEN NOT MATCHED THEN INSERT (` + versionMeta + `)
  VALUES (s.thread_id, s.checkpoint_ns, s.checkpoint_id, s.parent_checkpoint_id, s.created_at, s.seq, s.event_id, s.content_hash)`),
		keysWithVersions: p(`SELECT checkpoint_ns, checkpoint_id FROM {{p}}_conflicts WHERE thread_id = :1 AND seq >= :2
UNION
SELECT checkpoint_ns, checkpoint_id FROM {{p}}_duplicates WHERE thread_id = :3 AND seq >= :4`),

		deleteWrites: p(`DELETE FROM {{p}}_writes WHERE thread_id = :1 AND checkpoint_ns = :2 AND checkpoint_id = :3 AND task_id = :4`),
		// Upsert of the task's head by key.
		mergeWriteSet: p(`MERGE INTO {{p}}_write_sets w
USING (SELECT :1 AS thread_id, :2 AS checkpoint_ns, :3 AS checkpoint_id, :4 AS task_id, :5 AS task_path,
  :6 AS seq, :7 AS event_id, :8 AS created_at FROM dual) s
ON (w.thread_id = s.thread_id AND w.checkpoint_ns = s.checkpoint_ns AND w.checkpoint_id = s.checkpoint_id AND w.task_id = s.task_id)
WHEN MATCHED THEN UPDATE SET w.task_path = s.task_path, w.seq = s.seq, w.event_id = s.event_id, w.created_at = s.created_at
WHEN NOT MATCHED THEN INSERT (` + writeSetCol + `)
  VALUES (s.thread_id, s.checkpoint_ns, s.checkpoint_id, s.task_id, s.task_path, s.seq, s.event_id, s.created_at)`),
		insertWrite: p(`INSERT INTO {{p}}_writes (` + writeCols + `) VALUES (` + binds(1, 9) + `)`),

		// Recomputed from scratch per thread: delete, then per namespace the
		// row with the highest seq (array-bound over thread ids).
		deleteLive: p(`DELETE FROM {{p}}_live WHERE thread_id = :1`),
		insertLive: p(`INSERT INTO {{p}}_live (thread_id, checkpoint_ns, checkpoint_id, seq)
SELECT thread_id, checkpoint_ns, checkpoint_id, seq FROM (
  SELECT thread_id, checkpoint_ns, checkpoint_id, seq,
    ROW_NUMBER() OVER (PARTITION BY checkpoint_ns ORDER BY seq DESC) AS rn
  FROM {{p}}_checkpoints WHERE thread_id = :1)
WHERE rn = 1`),
		// Upsert that only ever raises: a live row is replaced by one with a
		// higher seq only, so running it again changes nothing. ApplyTx sends
		// each (thread, namespace) once, and the thread lock keeps other
		// writers off it, so no two MERGEs race to insert one new key.
		raiseLive: p(`MERGE INTO {{p}}_live l
USING (SELECT :1 AS thread_id, :2 AS checkpoint_ns, :3 AS checkpoint_id, :4 AS seq FROM dual) s
ON (l.thread_id = s.thread_id AND l.checkpoint_ns = s.checkpoint_ns)
WHEN MATCHED THEN UPDATE SET l.checkpoint_id = s.checkpoint_id, l.seq = s.seq WHERE s.seq > l.seq
WHEN NOT MATCHED THEN INSERT (thread_id, checkpoint_ns, checkpoint_id, seq)
  VALUES (s.thread_id, s.checkpoint_ns, s.checkpoint_id, s.seq)`),

		latest: p(`SELECT ` + prefixed("c", versionCols) + ` FROM {{p}}_live l
JOIN {{p}}_checkpoints c ON c.thread_id = l.thread_id AND c.checkpoint_ns = l.checkpoint_ns AND c.checkpoint_id = l.checkpoint_id
WHERE l.thread_id = :1 AND l.checkpoint_ns = :2`),
		checkpoint:   p(`SELECT ` + versionCols + ` FROM {{p}}_checkpoints WHERE thread_id = :1 AND checkpoint_ns = :2 AND checkpoint_id = :3`),
		writes:       p(`SELECT ` + writeCols + ` FROM {{p}}_writes WHERE thread_id = :1 AND checkpoint_ns = :2 AND checkpoint_id = :3 ORDER BY task_id, idx`),
		writesOfTask: p(`SELECT ` + writeCols + ` FROM {{p}}_writes WHERE thread_id = :1 AND checkpoint_ns = :2 AND checkpoint_id = :3 AND task_id = :4 ORDER BY task_id, idx`),
		// Recursive WITH (no RECURSIVE keyword in Oracle; the column list is
		// required). hops makes every row distinct, so a cycle in bad data
		// is walked, not reported as ORA-32044, and :4 bounds it.
		ancestors: p(`WITH anc (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, hops) AS (
  SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, 0 FROM {{p}}_checkpoints
  WHERE thread_id = :1 AND checkpoint_ns = :2 AND checkpoint_id = :3
  UNION ALL
  SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, a.hops + 1
  FROM anc a, {{p}}_checkpoints c
  WHERE c.thread_id = a.thread_id AND c.checkpoint_ns = a.checkpoint_ns AND c.checkpoint_id = a.parent_checkpoint_id
    AND a.hops < :4
)
SELECT ` + prefixed("c", versionCols) + ` FROM anc a, {{p}}_checkpoints c
WHERE c.thread_id = a.thread_id AND c.checkpoint_ns = a.checkpoint_ns AND c.checkpoint_id = a.checkpoint_id AND a.hops > 0
ORDER BY a.hops`),
	}
	for _, t := range truncateTables {
		st.truncate = append(st.truncate, p(`DELETE FROM {{p}}_`+t+` WHERE thread_id = :1 AND seq < :2`))
	}
	return st
}

// selectThreads reads n thread rows (a padded chunk) by id.
func selectThreads(prefix string, n int) string {
	return expand(prefix, `SELECT thread_id, watermark, last_seq FROM {{p}}_threads WHERE `+inList([]string{"thread_id"}, n, 1))
}

// selectVersions reads the versions of n keys from one of the checkpoints,
// conflicts or duplicates tables; duplicates have no payload columns.
func selectVersions(prefix, table string, n int) string {
	cols := versionCols
	if table == "duplicates" {
		cols = versionMeta
	}
	return expand(prefix, `SELECT `+cols+` FROM {{p}}_`+table+` WHERE `+inList(keyCols, n, 1))
}

// selectWriteSets reads the heads of n tasks.
func selectWriteSets(prefix string, n int) string {
	return expand(prefix, `SELECT `+writeSetCol+` FROM {{p}}_write_sets WHERE `+inList(taskCols, n, 1))
}

// listQuery builds Reader.List's query: newest first by seq, at most Limit
// rows (FETCH FIRST, which Oracle has instead of LIMIT). The caller has
// handled a namespace that cannot exist.
func listQuery(prefix string, q projector.ListQuery) (string, []any) {
	var where []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if q.ThreadID != "" {
		add("thread_id = :%d", q.ThreadID)
	}
	if !q.AllNS {
		add("checkpoint_ns = :%d", keyText(q.NS))
	}
	if q.BeforeSeq > 0 {
		add("seq < :%d", seqArg(q.BeforeSeq))
	}
	query := `SELECT ` + versionCols + ` FROM {{p}}_checkpoints`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, q.Limit)
	query += fmt.Sprintf(" ORDER BY seq DESC FETCH FIRST :%d ROWS ONLY", len(args))
	return expand(prefix, query), args
}

// prefixed qualifies each column in a comma-separated list with alias.
func prefixed(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = alias + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

func seqArg(seq uint64) int64 { return int64(seq) }

// call is one statement with its bind values. For an array-bound statement
// every value is a slice of rows elements and Oracle runs the statement
// once per element, in order, in one round trip; rows 0 means there is
// nothing to send.
type call struct {
	query string
	args  []any
	rows  int
}

// lockThreadsCall creates and locks the rows of ids (sorted by the caller).
func (st statements) lockThreadsCall(ids []string) call {
	return call{st.lockThreads, []any{ids}, len(ids)}
}

func (st statements) putThreadsCall(threads []projector.Thread) call {
	n := len(threads)
	ids, ws, ls := make([]string, n), make([]int64, n), make([]int64, n)
	for i, th := range threads {
		ids[i], ws[i], ls[i] = th.ID, seqArg(th.Watermark), seqArg(th.LastSeq)
	}
	return call{st.putThreads, []any{ids, ws, ls}, n}
}

// keyColumns splits keys into bind columns, the namespace encoded.
func keyColumns(keys []projector.CheckpointKey) (th, ns, id []string) {
	th, ns, id = make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		th[i], ns[i], id[i] = k.ThreadID, keyText(k.NS), k.ID
	}
	return th, ns, id
}

// Positions of the columns of versionCols in versionColumns.
const (
	vThread = iota
	vNS
	vID
	vParent
	vCreated
	vSeq
	vEvent
	vHash
	vState
	vMeta
)

// versionColumns splits versions into the bind columns of versionCols.
func versionColumns(vs []projector.Version) []any {
	n := len(vs)
	th, ns, id, parent, created := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	seq, ev, hash := make([]int64, n), make([]string, n), make([]string, n)
	state, meta := make([]string, n), make([]string, n)
	for i, v := range vs {
		// An empty parent is bound as "", which Oracle stores as NULL.
		th[i], ns[i], id[i], parent[i], created[i] = v.ThreadID, keyText(v.NS), v.ID, v.ParentID, timeText(v.CreatedAt)
		seq[i], ev[i], hash[i] = seqArg(v.Seq), v.EventID, v.Hash
		state[i], meta[i] = string(v.State), string(v.Metadata)
	}
	return []any{th, ns, id, parent, created, seq, ev, hash, jsonColumn(state), jsonColumn(meta)}
}

func pick(cols []any, at ...int) []any {
	out := make([]any, len(at))
	for i, a := range at {
		out[i] = cols[a]
	}
	return out
}

// putCheckpointsCalls replaces winners by key: delete, then insert.
func (st statements) putCheckpointsCalls(rows []projector.Version) []call {
	c := versionColumns(rows)
	return []call{
		{st.deleteCheckpoint, pick(c, vThread, vNS, vID), len(rows)},
		{st.insertCheckpoint, c, len(rows)},
	}
}

func (st statements) deleteCheckpointsCall(keys []projector.CheckpointKey) call {
	th, ns, id := keyColumns(keys)
	return call{st.deleteCheckpoint, []any{th, ns, id}, len(keys)}
}

// putConflictsCalls replaces conflicts by (key, seq): delete, then insert.
func (st statements) putConflictsCalls(rows []projector.Version) []call {
	c := versionColumns(rows)
	return []call{
		{st.deleteConflict, pick(c, vThread, vNS, vID, vSeq), len(rows)},
		{st.insertConflict, c, len(rows)},
	}
}

func (st statements) putDuplicatesCall(rows []projector.Version) call {
	c := versionColumns(rows)
	return call{st.mergeDuplicate, pick(c, vThread, vNS, vID, vSeq, vParent, vCreated, vEvent, vHash), len(rows)}
}

func (st statements) deleteVersionsCalls(refs []projector.VersionRef) []call {
	keys := make([]projector.CheckpointKey, len(refs))
	seqs := make([]int64, len(refs))
	for i, r := range refs {
		keys[i], seqs[i] = r.CheckpointKey, seqArg(r.Seq)
	}
	th, ns, id := keyColumns(keys)
	return []call{
		{st.deleteConflict, []any{th, ns, id, seqs}, len(refs)},
		{st.deleteDuplicate, []any{th, ns, id, seqs}, len(refs)},
	}
}

// replaceWriteSetsCalls deletes the tasks' write rows, upserts their heads
// and inserts the new rows.
func (st statements) replaceWriteSetsCalls(sets []projector.WriteSet) []call {
	n := len(sets)
	th, ns, cp, task := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	paths, seqs, evs, created := make([]string, n), make([]int64, n), make([]string, n), make([]string, n)
	var rows []projector.WriteRow
	for i, s := range sets {
		th[i], ns[i], cp[i], task[i] = s.ThreadID, keyText(s.NS), s.CheckpointID, s.TaskID
		paths[i], seqs[i], evs[i], created[i] = keyText(s.TaskPath), seqArg(s.Seq), s.EventID, timeText(s.CreatedAt)
		rows = append(rows, s.Writes...)
	}
	m := len(rows)
	wth, wns, wcp, wtask, wpath, ch, val := make([]string, m), make([]string, m), make([]string, m), make([]string, m), make([]string, m), make([]string, m), make([]string, m)
	idx, wseq := make([]int64, m), make([]int64, m)
	for i, w := range rows {
		wth[i], wns[i], wcp[i], wtask[i] = w.ThreadID, keyText(w.NS), w.CheckpointID, w.TaskID
		idx[i], wpath[i], ch[i], wseq[i], val[i] = w.Idx, keyText(w.TaskPath), w.Channel, seqArg(w.Seq), string(w.Value)
	}
	return []call{
		{st.deleteWrites, []any{th, ns, cp, task}, n},
		{st.mergeWriteSet, []any{th, ns, cp, task, paths, seqs, evs, created}, n},
		{st.insertWrite, []any{wth, wns, wcp, wtask, idx, wpath, ch, wseq, jsonColumn(val)}, m},
	}
}

func (st statements) truncateCalls(threadID string, below uint64) []call {
	var out []call
	for _, q := range st.truncate {
		out = append(out, call{q, []any{threadID, seqArg(below)}, 1})
	}
	return out
}

func (st statements) refreshLiveCalls(threadIDs []string) []call {
	return []call{
		{st.deleteLive, []any{threadIDs}, len(threadIDs)},
		{st.insertLive, []any{threadIDs}, len(threadIDs)},
	}
}

// raiseLiveCall raises live rows, the namespace encoded.
func (st statements) raiseLiveCall(rows []projector.LiveRow) call {
	n := len(rows)
	th, ns, id, seq := make([]string, n), make([]string, n), make([]string, n), make([]int64, n)
	for i, r := range rows {
		th[i], ns[i], id[i], seq[i] = r.ThreadID, keyText(r.NS), r.CheckpointID, seqArg(r.Seq)
	}
	return call{st.raiseLive, []any{th, ns, id, seq}, n}
}

// Reads of many keys: one query per chunk of the keys.

func selectThreadsCalls(prefix string, ids []string) []call {
	var out []call
	for _, c := range chunks(len(ids)) {
		out = append(out, call{selectThreads(prefix, c.size), padded(c, func(i int) []any { return []any{ids[i]} }), c.size})
	}
	return out
}

// loadTables are the tables LoadVersions reads, in order.
var loadTables = []string{"checkpoints", "conflicts", "duplicates"}

func selectVersionsCalls(prefix, table string, keys []projector.CheckpointKey) []call {
	var out []call
	for _, c := range chunks(len(keys)) {
		args := padded(c, func(i int) []any { return []any{keys[i].ThreadID, keyText(keys[i].NS), keys[i].ID} })
		out = append(out, call{selectVersions(prefix, table, c.size), args, c.size})
	}
	return out
}

func selectWriteSetsCalls(prefix string, keys []projector.TaskKey) []call {
	var out []call
	for _, c := range chunks(len(keys)) {
		args := padded(c, func(i int) []any {
			k := keys[i]
			return []any{k.ThreadID, keyText(k.NS), k.CheckpointID, k.TaskID}
		})
		out = append(out, call{selectWriteSets(prefix, c.size), args, c.size})
	}
	return out
}
