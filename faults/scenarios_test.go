package faults_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/faults"
	"github.com/cairn-io/cairn/projector"
)

// TestWriterKilled: the writer process is SIGKILLed at random moments, at
// least 10 times, while 20,000 events flow, and restarted each time.
func TestWriterKilled(t *testing.T) {
	requireFaults(t)
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			r := newRig(t, rigConfig{store: store})
			// What a killed writer held is redelivered after the AckWait.
			w := r.startWriter("writer", "--ack-wait", "5s")
			load := r.startLoad(faults.LoadConfig{Agents: 8, ThreadsPerAgent: 4, Events: 20000, Rate: 1600})
			rng := rand.New(rand.NewPCG(r.seed, 9))
			deadline := time.Now().Add(4 * time.Minute)
			kills, behind := 0, 0
			for kills < 10 || !load.Done() {
				if time.Now().After(deadline) {
					t.Fatalf("after %d kills the load has not finished: %d events acknowledged", kills, r.ledger.Len())
				}
				// Any moment: while the writer starts, opens the store,
				// creates its consumer or is in the middle of a batch.
				time.Sleep(randomPause(rng, 50*time.Millisecond, 1500*time.Millisecond))
				w.CheckAlive(t) // it exits only when killed
				if info := r.consumerInfo(projector.DefaultPrefix); info != nil && info.NumAckPending+int(info.NumPending) > 0 {
					behind++
				}
				w.Kill()
				kills++
				w.Restart(t)
			}
			if err := load.Wait(); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d kills, %d of them with events delivered or waiting but not yet acknowledged", kills, behind)
			if behind == 0 {
				t.Errorf("no kill hit the writer while events were waiting: the scenario did not test anything")
			}
			r.finish("kill9", projector.DefaultPrefix, nil, w)
		})
	}
}

// logLine is the part of the writer's JSON log lines the outage checks.
type logLine struct {
	Msg            string `json:"msg"`
	FailedAttempts int    `json:"failed_attempts"`
}

// TestDatabaseOutage: a private PostgreSQL is stopped under load for longer
// than the consumer's AckWait, so that the broker redelivers what the writer
// holds, then started again: the writer backs off, logs a bounded number of
// lines, dead-letters nothing, and catches up.
func TestDatabaseOutage(t *testing.T) {
	r := newRig(t, rigConfig{store: "postgres"})
	const ackWait = 2 * time.Second
	w := r.startWriter("writer", "--ack-wait", ackWait.String(), "--max-backoff", "2s")
	w.WaitOutput(t, `"writer started"`, 1, time.Minute)
	load := r.startLoad(faults.LoadConfig{Agents: 6, ThreadsPerAgent: 4, Events: 9000, Rate: 900})
	r.waitLedger(1500, load)

	linesBefore := len(w.Output().Lines())
	down := time.Now()
	r.pg.Stop(t)
	// Down for four AckWaits: the broker gives up on what the writer holds
	// and queues it for redelivery, while the writer keeps retrying its
	// batch.
	for time.Since(down) < 4*ackWait {
		w.CheckAlive(t)
		time.Sleep(100 * time.Millisecond)
	}
	r.pg.Start(t)
	outage := time.Since(down)
	if err := load.Wait(); err != nil {
		t.Fatal(err)
	}
	r.finish("db-outage", projector.DefaultPrefix, nil, w)
	if n := r.redeliveries(projector.DefaultPrefix); n == 0 {
		t.Errorf("no event was redelivered: the outage did not outlast the AckWait of what the writer held")
	}

	lines := w.Output().Lines()[linesBefore:]
	var unavailable, recovered, attempts int
	var other []string // lines but the per-event notices of the load's deliberate conflicts
	for _, l := range lines {
		var ll logLine
		_ = json.Unmarshal([]byte(l), &ll) // a line that is not JSON counts as another line
		switch ll.Msg {
		case "checkpoint conflict recorded":
			continue
		case "store unavailable, retrying batch":
			unavailable++
		case "store available again":
			recovered++
			attempts += ll.FailedAttempts
		}
		other = append(other, l)
	}
	t.Logf("outage of %v: %d writer log lines about it, %d failed attempts (%.1f/s)", outage.Round(time.Millisecond), len(other), attempts, float64(attempts)/outage.Seconds())
	// One line when the store went away (at most one more per 30 s), one
	// when it came back, and the lines of the final shutdown.
	if unavailable < 1 || unavailable > 1+int(outage/(30*time.Second)) {
		t.Errorf("%d \"store unavailable\" lines during an outage of %v, want 1 (and at most one per 30s)", unavailable, outage)
	}
	if recovered != 1 {
		t.Errorf("%d \"store available again\" lines, want 1", recovered)
	}
	if len(other) > 5 {
		t.Errorf("the writer logged %d lines during and after the outage, want a handful:\n%s", len(other), strings.Join(other, "\n"))
	}
	if rate := float64(attempts) / outage.Seconds(); attempts < 2 || rate > 5 {
		t.Errorf("%d failed attempts in %v (%.1f/s): want retries with backoff, at least 2 and at most 5 a second", attempts, outage, rate)
	}
}

