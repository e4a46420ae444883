package broker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cairn-io/cairn/broker"
)

func TestAsyncPublisherPerThreadOrderBackpressureAndRestart(t *testing.T) {
	ctx := testContext(t, 90*time.Second)
	dir, port := t.TempDir(), freePort(t)
	srv, err := broker.StartEmbedded(broker.EmbeddedConfig{Dir: dir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	var srvMu sync.Mutex
	t.Cleanup(func() {
		srvMu.Lock()
		defer srvMu.Unlock()
		if srv != nil {
			srv.Close()
		}
	})
	_, js := MustConnect(t, srv.URL())
	if _, err := broker.EnsureStreams(ctx, js, broker.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	const maxQueued = 16
	pub, err := broker.NewAsyncPublisher(js, broker.AsyncConfig{
		MaxInFlight: 4, MaxQueued: maxQueued,
		PublisherConfig: broker.PublisherConfig{AttemptTimeout: 500 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	var (
		mu    sync.Mutex
		acks  = make(map[string]broker.Ack)
		order []string // publish order
	)
	publish := func(ctx context.Context, thread string, i int) error {
		id := fmt.Sprintf("%s-%03d", thread, i)
		err := pub.Publish(ctx, checkpoint(id, thread, fmt.Sprintf("v%d", i), `{}`), func(a broker.Ack) {
			mu.Lock()
			acks[id] = a
			mu.Unlock()
		})
		if err == nil {
			mu.Lock()
			order = append(order, id)
			mu.Unlock()
		}
		return err
	}
	const threads, perThread = 5, 20
	for i := range perThread / 2 {
		for th := range threads {
			if err := publish(ctx, fmt.Sprintf("t%d", th), i); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// The broker goes away: publishes are accepted until maxQueued are
	// unfinished, then Publish blocks (here until its context ends).
	srvMu.Lock()
	srv.Close()
	srv = nil
	srvMu.Unlock()
	fill := func() (accepted int, blocked bool) {
		for i := perThread / 2; i < perThread; i++ {
			for th := range threads {
				pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				err := publish(pctx, fmt.Sprintf("t%d", th), i)
				cancel()
				if errors.Is(err, context.DeadlineExceeded) {
					return accepted, true
				}
				if err != nil {
					t.Fatal(err)
				}
				accepted++
			}
		}
		return accepted, false
	}
	if accepted, blocked := fill(); !blocked || accepted != maxQueued {
		t.Fatalf("with the broker down: accepted %d events (blocked: %v), want Publish to block after %d", accepted, blocked, maxQueued)
	}
	// Back on the same port and storage: the queued events land, retried
	// with their ids.
	srvMu.Lock()
	srv, err = broker.StartEmbedded(broker.EmbeddedConfig{Dir: dir, Port: port})
	srvMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acks) != len(order) {
		t.Fatalf("%d outcomes for %d accepted events", len(acks), len(order))
	}
	lastByThread := make(map[string]uint64)
	for _, id := range order {
		a := acks[id]
		if a.Err != nil || a.Seq == 0 {
			t.Fatalf("%s: %+v", id, a)
		}
		thread := id[:2]
		if a.Seq <= lastByThread[thread] {
			t.Errorf("%s: seq %d not after the thread's previous %d", id, a.Seq, lastByThread[thread])
		}
		lastByThread[thread] = a.Seq
	}
	msgs := readStream(t, ctx, js, "CAIRN")
	if len(msgs) != len(order) {
		t.Errorf("stream holds %d messages, want %d (one per accepted event)", len(msgs), len(order))
	}
}
