// Package cli holds what cairn's three commands share: flags whose defaults
// come from the environment, NATS connection and store selection flags,
// logging set-up and the signal-aware context. Only commands import it;
// nothing else in cairn reads flags or the environment.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/oracle"
	"github.com/cairn-io/cairn/postgres"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/sqlite"
)

// Env returns the environment variable name, or def when it is unset.
func Env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// String registers a string flag whose default comes from env (shown in
// the usage text).
func String(fs *flag.FlagSet, p *string, name, env, def, usage string) {
	fs.StringVar(p, name, Env(env, def), fmt.Sprintf("%s (env %s)", usage, env))
}

// Int registers an int flag whose default comes from env.
func Int(fs *flag.FlagSet, p *int, name, env string, def int, usage string) {
	v := def
	if s, ok := os.LookupEnv(env); ok {
		if n, err := strconv.Atoi(s); err == nil {
			v = n
		}
	}
	fs.IntVar(p, name, v, fmt.Sprintf("%s (env %s)", usage, env))
}

// Duration registers a duration flag whose default comes from env.
func Duration(fs *flag.FlagSet, p *time.Duration, name, env string, def time.Duration, usage string) {
	v := def
	if s, ok := os.LookupEnv(env); ok {
		if d, err := time.ParseDuration(s); err == nil {
			v = d
		}
	}
	fs.DurationVar(p, name, v, fmt.Sprintf("%s (env %s)", usage, env))
}

// Bool registers a bool flag whose default comes from env (1, true, 0,
// false, ...).
func Bool(fs *flag.FlagSet, p *bool, name, env string, def bool, usage string) {
	v := def
	if s, ok := os.LookupEnv(env); ok {
		if b, err := strconv.ParseBool(s); err == nil {
			v = b
		}
	}
	fs.BoolVar(p, name, v, fmt.Sprintf("%s (env %s)", usage, env))
}

// Secret registers a string flag whose default comes from env, like
// String, but whose value the usage text never shows (only that it is set).
func Secret(fs *flag.FlagSet, p *string, name, env, usage string) {
	*p = Env(env, "")
	fs.Var((*secretValue)(p), name, fmt.Sprintf("%s (env %s)", usage, env))
}

// secretValue is a flag.Value that hides its value from the usage text.
type secretValue string

func (s *secretValue) Set(v string) error { *s = secretValue(v); return nil }

func (s *secretValue) String() string {
	if s == nil || *s == "" {
		return ""
	}
	return "(set)"
}

// Parse parses args with fs. It returns flag.ErrHelp after printing usage
// for -h/--help, and a usage error for stray arguments.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	return nil
}

// Exit turns a command's error into an exit code: 0 for nil and for
// --help, 2 for usage errors, 1 otherwise, printing the error to stderr.
func Exit(prog string, err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
		return 2
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
	return 1
}

var errUsage = errors.New("usage")

// Usagef returns a usage error (exit status 2).
func Usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// SignalContext returns a context cancelled by SIGINT or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Logging holds the log flags.
type Logging struct {
	Level  string
	Format string
}

// Register adds --log-level and --log-format.
func (l *Logging) Register(fs *flag.FlagSet, defLevel string) {
	String(fs, &l.Level, "log-level", "CAIRN_LOG_LEVEL", defLevel, "log level: debug, info, warn or error")
	String(fs, &l.Format, "log-format", "CAIRN_LOG_FORMAT", "text", "log format: text or json")
}

// Logger builds the logger; logs go to w (stderr in the commands).
func (l *Logging) Logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, Usagef("--log-level %q: want debug, info, warn or error", l.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch l.Format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, Usagef("--log-format %q: want text or json", l.Format)
}

// NATS holds the NATS connection flags.
type NATS struct {
	broker.ConnConfig
	Root, Fleet string
}

// Register adds the connection, subject root and fleet flags. defURL is
// the default URL ("" means none: the command decides what that means).
func (n *NATS) Register(fs *flag.FlagSet, defURL string) {
	String(fs, &n.URL, "nats-url", "NATS_URL", defURL, "NATS server URL(s), comma-separated")
	String(fs, &n.User, "nats-user", "NATS_USER", "", "NATS user")
	Secret(fs, &n.Password, "nats-password", "NATS_PASSWORD", "NATS password")
	Secret(fs, &n.Token, "nats-token", "NATS_TOKEN", "NATS token")
	String(fs, &n.CredsFile, "nats-creds", "NATS_CREDS", "", "NATS credentials file (nkeys/JWT)")
	String(fs, &n.CAFile, "nats-ca", "NATS_CA", "", "CA certificate to verify the NATS server (TLS)")
	String(fs, &n.CertFile, "nats-cert", "NATS_CERT", "", "client certificate for NATS (mutual TLS)")
	String(fs, &n.KeyFile, "nats-key", "NATS_KEY", "", "client key for NATS (mutual TLS)")
	String(fs, &n.Root, "root", "CAIRN_ROOT", events.DefaultRoot, "subject root")
	String(fs, &n.Fleet, "fleet", "CAIRN_FLEET", events.DefaultFleet, "fleet: events go to <root>.<fleet>.<thread>")
}

// Check validates the names.
func (n *NATS) Check() error {
	if err := events.CheckNames(n.Root, n.Fleet); err != nil {
		return Usagef("%v", err)
	}
	return nil
}

