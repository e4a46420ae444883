package postgres_test

import (
	"testing"

	"github.com/cairn-io/cairn/projector/storetest"
)

// BenchmarkApply measures projection into PostgreSQL on a fresh prefix
// (see storetest.BenchApply), when CAIRN_TEST_POSTGRES_URL is set. Run it
// with a fixed count, e.g. -benchtime 20000x.
func BenchmarkApply(b *testing.B) {
	storetest.BenchApply(b, MustOpen(b, freshPrefix()))
}
