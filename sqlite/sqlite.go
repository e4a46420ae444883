// Package sqlite is cairn's embedded store: the projection tables in one
// SQLite database file (or in memory), through modernc.org/sqlite, a pure-Go
// driver chosen so that the default build and `go run ./cmd/agent` need no C
// toolchain and no system library. It implements projector.Store and passes
// the conformance suite in projector/storetest.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// Defaults for Config.
const (
	DefaultBusyTimeout = 10 * time.Second
	// MemoryPath opens a private in-memory database.
	MemoryPath = ":memory:"
)

// Config configures Open.
type Config struct {
	// Path is the database file, created if missing, or MemoryPath.
	Path string
	// Prefix is the table prefix; default projector.DefaultPrefix.
	Prefix string
	// BusyTimeout is how long a statement waits for another connection's
	// lock before failing as Unavailable; default DefaultBusyTimeout.
	BusyTimeout time.Duration
}

// DB is a SQLite-backed projector.Store.
type DB struct {
	db     *sql.DB
	path   string
	prefix string
	stmts  stmtCache
	ckpt   *checkpointer // nil for an in-memory database
}

var _ projector.Store = (*DB)(nil)

//go:embed migrations/*.sql
var migrations embed.FS

// Open opens (creating if needed) the database and applies any pending
// migrations. Two processes opening one file at once are safe: migrations
// run in an IMMEDIATE transaction, which SQLite serialises.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = projector.DefaultPrefix
	}
	if err := projector.CheckPrefix(cfg.Prefix); err != nil {
		return nil, err
	}
	if cfg.Path == "" {
		return nil, events.Errorf(events.Invalid, "sqlite: no database path")
	}
	if cfg.BusyTimeout <= 0 {
		cfg.BusyTimeout = DefaultBusyTimeout
	}
	// A page cache of 16 MiB (the default is 2 MiB) holds a batch of 1,000
	// checkpoints of 4 KiB with the index pages it touches, so that a
	// transaction does not spill pages to the WAL before its commit and read
	// them back; statement journals (which multi-row statements keep) stay
	// in memory rather than in temporary files.
	pragmas := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=cache_size(-16384)&_pragma=temp_store(MEMORY)&_txlock=immediate",
		cfg.BusyTimeout.Milliseconds())
	var dsn string
	if cfg.Path == MemoryPath {
		dsn = "file::memory:?" + pragmas
	} else {
		dsn = "file:" + cfg.Path + "?" + pragmas + "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
			fmt.Sprintf("&_pragma=wal_autocheckpoint(%d)", backstopPages)
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", cfg.Path, err)
	}
	if cfg.Path == MemoryPath {
		// Every connection to ":memory:" is a separate database: keep one.
		db.SetMaxOpenConns(1)
	} else {
		db.SetMaxOpenConns(8)
	}
	s := &DB{db: db, path: cfg.Path, prefix: cfg.Prefix}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if cfg.Path != MemoryPath {
		s.ckpt = startCheckpointer(db)
	}
	return s, nil
}

// Close closes the database.
func (s *DB) Close() error {
	s.ckpt.stop()
	return errors.Join(s.stmts.close(), s.db.Close())
}

// Path returns the database path.
func (s *DB) Path() string { return s.path }

// Prefix returns the table prefix.
func (s *DB) Prefix() string { return s.prefix }

// sql expands the {{p}} placeholder with the validated prefix.
func (s *DB) sql(q string) string { return strings.ReplaceAll(q, "{{p}}", s.prefix) }

func (s *DB) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	slices.Sort(names)
	return s.inTx(ctx, "migrate", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.sql(`CREATE TABLE IF NOT EXISTS {{p}}_schema_version (
			version INTEGER NOT NULL PRIMARY KEY, applied_at TEXT NOT NULL)`)); err != nil {
			return fmt.Errorf("create schema_version: %w", err)
		}
		var current int
		if err := tx.QueryRowContext(ctx, s.sql(`SELECT COALESCE(MAX(version), 0) FROM {{p}}_schema_version`)).Scan(&current); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		for i, name := range names {
			version := i + 1
			if version <= current {
				continue
			}
			body, err := migrations.ReadFile(name)
			if err != nil {
				return fmt.Errorf("read migration %s: %w", name, err)
			}
			if _, err := tx.ExecContext(ctx, s.sql(string(body))); err != nil {
				return fmt.Errorf("apply migration %s: %w", path.Base(name), err)
			}
			if _, err := tx.ExecContext(ctx, s.sql(`INSERT INTO {{p}}_schema_version (version, applied_at) VALUES (?, ?)`),
				version, time.Now().UTC().Format(time.RFC3339)); err != nil {
				return fmt.Errorf("record migration %s: %w", path.Base(name), err)
			}
		}
		return nil
	})
}

// Update implements projector.Store. The transaction is BEGIN IMMEDIATE:
// it takes SQLite's write lock at once, which serialises writers and so
// also serves as LockThreads' lock.
func (s *DB) Update(ctx context.Context, fn func(ctx context.Context, tx projector.Tx) error) error {
	if s.stmts.needsFill() {
		s.stmts.fill(ctx, s.db)
	}
	err := s.inTx(ctx, "update", func(tx *sql.Tx) error { return fn(ctx, &txn{tx: tx, s: s}) })
	if err == nil {
		s.ckpt.committed()
	}
	return err
}

func (s *DB) inTx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return classify(op+": begin", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return classify(op, err)
	}
	if err := tx.Commit(); err != nil {
		return classify(op+": commit", err)
	}
	return nil
}

// classify wraps err with context and gives driver errors an events code:
// a busy or locked database is Unavailable (retrying later helps).
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if events.ErrorCode(err) != events.Internal || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("sqlite %s: %w", op, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN:
			return events.Errorf(events.Unavailable, "sqlite %s: %w", op, err)
		}
	}
	return fmt.Errorf("sqlite %s: %w", op, err)
}

func seqArg(seq uint64) int64 { return int64(seq) }

func timeText(t time.Time) string { return t.UTC().Format(events.TimeFormat) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(events.TimeFormat, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored created_at %q: %w", s, err)
	}
	return t, nil
}

func nullable(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
