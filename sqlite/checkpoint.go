package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// SQLite copies committed pages from the WAL into the database file in a
// checkpoint. By default the commit that brings the WAL to 1,000 pages runs
// it, on the writer's path, where it costs a third of a batch of 4 KiB
// checkpoints. A file store instead checkpoints from a goroutine of its own
// after commits (checkpointer), and leaves to the commits only a backstop
// for when that falls behind.
const (
	// checkpointEvery is the least time between two background checkpoints.
	checkpointEvery = 100 * time.Millisecond
	// backstopPages is the WAL size, in pages, at which a commit checkpoints
	// itself (PRAGMA wal_autocheckpoint).
	backstopPages = 10000
)

// checkpointer runs PASSIVE checkpoints (which neither wait for nor block
// readers and writers) on db after commits, at most every checkpointEvery.
type checkpointer struct {
	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func startCheckpointer(db *sql.DB) *checkpointer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{kick: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go c.run(ctx, db)
	return c
}

// committed tells the checkpointer that a transaction committed. A nil
// checkpointer (an in-memory database has no WAL) ignores it.
func (c *checkpointer) committed() {
	if c == nil {
		return
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// stop stops the goroutine and waits for it.
func (c *checkpointer) stop() {
	if c == nil {
		return
	}
	c.cancel()
	<-c.done
}

func (c *checkpointer) run(ctx context.Context, db *sql.DB) {
	defer close(c.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		}
		// A checkpoint that fails (the database is busy or closing) leaves
		// the pages in the WAL, where reads find them: the next one, or the
		// backstop, copies them.
		_, _ = db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
		select {
		case <-ctx.Done():
			return
		case <-time.After(checkpointEvery):
		}
	}
}
