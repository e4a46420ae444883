package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/cairn-io/cairn/projector/storetest"
	"github.com/cairn-io/cairn/sqlite"
)

// BenchmarkApply measures projection into a SQLite file (see
// storetest.BenchApply). Run it with a fixed count, e.g.
// -benchtime 20000x.
func BenchmarkApply(b *testing.B) {
	storetest.BenchApply(b, MustOpen(b, sqlite.Config{Path: filepath.Join(b.TempDir(), "bench.db")}))
}
