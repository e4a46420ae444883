package oracle

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// MaxIdentifierBytes is Oracle's limit on a table, index or constraint name.
const MaxIdentifierBytes = 128

// migration is one schema version: the DDL statements of one embedded file.
type migration struct {
	version int
	name    string
	body    string // the file, with {{p}} for the prefix
}

// migrations are the embedded files in order; version N is the Nth file.
var migrations = mustLoadMigrations()

func mustLoadMigrations() []migration {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		panic(err)
	}
	slices.Sort(names)
	var out []migration
	for i, name := range names {
		body, err := migrationFiles.ReadFile(name)
		if err != nil {
			panic(err)
		}
		out = append(out, migration{version: i + 1, name: path.Base(name), body: string(body)})
	}
	return out
}

// SchemaVersion is the schema version this build creates and expects.
func SchemaVersion() int { return len(migrations) }

// objectNameRE finds every name built from the prefix in the DDL.
var objectNameRE = regexp.MustCompile(`\{\{p\}\}(_[a-z0-9_]+)`)

// versionTableDDL creates the bookkeeping table that records applied
// versions. It exists before any migration runs, so it is not in one.
const versionTableDDL = `CREATE TABLE IF NOT EXISTS {{p}}_schema_version (
    version    NUMBER(10) NOT NULL,
    applied_at TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    CONSTRAINT {{p}}_schema_version_pk PRIMARY KEY (version)
)`

// recordVersionSQL records that migration version v is applied. It is an
// insert-if-absent (MERGE ... WHEN NOT MATCHED), so recording twice, from a
// rerun of schema.sql or a second writer, changes nothing.
func recordVersionSQL(v int) string {
	return fmt.Sprintf(`MERGE INTO {{p}}_schema_version v
USING (SELECT %d AS version FROM dual) s
ON (v.version = s.version)
WHEN NOT MATCHED THEN INSERT (version) VALUES (s.version)`, v)
}

// splitStatements splits a migration file into statements: each ends with
// ";" at the end of a line. Lines that are only comments are dropped, and
// the trailing ";" too, which OCI does not accept.
func splitStatements(body string) []string {
	var out []string
	var cur []string
	for line := range strings.SplitSeq(body, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		if stmt, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), ";"); ok {
			cur = append(cur, stmt)
			out = append(out, strings.Join(cur, "\n"))
			cur = nil
			continue
		}
		cur = append(cur, line)
	}
	if len(cur) > 0 { // a last statement without ";"
		out = append(out, strings.Join(cur, "\n"))
	}
	return out
}

