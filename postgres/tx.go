package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-io/cairn/projector"
)

// txn implements projector.Tx on one PostgreSQL transaction. Each bulk
// method is one statement over arrays (unnest), and every statement is
// idempotent by primary key: upserts (ON CONFLICT DO UPDATE, or DO NOTHING
// where a row's content is fixed by its key and seq), and deletes by key.
//
// Writes are pipelined: exec queues a statement, and the queue is sent in
// one round trip before the next read and before the commit. A batch thus
// costs a few round trips whatever the number of tables it touches.
type txn struct {
	tx      pgx.Tx
	s       *DB
	pending pgx.Batch
}

var _ projector.Tx = (*txn)(nil)

// exec queues a statement; its error surfaces at the next flush.
func (t *txn) exec(_ context.Context, q string, args ...any) error {
	t.pending.Queue(t.s.sql(q), args...)
	return nil
}

// flush sends the queued statements in one round trip and returns the
// first error.
func (t *txn) flush(ctx context.Context) error {
	if t.pending.Len() == 0 {
		return nil
	}
	b := t.pending
	t.pending = pgx.Batch{}
	return t.tx.SendBatch(ctx, &b).Close()
}

// read queues a query behind the queued statements and sends them all in
// one round trip, calling each for every row of the query's result.
func (t *txn) read(ctx context.Context, q string, args []any, each func(rows pgx.Rows) error) error {
	t.pending.Queue(t.s.sql(q), args...).Query(func(rows pgx.Rows) error {
		defer rows.Close()
		for rows.Next() {
			if err := each(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	return t.flush(ctx)
}

func (t *txn) LockThreads(ctx context.Context, ids []string) (map[string]projector.Thread, error) {
	if len(ids) == 0 {
		return map[string]projector.Thread{}, nil
	}
	// Insert missing rows, then lock all of them, both in id order, so that
	// two writers with overlapping threads cannot deadlock.
	if err := t.exec(ctx, `INSERT INTO {{p}}_threads (thread_id)
		SELECT id FROM unnest($1::text[]) AS u(id) ORDER BY id
		ON CONFLICT (thread_id) DO NOTHING`, ids); err != nil {
		return nil, fmt.Errorf("create threads: %w", err)
	}
	out := make(map[string]projector.Thread, len(ids))
	err := t.read(ctx, `SELECT thread_id, watermark, last_seq FROM {{p}}_threads
		WHERE thread_id = ANY($1) ORDER BY thread_id FOR UPDATE`, []any{ids}, func(rows pgx.Rows) error {
		var th projector.Thread
		var w, l int64
		if err := rows.Scan(&th.ID, &w, &l); err != nil {
			return err
		}
		th.Watermark, th.LastSeq = uint64(w), uint64(l)
		out[th.ID] = th
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lock threads: %w", err)
	}
	return out, nil
}

func (t *txn) PutThreads(ctx context.Context, threads []projector.Thread) error {
	if len(threads) == 0 {
		return nil
	}
	ids, ws, ls := make([]string, len(threads)), make([]int64, len(threads)), make([]int64, len(threads))
	for i, th := range threads {
		ids[i], ws[i], ls[i] = th.ID, seqArg(th.Watermark), seqArg(th.LastSeq)
	}
	return t.exec(ctx, `INSERT INTO {{p}}_threads (thread_id, watermark, last_seq)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
		ON CONFLICT (thread_id) DO UPDATE SET watermark = excluded.watermark, last_seq = excluded.last_seq`, ids, ws, ls)
}

// keyArrays splits keys into column arrays for unnest.
func keyArrays(keys []projector.CheckpointKey) (th, ns, id []string) {
	th, ns, id = make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		th[i], ns[i], id[i] = k.ThreadID, k.NS, k.ID
	}
	return th, ns, id
}

const versionCols = `thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata, created_at, seq, event_id, content_hash`

func (t *txn) LoadVersions(ctx context.Context, keys []projector.CheckpointKey) (map[projector.CheckpointKey]*projector.StoredKey, error) {
	out := make(map[projector.CheckpointKey]*projector.StoredKey)
	if len(keys) == 0 {
		return out, nil
	}
	th, ns, id := keyArrays(keys)
	const join = ` c JOIN k ON c.thread_id = k.t AND c.checkpoint_ns = k.n AND c.checkpoint_id = k.i`
	err := t.read(ctx, `WITH k AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS k(t, n, i))
		SELECT 0, `+prefixed("c", versionCols)+` FROM {{p}}_checkpoints`+join+`
		UNION ALL
		SELECT 1, `+prefixed("c", versionCols)+` FROM {{p}}_conflicts`+join+`
		UNION ALL
		SELECT 2, c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, NULL, NULL, c.created_at, c.seq, c.event_id, c.content_hash
		FROM {{p}}_duplicates`+join, []any{th, ns, id}, func(rows pgx.Rows) error {
		var role int
		v, err := scanVersion(rows, &role)
		if err != nil {
			return err
		}
		sk := out[v.CheckpointKey]
		if sk == nil {
			sk = &projector.StoredKey{}
			out[v.CheckpointKey] = sk
		}
		switch role {
		case 0:
			sk.Winner = &v
		case 1:
			sk.Conflicts = append(sk.Conflicts, v)
		default:
			sk.Duplicates = append(sk.Duplicates, v)
		}
		return nil
	})
	return out, err
}

func (t *txn) KeysWithVersionsFrom(ctx context.Context, threadID string, seq uint64) ([]projector.CheckpointKey, error) {
	var out []projector.CheckpointKey
	err := t.read(ctx, `
		SELECT checkpoint_ns, checkpoint_id FROM {{p}}_conflicts WHERE thread_id = $1 AND seq >= $2
		UNION
		SELECT checkpoint_ns, checkpoint_id FROM {{p}}_duplicates WHERE thread_id = $1 AND seq >= $2`,
		[]any{threadID, seqArg(seq)}, func(rows pgx.Rows) error {
			k := projector.CheckpointKey{ThreadID: threadID}
			if err := rows.Scan(&k.NS, &k.ID); err != nil {
				return err
			}
			out = append(out, k)
			return nil
		})
	return out, err
}

// versionArrays splits versions into column arrays for unnest.
func versionArrays(vs []projector.Version) []any {
	n := len(vs)
	th, ns, id, parent := make([]string, n), make([]string, n), make([]string, n), make([]*string, n)
	state, meta, created, ev, hash := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	seq := make([]int64, n)
	for i, v := range vs {
		th[i], ns[i], id[i], parent[i] = v.ThreadID, v.NS, v.ID, nullable(v.ParentID)
		state[i], meta[i], created[i] = string(v.State), string(v.Metadata), timeText(v.CreatedAt)
		seq[i], ev[i], hash[i] = seqArg(v.Seq), v.EventID, v.Hash
	}
	return []any{th, ns, id, parent, state, meta, created, seq, ev, hash}
}

const unnestVersions = `SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[])`

func (t *txn) PutCheckpoints(ctx context.Context, rows []projector.Version) error {
	if len(rows) == 0 {
		return nil
	}
	return t.exec(ctx, `INSERT INTO {{p}}_checkpoints (`+versionCols+`) `+unnestVersions+`
		ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
			parent_checkpoint_id = excluded.parent_checkpoint_id, checkpoint = excluded.checkpoint,
			metadata = excluded.metadata, created_at = excluded.created_at, seq = excluded.seq,
			event_id = excluded.event_id, content_hash = excluded.content_hash`, versionArrays(rows)...)
}

func (t *txn) DeleteCheckpoints(ctx context.Context, keys []projector.CheckpointKey) error {
	if len(keys) == 0 {
		return nil
	}
	th, ns, id := keyArrays(keys)
	return t.exec(ctx, `DELETE FROM {{p}}_checkpoints c USING unnest($1::text[], $2::text[], $3::text[]) AS k(t, n, i)
		WHERE c.thread_id = k.t AND c.checkpoint_ns = k.n AND c.checkpoint_id = k.i`, th, ns, id)
}

func (t *txn) PutConflicts(ctx context.Context, rows []projector.Version) error {
	if len(rows) == 0 {
		return nil
	}
	// A conflict row's content is fixed by its key and seq: an existing row
	// is already right.
	return t.exec(ctx, `INSERT INTO {{p}}_conflicts (`+versionCols+`) `+unnestVersions+`
		ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, seq) DO NOTHING`, versionArrays(rows)...)
}

func (t *txn) PutDuplicates(ctx context.Context, rows []projector.Version) error {
	if len(rows) == 0 {
		return nil
	}
	a := versionArrays(rows)
	return t.exec(ctx, `INSERT INTO {{p}}_duplicates
		(thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, created_at, seq, event_id, content_hash)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[])
		ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, seq) DO NOTHING`, a[0], a[1], a[2], a[3], a[6], a[7], a[8], a[9])
}

func (t *txn) DeleteVersions(ctx context.Context, refs []projector.VersionRef) error {
	if len(refs) == 0 {
		return nil
	}
	keys := make([]projector.CheckpointKey, len(refs))
	seqs := make([]int64, len(refs))
	for i, r := range refs {
		keys[i], seqs[i] = r.CheckpointKey, seqArg(r.Seq)
	}
	th, ns, id := keyArrays(keys)
	for _, table := range []string{"conflicts", "duplicates"} {
		if err := t.exec(ctx, `DELETE FROM {{p}}_`+table+` c USING unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS k(t, n, i, s)
			WHERE c.thread_id = k.t AND c.checkpoint_ns = k.n AND c.checkpoint_id = k.i AND c.seq = k.s`, th, ns, id, seqs); err != nil {
			return err
		}
	}
	return nil
}

func taskArrays(keys []projector.TaskKey) (th, ns, cp, task []string) {
	n := len(keys)
	th, ns, cp, task = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, k := range keys {
		th[i], ns[i], cp[i], task[i] = k.ThreadID, k.NS, k.CheckpointID, k.TaskID
	}
	return th, ns, cp, task
}

func (t *txn) LoadWriteSets(ctx context.Context, keys []projector.TaskKey) (map[projector.TaskKey]projector.WriteSet, error) {
	out := make(map[projector.TaskKey]projector.WriteSet)
	if len(keys) == 0 {
		return out, nil
	}
	th, ns, cp, task := taskArrays(keys)
	err := t.read(ctx, `SELECT w.thread_id, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.task_path, w.seq, w.event_id, w.created_at
		FROM {{p}}_write_sets w JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(t, n, c, k)
		  ON w.thread_id = k.t AND w.checkpoint_ns = k.n AND w.checkpoint_id = k.c AND w.task_id = k.k`,
		[]any{th, ns, cp, task}, func(rows pgx.Rows) error {
			ws, err := scanWriteSet(rows)
			if err != nil {
				return err
			}
			out[ws.TaskKey] = ws
			return nil
		})
	return out, err
}

func scanWriteSet(sc scanner) (projector.WriteSet, error) {
	var ws projector.WriteSet
	var seq int64
	var created string
	if err := sc.Scan(&ws.ThreadID, &ws.NS, &ws.CheckpointID, &ws.TaskID, &ws.TaskPath, &seq, &ws.EventID, &created); err != nil {
		return ws, err
	}
	ws.Seq = uint64(seq)
	var err error
	ws.CreatedAt, err = parseTime(created)
	return ws, err
}

func (t *txn) ReplaceWriteSets(ctx context.Context, sets []projector.WriteSet) error {
	if len(sets) == 0 {
		return nil
	}
	keys := make([]projector.TaskKey, len(sets))
	paths, seqs, evs, created := make([]string, len(sets)), make([]int64, len(sets)), make([]string, len(sets)), make([]string, len(sets))
	var rows []projector.WriteRow
	for i, s := range sets {
		keys[i], paths[i], seqs[i], evs[i], created[i] = s.TaskKey, s.TaskPath, seqArg(s.Seq), s.EventID, timeText(s.CreatedAt)
		rows = append(rows, s.Writes...)
	}
	th, ns, cp, task := taskArrays(keys)
	if err := t.exec(ctx, `DELETE FROM {{p}}_writes w USING unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(t, n, c, k)
		WHERE w.thread_id = k.t AND w.checkpoint_ns = k.n AND w.checkpoint_id = k.c AND w.task_id = k.k`, th, ns, cp, task); err != nil {
		return err
	}
	if err := t.exec(ctx, `INSERT INTO {{p}}_write_sets (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, seq, event_id, created_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[])
		ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id) DO UPDATE SET
			task_path = excluded.task_path, seq = excluded.seq, event_id = excluded.event_id, created_at = excluded.created_at`,
		th, ns, cp, task, paths, seqs, evs, created); err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	n := len(rows)
	wth, wns, wcp, wtask, wpath, ch, val := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	idx, wseq := make([]int32, n), make([]int64, n)
	for i, w := range rows {
		wth[i], wns[i], wcp[i], wtask[i], wpath[i] = w.ThreadID, w.NS, w.CheckpointID, w.TaskID, w.TaskPath
		idx[i], ch[i], val[i], wseq[i] = int32(w.Idx), w.Channel, string(w.Value), seqArg(w.Seq)
	}
	return t.exec(ctx, `INSERT INTO {{p}}_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, task_path, channel, value, seq)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[], $8::text[], $9::bigint[])`,
		wth, wns, wcp, wtask, idx, wpath, ch, val, wseq)
}

func (t *txn) Truncate(ctx context.Context, threadID string, below uint64) error {
	for _, table := range []string{"checkpoints", "conflicts", "duplicates", "write_sets", "writes"} {
		if err := t.exec(ctx, `DELETE FROM {{p}}_`+table+` WHERE thread_id = $1 AND seq < $2`, threadID, seqArg(below)); err != nil {
			return fmt.Errorf("truncate %s: %w", table, err)
		}
	}
	return nil
}

func (t *txn) RefreshLive(ctx context.Context, threadIDs []string) error {
	if len(threadIDs) == 0 {
		return nil
	}
	if err := t.exec(ctx, `DELETE FROM {{p}}_live WHERE thread_id = ANY($1)`, threadIDs); err != nil {
		return err
	}
	// Per thread and namespace, the row with the highest seq. The
	// namespaces are found by a skip scan (the next larger namespace, one
	// index probe each) and each one's newest row by one probe of (thread,
	// ns, seq), so the cost does not grow with the thread's length, with or
	// without planner statistics.
	return t.exec(ctx, `WITH RECURSIVE ns (t, n) AS (
			SELECT u.t, (SELECT min(checkpoint_ns) FROM {{p}}_checkpoints WHERE thread_id = u.t)
			FROM unnest($1::text[]) AS u(t)
			UNION ALL
			SELECT ns.t, (SELECT min(checkpoint_ns) FROM {{p}}_checkpoints WHERE thread_id = ns.t AND checkpoint_ns > ns.n)
			FROM ns WHERE ns.n IS NOT NULL
		)
		INSERT INTO {{p}}_live (thread_id, checkpoint_ns, checkpoint_id, seq)
		SELECT ns.t, ns.n, l.checkpoint_id, l.seq FROM ns
		CROSS JOIN LATERAL (SELECT checkpoint_id, seq FROM {{p}}_checkpoints
			WHERE thread_id = ns.t AND checkpoint_ns = ns.n ORDER BY seq DESC LIMIT 1) l
		WHERE ns.n IS NOT NULL`, threadIDs)
}

func (t *txn) RaiseLive(ctx context.Context, rows []projector.LiveRow) error {
	if len(rows) == 0 {
		return nil
	}
	n := len(rows)
	th, ns, id, seq := make([]string, n), make([]string, n), make([]string, n), make([]int64, n)
	for i, r := range rows {
		th[i], ns[i], id[i], seq[i] = r.ThreadID, r.NS, r.CheckpointID, seqArg(r.Seq)
	}
	// Idempotent: a row is only ever replaced by one with a higher seq, so
	// running it again changes nothing.
	return t.exec(ctx, `INSERT INTO {{p}}_live AS l (thread_id, checkpoint_ns, checkpoint_id, seq)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
		ON CONFLICT (thread_id, checkpoint_ns) DO UPDATE SET checkpoint_id = excluded.checkpoint_id, seq = excluded.seq
		WHERE excluded.seq > l.seq`, th, ns, id, seq)
}
