package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/pipeline"
	"github.com/cairn-io/cairn/query"
)

func TestReplayThenVerifyCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for _, name := range []string{"replay", "verify"} {
		var out, errb bytes.Buffer
		if err := commands.Run(ctx, []string{name, "--help"}, &out, &errb); !errors.Is(err, flag.ErrHelp) || !strings.Contains(errb.String(), "Usage: writer "+name) {
			t.Errorf("%s --help: %v\n%s", name, err, errb.String())
		}
	}
	dir := t.TempDir()
	p, err := pipeline.Start(ctx, pipeline.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var last uint64
	for i := range 30 {
		e := &events.Event{Kind: events.KindCheckpointPut, EventID: fmt.Sprintf("e%d", i), ThreadID: fmt.Sprintf("t%d", i%3),
			CreatedAt: time.Now().UTC(), Checkpoint: &events.Checkpoint{ID: fmt.Sprintf("c%d", i), State: json.RawMessage(`{}`), Metadata: json.RawMessage(`{}`)}}
		if last, err = p.Publisher.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := query.NewClient(p.QueryURL, nil).List(ctx, query.ListParams{AllNS: true, Limit: 1, MinSeq: query.MinSeq{Seq: last}}); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "cairn.db")
	run := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := commands.Run(ctx, append(args, "--nats-url", p.NATS.URL(), "--sqlite-path", db), &out, &errb)
		return out.String() + errb.String(), err
	}
	out, err := run("replay", "--prefix", "rebuilt", "--progress-every", "1ms")
	if err != nil || !strings.Contains(out, "30 events") || !strings.Contains(out, "applied 30,") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	if out, err := run("replay", "--prefix", "cairn"); err == nil || !strings.Contains(err.Error(), "live writer") {
		t.Errorf("replay into the live prefix: %v\n%s", err, out)
	}
	if out, err := run("verify", "--prefix", "rebuilt", "--against-prefix", "cairn"); err != nil || !strings.Contains(out, "identical") {
		t.Errorf("verify: %v\n%s", err, out)
	}
	if out, err := run("verify", "--prefix", "cairn", "--against-stream"); err != nil || !strings.Contains(out, "identical") {
		t.Errorf("verify against the stream: %v\n%s", err, out)
	}
	if out, err := run("verify", "--prefix", "empty", "--against-prefix", "cairn"); !errors.Is(err, errDiffer) || !strings.Contains(out, "+ checkpoints {") {
		t.Errorf("verify against a different prefix: %v\n%s", err, out)
	}
}
