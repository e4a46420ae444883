package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/projector/storetest"
	"github.com/cairn-io/cairn/sqlite"
)

// MustOpen opens a store and closes it when the test ends.
func MustOpen(tb testing.TB, cfg sqlite.Config) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("open %+v: %v", cfg, err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func TestConformanceFile(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		Fresh: func(t *testing.T) projector.Store {
			return MustOpen(t, sqlite.Config{Path: filepath.Join(t.TempDir(), "cairn.db")})
		},
		Again: func(t *testing.T, s projector.Store) projector.Store {
			// The first store's file, opened as a second writer would.
			return MustOpen(t, sqlite.Config{Path: s.(*sqlite.DB).Path(), Prefix: s.(*sqlite.DB).Prefix()})
		},
	})
}

func TestConformanceMemory(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		Fresh: func(t *testing.T) projector.Store {
			return MustOpen(t, sqlite.Config{Path: sqlite.MemoryPath, Prefix: "mem"})
		},
	})
}
