package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/cairn-io/cairn/projector"
)

// txn implements projector.Tx on one SQLite transaction. Every statement is
// idempotent by primary key (INSERT ... ON CONFLICT DO UPDATE, DELETE by key),
// so applying the same changes twice leaves the same rows.
//
// Inserts, upserts and reads by key are multi-row statements (see bulk): a
// batch costs a few statements per table, not one per row. Deletes by key,
// which only watermarks and out-of-order versions cause, run one prepared
// statement per row (see each).
type txn struct {
	tx *sql.Tx
	s  *DB
}

var _ projector.Tx = (*txn)(nil)

// maxRows is the most rows one multi-row statement carries. At 10 values a
// row that is 1,280 bound parameters, far below SQLite's limit (32,766),
// and enough rows to spread each statement's cost thin.
const maxRows = 128

// chunkRows is the size of the next chunk of a list with n rows left: the
// largest power of two up to maxRows, so that a few statement texts per
// table serve every batch size and stay prepared (see stmtCache).
func chunkRows(n int) int {
	size := maxRows
	for size > n {
		size /= 2
	}
	return size
}

// tuples returns n tuples of width placeholders: "(?, ?), (?, ?)".
func tuples(n, width int) string {
	one := "(?" + strings.Repeat(", ?", width-1) + ")"
	return strings.Repeat(one+", ", n-1) + one
}

// chunks cuts n rows into chunks (see chunkRows) and calls run with each
// one's statement, prepared, and values, row after row. q builds the
// statement from the chunk's placeholder tuples; args(i) gives the values
// of row i, the same number for every row.
func (t *txn) chunks(ctx context.Context, n int, q func(tuples string) string, args func(i int) []any, run func(st *sql.Stmt, vals []any) error) error {
	for lo := 0; lo < n; {
		hi := lo + chunkRows(n-lo)
		var vals []any
		for i := lo; i < hi; i++ {
			vals = append(vals, args(i)...)
		}
		st, err := t.prepare(ctx, q(tuples(hi-lo, len(vals)/(hi-lo))))
		if err != nil {
			return err
		}
		err = run(st, vals)
		st.Close()
		if err != nil {
			return err
		}
		lo = hi
	}
	return nil
}

// bulk runs a multi-row statement over n rows; see chunks.
func (t *txn) bulk(ctx context.Context, n int, q func(tuples string) string, args func(i int) []any) error {
	return t.chunks(ctx, n, q, args, func(st *sql.Stmt, vals []any) error {
		_, err := st.ExecContext(ctx, vals...)
		return err
	})
}

// bulkQuery runs a multi-row query over n rows (see chunks) and calls fn
// for every result row.
func (t *txn) bulkQuery(ctx context.Context, n int, q func(tuples string) string, args func(i int) []any, fn func(sc scanner) error) error {
	return t.chunks(ctx, n, q, args, func(st *sql.Stmt, vals []any) error {
		rows, err := st.QueryContext(ctx, vals...)
		if err != nil {
			return err
		}
		return scanAll(rows, fn)
	})
}

