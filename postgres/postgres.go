// Package postgres is cairn's PostgreSQL store, through pgx. JSON is kept
// as the exact published text; batches are sent as array-bound statements
// (unnest) in one transaction; concurrent writers serialise per thread on
// row locks of the threads table. It implements projector.Store and passes
// the conformance suite in projector/storetest.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// DefaultMaxConns is the default connection pool size.
const DefaultMaxConns = 8

// Config configures Open.
type Config struct {
	// URL is a libpq connection string or URL, e.g.
	// postgres://user:pass@127.0.0.1:5432/cairn. Required.
	URL string
	// Prefix is the table prefix; default projector.DefaultPrefix.
	Prefix string
	// MaxConns is the pool size; default DefaultMaxConns.
	MaxConns int32
}

// DB is a PostgreSQL-backed projector.Store.
type DB struct {
	pool   *pgxpool.Pool
	prefix string
}

var _ projector.Store = (*DB)(nil)

//go:embed migrations/*.sql
var migrations embed.FS

// Open connects and applies pending migrations. Two processes opening the
// same database and prefix at once are safe: migrations run under a
// transaction-scoped advisory lock named after the prefix.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = projector.DefaultPrefix
	}
	if err := projector.CheckPrefix(cfg.Prefix); err != nil {
		return nil, err
	}
	if cfg.URL == "" {
		return nil, events.Errorf(events.Invalid, "postgres: no connection URL")
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, events.Errorf(events.Invalid, "postgres: connection URL: %v", err)
	}
	pc.MaxConns = cfg.MaxConns
	if pc.MaxConns <= 0 {
		pc.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, classify("connect", err)
	}
	s := &DB{pool: pool, prefix: cfg.Prefix}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the pool.
func (s *DB) Close() error {
	s.pool.Close()
	return nil
}

// Prefix returns the table prefix.
func (s *DB) Prefix() string { return s.prefix }

func (s *DB) sql(q string) string { return strings.ReplaceAll(q, "{{p}}", s.prefix) }

func (s *DB) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	slices.Sort(names)
	return s.inTx(ctx, "migrate", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "cairn-migrate:"+s.prefix); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, s.sql(`CREATE TABLE IF NOT EXISTS {{p}}_schema_version (
			version INTEGER NOT NULL PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`)); err != nil {
			return fmt.Errorf("create schema_version: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, s.sql(`SELECT COALESCE(MAX(version), 0) FROM {{p}}_schema_version`)).Scan(&current); err != nil {
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
			if _, err := tx.Exec(ctx, s.sql(string(body))); err != nil {
				return fmt.Errorf("apply migration %s: %w", path.Base(name), err)
			}
			if _, err := tx.Exec(ctx, s.sql(`INSERT INTO {{p}}_schema_version (version) VALUES ($1)`), version); err != nil {
				return fmt.Errorf("record migration %s: %w", path.Base(name), err)
			}
		}
		return nil
	})
}

// Update implements projector.Store in a READ COMMITTED transaction;
// LockThreads' row locks serialise concurrent writers per thread.
func (s *DB) Update(ctx context.Context, fn func(ctx context.Context, tx projector.Tx) error) error {
	return s.inTx(ctx, "update", func(tx pgx.Tx) error {
		t := &txn{tx: tx, s: s}
		if err := fn(ctx, t); err != nil {
			return err
		}
		return t.flush(ctx)
	})
}

func (s *DB) inTx(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return classify(op+": begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(tx); err != nil {
		return classify(op, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return classify(op+": commit", err)
	}
	return nil
}

// classify wraps err with context and gives driver errors an events code:
// lost connections, deadlocks, serialisation failures, lock timeouts,
// shutdowns and resource exhaustion are Unavailable (the batch may be
// retried as a whole); other database errors keep no code (Internal).
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if events.ErrorCode(err) != events.Internal || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("postgres %s: %w", op, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "40001", pgErr.Code == "40P01", pgErr.Code == "55P03", pgErr.Code == "55006",
			strings.HasPrefix(pgErr.Code, "08"), strings.HasPrefix(pgErr.Code, "53"),
			strings.HasPrefix(pgErr.Code, "57P"), pgErr.Code == "58030":
			return events.Errorf(events.Unavailable, "postgres %s: %w", op, err)
		}
		return fmt.Errorf("postgres %s: %w", op, err)
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err) || isConnectError(err) {
		return events.Errorf(events.Unavailable, "postgres %s: %w", op, err)
	}
	return fmt.Errorf("postgres %s: %w", op, err)
}

func isConnectError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "connection refused")
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

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
