package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

func notFound(k projector.CheckpointKey) error {
	return events.Errorf(events.NotFound, "checkpoint %q not found in thread %q namespace %q", k.ID, k.ThreadID, k.NS)
}

// Latest implements projector.Reader.
func (s *DB) Latest(ctx context.Context, threadID, ns string) (projector.Version, error) {
	row := s.db.QueryRowContext(ctx, s.sql(`SELECT `+prefixed("c", versionCols)+` FROM {{p}}_live l
		JOIN {{p}}_checkpoints c ON c.thread_id = l.thread_id AND c.checkpoint_ns = l.checkpoint_ns AND c.checkpoint_id = l.checkpoint_id
		WHERE l.thread_id = ? AND l.checkpoint_ns = ?`), threadID, ns)
	v, err := scanVersion(row)
	if errors.Is(err, sql.ErrNoRows) {
		return v, events.Errorf(events.NotFound, "thread %q has no checkpoint in namespace %q", threadID, ns)
	}
	return v, classify("latest", err)
}

// Checkpoint implements projector.Reader.
func (s *DB) Checkpoint(ctx context.Context, k projector.CheckpointKey) (projector.Version, error) {
	row := s.db.QueryRowContext(ctx, s.sql(`SELECT `+versionCols+` FROM {{p}}_checkpoints
		WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?`), k.ThreadID, k.NS, k.ID)
	v, err := scanVersion(row)
	if errors.Is(err, sql.ErrNoRows) {
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
	if q.ThreadID != "" {
		where, args = append(where, "thread_id = ?"), append(args, q.ThreadID)
	}
	if !q.AllNS {
		where, args = append(where, "checkpoint_ns = ?"), append(args, q.NS)
	}
	if q.BeforeSeq > 0 {
		where, args = append(where, "seq < ?"), append(args, seqArg(q.BeforeSeq))
	}
	query := `SELECT ` + versionCols + ` FROM {{p}}_checkpoints`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY seq DESC LIMIT ?"
	args = append(args, q.Limit)
	return s.queryVersions(ctx, "list", s.sql(query), args...)
}

func (s *DB) queryVersions(ctx context.Context, op, query string, args ...any) ([]projector.Version, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
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
		FROM {{p}}_writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?`
	args := []any{k.ThreadID, k.NS, k.ID}
	if taskID != "" {
		query += " AND task_id = ?"
		args = append(args, taskID)
	}
	query += " ORDER BY task_id, idx"
	rows, err := s.db.QueryContext(ctx, s.sql(query), args...)
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
	err := sc.Scan(&w.ThreadID, &w.NS, &w.CheckpointID, &w.TaskID, &w.TaskPath, &w.Idx, &w.Channel, &value, &seq)
	w.Value, w.Seq = []byte(value), uint64(seq)
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
			WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?
			UNION ALL
			SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, a.depth + 1
			FROM anc a JOIN {{p}}_checkpoints c
			  ON c.thread_id = a.thread_id AND c.checkpoint_ns = a.checkpoint_ns AND c.checkpoint_id = a.parent_checkpoint_id
			WHERE a.depth < ?
		)
		SELECT `+prefixed("c", versionCols)+` FROM anc a JOIN {{p}}_checkpoints c
		  ON c.thread_id = a.thread_id AND c.checkpoint_ns = a.checkpoint_ns AND c.checkpoint_id = a.checkpoint_id
		WHERE a.depth > 0 ORDER BY a.depth`), k.ThreadID, k.NS, k.ID, depth)
}

// Dump implements projector.Reader, reading every table in one read
// transaction so the dump is consistent.
func (s *DB) Dump(ctx context.Context) (projector.Dump, error) {
	var d projector.Dump
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return d, classify("dump", err)
	}
	defer tx.Rollback()
	each := func(query string, fn func(sc scanner) error) error {
		rows, err := tx.QueryContext(ctx, s.sql(query))
		if err != nil {
			return err
		}
		return scanAll(rows, fn)
	}
	steps := []struct {
		query string
		fn    func(sc scanner) error
	}{
		{`SELECT thread_id, watermark, last_seq FROM {{p}}_threads`, func(sc scanner) error {
			var t projector.Thread
			var w, l int64
			err := sc.Scan(&t.ID, &w, &l)
			t.Watermark, t.LastSeq = uint64(w), uint64(l)
			d.Threads = append(d.Threads, t)
			return err
		}},
		{`SELECT ` + versionCols + ` FROM {{p}}_checkpoints`, func(sc scanner) error {
			v, err := scanVersion(sc)
			d.Checkpoints = append(d.Checkpoints, v)
			return err
		}},
		{`SELECT ` + versionCols + ` FROM {{p}}_conflicts`, func(sc scanner) error {
			v, err := scanVersion(sc)
			d.Conflicts = append(d.Conflicts, v)
			return err
		}},
		{`SELECT ` + dupCols + ` FROM {{p}}_duplicates`, func(sc scanner) error {
			v, err := scanVersion(sc)
			d.Duplicates = append(d.Duplicates, v)
			return err
		}},
		{`SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, seq, event_id, created_at FROM {{p}}_write_sets`, func(sc scanner) error {
			var ws projector.WriteSet
			var seq int64
			var created string
			if err := sc.Scan(&ws.ThreadID, &ws.NS, &ws.CheckpointID, &ws.TaskID, &ws.TaskPath, &seq, &ws.EventID, &created); err != nil {
				return err
			}
			ws.Seq = uint64(seq)
			var err error
			ws.CreatedAt, err = parseTime(created)
			d.WriteSets = append(d.WriteSets, ws)
			return err
		}},
		{`SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, value, seq FROM {{p}}_writes`, func(sc scanner) error {
			w, err := scanWrite(sc)
			d.Writes = append(d.Writes, w)
			return err
		}},
		{`SELECT thread_id, checkpoint_ns, checkpoint_id, seq FROM {{p}}_live`, func(sc scanner) error {
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
			return d, classify("dump", fmt.Errorf("%s: %w", strings.Fields(st.query)[len(strings.Fields(st.query))-1], err))
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