// scanAll calls fn for every row of rows, then closes them.
func scanAll(rows *sql.Rows, fn func(sc scanner) error) error {
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// each runs the statement q once per row for n rows.
func (t *txn) each(ctx context.Context, q string, n int, args func(i int) []any) error {
	if n == 0 {
		return nil
	}
	stmt, err := t.prepare(ctx, q)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i := range n {
		if _, err := stmt.ExecContext(ctx, args(i)...); err != nil {
			return err
		}
	}
	return nil
}

func (t *txn) LockThreads(ctx context.Context, ids []string) (map[string]projector.Thread, error) {
	// The IMMEDIATE transaction already holds SQLite's single write lock.
	id := func(i int) []any { return []any{ids[i]} }
	if err := t.bulk(ctx, len(ids), func(vals string) string {
		return `INSERT INTO {{p}}_threads (thread_id) VALUES ` + vals + ` ON CONFLICT (thread_id) DO NOTHING`
	}, id); err != nil {
		return nil, fmt.Errorf("create threads: %w", err)
	}
	out := make(map[string]projector.Thread, len(ids))
	err := t.bulkQuery(ctx, len(ids), func(vals string) string {
		return `WITH k (t) AS (VALUES ` + vals + `)
			SELECT thread_id, watermark, last_seq FROM k JOIN {{p}}_threads ON thread_id = k.t`
	}, id, func(sc scanner) error {
		var th projector.Thread
		var w, l int64
		if err := sc.Scan(&th.ID, &w, &l); err != nil {
			return err
		}
		th.Watermark, th.LastSeq = uint64(w), uint64(l)
		out[th.ID] = th
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read threads: %w", err)
	}
	return out, nil
}

func (t *txn) PutThreads(ctx context.Context, threads []projector.Thread) error {
	return t.bulk(ctx, len(threads), func(vals string) string {
		return `INSERT INTO {{p}}_threads (thread_id, watermark, last_seq) VALUES ` + vals + `
			ON CONFLICT (thread_id) DO UPDATE SET watermark = excluded.watermark, last_seq = excluded.last_seq`
	}, func(i int) []any {
		th := threads[i]
		return []any{th.ID, seqArg(th.Watermark), seqArg(th.LastSeq)}
	})
}

const versionCols = `thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata, created_at, seq, event_id, content_hash`
const dupCols = `thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, NULL, NULL, created_at, seq, event_id, content_hash`

func (t *txn) LoadVersions(ctx context.Context, keys []projector.CheckpointKey) (map[projector.CheckpointKey]*projector.StoredKey, error) {
	out := make(map[projector.CheckpointKey]*projector.StoredKey)
	// The keys are a VALUES table joined to each table's primary key: one
	// index probe per key and table.
	const join = ` JOIN k ON thread_id = k.t AND checkpoint_ns = k.n AND checkpoint_id = k.i`
	err := t.bulkQuery(ctx, len(keys), func(vals string) string {
		return `WITH k (t, n, i) AS (VALUES ` + vals + `)
			SELECT 0, ` + versionCols + ` FROM {{p}}_checkpoints` + join + `
			UNION ALL SELECT 1, ` + versionCols + ` FROM {{p}}_conflicts` + join + `
			UNION ALL SELECT 2, ` + dupCols + ` FROM {{p}}_duplicates` + join
	}, func(i int) []any {
		return []any{keys[i].ThreadID, keys[i].NS, keys[i].ID}
	}, func(sc scanner) error {
		var role int
		v, err := scanVersion(sc, &role)
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

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanVersion scans versionCols, after the optional leading columns in pre.
func scanVersion(sc scanner, pre ...any) (projector.Version, error) {
	var (
		v           projector.Version
		parent      sql.NullString
		state, meta sql.NullString
		created     string
		seq         int64
	)
	dest := append(pre, &v.ThreadID, &v.NS, &v.ID, &parent, &state, &meta, &created, &seq, &v.EventID, &v.Hash)
	if err := sc.Scan(dest...); err != nil {
		return v, err
	}
	v.ParentID = parent.String
	if state.Valid {
		v.State, v.Metadata = []byte(state.String), []byte(meta.String)
	}
	v.Seq = uint64(seq)
	var err error
	v.CreatedAt, err = parseTime(created)
	return v, err
}

func (t *txn) KeysWithVersionsFrom(ctx context.Context, threadID string, seq uint64) ([]projector.CheckpointKey, error) {
	rows, err := t.tx.QueryContext(ctx, t.s.sql(`
		SELECT checkpoint_ns, checkpoint_id FROM {{p}}_conflicts WHERE thread_id = ? AND seq >= ?
		UNION
		SELECT checkpoint_ns, checkpoint_id FROM {{p}}_duplicates WHERE thread_id = ? AND seq >= ?`),
		threadID, seqArg(seq), threadID, seqArg(seq))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []projector.CheckpointKey
	for rows.Next() {
		k := projector.CheckpointKey{ThreadID: threadID}
		if err := rows.Scan(&k.NS, &k.ID); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

func versionArgs(v projector.Version) []any {
	return []any{v.ThreadID, v.NS, v.ID, nullable(v.ParentID), string(v.State), string(v.Metadata),
		timeText(v.CreatedAt), seqArg(v.Seq), v.EventID, v.Hash}
}

func (t *txn) PutCheckpoints(ctx context.Context, rows []projector.Version) error {
	return t.bulk(ctx, len(rows), func(vals string) string {
		return `INSERT INTO {{p}}_checkpoints (` + versionCols + `) VALUES ` + vals + `
		ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
			parent_checkpoint_id = excluded.parent_checkpoint_id, checkpoint = excluded.checkpoint,
			metadata = excluded.metadata, created_at = excluded.created_at, seq = excluded.seq,
			event_id = excluded.event_id, content_hash = excluded.content_hash`
	}, func(i int) []any { return versionArgs(rows[i]) })
}

func (t *txn) DeleteCheckpoints(ctx context.Context, keys []projector.CheckpointKey) error {
	return t.each(ctx, `DELETE FROM {{p}}_checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?`,
		len(keys), func(i int) []any { return []any{keys[i].ThreadID, keys[i].NS, keys[i].ID} })
}

func (t *txn) PutConflicts(ctx context.Context, rows []projector.Version) error {
	// A conflict row's content is fixed by its seq, so replacing is a no-op
	// when it is already there.
	return t.bulk(ctx, len(rows), func(vals string) string {
		return `INSERT OR REPLACE INTO {{p}}_conflicts (` + versionCols + `) VALUES ` + vals
	}, func(i int) []any { return versionArgs(rows[i]) })
}

func (t *txn) PutDuplicates(ctx context.Context, rows []projector.Version) error {
	return t.bulk(ctx, len(rows), func(vals string) string {
		return `INSERT OR REPLACE INTO {{p}}_duplicates
		(thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, created_at, seq, event_id, content_hash)
		VALUES ` + vals
	}, func(i int) []any {
		v := rows[i]
		return []any{v.ThreadID, v.NS, v.ID, nullable(v.ParentID), timeText(v.CreatedAt), seqArg(v.Seq), v.EventID, v.Hash}
	})
}

func (t *txn) DeleteVersions(ctx context.Context, refs []projector.VersionRef) error {
	for _, table := range []string{"conflicts", "duplicates"} {
		if err := t.each(ctx, `DELETE FROM {{p}}_`+table+` WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ? AND seq = ?`,
			len(refs), func(i int) []any { r := refs[i]; return []any{r.ThreadID, r.NS, r.ID, seqArg(r.Seq)} }); err != nil {
			return err
		}
	}
	return nil
}

func (t *txn) LoadWriteSets(ctx context.Context, keys []projector.TaskKey) (map[projector.TaskKey]projector.WriteSet, error) {
	out := make(map[projector.TaskKey]projector.WriteSet)
	err := t.bulkQuery(ctx, len(keys), func(vals string) string {
		return `WITH k (t, n, c, task) AS (VALUES ` + vals + `)
			SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, seq, event_id, created_at
			FROM k JOIN {{p}}_write_sets ON thread_id = k.t AND checkpoint_ns = k.n AND checkpoint_id = k.c AND task_id = k.task`
	}, func(i int) []any {
		k := keys[i]
		return []any{k.ThreadID, k.NS, k.CheckpointID, k.TaskID}
	}, func(sc scanner) error {
		var ws projector.WriteSet
		var seq int64
		var created string
		if err := sc.Scan(&ws.ThreadID, &ws.NS, &ws.CheckpointID, &ws.TaskID, &ws.TaskPath, &seq, &ws.EventID, &created); err != nil {
			return err
		}
		ws.Seq = uint64(seq)
		var err error
		if ws.CreatedAt, err = parseTime(created); err != nil {
			return err
		}
		out[ws.TaskKey] = ws
		return nil
	})
	return out, err
}

func (t *txn) ReplaceWriteSets(ctx context.Context, sets []projector.WriteSet) error {
	if err := t.each(ctx, `DELETE FROM {{p}}_writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ? AND task_id = ?`,
		len(sets), func(i int) []any { k := sets[i].TaskKey; return []any{k.ThreadID, k.NS, k.CheckpointID, k.TaskID} }); err != nil {
		return err
	}
	if err := t.bulk(ctx, len(sets), func(vals string) string {
		return `INSERT INTO {{p}}_write_sets (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, seq, event_id, created_at)
		VALUES ` + vals + `
		ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id) DO UPDATE SET
			task_path = excluded.task_path, seq = excluded.seq, event_id = excluded.event_id, created_at = excluded.created_at`
	}, func(i int) []any {
		s := sets[i]
		return []any{s.ThreadID, s.NS, s.CheckpointID, s.TaskID, s.TaskPath, seqArg(s.Seq), s.EventID, timeText(s.CreatedAt)}
	}); err != nil {
		return err
	}
	var rows []projector.WriteRow
	for _, s := range sets {
		rows = append(rows, s.Writes...)
	}
	return t.bulk(ctx, len(rows), func(vals string) string {
		return `INSERT INTO {{p}}_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, task_path, channel, value, seq)
		VALUES ` + vals
	}, func(i int) []any {
		w := rows[i]
		return []any{w.ThreadID, w.NS, w.CheckpointID, w.TaskID, w.Idx, w.TaskPath, w.Channel, string(w.Value), seqArg(w.Seq)}
	})
}

func (t *txn) Truncate(ctx context.Context, threadID string, below uint64) error {
	for _, table := range []string{"checkpoints", "conflicts", "duplicates", "write_sets", "writes"} {
		if _, err := t.tx.ExecContext(ctx, t.s.sql(`DELETE FROM {{p}}_`+table+` WHERE thread_id = ? AND seq < ?`),
			threadID, seqArg(below)); err != nil {
			return fmt.Errorf("truncate %s: %w", table, err)
		}
	}
	return nil
}

func (t *txn) RefreshLive(ctx context.Context, threadIDs []string) error {
	if err := t.each(ctx, `DELETE FROM {{p}}_live WHERE thread_id = ?`,
		len(threadIDs), func(i int) []any { return []any{threadIDs[i]} }); err != nil {
		return err
	}
	// Per namespace, the row with the highest seq. The namespaces are found
	// by a skip scan (the next larger namespace, one index probe each) and
	// each namespace's newest row by one probe of (thread, ns, seq), so the
	// cost does not grow with the thread's length.
	return t.each(ctx, `WITH RECURSIVE ns (n) AS (
			SELECT (SELECT MIN(checkpoint_ns) FROM {{p}}_checkpoints WHERE thread_id = ?1)
			UNION ALL
			SELECT (SELECT MIN(checkpoint_ns) FROM {{p}}_checkpoints WHERE thread_id = ?1 AND checkpoint_ns > ns.n)
			FROM ns WHERE ns.n IS NOT NULL
		)
		INSERT INTO {{p}}_live (thread_id, checkpoint_ns, checkpoint_id, seq)
		SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.seq FROM ns
		JOIN {{p}}_checkpoints c ON c.thread_id = ?1 AND c.checkpoint_ns = ns.n
		 AND c.seq = (SELECT MAX(seq) FROM {{p}}_checkpoints WHERE thread_id = ?1 AND checkpoint_ns = ns.n)
		WHERE ns.n IS NOT NULL`,
		len(threadIDs), func(i int) []any { return []any{threadIDs[i]} })
}

func (t *txn) RaiseLive(ctx context.Context, rows []projector.LiveRow) error {
	// Idempotent: a row is only ever replaced by one with a higher seq, so
	// running it again changes nothing.
	return t.bulk(ctx, len(rows), func(vals string) string {
		return `INSERT INTO {{p}}_live (thread_id, checkpoint_ns, checkpoint_id, seq) VALUES ` + vals + `
		ON CONFLICT (thread_id, checkpoint_ns) DO UPDATE SET checkpoint_id = excluded.checkpoint_id, seq = excluded.seq
		WHERE excluded.seq > {{p}}_live.seq`
	}, func(i int) []any {
		r := rows[i]
		return []any{r.ThreadID, r.NS, r.CheckpointID, seqArg(r.Seq)}
	})
}
