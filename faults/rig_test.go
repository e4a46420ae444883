package faults_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/faults"
	"github.com/cairn-io/cairn/postgres"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/sqlite"
)

const (
	// faultsEnv enables the scenarios; .ci/run sets it.
	faultsEnv = "CAIRN_FAULTS"
	// seedEnv replays a run's mix of events and fault timings.
	seedEnv = "CAIRN_FAULTS_SEED"
	// pgBinDir holds initdb and pg_ctl for the private PostgreSQL instances.
	pgBinDir = "/usr/lib/postgresql/15/bin"
	// projectTimeout bounds the wait for the writers to catch up at the
	// end of a scenario.
	projectTimeout = 3 * time.Minute
	root           = events.DefaultRoot
	// publishAttempt bounds each publish attempt of the agents.
	publishAttempt = 2 * time.Second
)

// requireFaults skips a scenario unless CAIRN_FAULTS=1. With it, a missing
// prerequisite fails the scenario instead.
func requireFaults(t *testing.T) {
	t.Helper()
	if os.Getenv(faultsEnv) != "1" {
		t.Skipf("fault scenario: takes minutes; run with %s=1 go test -v -run . ./faults/", faultsEnv)
	}
}

// seed returns the seed of this run, logged so that a failure can be
// replayed with CAIRN_FAULTS_SEED.
func seed(t *testing.T) uint64 {
	t.Helper()
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv(seedEnv); v != "" {
		var err error
		if s, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", seedEnv, v, err)
		}
	}
	t.Logf("seed %d (replay with %s=%d)", s, seedEnv, s)
	return s
}

var bins struct {
	once       sync.Once
	dir        string
	writer     string
	natsServer string
	err        error
}

