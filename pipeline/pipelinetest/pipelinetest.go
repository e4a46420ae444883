// Package pipelinetest holds helpers for tests that run the whole pipeline
// in process: start it in a temp dir, wait until the writers have
// projected everything published, dump the tables.
package pipelinetest

import (
	"context"
	"testing"
	"time"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/pipeline"
	"github.com/cairn-io/cairn/projector"
)

// MustStart starts a pipeline (in tb.TempDir() unless cfg.Dir is set) and
// closes it when the test ends.
func MustStart(tb testing.TB, cfg pipeline.Config) *pipeline.Pipeline {
	tb.Helper()
	if cfg.Dir == "" {
		cfg.Dir = tb.TempDir()
	}
	p, err := pipeline.Start(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("start pipeline: %v", err)
	}
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Errorf("close pipeline: %v", err)
		}
	})
	return p
}

// WaitProjected waits (up to a minute) until every event of the default
// fleet at or below seq is committed by the writers of the default prefix;
// seq 0 means the stream's last sequence now.
func WaitProjected(tb testing.TB, p *pipeline.Pipeline, seq uint64) {
	tb.Helper()
	ctx := context.Background()
	if seq == 0 {
		st, err := p.JS.Stream(ctx, broker.StreamName(events.DefaultRoot))
		if err != nil {
			tb.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		if seq = info.State.LastSeq; seq == 0 {
			return
		}
	}
	pos, err := broker.NewPosition(ctx, p.JS, events.DefaultRoot, events.DefaultFleet, projector.DefaultPrefix)
	if err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		ok, floor, err := pos.Covered(ctx, seq)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not projected through seq %d after a minute (ack floor %d, %v)", seq, floor, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// MustDump waits until everything published is projected and returns the
// pipeline store's tables.
func MustDump(tb testing.TB, p *pipeline.Pipeline) projector.Dump {
	tb.Helper()
	WaitProjected(tb, p, 0)
	d, err := p.Store.Dump(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return d
}
