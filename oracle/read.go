package oracle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanAll calls fn for every row and closes rows.
func scanAll(rows *sql.Rows, fn func(sc scanner) error) error {
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// scanVersion scans versionCols, or versionMeta when payload is false (a
// duplicate row). The CLOBs arrive as Go strings: godror fetches a CLOB as
// its whole text by default, so the bytes are the ones stored.
func scanVersion(sc scanner, payload bool) (projector.Version, error) {
	var (
		v           projector.Version
		parent      *string
		created     string
		seq         int64
		state, meta string
	)
	dest := []any{&v.ThreadID, &v.NS, &v.ID, &parent, &created, &seq, &v.EventID, &v.Hash}
	if payload {
		dest = append(dest, &state, &meta)
	}
	if err := sc.Scan(dest...); err != nil {
		return v, err
	}
	v.NS, v.Seq = fromKeyText(v.NS), uint64(seq)
	if parent != nil {
		v.ParentID = *parent
	}
	if payload {
		v.State, v.Metadata = []byte(state), []byte(meta)
	}
	var err error
	v.CreatedAt, err = parseTime(created)
	return v, err
}

func scanWriteSet(sc scanner) (projector.WriteSet, error) {
	var ws projector.WriteSet
	var seq int64
	var created string
	if err := sc.Scan(&ws.ThreadID, &ws.NS, &ws.CheckpointID, &ws.TaskID, &ws.TaskPath, &seq, &ws.EventID, &created); err != nil {
		return ws, err
	}
	ws.NS, ws.TaskPath, ws.Seq = fromKeyText(ws.NS), fromKeyText(ws.TaskPath), uint64(seq)
	var err error
	ws.CreatedAt, err = parseTime(created)
	return ws, err
}

// scanWrite scans writeCols.
func scanWrite(sc scanner) (projector.WriteRow, error) {
	var w projector.WriteRow
	var value string
	var seq int64
	err := sc.Scan(&w.ThreadID, &w.NS, &w.CheckpointID, &w.TaskID, &w.Idx, &w.TaskPath, &w.Channel, &seq, &value)
	w.NS, w.TaskPath, w.Value, w.Seq = fromKeyText(w.NS), fromKeyText(w.TaskPath), []byte(value), uint64(seq)
	return w, err
}

func timeText(t time.Time) string { return t.UTC().Format(events.TimeFormat) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(events.TimeFormat, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored created_at %q: %w", s, err)
	}
	return t, nil
}

// storable reports whether ns can be a stored namespace: the sentinel
// itself never is (it stands for ""), so a read for it finds nothing rather
// than the root namespace.
func storable(ns string) bool { return ns != events.EmptySentinel }

func notFound(k projector.CheckpointKey) error {
	return events.Errorf(events.NotFound, "checkpoint %q not found in thread %q namespace %q", k.ID, k.ThreadID, k.NS)
}

// Latest implements projector.Reader.
func (s *DB) Latest(ctx context.Context, threadID, ns string) (projector.Version, error) {
	missing := events.Errorf(events.NotFound, "thread %q has no checkpoint in namespace %q", threadID, ns)
	if !storable(ns) {
		return projector.Version{}, missing
	}
	var v projector.Version
	err := s.call(ctx, "latest", func(ctx context.Context) (err error) {
		v, err = scanVersion(s.db.QueryRowContext(ctx, s.stmts.latest, threadID, keyText(ns)), true)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return v, missing
	}
	return v, err
}

// Checkpoint implements projector.Reader.
func (s *DB) Checkpoint(ctx context.Context, k projector.CheckpointKey) (projector.Version, error) {
	if !storable(k.NS) {
		return projector.Version{}, notFound(k)
	}
	var v projector.Version
	err := s.call(ctx, "checkpoint", func(ctx context.Context) (err error) {
		v, err = scanVersion(s.db.QueryRowContext(ctx, s.stmts.checkpoint, k.ThreadID, keyText(k.NS), k.ID), true)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return v, notFound(k)
	}
	return v, err
}

// List implements projector.Reader.
func (s *DB) List(ctx context.Context, q projector.ListQuery) ([]projector.Version, error) {
	if q.Limit <= 0 {
		return nil, events.Errorf(events.Invalid, "list: limit must be positive")
	}
	if !q.AllNS && !storable(q.NS) {
		return nil, nil
	}
	query, args := listQuery(s.prefix, q)
	return s.queryVersions(ctx, "list", query, args...)
}

func (s *DB) queryVersions(ctx context.Context, op, query string, args ...any) ([]projector.Version, error) {
	return queryRows(ctx, s, op, query, args, func(sc scanner) (projector.Version, error) { return scanVersion(sc, true) })
}

// queryRows runs a read outside any transaction, under the call timeout,
// and returns every row as scan reads it.
func queryRows[T any](ctx context.Context, s *DB, op, query string, args []any, scan func(sc scanner) (T, error)) ([]T, error) {
	var out []T
	err := s.call(ctx, op, func(ctx context.Context) error {
		rows, err := s.db.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		return scanAll(rows, func(sc scanner) error {
			v, err := scan(sc)
			out = append(out, v)
			return err
		})
	})
	return out, err
}

// Writes implements projector.Reader, ordered by task id (by bytes: the
// sessions' NLS_SORT is BINARY), then idx.
func (s *DB) Writes(ctx context.Context, k projector.CheckpointKey, taskID string) ([]projector.WriteRow, error) {
	if !storable(k.NS) {
		return nil, nil
	}
	query, args := s.stmts.writes, []any{k.ThreadID, keyText(k.NS), k.ID}
	if taskID != "" {
		query, args = s.stmts.writesOfTask, append(args, taskID)
	}
	return queryRows(ctx, s, "writes", query, args, scanWrite)
}

// Ancestors implements projector.Reader with a recursive WITH query that
// follows parent links; depth bounds it, so a cycle in bad data cannot loop.
func (s *DB) Ancestors(ctx context.Context, k projector.CheckpointKey, depth int) ([]projector.Version, error) {
	if _, err := s.Checkpoint(ctx, k); err != nil {
		return nil, err
	}
	if depth <= 0 {
		return nil, nil
	}
	return s.queryVersions(ctx, "ancestors", s.stmts.ancestors, k.ThreadID, keyText(k.NS), k.ID, depth)
}

// serializable gives Dump one snapshot: Oracle's SERIALIZABLE reads every
// table as of the start of the transaction. (godror sets it with ALTER
// SESSION, which lasts; a READ ONLY option would not do: godror runs its
// SET TRANSACTION READ ONLY before the transaction, with commit on success,
// and skips it when the session's last transaction was read-only too.)
var serializable = &sql.TxOptions{Isolation: sql.LevelSerializable}

// Dump implements projector.Reader from one consistent snapshot.
func (s *DB) Dump(ctx context.Context) (projector.Dump, error) {
	var d projector.Dump
	steps := []struct {
		table, cols string
		fn          func(sc scanner) error
	}{
		{"threads", `thread_id, watermark, last_seq`, func(sc scanner) error {
			var t projector.Thread
			var w, l int64
			err := sc.Scan(&t.ID, &w, &l)
			t.Watermark, t.LastSeq = uint64(w), uint64(l)
			d.Threads = append(d.Threads, t)
			return err
		}},
		{"checkpoints", versionCols, func(sc scanner) error {
			v, err := scanVersion(sc, true)
			d.Checkpoints = append(d.Checkpoints, v)
			return err
		}},
		{"conflicts", versionCols, func(sc scanner) error {
			v, err := scanVersion(sc, true)
			d.Conflicts = append(d.Conflicts, v)
			return err
		}},
		{"duplicates", versionMeta, func(sc scanner) error {
			v, err := scanVersion(sc, false)
			d.Duplicates = append(d.Duplicates, v)
			return err
		}},
		{"write_sets", writeSetCol, func(sc scanner) error {
			ws, err := scanWriteSet(sc)
			d.WriteSets = append(d.WriteSets, ws)
			return err
		}},
		{"writes", writeCols, func(sc scanner) error {
			w, err := scanWrite(sc)
			d.Writes = append(d.Writes, w)
			return err
		}},
		{"live", `thread_id, checkpoint_ns, checkpoint_id, seq`, func(sc scanner) error {
			var l projector.LiveRow
			var seq int64
			err := sc.Scan(&l.ThreadID, &l.NS, &l.CheckpointID, &seq)
			l.NS, l.Seq = fromKeyText(l.NS), uint64(seq)
			d.Live = append(d.Live, l)
			return err
		}},
	}
	err := s.call(ctx, "dump", func(ctx context.Context) error {
		tx, err := s.db.BeginTx(ctx, serializable)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		for _, st := range steps {
			rows, err := tx.QueryContext(ctx, `SELECT `+st.cols+` FROM `+s.prefix+`_`+st.table)
			if err == nil {
				err = scanAll(rows, st.fn)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", st.table, err)
			}
		}
		return nil
	})
	return d, err
}
