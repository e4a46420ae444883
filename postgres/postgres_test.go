package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/cairn-io/cairn/postgres"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/projector/storetest"
)

// URLEnv names the variable that enables these tests. When it is set, a
// server that cannot be reached is a failure, not a skip.
const URLEnv = "CAIRN_TEST_POSTGRES_URL"

func testURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(URLEnv)
	if url == "" {
		t.Skipf("set %s (e.g. postgres://postgres@127.0.0.1:5432/test) to run the PostgreSQL store tests", URLEnv)
	}
	return url
}

// MustOpen opens a store on a fresh prefix and drops its tables at the end.
func MustOpen(t testing.TB, prefix string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), postgres.Config{URL: testURL(t), Prefix: prefix})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() {
		if err := db.DropTables(context.Background()); err != nil {
			t.Errorf("drop tables: %v", err)
		}
		db.Close()
	})
	return db
}

func freshPrefix() string { return fmt.Sprintf("t%08x", rand.Uint32()) }

func TestConformance(t *testing.T) {
	testURL(t)
	storetest.Run(t, storetest.Backend{
		Fresh: func(t *testing.T) projector.Store { return MustOpen(t, freshPrefix()) },
		Again: func(t *testing.T, s projector.Store) projector.Store {
			db, err := postgres.Open(context.Background(), postgres.Config{URL: testURL(t), Prefix: s.(*postgres.DB).Prefix()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		},
	})
}
