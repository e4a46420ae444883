package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/cmd/internal/cli"
)

func TestBulkCommandsHelpAndUsageErrors(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"fleet", "backfill", "prune"} {
		var out, errb bytes.Buffer
		if err := commands.Run(ctx, []string{name, "--help"}, &out, &errb); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s --help: got %v, want flag.ErrHelp", name, err)
		}
		if !strings.Contains(errb.String(), "Usage: agent "+name) || !strings.Contains(errb.String(), "-nats-url") {
			t.Errorf("%s --help printed:\n%s", name, errb.String())
		}
	}
	for _, args := range [][]string{
		{"fleet", "--agents", "0"},
		{"backfill"},
		{"prune", "--keep-last", "3"},
		{"prune", "--thread", "x"},
		{"prune", "--all-threads", "--below-seq", "4"},
	} {
		var out, errb bytes.Buffer
		err := commands.Run(ctx, args, &out, &errb)
		if code := cli.Exit("agent", err); code != 2 {
			t.Errorf("%v: got %v (exit status %d), want a usage error (2)", args, err, code)
		}
	}
}

func TestFleetThenBackfillInProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	err := commands.Run(ctx, []string{"fleet", "--data-dir", dir, "--agents", "20", "--turns", "2", "--wait", "--progress-every", "1ms"}, &out, &errb)
	if err != nil {
		t.Fatalf("fleet: %v\n%s%s", err, out.String(), errb.String())
	}
	for _, want := range []string{"events published: 80 (40 checkpoints, 40 write sets, 0 duplicates)", "failures: 0", "visible through the query service"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("fleet output lacks %q:\n%s", want, out.String())
		}
	}
	// Not a terminal: plain progress lines.
	if !strings.Contains(errb.String(), "fleet: 80/80 (100%)") {
		t.Errorf("fleet progress lines:\n%s", errb.String())
	}

	file := filepath.Join(dir, "bad.jsonl")
	lines := `{"kind":"checkpoint.put","event_id":"b-1","thread_id":"old","created_at":"2024-01-01T00:00:00Z","checkpoint_id":"c1","checkpoint":{},"metadata":{}}
{"kind":"nope"}
`
	if err := os.WriteFile(file, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = commands.Run(ctx, []string{"backfill", "--data-dir", dir, "--from", file}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "1 inputs rejected") {
		t.Fatalf("backfill with a bad line: got %v, want 1 input rejected\n%s", err, out.String())
	}
	for _, want := range []string{"published: 1", "line 2: ", "rejected: 1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("backfill output lacks %q:\n%s", want, out.String())
		}
	}
}
