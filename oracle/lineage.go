package oracle

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// This file implements projector.Lineage. Its statements, like those of
// sql.go, are built by pure functions of the validated prefix and the query
// (threadsQuery, nodesQuery, forkCandidatesQuery), with a bind for every
// value, numbered in the order the binds appear in the text.

var _ projector.Lineage = (*DB)(nil)

// nodeCols are the columns scanNode reads: a checkpoint without its state,
// the metadata CLOB last.
const nodeCols = `thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, created_at, seq, metadata`

// forkOrigin is the origin thread a checkpoint's metadata records
// (projector.ForkedFrom's forked_from.thread_id), as the index
// <prefix>_checkpoints_forks of migration 0002 stores it: a query must use
// exactly this expression (same path, RETURNING type and ON ERROR/ON EMPTY
// clauses) for Oracle to use that index. NULL ON ERROR means a value that
// is not a scalar, or longer than an id may be, is no origin instead of
// failing the insert.
const forkOrigin = `JSON_VALUE(metadata, '$.forked_from.thread_id' RETURNING VARCHAR2(512 BYTE) NULL ON ERROR NULL ON EMPTY)`

// threadsQuery builds Lineage.Threads' statement: a page of threads that
// hold a checkpoint (a live row), newest activity first, joined to their
// live rows, each with its created_at and its namespace's checkpoint count,
// in one statement so that the page and its summaries are one snapshot.
// Rows of a thread come together, namespaces in byte order: the root
// namespace, stored as events.EmptySentinel (a space), sorts first as ""
// does, since no namespace holds a control character.
//
// A prefix test is SUBSTR(id, 1, LENGTH(p)) = p: both count characters of
// the AL32UTF8 database character set, so for valid UTF-8 it is a byte-wise
// prefix test. Oracle reads a bound "" as NULL, which no comparison
// matches, so the prefix "" (which every id has) drops the condition
// instead. Prefixes are padded like IN lists (see chunks), so that the
// shared pool sees few statement texts.
func threadsQuery(prefix string, q projector.ThreadQuery) (string, []any) {
	where := []string{`EXISTS (SELECT 1 FROM {{p}}_live l WHERE l.thread_id = t.thread_id)`}
	var args []any
	if q.BeforeSeq > 0 {
		args = append(args, seqArg(q.BeforeSeq))
		where = append(where, fmt.Sprintf("t.last_seq < :%d", len(args)))
	}
	if len(q.Prefixes) > 0 && !slices.Contains(q.Prefixes, "") {
		var or []string
		for _, c := range chunks(len(q.Prefixes)) {
			for _, p := range padded(c, func(i int) []any { return []any{q.Prefixes[i]} }) {
				args = append(args, p, p)
				or = append(or, fmt.Sprintf("SUBSTR(t.thread_id, 1, LENGTH(:%d)) = :%d", len(args)-1, len(args)))
			}
		}
		where = append(where, "("+strings.Join(or, " OR ")+")")
	}
	args = append(args, q.Limit)
	query := fmt.Sprintf(`WITH listed AS (
  SELECT t.thread_id, t.last_seq FROM {{p}}_threads t
  WHERE %s
  ORDER BY t.last_seq DESC FETCH FIRST :%d ROWS ONLY
)
SELECT p.thread_id, p.last_seq, l.checkpoint_ns, l.checkpoint_id, l.seq, c.created_at,
  (SELECT COUNT(*) FROM {{p}}_checkpoints n WHERE n.thread_id = l.thread_id AND n.checkpoint_ns = l.checkpoint_ns)
FROM listed p
JOIN {{p}}_live l ON l.thread_id = p.thread_id
JOIN {{p}}_checkpoints c ON c.thread_id = l.thread_id AND c.checkpoint_ns = l.checkpoint_ns AND c.checkpoint_id = l.checkpoint_id
ORDER BY p.last_seq DESC, l.checkpoint_ns`, strings.Join(where, " AND "), len(args))
	return expand(prefix, query), args
}

// nodesQuery builds Lineage.Nodes' statement, newest first. ok is false
// when no checkpoint can match, so nothing need be sent: a namespace that
// is the sentinel itself (see storable), or the children of "" (a root's
// parent is stored as NULL, as in the other stores, so no checkpoint has
// the parent "").
func nodesQuery(prefix string, q projector.NodeQuery) (query string, args []any, ok bool) {
	if (!q.AllNS && !storable(q.NS)) || (q.ByParent && q.ParentID == "") {
		return "", nil, false
	}
	var where []string
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	add("thread_id = :%d", q.ThreadID)
	if !q.AllNS {
		add("checkpoint_ns = :%d", keyText(q.NS))
	}
	if q.ByParent {
		add("parent_checkpoint_id = :%d", q.ParentID)
	}
	if q.BeforeSeq > 0 {
		add("seq < :%d", seqArg(q.BeforeSeq))
	}
	args = append(args, q.Limit)
	query = `SELECT ` + nodeCols + ` FROM {{p}}_checkpoints WHERE ` + strings.Join(where, " AND ") +
		fmt.Sprintf(" ORDER BY seq DESC FETCH FIRST :%d ROWS ONLY", len(args))
	return expand(prefix, query), args, true
}