// binaries builds cmd/writer and nats-server (the version in go.mod) once.
func binaries(t *testing.T) (writerBin, natsBin string) {
	t.Helper()
	bins.once.Do(func() {
		if bins.dir, bins.err = os.MkdirTemp("", "cairn-faults-bin"); bins.err != nil {
			return
		}
		bins.err = faults.Build(bins.dir, "github.com/cairn-io/cairn/cmd/writer", "github.com/nats-io/nats-server/v2")
		bins.writer, bins.natsServer = filepath.Join(bins.dir, "writer"), filepath.Join(bins.dir, "nats-server")
	})
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	return bins.writer, bins.natsServer
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

// rigConfig chooses a scenario's servers.
type rigConfig struct {
	store   string // "sqlite" or "postgres" (a private instance)
	cluster bool   // three nats-server nodes and replicated streams
}

// rig is a scenario's world: nats-server processes, a store, a client
// connection with a publisher whose acknowledged events go to ledger, and
// the writer processes.
type rig struct {
	t          *testing.T
	ctx        context.Context
	cfg        rigConfig
	seed       uint64
	dir        string
	writerBin  string
	nats       []*faults.NATSServer
	natsURL    string
	nc         *nats.Conn
	js         jetstream.JetStream
	pub        *broker.Publisher
	pubRetries atomic.Int64 // "publish retrying" warnings of pub
	ledger     faults.Ledger
	raw        int // events published raw, outside the ledger
	pg         *faults.Postgres
	sqlitePath string
}

func newRig(t *testing.T, cfg rigConfig) *rig {
	t.Helper()
	requireFaults(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	t.Cleanup(cancel)
	writerBin, natsBin := binaries(t)
	r := &rig{t: t, ctx: ctx, cfg: cfg, seed: seed(t), dir: t.TempDir(), writerBin: writerBin}
	switch cfg.store {
	case "sqlite":
		r.sqlitePath = filepath.Join(r.dir, "cairn.db")
	case "postgres":
		r.pg = faults.StartPostgres(t, pgBinDir, r.dir)
	default:
		t.Fatalf("unknown store %q", cfg.store)
	}
	replicas := 1
	if cfg.cluster {
		r.startCluster(natsBin)
		replicas = 3
	} else {
		port := faults.FreePort(t)
		conf := faults.RewriteConf(t, readConf(t, "single.conf"), map[int]int{14222: port})
		r.nats = []*faults.NATSServer{faults.StartNATS(t, natsBin, r.dir, "nats-server", conf, port)}
	}
	var urls []string
	for _, s := range r.nats {
		urls = append(urls, s.URL())
	}
	r.natsURL = strings.Join(urls, ",")

	var err error
	if r.nc, err = broker.Connect(ctx, broker.ConnConfig{URL: r.natsURL, Name: "faults-" + t.Name()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.nc.Close)
	if r.js, err = jetstream.New(r.nc); err != nil {
		t.Fatal(err)
	}
	// The streams exist before the agents start: a cluster may need a
	// moment to elect a leader and see its peers.
	deadline := time.Now().Add(faults.ReadyTimeout)
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := broker.EnsureStreams(actx, r.js, broker.StreamConfig{Replicas: replicas})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("create the streams: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	log := slog.New(countHandler{msg: "publish retrying", n: &r.pubRetries})
	if r.pub, err = broker.NewPublisher(r.js, broker.PublisherConfig{AttemptTimeout: publishAttempt, Logger: log}); err != nil {
		t.Fatal(err)
	}
	return r
}

func readConf(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "deploy", "nats", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startCluster runs deploy/nats/cluster-{1,2,3}.conf on free ports.
func (r *rig) startCluster(natsBin string) {
	ports := make(map[int]int)
	for i := 1; i <= 3; i++ {
		ports[14230+i] = faults.FreePort(r.t)
		ports[16230+i] = faults.FreePort(r.t)
	}
	for i := 1; i <= 3; i++ {
		conf := faults.RewriteConf(r.t, readConf(r.t, fmt.Sprintf("cluster-%d.conf", i)), ports)
		r.nats = append(r.nats, faults.StartNATS(r.t, natsBin, r.dir, fmt.Sprintf("cairn-%d", i), conf, ports[14230+i]))
	}
}

// writerArgs returns the flags of a writer process on the rig's broker and
// store.
func (r *rig) writerArgs(extra ...string) []string {
	args := []string{"--nats-url", r.natsURL, "--log-format", "json"}
	switch r.cfg.store {
	case "sqlite":
		args = append(args, "--store", "sqlite", "--sqlite-path", r.sqlitePath)
	case "postgres":
		args = append(args, "--store", "postgres", "--postgres-url", r.pg.URL())
	}
	return append(args, extra...)
}

// startWriter starts a writer process.
func (r *rig) startWriter(name string, extra ...string) *faults.Process {
	return faults.Start(r.t, faults.ProcessConfig{Name: name, Bin: r.writerBin, Args: r.writerArgs(extra...), Dir: r.dir})
}

// startLoad starts agents publishing through the rig's publisher.
func (r *rig) startLoad(cfg faults.LoadConfig) *faults.Load {
	cfg.Seed = r.seed
	ctx, cancel := context.WithCancel(r.ctx)
	l := faults.StartLoad(ctx, r.pub, cfg, &r.ledger)
	r.t.Cleanup(func() {
		// A failed scenario may leave no broker to acknowledge the
		// publishes in flight: give up on them.
		l.Stop()
		cancel()
		l.Wait()
	})
	return l
}

// waitLedger waits until at least n events have been acknowledged.
func (r *rig) waitLedger(n int, load *faults.Load) {
	r.t.Helper()
	eventually(r.t, 2*time.Minute, fmt.Sprintf("%d acknowledged events", n), func() bool {
		if load.Done() {
			if err := load.Wait(); err != nil {
				r.t.Fatal(err)
			}
		}
		return r.ledger.Len() >= n
	})
}

// consumerInfo returns the writers' consumer state, or nil if the broker
// cannot say right now.
func (r *rig) consumerInfo(prefix string) *jetstream.ConsumerInfo {
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	cons, err := r.js.Consumer(ctx, broker.StreamName(root), broker.DurableName(events.DefaultFleet, prefix))
	if err != nil {
		return nil
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil
	}
	return info
}

// redeliveries returns how many deliveries of the consumer were
// redeliveries: every event is delivered once at least, and the consumer's
// delivered sequence counts every delivery. It assumes the stream holds
// only the consumer's fleet.
func (r *rig) redeliveries(prefix string) uint64 {
	r.t.Helper()
	info := r.consumerInfo(prefix)
	if info == nil {
		r.t.Fatalf("no consumer info for prefix %s", prefix)
	}
	return info.Delivered.Consumer - info.Delivered.Stream
}

// finish waits until the writers have projected every event of the stream,
// stops them, compares the prefix's tables and the dead letters with the
// ledger, prints the scenario's summary line and fails the test unless
// nothing is lost, extra or mismatched. It returns the tables.
func (r *rig) finish(scenario, prefix string, deadLetters map[uint64]string, writers ...*faults.Process) projector.Dump {
	t := r.t
	t.Helper()
	start := time.Now()
	faults.WaitProjected(r.ctx, t, r.js, root, broker.DurableName(events.DefaultFleet, prefix), projectTimeout, func(tb testing.TB) {
		for _, w := range writers {
			w.CheckAlive(tb)
		}
	})
	t.Logf("%d events acknowledged; the writers caught up %v after the end of the load, with %d redeliveries",
		r.ledger.Len()+r.raw, time.Since(start).Round(time.Millisecond), r.redeliveries(prefix))
	for _, w := range writers {
		if err := w.Stop(t); err != nil {
			t.Errorf("%s exited with %v after SIGTERM; its last lines:\n%s", w.Name, err, w.Output().Tail(20))
		}
	}
	got := r.dump(prefix)
	dls, err := faults.ReadDeadLetters(r.ctx, r.js, root)
	if err != nil {
		t.Fatal(err)
	}
	recs := r.ledger.Records()
	want, err := projector.Expect(recs)
	if err != nil {
		t.Fatal(err)
	}
	rep := faults.Check(faults.Want{Tables: want, DeadLetters: deadLetters}, faults.Got{Tables: got, DeadLetters: dls})
	fmt.Println(rep.Summary(scenario, r.cfg.store, len(recs)+r.raw))
	if !rep.OK() {
		t.Errorf("%s: %d lost, %d extra, %d mismatched; first differences:\n%s", scenario, rep.Lost, rep.Extra, rep.Mismatched, strings.Join(rep.Diffs, "\n"))
	}
	r.checkStream(recs, deadLetters)
	return got
}

// checkStream checks that the stream holds each acknowledged event exactly
// once, at the sequence its acknowledgement carried: a retried publish was
// recognised by its id, not stored again.
func (r *rig) checkStream(recs []projector.Record, raw map[uint64]string) {
	t := r.t
	t.Helper()
	msgs, err := faults.ReadStream(r.ctx, r.js, broker.StreamName(root))
	if err != nil {
		t.Fatal(err)
	}
	acked := make(map[uint64]string, len(recs))
	for _, rec := range recs {
		acked[rec.Seq] = rec.Event.EventID
	}
	var unknown, moved int
	seen := make(map[string]uint64, len(msgs))
	for _, m := range msgs {
		id := m.Header.Get(jetstream.MsgIDHeader)
		if prev, dup := seen[id]; dup {
			t.Errorf("event %s is stored twice, at seq %d and %d", id, prev, m.Seq)
		}
		seen[id] = m.Seq
		want, ok := acked[m.Seq]
		_, isRaw := raw[m.Seq]
		switch {
		case !ok && !isRaw:
			unknown++
		case ok && want != id:
			moved++
		}
	}
	if unknown > 0 || moved > 0 || len(msgs) != len(recs)+len(raw) {
		t.Errorf("stream holds %d messages (%d not acknowledged to any agent, %d at another seq than acknowledged), want %d",
			len(msgs), unknown, moved, len(recs)+len(raw))
	}
}

// dump opens the rig's store with prefix and returns its tables.
func (r *rig) dump(prefix string) projector.Dump {
	t := r.t
	t.Helper()
	var store projector.Store
	var err error
	switch r.cfg.store {
	case "sqlite":
		store, err = sqlite.Open(r.ctx, sqlite.Config{Path: r.sqlitePath, Prefix: prefix})
	case "postgres":
		store, err = postgres.Open(r.ctx, postgres.Config{URL: r.pg.URL(), Prefix: prefix})
	}
	if err != nil {
		t.Fatalf("open %s store: %v", r.cfg.store, err)
	}
	defer store.Close()
	d, err := store.Dump(r.ctx)
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	return d
}

// randomPause returns a duration in [lo, hi) from rng.
func randomPause(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

// countHandler is a slog.Handler that counts the records with one message.
type countHandler struct {
	msg string
	n   *atomic.Int64
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h countHandler) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}

func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }
