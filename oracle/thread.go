package oracle

import (
	"context"
	"database/sql"
	"errors"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

var _ projector.ThreadReader = (*DB)(nil)

// Thread implements projector.ThreadReader with one primary-key read of
// the threads table (selectThreads for a single id).
func (s *DB) Thread(ctx context.Context, threadID string) (projector.Thread, error) {
	t := projector.Thread{ID: threadID}
	err := s.call(ctx, "thread", func(ctx context.Context) error {
		var id string
		var w, l int64
		if err := s.db.QueryRowContext(ctx, selectThreads(s.prefix, 1), threadID).Scan(&id, &w, &l); err != nil {
			return err
		}
		t.Watermark, t.LastSeq = uint64(w), uint64(l)
		return nil
	})
	if errors.Is(err, sql.ErrNoRows) {
		return t, events.Errorf(events.NotFound, "thread %q not found", threadID)
	}
	return t, err
}
