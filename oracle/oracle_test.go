package oracle_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/oracle"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/projector/storetest"
)

// testConfig returns the database the tests run against, from the
// variables the commands read. When ORACLE_DSN is set, a database that
// cannot be reached is a failure, not a skip.
func testConfig(t *testing.T, prefix string) oracle.Config {
	t.Helper()
	dsn := os.Getenv("ORACLE_DSN")
	if dsn == "" {
		t.Skip("set ORACLE_DSN (e.g. 127.0.0.1:1521/FREEPDB1), ORACLE_USER, ORACLE_PASSWORD and, for Autonomous Database, ORACLE_WALLET to run the Oracle store tests (needs Oracle Instant Client)")
	}
	return oracle.Config{
		DSN: dsn, User: os.Getenv("ORACLE_USER"), Password: os.Getenv("ORACLE_PASSWORD"),
		WalletDir: os.Getenv("ORACLE_WALLET"), WalletPassword: os.Getenv("ORACLE_WALLET_PASSWORD"),
		Prefix: prefix,
	}
}

// MustOpen opens a store on prefix and drops its tables at the end.
func MustOpen(t *testing.T, prefix string) *oracle.DB {
	t.Helper()
	db, err := oracle.Open(context.Background(), testConfig(t, prefix))
	if err != nil {
		t.Fatalf("open oracle: %v", err)
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
	testConfig(t, "")
	storetest.Run(t, storetest.Backend{
		Fresh: func(t *testing.T) projector.Store { return MustOpen(t, freshPrefix()) },
		Again: func(t *testing.T, s projector.Store) projector.Store {
			db, err := oracle.Open(context.Background(), testConfig(t, s.(*oracle.DB).Prefix()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		},
	})
}

// TestLargeJSONRoundTrip crosses the size at which JSON is bound as a CLOB
// instead of a string, and keeps big numbers and key order.
func TestLargeJSONRoundTrip(t *testing.T) {
	s := MustOpen(t, freshPrefix())
	big := `{"z":12345678901234567890123456789,"a":"` + strings.Repeat("é", 40000) + `"}`
	rec := storetest.Put(1, "t", "", "v1", "", big, `{"n":1.50}`)
	storetest.MustApply(t, s, rec)
	v, err := s.Checkpoint(context.Background(), projector.CheckpointKey{ThreadID: "t", ID: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if string(v.State) != big || string(v.Metadata) != `{"n":1.50}` {
		t.Errorf("got %d bytes of state (want %d) and metadata %s", len(v.State), len(big), v.Metadata)
	}
}

// TestNoDDL opens a prefix without tables in the mode that creates none.
func TestNoDDL(t *testing.T) {
	cfg := testConfig(t, freshPrefix())
	cfg.NoDDL = true
	_, err := oracle.Open(context.Background(), cfg)
	if !errors.Is(err, events.ErrUnavailable) || !strings.Contains(err.Error(), "schema.sql") {
		t.Fatalf("got %v, want the schema-missing error", err)
	}
}

// TestOpenFailsClearly needs no database: with no Oracle Client on the
// machine Open reports DPI-1047 with what to install; with one, an address
// where nothing listens is Unavailable; a build without cgo says that it
// has no Oracle support. Either way it returns, not panics.
func TestOpenFailsClearly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := oracle.Open(ctx, oracle.Config{DSN: "127.0.0.1:1/NOPE", User: "cairn", Password: "cairn"})
	switch {
	case err == nil:
		t.Fatal("open succeeded against 127.0.0.1:1")
	case strings.Contains(err.Error(), "DPI-1047"):
		for _, want := range []string{"Instant Client", "LD_LIBRARY_PATH"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %s", err, want)
			}
		}
	case strings.Contains(err.Error(), "built without cgo"):
	case !errors.Is(err, events.ErrUnavailable):
		t.Errorf("got %v, want DPI-1047 or an unavailable listener", err)
	}
}

func TestOpenRejectsBadPrefix(t *testing.T) {
	for _, p := range []string{"Cairn", "cairn; DROP TABLE x", `c"x`, "c-x", "1c", "c x", "caírn", strings.Repeat("c", 41)} {
		_, err := oracle.Open(context.Background(), oracle.Config{DSN: "127.0.0.1:1/NOPE", Prefix: p})
		if !errors.Is(err, events.ErrInvalid) {
			t.Errorf("prefix %q: got %v, want invalid before connecting", p, err)
		}
	}
}
