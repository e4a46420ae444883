package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/postgres"
	"github.com/cairn-io/cairn/projector/storetest"
)

// prefixTables lists the tables whose names start with prefix + "_".
func prefixTables(t *testing.T, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND starts_with(table_name, $1) ORDER BY table_name`, prefix+"_")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestPrefixInjection: a prefix carrying SQL is refused before any
// statement is built, and ids and JSON carrying SQL are stored as data.
func TestPrefixInjection(t *testing.T) {
	ctx := context.Background()
	prefix := freshPrefix()
	canary := MustOpen(t, prefix)
	storetest.MustApply(t, canary, storetest.Put(1, "t1", "", "v1", "", `{"n":1}`, `{}`))
	tables, dump := prefixTables(t, prefix), storetest.MustDump(t, canary)
	if len(tables) == 0 {
		t.Fatalf("no tables with prefix %s", prefix)
	}

	for _, p := range []string{
		fmt.Sprintf("x_threads; DROP TABLE %s_threads; --", prefix),
		fmt.Sprintf("%s_live WHERE true; DELETE FROM %s_checkpoints; --", prefix, prefix),
		fmt.Sprintf(`%s" ; DROP TABLE "%s_writes`, prefix, prefix),
		fmt.Sprintf("x_t (id int); SELECT pg_terminate_backend(pid) FROM pg_stat_activity; --%s", prefix),
		"pg_catalog.pg_class",
	} {
		db, err := postgres.Open(ctx, postgres.Config{URL: testURL(t), Prefix: p})
		if err == nil {
			db.Close()
		}
		if !errors.Is(err, events.ErrInvalid) {
			t.Errorf("open with prefix %q: got %v, want an invalid error", p, err)
		}
	}
	if got := prefixTables(t, prefix); !slices.Equal(got, tables) {
		t.Errorf("tables after the refused prefixes: %v, want %v", got, tables)
	}
	storetest.AssertSameDump(t, storetest.MustDump(t, canary), dump)

	// Values carrying SQL are plain data: the conformance case
	// SQLTextIsData (projector/storetest) checks that for every store.
}
