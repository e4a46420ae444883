// Command writer projects a fleet's events from NATS JetStream into a
// store. `writer` (or `writer run`) runs the projection until SIGINT or
// SIGTERM; `writer redrive` puts dead letters back once their cause is
// fixed. Every flag has an environment default; see --help.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/cmd/internal/cli"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/writer"
)

// commands are writer's subcommands; each file registers its own.
var commands = cli.Commands{Program: "writer", Default: "run"}

func init() {
	commands.Add("run", cli.Command{
		Summary: "project events into the store until SIGINT/SIGTERM",
		Run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			m := &Main{Stdout: stdout, Stderr: stderr}
			if err := m.ParseFlags("run", args); err != nil {
				return err
			}
			return m.Run(ctx)
		},
	})
	commands.Add("redrive", cli.Command{
		Summary: "republish dead letters that now decode, then remove them",
		Run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			m := &Main{Stdout: stdout, Stderr: stderr}
			if err := m.ParseFlags("redrive", args); err != nil {
				return err
			}
			return m.Redrive(ctx)
		},
	})
}

func main() {
	ctx, stop := cli.SignalContext()
	err := commands.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.Exit("writer", err))
}

// Main is the writer command: flags parsed into fields, then Run or Redrive.
type Main struct {
	Stdout, Stderr io.Writer

	NATS   cli.NATS
	Store  cli.Store
	Log    cli.Logging
	Writer writer.Config
	Stream broker.StreamConfig
	DryRun bool
	// MetricsAddr, when set, serves the writer's Prometheus metrics at
	// http://MetricsAddr/metrics.
	MetricsAddr string
	logger      *slog.Logger
	maxSize     int
}

// ParseFlags parses the flags of subcommand cmd.
func (m *Main) ParseFlags(cmd string, args []string) error {
	fs := flag.NewFlagSet("writer "+cmd, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	m.NATS.Register(fs, "nats://127.0.0.1:4222")
	m.Log.Register(fs, "info")
	if cmd == "redrive" {
		fs.BoolVar(&m.DryRun, "dry-run", false, "report what would be redriven; publish and delete nothing")
		cli.Int(fs, &m.maxSize, "max-event-bytes", "CAIRN_MAX_EVENT_BYTES", events.DefaultMaxEventBytes, "largest event accepted")
	} else {
		m.Store.Register(fs)
		cli.Int(fs, &m.Writer.BatchSize, "batch-size", "CAIRN_BATCH_SIZE", writer.DefaultBatchSize, "most events per transaction")
		cli.Duration(fs, &m.Writer.Linger, "linger", "CAIRN_LINGER", writer.DefaultLinger, "how long a partial batch waits for more events")
		cli.Duration(fs, &m.Writer.AckWait, "ack-wait", "CAIRN_ACK_WAIT", writer.DefaultAckWait, "consumer ack wait (redelivery timeout)")
		cli.Int(fs, &m.Writer.MaxEventBytes, "max-event-bytes", "CAIRN_MAX_EVENT_BYTES", events.DefaultMaxEventBytes, "larger events are dead-lettered")
		cli.Duration(fs, &m.Writer.MaxBackoff, "max-backoff", "CAIRN_MAX_BACKOFF", writer.DefaultMaxBackoff, "longest wait between retries while the store is down")
		cli.Int(fs, &m.Stream.Replicas, "replicas", "CAIRN_REPLICAS", 1, "replicas of the streams when this writer creates them")
		cli.String(fs, &m.MetricsAddr, "metrics-addr", "CAIRN_METRICS_ADDR", "", "serve Prometheus metrics at http://ADDR/metrics (empty = off)")
		cli.Int(fs, &m.Writer.Retention.KeepLast, "keep-last", "CAIRN_KEEP_LAST", 0, "retention: keep each thread's newest N checkpoints and prune the rest (0 = keep all)")
		cli.Duration(fs, &m.Writer.Retention.MaxAge, "max-age", "CAIRN_MAX_AGE", 0, "retention: prune checkpoints older than this by created_at, always keeping the newest (0 = keep all)")
		cli.Duration(fs, &m.Stream.MaxAge, "stream-max-age", "CAIRN_STREAM_MAX_AGE", 0, "max age of events in the stream when this writer creates it (0 = keep forever; older events cannot be replayed)")
	}
	fs.Usage = func() {
		fmt.Fprintf(m.Stderr, "Usage: writer %s [flags]\n\nFlags:\n", cmd)
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if err := m.NATS.Check(); err != nil {
		return err
	}
	var err error
	m.logger, err = m.Log.Logger(m.Stderr)
	return err
}

func (m *Main) connect(ctx context.Context) (*nats.Conn, jetstream.JetStream, error) {
	cfg := m.NATS.ConnConfig
	cfg.Name = "cairn-writer"
	nc, err := broker.Connect(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// Run projects until ctx is cancelled.
func (m *Main) Run(ctx context.Context) error {
	store, err := m.Store.Open(ctx)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer store.Close()
	nc, js, err := m.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	wc := m.Writer
	wc.Root, wc.Fleet, wc.Prefix = m.NATS.Root, m.NATS.Fleet, m.Store.Prefix
	wc.Stream = m.Stream
	wc.Logger = m.logger
	if m.MetricsAddr != "" {
		stop, err := m.serveMetrics(&wc)
		if err != nil {
			return err
		}
		defer stop()
	}
	w, err := writer.New(js, store, wc)
	if err != nil {
		return err
	}
	m.logger.Info("projecting", "nats", m.NATS.URL, "store", m.Store.Describe(), "fleet", m.NATS.Fleet)
	return w.Run(ctx)
}

// Redrive republishes dead letters that now decode.
func (m *Main) Redrive(ctx context.Context) error {
	nc, js, err := m.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	res, err := writer.Redrive(ctx, js, writer.RedriveConfig{
		Root: m.NATS.Root, Fleet: m.NATS.Fleet, MaxEventBytes: m.maxSize, DryRun: m.DryRun, Logger: m.logger,
	})
	verb := "redriven"
	if m.DryRun {
		verb = "would be redriven"
	}
	fmt.Fprintf(m.Stdout, "%d dead letters %s, %d still invalid (left in the dead-letter stream)\n", res.Redriven, verb, res.StillInvalid)
	for _, r := range res.Reasons {
		fmt.Fprintf(m.Stdout, "  %s\n", r)
	}
	return err
}

// serveMetrics registers the writer metrics in wc and serves them on
// MetricsAddr until the returned stop is called.
func (m *Main) serveMetrics(wc *writer.Config) (stop func(), err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if wc.Metrics, err = writer.NewMetrics(reg); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	ln, err := net.Listen("tcp", m.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", m.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	m.logger.Info("serving metrics", "addr", "http://"+ln.Addr().String()+"/metrics")
	return func() { srv.Close() }, nil
}
