package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestBenchSmall runs every phase on a few events: it checks that the
// command works and reports each measure, not how fast anything is.
func TestBenchSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stores := "sqlite"
	args := []string{"--events", "300", "--agents", "100", "--freshness-for", "300ms", "--rate", "200", "--freshness-sample", "2",
		"--dir", t.TempDir(), "--progress-every", "1h"}
	if url := os.Getenv("CAIRN_TEST_POSTGRES_URL"); url != "" {
		stores += ",postgres"
		args = append(args, "--postgres-url", url)
	}
	var out, errb bytes.Buffer
	if err := run(ctx, append(args, "--stores", stores), &out, &errb); err != nil {
		t.Fatalf("bench: %v\n%s\n%s", err, out.String(), errb.String())
	}
	want := []string{"machine: ", "publish   ratio", "sqlite    ratio", "sqlite    replay", "sqlite    freshness at 200/s"}
	if strings.Contains(stores, "postgres") {
		want = append(want, "postgres  ratio", "postgres  replay", "postgres  freshness")
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
}