// forkCandidatesQuery builds the candidates of projector.ScanForks for
// forks of threadID: up to limit checkpoints with seq below beforeSeq (0: no
// bound) whose metadata's forked_from.thread_id is threadID, newest first,
// found through the forks index (see forkOrigin).
//
// ScanForks asks for checkpoints whose metadata text holds
// projector.ForkMarker and applies projector.ForkedFrom to them; any set
// of candidates that holds every fork of threadID gives the same answer,
// since it skips the others. These do: ForkedFrom's origin is the member
// forked_from of the metadata object, and its member thread_id a string,
// which is what JSON_VALUE reads, unescaped as ForkedFrom unescapes it;
// events admits only strict JSON (no repeated keys), so both read the same
// member. Narrowing by the origin thread in SQL, which SQLite's and
// PostgreSQL's marker indexes do not, lets Oracle read only the forks of
// one thread.
func forkCandidatesQuery(prefix, threadID string, beforeSeq uint64, limit int) (string, []any) {
	query := `SELECT ` + nodeCols + ` FROM {{p}}_checkpoints WHERE ` + forkOrigin + ` = :1`
	args := []any{threadID}
	if beforeSeq > 0 {
		args = append(args, seqArg(beforeSeq))
		query += " AND seq < :2"
	}
	args = append(args, limit)
	query += fmt.Sprintf(" ORDER BY seq DESC FETCH FIRST :%d ROWS ONLY", len(args))
	return expand(prefix, query), args
}

// scanNode scans nodeCols. The metadata CLOB arrives as a Go string, as in
// scanVersion: the stored text itself.
func scanNode(sc scanner) (projector.Node, error) {
	var (
		n             projector.Node
		parent        *string
		created, meta string
		seq           int64
	)
	if err := sc.Scan(&n.ThreadID, &n.NS, &n.ID, &parent, &created, &seq, &meta); err != nil {
		return n, err
	}
	n.NS, n.Seq, n.Metadata = fromKeyText(n.NS), uint64(seq), []byte(meta)
	if parent != nil {
		n.ParentID = *parent
	}
	var err error
	n.CreatedAt, err = parseTime(created)
	return n, err
}

// scanThreadRow scans a row of threadsQuery.
func scanThreadRow(sc scanner) (projector.ThreadRow, error) {
	var (
		r                projector.ThreadRow
		created          string
		last, seq, count int64
	)
	if err := sc.Scan(&r.ThreadID, &last, &r.Live.NS, &r.Live.CheckpointID, &seq, &created, &count); err != nil {
		return r, err
	}
	r.Live.ThreadID, r.Live.NS, r.Live.Seq = r.ThreadID, fromKeyText(r.Live.NS), uint64(seq)
	r.LastSeq, r.Checkpoints = uint64(last), count
	var err error
	r.LiveCreatedAt, err = parseTime(created)
	return r, err
}

// Threads implements projector.Lineage (see threadsQuery). A thread is
// listed when it has a live row, which it has exactly when it holds a
// checkpoint.
func (s *DB) Threads(ctx context.Context, q projector.ThreadQuery) ([]projector.ThreadSummary, error) {
	if q.Limit <= 0 {
		return nil, events.Errorf(events.Invalid, "threads: limit must be positive")
	}
	query, args := threadsQuery(s.prefix, q)
	rows, err := queryRows(ctx, s, "threads", query, args, scanThreadRow)
	if err != nil {
		return nil, err
	}
	return projector.GroupThreads(rows), nil
}

// Nodes implements projector.Lineage (see nodesQuery).
func (s *DB) Nodes(ctx context.Context, q projector.NodeQuery) ([]projector.Node, error) {
	if err := projector.CheckNodeQuery(q); err != nil {
		return nil, err
	}
	query, args, ok := nodesQuery(s.prefix, q)
	if !ok {
		return nil, nil
	}
	return queryRows(ctx, s, "nodes", query, args, scanNode)
}

// Forks implements projector.Lineage: the forks index yields the
// checkpoints that name q.ThreadID as their origin (see
// forkCandidatesQuery), and projector.ScanForks applies the rule.
func (s *DB) Forks(ctx context.Context, q projector.ForkQuery) ([]projector.Node, error) {
	return projector.ScanForks(ctx, q, func(ctx context.Context, before uint64, limit int) ([]projector.Node, error) {
		query, args := forkCandidatesQuery(s.prefix, q.ThreadID, before, limit)
		return queryRows(ctx, s, "forks", query, args, scanNode)
	})
}
