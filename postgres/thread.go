package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

var _ projector.ThreadReader = (*DB)(nil)

// Thread implements projector.ThreadReader.
func (s *DB) Thread(ctx context.Context, threadID string) (projector.Thread, error) {
	t := projector.Thread{ID: threadID}
	var w, l int64
	err := s.pool.QueryRow(ctx, s.sql(`SELECT watermark, last_seq FROM {{p}}_threads WHERE thread_id = $1`), threadID).Scan(&w, &l)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, events.Errorf(events.NotFound, "thread %q not found", threadID)
	}
	t.Watermark, t.LastSeq = uint64(w), uint64(l)
	return t, classify("thread", err)
}
