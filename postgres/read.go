package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// scanner is pgx.Row or pgx.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanVersion scans versionCols, after the optional leading columns in pre.
func scanVersion(sc scanner, pre ...any) (projector.Version, error) {
	var (
		v                   projector.Version
		parent, state, meta *string
		created             string
		seq                 int64
	)
	dest := append(pre, &v.ThreadID, &v.NS, &v.ID, &parent, &state, &meta, &created, &seq, &v.EventID, &v.Hash)
	if err := sc.Scan(dest...); err != nil {
		return v, err
	}
	if parent != nil {
		v.ParentID = *parent
	}
	if state != nil {
		v.State = []byte(*state)
	}
	if meta != nil {
		v.Metadata = []byte(*meta)
	}
	v.Seq = uint64(seq)
	var err error
	v.CreatedAt, err = parseTime(created)
	return v, err
}

func notFound(k projector.CheckpointKey) error {
	return events.Errorf(events.NotFound, "checkpoint %q not found in thread %q namespace %q", k.ID, k.ThreadID, k.NS)
}

// Latest implements projector.Reader.
func (s *DB) Latest(ctx context.Context, threadID, ns string) (projector.Version, error) {
	row := s.pool.QueryRow(ctx, s.sql(`SELECT `+prefixed("c", versionCols)+` FROM {{p}}_live l
		JOIN {{p}}_checkpoints c ON c.thread_id = l.thread_id AND c.checkpoint_ns = l.checkpoint_ns AND c.checkpoint_id = l.checkpoint_id
		WHERE l.thread_id = $1 AND l.checkpoint_ns = $2`), threadID, ns)
	v, err := scanVersion(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, events.Errorf(events.NotFound, "thread %q has no checkpoint in namespace %q", threadID, ns)
	}
	return v, classify("latest", err)
}

// Checkpoint implements projector.Reader.
func (s *DB) Checkpoint(ctx context.Context, k projector.CheckpointKey) (projector.Version, error) {
	row := s.pool.QueryRow(ctx, s.sql(`SELECT `+versionCols+` FROM {{p}}_checkpoints
		WHERE thread_id = $1 AND checkpoint_ns = $2 AND checkpoint_id = $3`), k.ThreadID, k.NS, k.ID)
	v, err := scanVersion(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, notFound(k)
	}
	return v, classify("checkpoint", err)
}

// List implements projector.Reader.
func (s *DB) List(ctx context.Context, q projector.ListQuery) ([]projector.Version, error) {
	if q.Limit <= 0 {
		return nil, events.Errorf(events.Invalid, "list: limit must be positive")
	}
	var where []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if q.ThreadID != "" {
		add("thread_id = $%d", q.ThreadID)
	}
	if !q.AllNS {
		add("checkpoint_ns = $%d", q.NS)
	}
	if q.BeforeSeq > 0 {
		add("seq < $%d", seqArg(q.BeforeSeq))
	}
	query := `SELECT ` + versionCols + ` FROM {{p}}_checkpoints`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, q.Limit)
	query += fmt.Sprintf(" ORDER BY seq DESC LIMIT $%d", len(args))
	return s.queryVersions(ctx, "list", s.sql(query), args...)
}

func (s *DB) queryVersions(ctx context.Context, op, query string, args ...any) ([]projector.Version, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, classify(op, err)
	}
	defer rows.Close()
	var out []projector.Version
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, classify(op, err)
		}
		out = append(out, v)
	}
	return out, classify(op, rows.Err())
}

// Writes implements projector.Reader.
func (s *DB) Writes(ctx context.Context, k projector.CheckpointKey, taskID string) ([]projector.WriteRow, error) {
	query := `SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, value, seq
		FROM {{p}}_writes WHERE thread_id = $1 AND checkpoint_ns = $2 AND checkpoint_id = $3`
	args := []any{k.ThreadID, k.NS, k.ID}
	if taskID != "" {
		query += " AND task_id = $4"
		args = append(args, taskID)
	}
	query += " ORDER BY task_id, idx"
	rows, err := s.pool.Query(ctx, s.sql(query), args...)
	if err != nil {
		return nil, classify("writes", err)
	}
	defer rows.Close()
	var out []projector.WriteRow
	for rows.Next() {
		w, err := scanWrite(rows)
		if err != nil {
			return nil, classify("writes", err)
		}
		out = append(out, w)
	}
	return out, classify("writes", rows.Err())
}

func scanWrite(sc scanner) (projector.WriteRow, error) {
	var w projector.WriteRow
	var value string
	var seq int64
	var idx int32
	err := sc.Scan(&w.ThreadID, &w.NS, &w.CheckpointID, &w.TaskID, &w.TaskPath, &idx, &w.Channel, &value, &seq)
	w.Idx, w.Value, w.Seq = int64(idx), []byte(value), uint64(seq)
	return w, err
}

