// Command bench measures cairn's pipeline against its own raw ceilings, in
// one run on one machine with the same payloads (4 KiB checkpoints by
// default), for SQLite and PostgreSQL:
//
//  1. raw JetStream async publish (plain nats.go) vs `agent fleet` publish;
//  2. raw batched insert of the same rows (plain SQL) vs writer projection;
//  3. end-to-end freshness at a fixed rate: publish → visible through the
//     query API (a read with min_seq), p50/p99;
//  4. replay throughput into a fresh prefix.
//
// It prints every figure and the ratios against the targets. Everything it
// creates (an embedded NATS server in a temp dir, SQLite files, its own
// PostgreSQL table prefixes) is removed at the end.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/cmd/internal/cli"
	"github.com/cairn-io/cairn/cmd/internal/progress"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/fleet"
	"github.com/cairn-io/cairn/postgres"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/replay"
	"github.com/cairn-io/cairn/sqlite"
	"github.com/cairn-io/cairn/writer"
)

// Targets on 2 cores.
const (
	targetPublishRatio    = 0.8
	targetProjectionRatio = 0.5
	targetFreshnessP99    = 50 * time.Millisecond
	targetReplaySQLite    = 20000.0
)

func main() {
	ctx, stop := cli.SignalContext()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.Exit("bench", err))
}