// TestBrokerRestart: the nats-server (file storage) is stopped and started
// twice while agents publish, once gracefully and once with SIGKILL; the
// publishers retry with the same event ids and the writer reconnects.
func TestBrokerRestart(t *testing.T) {
	r := newRig(t, rigConfig{store: "sqlite"})
	// Deliveries and acknowledgements in flight when the broker stops are
	// lost; those events are redelivered after the AckWait.
	w := r.startWriter("writer", "--ack-wait", "5s")
	load := r.startLoad(faults.LoadConfig{Agents: 6, ThreadsPerAgent: 4, Events: 9000, Rate: 700})
	srv := r.nats[0]
	for i, stop := range []func(){func() { srv.Stop(t) }, srv.Kill} {
		r.waitLedger(r.ledger.Len()+1500, load)
		retries := r.pubRetries.Load()
		stop()
		// Down for longer than a publish attempt: publishes in flight
		// time out and are retried, while their first copies wait in the
		// client's reconnect buffer.
		time.Sleep(publishAttempt + time.Second)
		srv.Restart(t)
		srv.WaitReady(t)
		r.waitLedger(r.ledger.Len()+200, load)
		n := r.pubRetries.Load() - retries
		t.Logf("restart %d: %d publishes retried across it", i+1, n)
		if n == 0 {
			t.Errorf("restart %d: no publish was retried across it", i+1)
		}
		w.CheckAlive(t)
	}
	if err := load.Wait(); err != nil {
		t.Fatal(err)
	}
	r.finish("broker-restart", projector.DefaultPrefix, nil, w)
}

// TestClusterNodeLoss: a 3-node cluster from deploy/nats/cluster-*.conf,
// streams with 3 replicas; the node leading the event stream is SIGKILLed
// during the load. Every acknowledged event is projected.
func TestClusterNodeLoss(t *testing.T) {
	r := newRig(t, rigConfig{store: "postgres", cluster: true})
	// Debug logs show the consumer's view of the election if this fails.
	w := r.startWriter("writer", "--replicas", "3", "--ack-wait", "5s", "--log-level", "debug")
	load := r.startLoad(faults.LoadConfig{Agents: 6, ThreadsPerAgent: 4, Events: 9000, Rate: 700})
	r.waitLedger(2500, load)

	st, err := r.js.Stream(r.ctx, broker.StreamName(root))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream %s: %d replicas configured, cluster %+v: want 3 replicas", info.Config.Name, info.Config.Replicas, info.Cluster)
	}
	leader := info.Cluster.Leader
	var victim *faults.NATSServer
	for _, s := range r.nats {
		if s.Name == leader {
			victim = s
		}
	}
	if victim == nil {
		t.Fatalf("stream leader %q is none of the nodes", leader)
	}
	before := r.ledger.Len()
	victim.Kill()
	t.Logf("killed %s, the stream leader, after %d acknowledged events", leader, before)
	r.waitLedger(before+1000, load)
	if err := load.Wait(); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "a new stream leader", func() bool {
		info, err := st.Info(r.ctx)
		return err == nil && info.Cluster != nil && info.Cluster.Leader != "" && info.Cluster.Leader != leader
	})
	r.finish("cluster-node-loss", projector.DefaultPrefix, nil, w)
}

