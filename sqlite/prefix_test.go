package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector/storetest"
	"github.com/cairn-io/cairn/sqlite"
)

// tableNames lists the tables of the database file.
func tableNames(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// TestPrefixInjection: a prefix carrying SQL is refused before any
// statement is built, and ids and JSON carrying SQL are stored as data.
func TestPrefixInjection(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cairn.db")
	canary := MustOpen(t, sqlite.Config{Path: path, Prefix: "canary"})
	storetest.MustApply(t, canary, storetest.Put(1, "t1", "", "v1", "", `{"n":1}`, `{}`))
	tables, dump := tableNames(t, path), storetest.MustDump(t, canary)

	for _, p := range []string{
		"x_threads; DROP TABLE canary_threads; --",
		"canary_live WHERE 1=1; DELETE FROM canary_checkpoints; --",
		`canary" ; DROP TABLE "canary_writes`,
		"x_t (id INTEGER); ATTACH DATABASE '/tmp/evil.db' AS evil; --",
		"Canary",
	} {
		db, err := sqlite.Open(ctx, sqlite.Config{Path: path, Prefix: p})
		if err == nil {
			db.Close()
		}
		if !errors.Is(err, events.ErrInvalid) {
			t.Errorf("open with prefix %q: got %v, want an invalid error", p, err)
		}
	}
	if got := tableNames(t, path); !slices.Equal(got, tables) {
		t.Errorf("tables after the refused prefixes: %v, want %v", got, tables)
	}
	storetest.AssertSameDump(t, storetest.MustDump(t, canary), dump)

	// Values carrying SQL are plain data: the conformance case
	// SQLTextIsData (projector/storetest) checks that for every store.
}