// Main is the bench command's configuration.
type Main struct {
	Events      int
	Payload     int
	Agents      int
	Window      int
	Batch       int
	Rate        int
	FreshFor    time.Duration
	Sample      int
	Stores      string
	PostgresURL string
	ProfileDir  string
	Dir         string
	Every       time.Duration

	out, errw io.Writer
	log       *slog.Logger
	tag       string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	m := &Main{out: stdout, errw: stderr}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cli.Int(fs, &m.Events, "events", "CAIRN_BENCH_EVENTS", 20000, "events per throughput phase")
	cli.Int(fs, &m.Payload, "payload-bytes", "CAIRN_BENCH_PAYLOAD", 4096, "checkpoint size in bytes")
	cli.Int(fs, &m.Agents, "agents", "CAIRN_BENCH_AGENTS", 1000, "fleet agents (threads); turns = events / agents")
	cli.Int(fs, &m.Window, "max-in-flight", "CAIRN_MAX_IN_FLIGHT", broker.DefaultMaxInFlight, "unacknowledged publishes, raw and fleet alike")
	cli.Int(fs, &m.Batch, "batch-size", "CAIRN_BATCH_SIZE", writer.DefaultBatchSize, "rows per transaction: raw inserts, writer and replay alike")
	cli.Int(fs, &m.Rate, "rate", "CAIRN_BENCH_RATE", 1000, "events/s of the freshness phase")
	cli.Duration(fs, &m.FreshFor, "freshness-for", "CAIRN_BENCH_FRESHNESS_FOR", 10*time.Second, "duration of the freshness phase")
	cli.Int(fs, &m.Sample, "freshness-sample", "CAIRN_BENCH_FRESHNESS_SAMPLE", 10, "read back every Nth event of the freshness phase (each read polls the writers' position)")
	cli.String(fs, &m.Stores, "stores", "CAIRN_BENCH_STORES", "sqlite,postgres", "stores to measure, comma-separated")
	cli.String(fs, &m.PostgresURL, "postgres-url", "CAIRN_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test", "PostgreSQL for the postgres phases (own table prefixes, dropped at the end)")
	cli.String(fs, &m.ProfileDir, "profile-dir", "CAIRN_BENCH_PROFILE_DIR", "", "write a CPU profile of each projection and replay phase here")
	cli.String(fs, &m.Dir, "dir", "CAIRN_BENCH_DIR", "", "work directory (default: a new temp dir, removed at the end)")
	cli.Duration(fs, &m.Every, "progress-every", "CAIRN_PROGRESS_EVERY", progress.DefaultEvery, "interval of progress lines when the output is not a terminal")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: bench [flags]

Measures, in one run with the same payloads, for each store:
  1. raw JetStream async publish (plain nats.go) vs agent fleet publish
  2. raw batched insert of the same rows vs writer projection
  3. end-to-end freshness at --rate events/s: publish -> visible via the query API
  4. replay throughput into a fresh prefix
and prints the ratios against the targets (publish >= 0.8, projection >= 0.5,
freshness p99 <= 50ms, replay >= 20,000 events/s into SQLite).

Flags:
`)
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if m.Events < m.Agents || m.Agents <= 0 || m.Payload < 64 || m.Rate <= 0 || m.Sample <= 0 {
		return cli.Usagef("need --events >= --agents > 0, --payload-bytes >= 64, --rate > 0 and --freshness-sample > 0")
	}
	m.Events = m.Events / m.Agents * m.Agents
	m.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m.tag = fmt.Sprintf("%04x", rand.IntN(1<<16))
	return m.Run(ctx)
}

// Run runs every phase and prints the report.
func (m *Main) Run(ctx context.Context) error {
	if m.Dir == "" {
		dir, err := os.MkdirTemp("", "cairn-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		m.Dir = dir
	}
	if m.ProfileDir != "" {
		if err := os.MkdirAll(m.ProfileDir, 0o755); err != nil {
			return err
		}
	}
	srv, err := broker.StartEmbedded(broker.EmbeddedConfig{Dir: filepath.Join(m.Dir, "nats")})
	if err != nil {
		return err
	}
	defer srv.Close()
	nc, err := broker.Connect(ctx, broker.ConnConfig{URL: srv.URL(), Name: "cairn-bench"})
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if _, err := broker.EnsureStreams(ctx, js, broker.StreamConfig{}); err != nil {
		return err
	}
	fmt.Fprintf(m.out, "machine: %s\n", machine())
	fmt.Fprintf(m.out, "events: %d checkpoints of %d bytes on %d threads; batches of %d; %d in flight\n\n", m.Events, m.Payload, m.Agents, m.Batch, m.Window)

	// 1. Publish.
	size := eventSize(m.Payload)
	raw, err := rawPublish(ctx, nc, m.Events, size, m.Window)
	if err != nil {
		return err
	}
	stopProfile := m.profile("publish-fleet")
	fl, err := m.fleet(ctx, js, "bench", m.Events)
	stopProfile()
	if err != nil {
		return err
	}
	stopProfile = m.profile("publish-path")
	pathOnly, err := m.publishPath(ctx, js, m.Events)
	stopProfile()
	if err != nil {
		return err
	}
	pubRatio := fl.EventsPerSecond() / raw
	fmt.Fprintf(m.out, "publish   raw JetStream async   %8.0f events/s  (%d-byte messages)\n", raw, size)
	fmt.Fprintf(m.out, "publish   agent fleet           %8.0f events/s  ack p50 %s p99 %s\n", fl.EventsPerSecond(),
		fl.Latency.Percentile(0.5).Round(10*time.Microsecond), fl.Latency.Percentile(0.99).Round(10*time.Microsecond))
	fmt.Fprintf(m.out, "publish   ratio                 %8.2f          (target >= %.1f: %s)\n", pubRatio, targetPublishRatio, verdict(pubRatio >= targetPublishRatio))
	fmt.Fprintf(m.out, "publish   publisher alone       %8.0f events/s  (prepared events, no agent work; ratio %.2f)\n\n", pathOnly, pathOnly/raw)

	for _, kind := range strings.Split(m.Stores, ",") {
		kind = strings.TrimSpace(kind)
		if kind == "" {
			continue
		}
		if err := m.store(ctx, js, kind, fl.MaxSeq); err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
	}
	return nil
}

// fleet publishes n 4 KiB checkpoints with the fleet driver.
func (m *Main) fleet(ctx context.Context, js jetstream.JetStream, name string, n int) (fleet.Result, error) {
	pub, err := broker.NewAsyncPublisher(js, broker.AsyncConfig{PublisherConfig: broker.PublisherConfig{Fleet: name, Logger: m.log}, MaxInFlight: m.Window})
	if err != nil {
		return fleet.Result{}, err
	}
	defer pub.Close()
	bar := progress.New(m.errw, "fleet publish", int64(n), m.Every)
	res, err := fleet.Run(ctx, pub, fleet.Config{
		Agents: m.Agents, Turns: n / m.Agents, Writes: -1, CheckpointBytes: m.Payload, ThreadPrefix: "bench-",
	}, 200*time.Millisecond, func(p fleet.Progress) { bar.Set(p.Acked+p.Failed, "") })
	bar.Finish("")
	return res, err
}

// publishPath publishes n prepared 4 KiB checkpoint events through the
// asynchronous publisher (encoding and validating each, one per thread in
// flight), without any agent work: the publish path's own cost.
func (m *Main) publishPath(ctx context.Context, js jetstream.JetStream, n int) (float64, error) {
	pub, err := broker.NewAsyncPublisher(js, broker.AsyncConfig{PublisherConfig: broker.PublisherConfig{Fleet: "benchpath", Logger: m.log}, MaxInFlight: m.Window})
	if err != nil {
		return 0, err
	}
	defer pub.Close()
	state := []byte(`{"pad":"` + strings.Repeat("x", m.Payload-10) + `"}`)
	evs := make([]*events.Event, n)
	for i := range evs {
		evs[i] = &events.Event{Kind: events.KindCheckpointPut, EventID: fmt.Sprintf("path-%s-%d", m.tag, i),
			ThreadID: fmt.Sprintf("path-%04d", i%m.Agents), CreatedAt: time.Now().UTC(),
			Checkpoint: &events.Checkpoint{ID: fmt.Sprintf("turn-%04d", i/m.Agents+1), State: state,
				Metadata: []byte(`{"turn":1,"iterations":1,"stop_reason":"stop","agent":0}`)}}
	}
	var failed error
	var once sync.Once
	start := time.Now()
	for _, e := range evs {
		if err := pub.Publish(ctx, e, func(a broker.Ack) {
			if a.Err != nil {
				once.Do(func() { failed = a.Err })
			}
		}); err != nil {
			return 0, err
		}
	}
	if err := pub.Flush(ctx); err != nil {
		return 0, err
	}
	if failed != nil {
		return 0, failed
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// store runs the store phases.
func (m *Main) store(ctx context.Context, js jetstream.JetStream, kind string, lastSeq uint64) (err error) {
	var prefixes []string
	open := func(role string) (projector.Store, error) {
		prefix := fmt.Sprintf("bench%s_%s", m.tag, role)
		prefixes = append(prefixes, prefix)
		switch kind {
		case "sqlite":
			return sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(m.Dir, kind+".db"), Prefix: prefix})
		case "postgres":
			return postgres.Open(ctx, postgres.Config{URL: m.PostgresURL, Prefix: prefix})
		}
		return nil, cli.Usagef("--stores: unknown store %q (want sqlite or postgres)", kind)
	}
	defer func() {
		// Clean up: PostgreSQL prefixes (SQLite files go with the dir),
		// consumers and replay records.
		for _, p := range prefixes {
			if kind == "postgres" {
				if db, oerr := postgres.Open(context.Background(), postgres.Config{URL: m.PostgresURL, Prefix: p}); oerr == nil {
					err = errors.Join(err, db.DropTables(context.Background()))
					db.Close()
				}
			}
			_ = replay.Forget(context.Background(), js, events.DefaultRoot, "bench", p)
			if st, serr := js.Stream(context.Background(), broker.StreamName(events.DefaultRoot)); serr == nil {
				for _, f := range []string{"bench", "fresh" + kind + m.tag} {
					_ = st.DeleteConsumer(context.Background(), broker.DurableName(f, p))
				}
			}
		}
	}()

	// 2. Raw insert vs projection.
	rawStore, err := open("raw")
	if err != nil {
		return err
	}
	rows, err := fleetRows(ctx, js, lastSeq)
	if err != nil {
		return err
	}
	var rawRate float64
	switch kind {
	case "sqlite":
		rawRate, err = rawSQLite(ctx, filepath.Join(m.Dir, kind+".db"), prefixes[0], rows, m.Batch)
	case "postgres":
		rawRate, err = rawPostgres(ctx, m.PostgresURL, prefixes[0], rows, m.Batch)
	}
	rawStore.Close()
	if err != nil {
		return err
	}
	proj, err := m.projection(ctx, js, kind, open, lastSeq)
	if err != nil {
		return err
	}
	ratio := proj / rawRate
	fmt.Fprintf(m.out, "%-9s raw batched insert    %8.0f rows/s\n", kind, rawRate)
	fmt.Fprintf(m.out, "%-9s writer projection     %8.0f events/s\n", kind, proj)
	fmt.Fprintf(m.out, "%-9s ratio                 %8.2f          (target >= %.1f: %s)\n", kind, ratio, targetProjectionRatio, verdict(ratio >= targetProjectionRatio))

	// 4. Replay.
	rp, err := m.replay(ctx, js, kind, open)
	if err != nil {
		return err
	}
	note := ""
	if kind == "sqlite" {
		note = fmt.Sprintf("(target >= %.0f: %s)", targetReplaySQLite, verdict(rp >= targetReplaySQLite))
	}
	fmt.Fprintf(m.out, "%-9s replay                %8.0f events/s  %s\n", kind, rp, note)

	// 3. Freshness.
	fr, err := m.freshness(ctx, js, kind, open)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.out, "%-9s freshness at %d/s    p50 %s p99 %s  (%d reads, 1 in %d events; target p99 <= %s: %s)\n\n", kind, m.Rate,
		fr.Percentile(0.5).Round(100*time.Microsecond), fr.Percentile(0.99).Round(100*time.Microsecond), fr.Count(), m.Sample,
		targetFreshnessP99, verdict(fr.Percentile(0.99) <= targetFreshnessP99))
	return nil
}

// projection projects the bench fleet's events with a writer into a fresh
// prefix and returns events/s from start to the last ack.
func (m *Main) projection(ctx context.Context, js jetstream.JetStream, kind string, open func(string) (projector.Store, error), lastSeq uint64) (float64, error) {
	store, err := open("proj")
	if err != nil {
		return 0, err
	}
	defer store.Close()
	w, err := writer.New(js, store, writer.Config{Fleet: "bench", Prefix: prefixOf(store), BatchSize: m.Batch, Logger: m.log})
	if err != nil {
		return 0, err
	}
	cons, err := w.EnsureConsumer(ctx)
	if err != nil {
		return 0, err
	}
	stopProfile := m.profile("projection-" + kind)
	defer stopProfile()
	wctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	start := time.Now()
	go func() { errc <- w.Run(wctx) }()
	bar := progress.New(m.errw, kind+" projection", int64(m.Events), m.Every)
	defer cancel()
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			return 0, err
		}
		bar.Set(int64(w.Stats.Applied.Load()), "")
		if info.AckFloor.Stream >= lastSeq {
			break
		}
		select {
		case err := <-errc:
			return 0, fmt.Errorf("writer stopped: %w", err)
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	el := time.Since(start)
	bar.Finish("")
	cancel()
	if err := <-errc; err != nil {
		return 0, err
	}
	if got := w.Stats.Applied.Load(); got != int64(m.Events) {
		return 0, fmt.Errorf("writer applied %d events, want %d", got, m.Events)
	}
	return float64(m.Events) / el.Seconds(), nil
}

// replay replays the bench fleet into a fresh prefix.
func (m *Main) replay(ctx context.Context, js jetstream.JetStream, kind string, open func(string) (projector.Store, error)) (float64, error) {
	store, err := open("replay")
	if err != nil {
		return 0, err
	}
	defer store.Close()
	stopProfile := m.profile("replay-" + kind)
	defer stopProfile()
	bar := progress.New(m.errw, kind+" replay", int64(m.Events), m.Every)
	res, err := replay.Run(ctx, js, store, replay.Config{
		Fleet: "bench", Prefix: prefixOf(store), BatchSize: m.Batch, Logger: m.log,
		ProgressEvery: 200 * time.Millisecond, Progress: func(p replay.Progress) { bar.Set(p.Events, "") },
	})
	bar.Finish("")
	if err != nil {
		return 0, err
	}
	if res.Events != int64(m.Events) || res.Applied != int64(m.Events) {
		return 0, fmt.Errorf("replay read %d events and applied %d, want %d", res.Events, res.Applied, m.Events)
	}
	return res.EventsPerSecond(), nil
}

// profile starts a CPU profile into the profile dir, if one is set.
func (m *Main) profile(name string) func() {
	if m.ProfileDir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(m.ProfileDir, name+".pprof"))
	if err != nil {
		m.log.Warn("profile", "err", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		m.log.Warn("profile", "err", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

func prefixOf(s projector.Store) string {
	switch db := s.(type) {
	case *sqlite.DB:
		return db.Prefix()
	case *postgres.DB:
		return db.Prefix()
	}
	return ""
}

// eventSize is the encoded size of a fleet checkpoint event padded to
// payload bytes: what the raw publish sends.
func eventSize(payload int) int {
	e := &events.Event{
		Kind: events.KindCheckpointPut, EventID: "0193b6f2-7c1e-7a52-9d3f-4a5b6c7d8e9f", Fleet: "bench", ThreadID: "bench-0000",
		CreatedAt: time.Now(), Checkpoint: &events.Checkpoint{ID: "turn-0001", ParentID: "turn-0000",
			State:    []byte(`{"pad":"` + strings.Repeat("x", payload-10) + `"}`),
			Metadata: []byte(`{"turn":1,"iterations":1,"stop_reason":"stop","agent":0}`)},
	}
	b, err := events.Encode(e, 0)
	if err != nil {
		return payload
	}
	return len(b)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// machine describes the machine for the report.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if _, v, ok := strings.Cut(l, ":"); ok {
					model = strings.TrimSpace(v)
				}
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %d GiB RAM", (kb+(1<<19))>>20)
		}
	}
	return fmt.Sprintf("%s/%s, %d CPUs (%s)%s, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), model, mem, runtime.Version())
}