// TestSeveralWriters: three writer processes share the durable consumer;
// their tables equal Expect and those of one writer projecting the same
// stream into another prefix.
func TestSeveralWriters(t *testing.T) {
	r := newRig(t, rigConfig{store: "postgres"})
	var ws []*faults.Process
	for i := 1; i <= 3; i++ {
		ws = append(ws, r.startWriter(fmt.Sprintf("writer-%d", i)))
	}
	load := r.startLoad(faults.LoadConfig{Agents: 6, ThreadsPerAgent: 4, Events: 9000, Rate: 1500})
	if err := load.Wait(); err != nil {
		t.Fatal(err)
	}
	three := r.finish("several-writers", projector.DefaultPrefix, nil, ws...)
	// Each writer logs the conflicts it records: the load makes about one
	// in fifty events a conflict, so each writer that applied a share of
	// the events logged some.
	var shares []string
	for _, w := range ws {
		if n := w.Output().Count(`"writer started"`); n != 1 {
			t.Errorf("%s started %d times, want 1", w.Name, n)
		}
		n := w.Output().Count(`"checkpoint conflict recorded"`)
		if n == 0 {
			t.Errorf("%s recorded no conflict: it did not share the work", w.Name)
		}
		shares = append(shares, fmt.Sprintf("%s %d", w.Name, n))
	}
	t.Logf("conflicts recorded per writer: %s (%d in the tables)", strings.Join(shares, ", "), len(three.Conflicts))

	one := r.startWriter("writer-alone", "--prefix", "alone")
	faults.WaitProjected(r.ctx, t, r.js, root, broker.DurableName(events.DefaultFleet, "alone"), projectTimeout, one.CheckAlive)
	if err := one.Stop(t); err != nil {
		t.Errorf("writer-alone exited with %v", err)
	}
	alone := r.dump("alone")
	if rep := faults.Check(faults.Want{Tables: alone}, faults.Got{Tables: three}); !rep.OK() || alone.Checksum() != three.Checksum() {
		t.Errorf("three writers' tables differ from one writer's: %d lost, %d extra, %d mismatched:\n%s", rep.Lost, rep.Extra, rep.Mismatched, strings.Join(rep.Diffs, "\n"))
	}
}

// poison is a bad event published raw and the reason its dead letter must
// give.
type poison struct {
	name    string
	subject string // default the poison thread's subject
	data    []byte
	reason  string
}

// poisons returns at least 12 kinds of bad event, each made from a valid
// encoded event by one change.
func poisons(t *testing.T) []poison {
	t.Helper()
	e := &events.Event{
		Kind: events.KindCheckpointPut, EventID: "p", Fleet: events.DefaultFleet, ThreadID: "poison",
		CreatedAt:  time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Checkpoint: &events.Checkpoint{ID: "c1", State: json.RawMessage(`{"n":1}`), Metadata: json.RawMessage(`{}`)},
	}
	b, err := events.Encode(e, 0)
	if err != nil {
		t.Fatal(err)
	}
	valid := string(b)
	edit := func(old, new string) []byte {
		if !strings.Contains(valid, old) {
			t.Fatalf("encoded event %s has no %s", valid, old)
		}
		return []byte(strings.Replace(valid, old, new, 1))
	}
	huge := edit(`"checkpoint":{"n":1}`, `"checkpoint":{"pad":"`+strings.Repeat("x", events.DefaultMaxEventBytes+(1<<20))+`"}`)
	if len(huge) >= broker.DefaultMaxPayload {
		t.Fatalf("an event over cairn's maximum must fit the broker's max_payload")
	}
	return []poison{
		{name: "invalid JSON", data: []byte(valid[:len(valid)/2]), reason: "not strict JSON"},
		{name: "not an object", data: []byte(`["checkpoint.put"]`), reason: "must be a JSON object"},
		{name: "duplicate keys", data: edit(`{"schema":1,`, `{"schema":1,"schema":1,`), reason: `duplicate object key "schema"`},
		{name: "wrong field type", data: edit(`"checkpoint_id":"c1"`, `"checkpoint_id":1`), reason: "checkpoint_id: must be a string"},
		{name: "unknown kind", data: edit(`"checkpoint.put"`, `"checkpoint.upsert"`), reason: `unknown kind "checkpoint.upsert"`},
		{name: "future schema version", data: edit(`"schema":1`, `"schema":2`), reason: "version 2 is not supported"},
		{name: "empty id", data: edit(`"event_id":"p"`, `"event_id":""`), reason: "event_id: must not be empty"},
		{name: "over-long id", data: edit(`"checkpoint_id":"c1"`, `"checkpoint_id":"`+strings.Repeat("c", 513)+`"`), reason: "checkpoint_id: 513 bytes, over the 512-byte maximum"},
		{name: "invalid UTF-8", data: edit(`"checkpoint_id":"c1"`, "\"checkpoint_id\":\"c\xc3\x281\""), reason: "invalid UTF-8"},
		{name: "control character", data: edit(`"checkpoint_id":"c1"`, `"checkpoint_id":"c\u001b1"`), reason: "checkpoint_id: control character U+001B"},
		{name: "checkpoint not an object", data: edit(`"checkpoint":{"n":1}`, `"checkpoint":[1]`), reason: "checkpoint: must be a JSON object"},
		{name: "metadata not an object", data: edit(`"metadata":{}`, `"metadata":"{}"`), reason: "metadata: must be a JSON object"},
		{name: "reserved namespace", data: edit(`"checkpoint_ns":""`, `"checkpoint_ns":" "`), reason: `checkpoint_ns: " " is reserved`},
		{name: "unknown field", data: edit(`"metadata":{}`, `"metadata":{},"priority":1`), reason: "priority: unknown field"},
		{name: "unpaired surrogate", data: edit(`"checkpoint":{"n":1}`, `"checkpoint":{"n":"\ud800"}`), reason: "unpaired surrogate"},
		{name: "thread does not match subject", subject: events.Subject(root, events.DefaultFleet, "elsewhere"), data: b, reason: "does not match"},
		{name: "over cairn's maximum", data: huge, reason: fmt.Sprintf("over the %d-byte maximum", events.DefaultMaxEventBytes)},
	}
}