// schemaSuffixes returns, sorted, the suffix of every object the schema
// names after the prefix (tables, indexes, constraints), taken from the DDL
// itself so that the identifier check cannot drift from it.
func schemaSuffixes() []string {
	set := map[string]bool{}
	texts := []string{versionTableDDL}
	for _, m := range migrations {
		texts = append(texts, m.body)
	}
	for _, t := range texts {
		for _, m := range objectNameRE.FindAllStringSubmatch(t, -1) {
			set[m[1]] = true
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// tableSuffixes are the tables of the schema, in creation order, the
// version table first.
var tableSuffixes = []string{"_schema_version", "_threads", "_checkpoints", "_conflicts", "_duplicates", "_write_sets", "_writes", "_live"}

// CheckPrefix validates a table prefix for Oracle: projector.CheckPrefix
// (a lowercase letter, then lowercase letters, digits or '_', so that no SQL
// can be injected through it) and every object name built from it within
// MaxIdentifierBytes.
func CheckPrefix(prefix string) error {
	if err := projector.CheckPrefix(prefix); err != nil {
		return err
	}
	return checkNames(prefix, schemaSuffixes())
}

func checkNames(prefix string, suffixes []string) error {
	for _, s := range suffixes {
		if n := len(prefix) + len(s); n > MaxIdentifierBytes {
			return events.Errorf(events.Invalid, "table prefix %q: object name %s%s is %d bytes, over Oracle's %d", prefix, prefix, s, n, MaxIdentifierBytes)
		}
	}
	return nil
}

// expand puts the validated prefix into a statement.
func expand(prefix, q string) string { return strings.ReplaceAll(q, "{{p}}", prefix) }

// ddlStatements returns, in order, the statements that create version v of
// the schema from v-1 for prefix, the last one recording the version.
func ddlStatements(prefix string, m migration) []string {
	var out []string
	for _, s := range splitStatements(m.body) {
		out = append(out, expand(prefix, s))
	}
	return append(out, expand(prefix, recordVersionSQL(m.version)))
}

// SchemaScript returns the whole schema for prefix as one SQL script that a
// DBA can review and run in SQL*Plus or SQLcl (then commit). It is the text
// the store itself executes, statement for statement; oracle/schema.sql is
// this script for the default prefix, and a test keeps the two equal.
func SchemaScript(prefix string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `-- cairn schema for Oracle Database 23ai/26ai, table prefix %q, version %d.
--
-- Generated from oracle/migrations/*.sql by SchemaScript; do not edit. To
-- regenerate: go generate ./oracle (or go test ./oracle -run TestSchemaFile -update).
-- For another prefix, replace every "%s_" below with "<prefix>_" (a lowercase
-- letter, then lowercase letters, digits or '_', at most %d bytes).
--
-- Every statement is idempotent (IF NOT EXISTS, MERGE ... WHEN NOT MATCHED):
-- running the script twice changes nothing. A writer started with
-- --oracle-no-ddl checks that these tables exist and that the version below is
-- recorded, and creates nothing.

`, prefix, SchemaVersion(), prefix, projector.MaxPrefixLen)
	fmt.Fprintf(&b, "%s;\n", expand(prefix, versionTableDDL))
	for _, m := range migrations {
		fmt.Fprintf(&b, "\n-- version %d: %s\n\n", m.version, m.name)
		b.WriteString(strings.TrimRight(expand(prefix, m.body), "\n"))
		fmt.Fprintf(&b, "\n\n%s;\n", expand(prefix, recordVersionSQL(m.version)))
	}
	b.WriteString("\nCOMMIT;\n")
	return b.String()
}

// DDL retry: a CREATE ... IF NOT EXISTS racing another session's CREATE of
// the same name fails with ORA-00955 (IF NOT EXISTS checks the name before
// creating); DDL on a table another session has locked fails at once with
// ORA-00054. Both succeed when retried.
const (
	ddlAttempts = 20
	ddlMaxWait  = 2 * time.Second
)

// execDDL runs one DDL statement on a pooled session, retrying ORA-00955
// and ORA-00054 with a growing pause.
func (s *DB) execDDL(ctx context.Context, stmt string) error {
	var err error
	for attempt := 1; attempt <= ddlAttempts; attempt++ {
		if _, err = s.db.ExecContext(ctx, stmt); err == nil {
			return nil
		}
		if c := oraCode(err); c != codeNameInUse && c != codeResourceBusy {
			return err
		}
		wait := min(time.Duration(attempt)*100*time.Millisecond, ddlMaxWait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	return err
}

// migrate creates or upgrades the schema. Oracle commits every DDL statement
// on its own, so migrations cannot run inside one transaction; instead one
// session holds an exclusive lock on the version table inside a transaction
// while another session runs the DDL. A second writer opening the same
// prefix at the same time waits on that lock, then finds the version
// recorded and does nothing. Every statement is idempotent besides, so a
// crash half-way is repaired by the next start. Migrations must never alter
// the version table itself (that DDL would wait on the lock).
func (s *DB) migrate(ctx context.Context) error {
	if err := s.execDDL(ctx, expand(s.prefix, versionTableDDL)); err != nil {
		return fmt.Errorf("create %s_schema_version: %w", s.prefix, err)
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migration session: %w", err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, readCommitted)
	if err != nil {
		return fmt.Errorf("migration transaction: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, expand(s.prefix, `LOCK TABLE {{p}}_schema_version IN EXCLUSIVE MODE`)); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	current, err := readVersion(ctx, tx, s.prefix)
	if err != nil {
		return err
	}
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		stmts := ddlStatements(s.prefix, m)
		ddl, record := stmts[:len(stmts)-1], stmts[len(stmts)-1]
		for _, st := range ddl {
			if err := s.execDDL(ctx, st); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, record); err != nil {
			return fmt.Errorf("record migration %s: %w", m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit migrations: %w", err)
	}
	return nil
}

func readVersion(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, prefix string) (int, error) {
	var v int64
	if err := q.QueryRowContext(ctx, expand(prefix, `SELECT NVL(MAX(version), 0) FROM {{p}}_schema_version`)).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return int(v), nil
}

// checkSchema verifies, without creating anything, that every table exists
// (ORA-00942 names the missing one) and that this build's schema version is
// recorded.
func (s *DB) checkSchema(ctx context.Context) error {
	for _, t := range tableSuffixes {
		var n int64
		if err := s.db.QueryRowContext(ctx, expand(s.prefix, `SELECT COUNT(*) FROM {{p}}`+t+` WHERE 1 = 0`)).Scan(&n); err != nil {
			return fmt.Errorf("check table %s%s: %w", s.prefix, t, err)
		}
	}
	current, err := readVersion(ctx, s.db, s.prefix)
	if err != nil {
		return err
	}
	if current < SchemaVersion() {
		return fmt.Errorf("the schema is older than this build: %s_schema_version records version %d, this build needs %d: "+
			"apply oracle/schema.sql (or start one writer without --oracle-no-ddl)", s.prefix, current, SchemaVersion())
	}
	return nil
}

// DropTables drops every table of the store's prefix (DROP TABLE IF EXISTS
// ... PURGE). It is for tests and for operators discarding a replay prefix;
// it cannot be undone.
func (s *DB) DropTables(ctx context.Context) error {
	return s.call(ctx, "drop tables", func(ctx context.Context) error {
		for i := len(tableSuffixes) - 1; i >= 0; i-- {
			if err := s.execDDL(ctx, `DROP TABLE IF EXISTS `+s.prefix+tableSuffixes[i]+` PURGE`); err != nil {
				return err
			}
		}
		return nil
	})
}