// Ancestors implements projector.Reader with a recursive query that follows
// parent links; depth bounds it, so a cycle in bad data cannot loop.
func (s *DB) Ancestors(ctx context.Context, k projector.CheckpointKey, depth int) ([]projector.Version, error) {
	if _, err := s.Checkpoint(ctx, k); err != nil {
		return nil, err
	}
	if depth <= 0 {
		return nil, nil
	}
	return s.queryVersions(ctx, "ancestors", s.sql(`
		WITH RECURSIVE anc (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, depth) AS (
			SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, 0 FROM {{p}}_checkpoints
			WHERE thread_id = $1 AND checkpoint_ns = $2 AND checkpoint_id = $3
			UNION ALL
			SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, a.depth + 1
			FROM anc a JOIN {{p}}_checkpoints c
			  ON c.thread_id = a.thread_id AND c.checkpoint_ns = a.checkpoint_ns AND c.checkpoint_id = a.parent_checkpoint_id
			WHERE a.depth < $4
		)
		SELECT `+prefixed("c", versionCols)+` FROM anc a JOIN {{p}}_checkpoints c
		  ON c.thread_id = a.thread_id AND c.checkpoint_ns = a.checkpoint_ns AND c.checkpoint_id = a.checkpoint_id
		WHERE a.depth > 0 ORDER BY a.depth`), k.ThreadID, k.NS, k.ID, depth)
}

// Dump implements projector.Reader from one REPEATABLE READ snapshot.
func (s *DB) Dump(ctx context.Context) (projector.Dump, error) {
	var d projector.Dump
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return d, classify("dump", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	each := func(query string, fn func(sc scanner) error) error {
		rows, err := tx.Query(ctx, s.sql(query))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := fn(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	steps := []struct {
		table, query string
		fn           func(sc scanner) error
	}{
		{"threads", `SELECT thread_id, watermark, last_seq FROM {{p}}_threads`, func(sc scanner) error {
			var t projector.Thread
			var w, l int64
			err := sc.Scan(&t.ID, &w, &l)
			t.Watermark, t.LastSeq = uint64(w), uint64(l)
			d.Threads = append(d.Threads, t)
			return err
		}},
		{"checkpoints", `SELECT ` + versionCols + ` FROM {{p}}_checkpoints`, func(sc scanner) error {
			v, err := scanVersion(sc)
			d.Checkpoints = append(d.Checkpoints, v)
			return err
		}},
		{"conflicts", `SELECT ` + versionCols + ` FROM {{p}}_conflicts`, func(sc scanner) error {
			v, err := scanVersion(sc)
			d.Conflicts = append(d.Conflicts, v)
			return err
		}},
		{"duplicates", `SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, NULL, NULL, created_at, seq, event_id, content_hash FROM {{p}}_duplicates`, func(sc scanner) error {
			v, err := scanVersion(sc)
			d.Duplicates = append(d.Duplicates, v)
			return err
		}},
		{"write_sets", `SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, seq, event_id, created_at FROM {{p}}_write_sets`, func(sc scanner) error {
			ws, err := scanWriteSet(sc)
			d.WriteSets = append(d.WriteSets, ws)
			return err
		}},
		{"writes", `SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, value, seq FROM {{p}}_writes`, func(sc scanner) error {
			w, err := scanWrite(sc)
			d.Writes = append(d.Writes, w)
			return err
		}},
		{"live", `SELECT thread_id, checkpoint_ns, checkpoint_id, seq FROM {{p}}_live`, func(sc scanner) error {
			var l projector.LiveRow
			var seq int64
			err := sc.Scan(&l.ThreadID, &l.NS, &l.CheckpointID, &seq)
			l.Seq = uint64(seq)
			d.Live = append(d.Live, l)
			return err
		}},
	}
	for _, st := range steps {
		if err := each(st.query, st.fn); err != nil {
			return d, classify("dump "+st.table, err)
		}
	}
	return d, nil
}

// prefixed qualifies each column in a comma-separated list with alias.
func prefixed(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = alias + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// DropTables drops every table of the store's prefix. It is for tests and
// for operators discarding a replay prefix; it cannot be undone.
func (s *DB) DropTables(ctx context.Context) error {
	var tables []string
	for _, t := range []string{"threads", "checkpoints", "conflicts", "duplicates", "write_sets", "writes", "live", "schema_version"} {
		tables = append(tables, s.prefix+"_"+t)
	}
	_, err := s.pool.Exec(ctx, "DROP TABLE IF EXISTS "+strings.Join(tables, ", "))
	return classify("drop tables", err)
}
