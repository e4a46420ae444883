package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

var _ projector.ThreadReader = (*DB)(nil)

// Thread implements projector.ThreadReader.
func (s *DB) Thread(ctx context.Context, threadID string) (projector.Thread, error) {
	t := projector.Thread{ID: threadID}
	var w, l int64
	err := s.db.QueryRowContext(ctx, s.sql(`SELECT watermark, last_seq FROM {{p}}_threads WHERE thread_id = ?`), threadID).Scan(&w, &l)
	if errors.Is(err, sql.ErrNoRows) {
		return t, events.Errorf(events.NotFound, "thread %q not found", threadID)
	}
	t.Watermark, t.LastSeq = uint64(w), uint64(l)
	return t, classify("thread", err)
}
