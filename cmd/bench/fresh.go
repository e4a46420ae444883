package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/cmd/internal/progress"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/fleet"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/query"
	"github.com/cairn-io/cairn/writer"
)

// freshness runs a live writer and the query service on a fresh prefix,
// publishes checkpoints at m.Rate for m.FreshFor, and measures for every
// m.Sample-th event the time from publishing to the first read through the
// query API that returns it (a read with min_seq: it answers as soon as
// the event is committed). Every read polls the writers' position while it
// waits, so reading back every event at 1,000/s would load the broker with
// the measurement itself.
func (m *Main) freshness(ctx context.Context, js jetstream.JetStream, kind string, open func(string) (projector.Store, error)) (*fleet.Histogram, error) {
	store, err := open("fresh")
	if err != nil {
		return nil, err
	}
	defer store.Close()
	// A fleet per store: each phase projects only its own events.
	fleetName := "fresh" + kind + m.tag
	prefix := prefixOf(store)
	w, err := writer.New(js, store, writer.Config{Fleet: fleetName, Prefix: prefix, Logger: m.log})
	if err != nil {
		return nil, err
	}
	if _, err := w.EnsureConsumer(ctx); err != nil {
		return nil, err
	}
	pos, err := broker.NewPosition(ctx, js, events.DefaultRoot, fleetName, prefix)
	if err != nil {
		return nil, err
	}
	svc := query.NewService(store, pos, query.Config{Logger: m.log})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	wctx, cancel := context.WithCancel(ctx)
	werr := make(chan error, 1)
	wg.Go(func() { werr <- w.Run(wctx) })
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(sctx)
		scancel()
		cancel()
		wg.Wait()
	}()
	api := query.NewClient("http://"+ln.Addr().String(), &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256},
	})
	pub, err := broker.NewAsyncPublisher(js, broker.AsyncConfig{PublisherConfig: broker.PublisherConfig{Fleet: fleetName, Logger: m.log}})
	if err != nil {
		return nil, err
	}
	defer pub.Close()

	n := int(float64(m.Rate) * m.FreshFor.Seconds())
	const threads = 100
	state := json.RawMessage(`{"pad":"` + strings.Repeat("x", m.Payload-10) + `"}`)
	hist := &fleet.Histogram{}
	var (
		mu       sync.Mutex
		firstErr error
		reads    sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	bar := progress.New(m.errw, kind+" freshness", int64(n), m.Every)
	start := time.Now()
	interval := time.Second / time.Duration(m.Rate)
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		thread := fmt.Sprintf("fresh-%03d", i%threads)
		id := fmt.Sprintf("c%06d", i/threads+1)
		parent := ""
		if i >= threads {
			parent = fmt.Sprintf("c%06d", i/threads)
		}
		e := &events.Event{
			Kind: events.KindCheckpointPut, EventID: uuid.NewString(), ThreadID: thread, CreatedAt: time.Now().UTC(),
			Checkpoint: &events.Checkpoint{ID: id, ParentID: parent, State: state, Metadata: json.RawMessage(`{}`)},
		}
		sent := time.Now()
		sampled := i%m.Sample == 0
		reads.Add(1)
		err := pub.Publish(ctx, e, func(a broker.Ack) {
			if a.Err != nil || !sampled {
				if a.Err != nil {
					fail(a.Err)
				}
				reads.Done()
				return
			}
			go func() {
				defer reads.Done()
				if _, err := api.Checkpoint(ctx, thread, "", id, query.MinSeq{Seq: a.Seq}); err != nil {
					fail(fmt.Errorf("read %s/%s: %w", thread, id, err))
					return
				}
				hist.Record(time.Since(sent))
			}()
		})
		if err != nil {
			reads.Done()
			return nil, err
		}
		bar.Set(int64(i+1), "")
	}
	reads.Wait()
	bar.Finish("")
	select {
	case err := <-werr:
		if err != nil {
			return nil, fmt.Errorf("writer stopped: %w", err)
		}
	default:
	}
	if firstErr != nil {
		return nil, firstErr
	}
	if hist.Count() != int64((n+m.Sample-1)/m.Sample) {
		return nil, errors.New("freshness: not every event was read back")
	}
	return hist, nil
}
