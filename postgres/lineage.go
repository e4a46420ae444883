package postgres

import (
	"context"
	"fmt"
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
		args = append(args, seqArg(q.BeforeSeq))
		where = append(where, fmt.Sprintf("t.last_seq < $%d", len(args)))
	}
	if len(q.Prefixes) > 0 {
		args = append(args, q.Prefixes)
		where = append(where, fmt.Sprintf("EXISTS (SELECT 1 FROM unnest($%d::text[]) p WHERE starts_with(t.thread_id, p))", len(args)))
	}
	args = append(args, q.Limit)
	rows, err := s.pool.Query(ctx, s.sql(fmt.Sprintf(`
		WITH page AS (
			SELECT t.thread_id, t.last_seq FROM {{p}}_threads t
			WHERE %s
			ORDER BY t.last_seq DESC LIMIT $%d
		)
		SELECT p.thread_id, p.last_seq, l.checkpoint_ns, l.checkpoint_id, l.seq, c.created_at,
			(SELECT COUNT(*) FROM {{p}}_checkpoints n WHERE n.thread_id = l.thread_id AND n.checkpoint_ns = l.checkpoint_ns)
		FROM page p
		JOIN {{p}}_live l ON l.thread_id = p.thread_id
		JOIN {{p}}_checkpoints c ON c.thread_id = l.thread_id AND c.checkpoint_ns = l.checkpoint_ns AND c.checkpoint_id = l.checkpoint_id
		ORDER BY p.last_seq DESC, l.checkpoint_ns`, strings.Join(where, " AND "), len(args))), args...)
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
	var where []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	add("thread_id = $%d", q.ThreadID)
	if !q.AllNS {
		add("checkpoint_ns = $%d", q.NS)
	}
	if q.ByParent {
		add("parent_checkpoint_id = $%d", q.ParentID)
	}
	if q.BeforeSeq > 0 {
		add("seq < $%d", seqArg(q.BeforeSeq))
	}
	args = append(args, q.Limit)
	return s.queryNodes(ctx, "nodes", s.sql(fmt.Sprintf(`SELECT `+nodeCols+` FROM {{p}}_checkpoints
		WHERE %s ORDER BY seq DESC LIMIT $%d`, strings.Join(where, " AND "), len(args))), args...)
}

// Forks implements projector.Lineage: the partial index on checkpoints
// whose metadata mentions forked_from yields the candidates, and
// projector.ScanForks applies the rule.
func (s *DB) Forks(ctx context.Context, q projector.ForkQuery) ([]projector.Node, error) {
	return projector.ScanForks(ctx, q, func(ctx context.Context, before uint64, limit int) ([]projector.Node, error) {
		query := `SELECT ` + nodeCols + ` FROM {{p}}_checkpoints WHERE strpos(metadata, '"forked_from"') > 0`
		args := []any{limit}
		if before > 0 {
			query, args = query+" AND seq < $2", append(args, seqArg(before))
		}
		return s.queryNodes(ctx, "forks", s.sql(query+" ORDER BY seq DESC LIMIT $1"), args...)
	})
}

func (s *DB) queryNodes(ctx context.Context, op, query string, args ...any) ([]projector.Node, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, classify(op, err)
	}
	defer rows.Close()
	var out []projector.Node
	for rows.Next() {
		var (
			n             projector.Node
			parent        *string
			meta, created string
			seq           int64
		)
		if err := rows.Scan(&n.ThreadID, &n.NS, &n.ID, &parent, &meta, &created, &seq); err != nil {
			return nil, classify(op, err)
		}
		if parent != nil {
			n.ParentID = *parent
		}
		n.Metadata, n.Seq = []byte(meta), uint64(seq)
		var err error
		if n.CreatedAt, err = parseTime(created); err != nil {
			return nil, classify(op, err)
		}
		out = append(out, n)
	}
	return out, classify(op, rows.Err())
}