// TestPoisonInput: bad events published raw among valid ones, against the
// real writer process: each is dead-lettered with a reason naming its
// problem, every valid event is projected, and an event over the broker's
// max_payload is refused at publish.
func TestPoisonInput(t *testing.T) {
	r := newRig(t, rigConfig{store: "sqlite"})
	w := r.startWriter("writer")
	ps := poisons(t)
	subject := events.Subject(root, events.DefaultFleet, "poison")
	want := make(map[uint64]string)
	publishValid := func(i int) {
		e := checkpointEvent(fmt.Sprintf("valid-%d", i), fmt.Sprintf("valid-%d", i%3))
		e.Checkpoint.ID = fmt.Sprintf("c%d", i)
		seq, err := r.pub.Publish(r.ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		r.ledger.Add(seq, e)
	}
	for i, p := range ps {
		publishValid(i)
		if p.subject == "" {
			p.subject = subject
		}
		// Raw: bytes as they are, as a client in another language might
		// send them; only the message id is set.
		seq, err := broker.PublishMsg(r.ctx, r.js, &nats.Msg{Subject: p.subject, Data: p.data, Header: nats.Header{}}, fmt.Sprintf("poison-%d", i), 5*time.Second, quiet)
		if err != nil {
			t.Fatalf("publish %s: %v", p.name, err)
		}
		want[seq] = p.reason
		r.raw++
	}
	publishValid(len(ps))
	if len(want) < 12 {
		t.Fatalf("%d kinds of poison, want at least 12", len(want))
	}

	// Over the broker's max_payload: refused before anything is stored.
	for _, size := range []int{broker.DefaultMaxPayload + 1, 2 * broker.DefaultMaxPayload} {
		_, err := broker.PublishMsg(r.ctx, r.js, &nats.Msg{Subject: subject, Data: make([]byte, size), Header: nats.Header{}}, fmt.Sprintf("huge-%d", size), 5*time.Second, quiet)
		if !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), "max_payload") {
			t.Errorf("publish %d bytes: got %v, want an invalid error naming max_payload", size, err)
		}
		if err := r.nc.Publish(subject, make([]byte, size)); !errors.Is(err, nats.ErrMaxPayload) {
			t.Errorf("plain NATS publish of %d bytes: got %v, want %v", size, err, nats.ErrMaxPayload)
		}
	}
	r.finish("poison", projector.DefaultPrefix, want, w)
	if n := w.Output().Count(`"event dead-lettered"`); n != len(ps) {
		t.Errorf("the writer logged %d dead letters, want %d", n, len(ps))
	}
}
