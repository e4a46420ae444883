package sqlite

import (
	"context"
	"database/sql"
	"strings"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

var _ projector.Lineage = (*DB)(nil)

const nodeCols = `thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, metadata, created_at, seq`

// Threads implements projector.Lineage in one statement, so the page and
// its summaries come from one snapshot. A thread is listed when it has a
// live row, which it has exactly when it holds a checkpoint.
func (s *DB) Threads(ctx context.Context, q projector.ThreadQuery) ([]projector.ThreadSummary, error) {
	if q.Limit <= 0 {
		return nil, events.Errorf(events.Invalid, "threads: limit must be positive")
	}
	where := []string{`EXISTS (SELECT 1 FROM {{p}}_live l WHERE l.thread_id = t.thread_id)`}
	var args []any
	if q.BeforeSeq > 0 {
		where, args = append(where, "t.last_seq < ?"), append(args, seqArg(q.BeforeSeq))
	}
	if len(q.Prefixes) > 0 {
		var or []string
		for _, p := range q.Prefixes {
			// substr counts characters, as length does: a byte-wise prefix
			// test for valid UTF-8.
			or, args = append(or, "substr(t.thread_id, 1, length(?)) = ?"), append(args, p, p)
		}
		where = append(where, "("+strings.Join(or, " OR ")+")")
	}
	args = append(args, q.Limit)
	rows, err := s.db.QueryContext(ctx, s.sql(`
		WITH page AS (
			SELECT t.thread_id, t.last_seq FROM {{p}}_threads t
			WHERE `+strings.Join(where, " AND ")+`
			ORDER BY t.last_seq DESC LIMIT ?
		)
		SELECT p.thread_id, p.last_seq, l.checkpoint_ns, l.checkpoint_id, l.seq, c.created_at,
			(SELECT COUNT(*) FROM {{p}}_checkpoints n WHERE n.thread_id = l.thread_id AND n.checkpoint_ns = l.checkpoint_ns)
		FROM page p
		JOIN {{p}}_live l ON l.thread_id = p.thread_id
		JOIN {{p}}_checkpoints c ON c.thread_id = l.thread_id AND c.checkpoint_ns = l.checkpoint_ns AND c.checkpoint_id = l.checkpoint_id
		ORDER BY p.last_seq DESC, l.checkpoint_ns`), args...)
	if err != nil {
		return nil, classify("threads", err)
	}
	defer rows.Close()
	var out []projector.ThreadRow
	for rows.Next() {
		var (
			r                projector.ThreadRow
			created          string
			last, seq, count int64
		)
		if err := rows.Scan(&r.ThreadID, &last, &r.Live.NS, &r.Live.CheckpointID, &seq, &created, &count); err != nil {
			return nil, classify("threads", err)
		}
		r.Live.ThreadID, r.LastSeq, r.Live.Seq, r.Checkpoints = r.ThreadID, uint64(last), uint64(seq), count
		var err error
		if r.LiveCreatedAt, err = parseTime(created); err != nil {
			return nil, classify("threads", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("threads", err)
	}
	return projector.GroupThreads(out), nil
}

// Nodes implements projector.Lineage.
func (s *DB) Nodes(ctx context.Context, q projector.NodeQuery) ([]projector.Node, error) {
	if err := projector.CheckNodeQuery(q); err != nil {
		return nil, err
	}
	where, args := []string{"thread_id = ?"}, []any{q.ThreadID}
	if !q.AllNS {
		where, args = append(where, "checkpoint_ns = ?"), append(args, q.NS)
	}
	if q.ByParent {
		where, args = append(where, "parent_checkpoint_id = ?"), append(args, q.ParentID)
	}
	if q.BeforeSeq > 0 {
		where, args = append(where, "seq < ?"), append(args, seqArg(q.BeforeSeq))
	}
	args = append(args, q.Limit)
	return s.queryNodes(ctx, "nodes", s.sql(`SELECT `+nodeCols+` FROM {{p}}_checkpoints
		WHERE `+strings.Join(where, " AND ")+` ORDER BY seq DESC LIMIT ?`), args...)
}

// Forks implements projector.Lineage: the partial index on checkpoints
// whose metadata mentions forked_from yields the candidates, and
// projector.ScanForks applies the rule.
func (s *DB) Forks(ctx context.Context, q projector.ForkQuery) ([]projector.Node, error) {
	return projector.ScanForks(ctx, q, func(ctx context.Context, before uint64, limit int) ([]projector.Node, error) {
		query := `SELECT ` + nodeCols + ` FROM {{p}}_checkpoints WHERE instr(metadata, '"forked_from"') > 0`
		var args []any
		if before > 0 {
			query, args = query+" AND seq < ?", append(args, seqArg(before))
		}
		return s.queryNodes(ctx, "forks", s.sql(query+" ORDER BY seq DESC LIMIT ?"), append(args, limit)...)
	})
}

func (s *DB) queryNodes(ctx context.Context, op, query string, args ...any) ([]projector.Node, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, classify(op, err)
	}
	defer rows.Close()
	var out []projector.Node
	for rows.Next() {
		var (
			n             projector.Node
			parent        sql.NullString
			meta, created string
			seq           int64
		)
		if err := rows.Scan(&n.ThreadID, &n.NS, &n.ID, &parent, &meta, &created, &seq); err != nil {
			return nil, classify(op, err)
		}
		n.ParentID, n.Metadata, n.Seq = parent.String, []byte(meta), uint64(seq)
		var err error
		if n.CreatedAt, err = parseTime(created); err != nil {
			return nil, classify(op, err)
		}
		out = append(out, n)
	}
	return out, classify(op, rows.Err())
}