// Store holds the store selection flags.
type Store struct {
	Kind        string
	Prefix      string
	SQLitePath  string
	PostgresURL string
	// Oracle holds the Oracle flags; its Prefix is set from Prefix.
	Oracle oracle.Config
}

// Register adds --store, --prefix and the per-store flags.
func (s *Store) Register(fs *flag.FlagSet) {
	String(fs, &s.Kind, "store", "CAIRN_STORE", "sqlite", "store: sqlite, postgres or oracle")
	String(fs, &s.Prefix, "prefix", "CAIRN_PREFIX", projector.DefaultPrefix, "table prefix")
	String(fs, &s.SQLitePath, "sqlite-path", "CAIRN_SQLITE_PATH", "cairn.db", "SQLite database file (store sqlite)")
	Secret(fs, &s.PostgresURL, "postgres-url", "CAIRN_POSTGRES_URL", "PostgreSQL connection URL, e.g. postgres://user:pass@127.0.0.1:5432/cairn (store postgres; may hold a password, so never shown)")
	s.registerOracle(fs)
}

// registerOracle adds the Oracle flags, named after the variables the
// reference notebook reads (ORACLE_DSN and friends).
func (s *Store) registerOracle(fs *flag.FlagSet) {
	o := &s.Oracle
	String(fs, &o.DSN, "oracle-dsn", "ORACLE_DSN", "", "Oracle connect string (host:1521/FREEPDB1) or tnsnames alias (mydb_high, with --oracle-wallet) (store oracle)")
	String(fs, &o.User, "oracle-user", "ORACLE_USER", "", "Oracle user (store oracle)")
	Secret(fs, &o.Password, "oracle-password", "ORACLE_PASSWORD", "Oracle `password` (store oracle)")
	String(fs, &o.WalletDir, "oracle-wallet", "ORACLE_WALLET", "", "unzipped wallet directory, e.g. of an Autonomous Database: its tnsnames.ora, sqlnet.ora and cwallet.sso (store oracle)")
	Secret(fs, &o.WalletPassword, "oracle-wallet-password", "ORACLE_WALLET_PASSWORD", "wallet `password`: accepted, but Oracle Client cannot use one; the wallet must hold the auto-login cwallet.sso (store oracle)")
	Int(fs, &o.PoolMinSessions, "oracle-pool-min", "CAIRN_ORACLE_POOL_MIN", oracle.DefaultPoolMinSessions, "sessions the OCI pool keeps open (store oracle)")
	Int(fs, &o.PoolMaxSessions, "oracle-pool-max", "CAIRN_ORACLE_POOL_MAX", oracle.DefaultPoolMaxSessions, "most sessions in the OCI pool, at least 2 (store oracle)")
	Int(fs, &o.PoolIncrement, "oracle-pool-increment", "CAIRN_ORACLE_POOL_INCREMENT", oracle.DefaultPoolIncrement, "sessions the OCI pool opens at a time (store oracle)")
	Duration(fs, &o.CallTimeout, "oracle-call-timeout", "CAIRN_ORACLE_CALL_TIMEOUT", oracle.DefaultCallTimeout, "longest transaction or read; past it the call is interrupted and retried (store oracle)")
	Bool(fs, &o.NoDDL, "oracle-no-ddl", "CAIRN_ORACLE_NO_DDL", false, "create no tables: check that the schema (oracle/schema.sql, applied by a DBA) is there and fail if not (store oracle)")
}

// Open opens the selected store.
func (s *Store) Open(ctx context.Context) (projector.Store, error) {
	if err := projector.CheckPrefix(s.Prefix); err != nil {
		return nil, Usagef("--prefix: %v", err)
	}
	switch strings.ToLower(s.Kind) {
	case "sqlite":
		return sqlite.Open(ctx, sqlite.Config{Path: s.SQLitePath, Prefix: s.Prefix})
	case "postgres":
		if s.PostgresURL == "" {
			return nil, Usagef("--store postgres needs --postgres-url (or CAIRN_POSTGRES_URL)")
		}
		return postgres.Open(ctx, postgres.Config{URL: s.PostgresURL, Prefix: s.Prefix})
	case "oracle":
		if s.Oracle.DSN == "" {
			return nil, Usagef("--store oracle needs --oracle-dsn (or ORACLE_DSN)")
		}
		cfg := s.Oracle
		cfg.Prefix = s.Prefix
		return oracle.Open(ctx, cfg)
	}
	return nil, Usagef("--store %q: want sqlite, postgres or oracle", s.Kind)
}

// Describe names the store for logs, without secrets.
func (s *Store) Describe() string {
	switch strings.ToLower(s.Kind) {
	case "sqlite":
		return "sqlite:" + s.SQLitePath + " prefix " + s.Prefix
	case "postgres":
		return "postgres:" + redactURL(s.PostgresURL) + " prefix " + s.Prefix
	case "oracle":
		return "oracle:" + s.Oracle.Describe() + " prefix " + s.Prefix
	}
	return s.Kind + " prefix " + s.Prefix
}

// OracleFromEnv returns the Oracle store that the ORACLE_* (and CAIRN_*)
// variables describe, and whether ORACLE_DSN is set. cmd/agent uses it to
// run its in-process pipeline on Oracle.
func OracleFromEnv() (Store, bool) {
	var s Store
	s.Register(flag.NewFlagSet("env", flag.ContinueOnError))
	s.Kind = "oracle"
	return s, s.Oracle.DSN != ""
}

// redactURL hides the password of a connection URL for logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
