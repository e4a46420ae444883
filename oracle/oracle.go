// Package oracle is cairn's Oracle Database 23ai/26ai store (Autonomous
// Database with a wallet, or Oracle Database Free), through godror and the
// OCI session pool. JSON is kept as the exact published text in CLOBs
// checked IS JSON; batches are sent with array binding in one transaction;
// concurrent writers serialise per thread on row locks of the threads
// table; the empty namespace and task path, which Oracle would store as
// NULL, are stored as events.EmptySentinel. It implements projector.Store
// and projector.Lineage and passes the conformance suite in
// projector/storetest wherever an Oracle database is reachable. godror
// needs cgo to build and Oracle Instant Client at run time; without it,
// Open fails with a message that says so.
package oracle

//go:generate go test -run TestSchemaFile -update .

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// Defaults for Config.
const (
	DefaultPoolMinSessions = 1
	DefaultPoolMaxSessions = 8
	DefaultPoolIncrement   = 1
	DefaultCallTimeout     = 2 * time.Minute
	// DefaultPoolWaitTimeout is how long a call waits for a free pooled
	// session before failing.
	DefaultPoolWaitTimeout = 30 * time.Second
)

// autoLoginWallet is the wallet file Oracle Client opens without a password.
const autoLoginWallet = "cwallet.sso"

// Config configures Open.
type Config struct {
	// DSN is the connect string: Easy Connect (host:1521/FREEPDB1), a
	// tnsnames.ora alias (with WalletDir, e.g. mydb_high), a connect
	// descriptor, or a full godror data source name. Required.
	DSN string
	// User and Password, when set, override any in DSN.
	User, Password string
	// WalletDir is an unzipped wallet directory (Autonomous Database). It
	// becomes Oracle Client's configuration directory (tnsnames.ora,
	// sqlnet.ora), and must hold the auto-login wallet cwallet.sso.
	WalletDir string
	// WalletPassword is accepted for parity with other Oracle clients, but
	// Oracle Client (and so godror) cannot open a password-protected wallet
	// (ewallet.p12) with it: the wallet must contain cwallet.sso. When it is
	// set and cwallet.sso is missing, Open fails saying so.
	WalletPassword string
	// Prefix is the table prefix; default projector.DefaultPrefix.
	Prefix string
	// PoolMinSessions, PoolMaxSessions and PoolIncrement size the OCI
	// session pool; defaults DefaultPoolMinSessions, DefaultPoolMaxSessions
	// (at least 2: schema set-up uses two sessions) and DefaultPoolIncrement.
	PoolMinSessions, PoolMaxSessions, PoolIncrement int
	// NoDDL makes Open create nothing: it checks that the schema (see
	// SchemaScript and oracle/schema.sql) is there and fails clearly if not.
	NoDDL bool
	// CallTimeout bounds each Update and each read, as a context deadline
	// that godror turns into the OCI call timeout of every round trip; a
	// caller's earlier deadline wins. Default DefaultCallTimeout.
	CallTimeout time.Duration
}

// DB is an Oracle-backed projector.Store.
type DB struct {
	db          *sql.DB
	prefix      string
	stmts       statements
	callTimeout time.Duration
}

var _ projector.Store = (*DB)(nil)

// Open connects (a session pool), checks the database character set and
// creates or upgrades the schema, or with cfg.NoDDL checks it. Two
// processes opening the same prefix at once are safe (see migrate).
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = projector.DefaultPrefix
	}
	if err := CheckPrefix(cfg.Prefix); err != nil {
		return nil, err
	}
	if err := checkWallet(cfg.WalletDir, cfg.WalletPassword); err != nil {
		return nil, err
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	db, err := openDB(cfg)
	if err != nil {
		return nil, err
	}
	s := &DB{db: db, prefix: cfg.Prefix, stmts: newStatements(cfg.Prefix), callTimeout: cfg.CallTimeout}
	if err := s.setUp(ctx, cfg.NoDDL); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *DB) setUp(ctx context.Context, noDDL bool) error {
	return s.call(ctx, "open", func(ctx context.Context) error {
		if err := s.db.PingContext(ctx); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		var charset string
		if err := s.db.QueryRowContext(ctx, `SELECT value FROM nls_database_parameters WHERE parameter = 'NLS_CHARACTERSET'`).Scan(&charset); err != nil {
			return fmt.Errorf("read the database character set: %w", err)
		}
		if charset != "AL32UTF8" {
			return events.Errorf(events.Invalid, "database character set is %s; cairn needs AL32UTF8 to store every UTF-8 id and JSON text exactly", charset)
		}
		if noDDL {
			return s.checkSchema(ctx)
		}
		return s.migrate(ctx)
	})
}

// checkWallet checks a wallet directory before Oracle Client sees it:
// Oracle Client opens only the auto-login wallet (cwallet.sso), and has no
// way to take a wallet password.
func checkWallet(dir, password string) error {
	if dir == "" {
		return nil // without a wallet a password has nothing to open
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return events.Errorf(events.Invalid, "oracle: wallet directory %s: not a readable directory (unzip the wallet there)", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, autoLoginWallet)); errors.Is(err, os.ErrNotExist) {
		hint := ""
		if password != "" {
			hint = "; the wallet password cannot be used: Oracle Client (used by godror) opens only the auto-login wallet, so create it (orapki wallet create -wallet " + dir + " -auto_login) or download the wallet again"
		}
		return events.Errorf(events.Invalid, "oracle: wallet directory %s has no %s%s", dir, autoLoginWallet, hint)
	}
	return nil
}

// Close closes the session pool.
func (s *DB) Close() error { return s.db.Close() }

// Prefix returns the table prefix.
func (s *DB) Prefix() string { return s.prefix }

// call runs fn under the call timeout (a context deadline, which godror
// turns into the OCI call timeout of each round trip) and classifies its
// error. Running out of the call timeout, as opposed to the caller's own
// context ending, is Unavailable: the database did not answer in time.
func (s *DB) call(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, s.callTimeout)
	defer cancel()
	err := fn(cctx)
	if err != nil && ctx.Err() == nil && cctx.Err() != nil {
		return events.Errorf(events.Unavailable, "oracle %s: no answer within the call timeout (%s): %w", op, s.callTimeout, err)
	}
	return s.classify(op, err)
}

// readCommitted is the isolation of every writing transaction. It is
// asked for explicitly because godror sets the isolation per session and
// a pooled session may come from a serializable Dump.
var readCommitted = &sql.TxOptions{Isolation: sql.LevelReadCommitted}

// Update implements projector.Store in a READ COMMITTED transaction;
// LockThreads' row locks serialise concurrent writers per thread.
func (s *DB) Update(ctx context.Context, fn func(ctx context.Context, tx projector.Tx) error) error {
	return s.call(ctx, "update", func(ctx context.Context) error {
		tx, err := s.db.BeginTx(ctx, readCommitted)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		defer tx.Rollback()
		if err := fn(ctx, &txn{tx: tx, s: s}); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	})
}
