package faults_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/sqlite"
	"github.com/cairn-io/cairn/writer"
)

// startFleetsServer runs nats-server in process with deploy/nats/fleets.conf,
// on a random port and with its storage in a temporary directory.
func startFleetsServer(t *testing.T) string {
	t.Helper()
	opts, err := server.ProcessConfigFile(filepath.Join("..", "deploy", "nats", "fleets.conf"))
	if err != nil {
		t.Fatalf("deploy/nats/fleets.conf: %v", err)
	}
	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.StoreDir = t.TempDir()
	opts.NoSigs, opts.NoLog = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("fleets.conf: %v", err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(15 * time.Second) {
		t.Fatal("nats-server with fleets.conf not ready after 15s")
	}
	return srv.ClientURL()
}

// connectAs connects with a user and password of fleets.conf.
func connectAs(t *testing.T, url, user, password string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := broker.Connect(context.Background(), broker.ConnConfig{URL: url, Name: user, User: user, Password: password})
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// TestFleetPermissions checks what deploy/nats/fleets.conf promises: the
// writer creates the streams and projects, the query service reads the
// position, and an agent of fleet "a" publishes into cairn.a.> but is
// refused anywhere else.
func TestFleetPermissions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	url := startFleetsServer(t)

	if _, err := broker.Connect(ctx, broker.ConnConfig{URL: url, User: "agent-a", Password: "wrong"}); err == nil {
		t.Error("connect with a wrong password: got no error")
	}

	// The writer of fleet a creates the streams and its consumer, and runs.
	_, wjs := connectAs(t, url, "writer", "change-me-writer")
	db, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "a.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w, err := writer.New(wjs, db, writer.Config{Fleet: "a", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWriter := context.WithCancel(ctx)
	writerDone := make(chan error, 1)
	go func() { writerDone <- w.Run(wctx) }()
	defer func() {
		stopWriter()
		if err := <-writerDone; err != nil {
			t.Errorf("writer: %v", err)
		}
	}()

	eventually(t, 20*time.Second, "the writer to create the streams and its consumer", func() bool {
		_, err := wjs.Consumer(ctx, broker.StreamName(events.DefaultRoot), broker.DurableName("a", "cairn"))
		return err == nil
	})

	// The agent of fleet a looks the streams up, as cmd/agent does.
	anc, ajs := connectAs(t, url, "agent-a", "change-me-a")
	if _, err := broker.EnsureStreams(ctx, ajs, broker.StreamConfig{}); err != nil {
		t.Fatalf("agent-a looking up the streams: %v", err)
	}
	pubA, err := broker.NewPublisher(ajs, broker.PublisherConfig{Fleet: "a", AttemptTimeout: time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	seq, err := pubA.Publish(ctx, checkpointEvent("own-fleet", "t1"))
	if err != nil {
		t.Fatalf("agent-a publishing into fleet a: %v", err)
	}

	// Into fleet b: refused by the server, reported as such, not retried
	// until the context ends.
	pubB, err := broker.NewPublisher(ajs, broker.PublisherConfig{Fleet: "b", AttemptTimeout: time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	refusedCtx, cancelRefused := context.WithTimeout(ctx, 20*time.Second)
	defer cancelRefused()
	_, err = pubB.Publish(refusedCtx, checkpointEvent("other-fleet", "t1"))
	if !errors.Is(err, nats.ErrPermissionViolation) || !errors.Is(err, events.ErrInvalid) {
		t.Errorf("agent-a publishing into fleet b: got %v, want an invalid error wrapping the permissions violation", err)
	}
	if refusedCtx.Err() != nil {
		t.Errorf("agent-a publishing into fleet b: the publisher retried until its context ended")
	}
	// The asynchronous publisher (agent fleet) reports it too, instead of
	// retrying forever.
	apub, err := broker.NewAsyncPublisher(ajs, broker.AsyncConfig{PublisherConfig: broker.PublisherConfig{Fleet: "b", AttemptTimeout: time.Second, Logger: quiet}})
	if err != nil {
		t.Fatal(err)
	}
	acked := make(chan broker.Ack, 1)
	if err := apub.Publish(refusedCtx, checkpointEvent("other-fleet-async", "t1"), func(a broker.Ack) { acked <- a }); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-acked:
		if !errors.Is(a.Err, nats.ErrPermissionViolation) || !errors.Is(a.Err, events.ErrInvalid) {
			t.Errorf("async publish into fleet b: got %v, want an invalid error wrapping the permissions violation", a.Err)
		}
	case <-refusedCtx.Done():
		t.Errorf("async publish into fleet b: no answer; it kept retrying")
	}
	apub.Close()
	// Nor can the agent read events.
	if _, err := anc.SubscribeSync("cairn.a.>"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the server to refuse agent-a's subscription to cairn.a.>", func() bool {
		err := anc.LastError()
		return errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `Subscription to "cairn.a.>"`)
	})

	// The query service sees the event projected (read-your-writes).
	_, qjs := connectAs(t, url, "query", "change-me-query")
	pos, err := broker.NewPosition(ctx, qjs, events.DefaultRoot, "a", "cairn")
	if err != nil {
		t.Fatalf("query user: position: %v", err)
	}
	eventually(t, 20*time.Second, "the agent's event to be projected", func() bool {
		ok, _, err := pos.Covered(ctx, seq)
		return err == nil && ok
	})
	if head, err := pos.Head(ctx, "t1"); err != nil || head != seq {
		t.Errorf("query user: head of t1: got %d, %v; want %d", head, err, seq)
	}
	if _, err := db.Latest(ctx, "t1", ""); err != nil {
		t.Errorf("fleet a's checkpoint is not in the writer's store: %v", err)
	}
	st, err := wjs.Stream(ctx, broker.StreamName(events.DefaultRoot))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("the stream holds %d events, want only fleet a's one", info.State.Msgs)
	}
}
