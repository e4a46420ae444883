package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/cairn-io/cairn/projector"
)

// txn implements projector.Tx on one SQLite transaction. Every statement is
// idempotent by primary key (INSERT ... ON CONFLICT DO UPDATE, DELETE by key),
// so applying the same changes twice leaves the same rows.
type txn struct {
	tx *sql.Tx
	s  *DB
}

var _ projector.Tx = (*txn)(nil)

// each prepares q once and runs it for n rows.
func (t *txn) each(ctx context.Context, q string, n int, args func(i int) []any) error {
	if n == 0 {
		return nil
	}
	stmt, err := t.tx.PrepareContext(ctx, t.s.sql(q))
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
	if err := t.each(ctx, `INSERT INTO {{p}}_threads (thread_id) VALUES (?) ON CONFLICT (thread_id) DO NOTHING`,
		len(ids), func(i int) []any { return []any{ids[i]} }); err != nil {
		return nil, fmt.Errorf("create threads: %w", err)
	}
	out := make(map[string]projector.Thread, len(ids))
	stmt, err := t.tx.PrepareContext(ctx, t.s.sql(`SELECT watermark, last_seq FROM {{p}}_threads WHERE thread_id = ?`))
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	for _, id := range ids {
		th := projector.Thread{ID: id}
		var w, l int64
		if err := stmt.QueryRowContext(ctx, id).Scan(&w, &l); err != nil {
			return nil, fmt.Errorf("read thread: %w", err)
		}
		th.Watermark, th.LastSeq = uint64(w), uint64(l)
		out[id] = th
	}
	return out, nil
}

func (t *txn) PutThreads(ctx context.Context, threads []projector.Thread) error {
	return t.each(ctx, `INSERT INTO {{p}}_threads (thread_id, watermark, last_seq) VALUES (?, ?, ?)
		ON CONFLICT (thread_id) DO UPDATE SET watermark = excluded.watermark, last_seq = excluded.last_seq`,
		len(threads), func(i int) []any {
			th := threads[i]
			return []any{th.ID, seqArg(th.Watermark), seqArg(th.LastSeq)}
		})
}

const versionCols = `thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata, created_at, seq, event_id, content_hash`
const dupCols = `thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, NULL, NULL, created_at, seq, event_id, content_hash`

func (t *txn) LoadVersions(ctx context.Context, keys []projector.CheckpointKey) (map[projector.CheckpointKey]*projector.StoredKey, error) {
	out := make(map[projector.CheckpointKey]*projector.StoredKey)
	const where = ` WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?`
	queries := []string{
		`SELECT 0, ` + versionCols + ` FROM {{p}}_checkpoints` + where,
		`SELECT 1, ` + versionCols + ` FROM {{p}}_conflicts` + where,
		`SELECT 2, ` + dupCols + ` FROM {{p}}_duplicates` + where,
	}
	stmt, err := t.tx.PrepareContext(ctx, t.s.sql(queries[0]+" UNION ALL "+queries[1]+" UNION ALL "+queries[2]+" ORDER BY 9"))
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	for _, k := range keys {
		rows, err := stmt.QueryContext(ctx, k.ThreadID, k.NS, k.ID, k.ThreadID, k.NS, k.ID, k.ThreadID, k.NS, k.ID)
		if err != nil {
			return nil, err
		}
		err = func() error {
			defer rows.Close()
			for rows.Next() {
				var role int
				v, err := scanVersion(rows, &role)
				if err != nil {
					return err
				}
				sk := out[k]
				if sk == nil {
					sk = &projector.StoredKey{}
					out[k] = sk
				}
				switch role {
				case 0:
					sk.Winner = &v
				case 1:
					sk.Conflicts = append(sk.Conflicts, v)
				default:
					sk.Duplicates = append(sk.Duplicates, v)
				}
			}
			return rows.Err()
		}()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
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
	return t.each(ctx, `INSERT INTO {{p}}_checkpoints (`+versionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
			parent_checkpoint_id = excluded.parent_checkpoint_id, checkpoint = excluded.checkpoint,
			metadata = excluded.metadata, created_at = excluded.created_at, seq = excluded.seq,
			event_id = excluded.event_id, content_hash = excluded.content_hash`,
		len(rows), func(i int) []any { return versionArgs(rows[i]) })
}

func (t *txn) DeleteCheckpoints(ctx context.Context, keys []projector.CheckpointKey) error {
	return t.each(ctx, `DELETE FROM {{p}}_checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?`,
		len(keys), func(i int) []any { return []any{keys[i].ThreadID, keys[i].NS, keys[i].ID} })
}

func (t *txn) PutConflicts(ctx context.Context, rows []projector.Version) error {
	// A conflict row's content is fixed by its seq, so replacing is a no-op
	// when it is already there.
	return t.each(ctx, `INSERT OR REPLACE INTO {{p}}_conflicts (`+versionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		len(rows), func(i int) []any { return versionArgs(rows[i]) })
}

func (t *txn) PutDuplicates(ctx context.Context, rows []projector.Version) error {
	return t.each(ctx, `INSERT OR REPLACE INTO {{p}}_duplicates
		(thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, created_at, seq, event_id, content_hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		len(rows), func(i int) []any {
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
	stmt, err := t.tx.PrepareContext(ctx, t.s.sql(`SELECT task_path, seq, event_id, created_at FROM {{p}}_write_sets
		WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ? AND task_id = ?`))
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	for _, k := range keys {
		ws := projector.WriteSet{TaskKey: k}
		var seq int64
		var created string
		err := stmt.QueryRowContext(ctx, k.ThreadID, k.NS, k.CheckpointID, k.TaskID).Scan(&ws.TaskPath, &seq, &ws.EventID, &created)
		if err == sql.ErrNoRows {
			continue
		}
		if err != nil {
			return nil, err
		}
		ws.Seq = uint64(seq)
		if ws.CreatedAt, err = parseTime(created); err != nil {
			return nil, err
		}
		out[k] = ws
	}
	return out, nil
}

func (t *txn) ReplaceWriteSets(ctx context.Context, sets []projector.WriteSet) error {
	if err := t.each(ctx, `DELETE FROM {{p}}_writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ? AND task_id = ?`,
		len(sets), func(i int) []any { k := sets[i].TaskKey; return []any{k.ThreadID, k.NS, k.CheckpointID, k.TaskID} }); err != nil {
		return err
	}
	if err := t.each(ctx, `INSERT INTO {{p}}_write_sets (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, seq, event_id, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id) DO UPDATE SET
			task_path = excluded.task_path, seq = excluded.seq, event_id = excluded.event_id, created_at = excluded.created_at`,
		len(sets), func(i int) []any {
			s := sets[i]
			return []any{s.ThreadID, s.NS, s.CheckpointID, s.TaskID, s.TaskPath, seqArg(s.Seq), s.EventID, timeText(s.CreatedAt)}
		}); err != nil {
		return err
	}
	var rows []projector.WriteRow
	for _, s := range sets {
		rows = append(rows, s.Writes...)
	}
	return t.each(ctx, `INSERT INTO {{p}}_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, task_path, channel, value, seq)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		len(rows), func(i int) []any {
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
