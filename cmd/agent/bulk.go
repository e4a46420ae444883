package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/cmd/internal/cli"
	"github.com/cairn-io/cairn/pipeline"
	"github.com/cairn-io/cairn/query"
)

// bulkEnv is what fleet, backfill and prune share: the NATS flags, the
// query service, and the in-process pipeline used without --nats-url.
type bulkEnv struct {
	NATS     cli.NATS
	QueryURL string
	// QueryToken is the bearer token sent to the query service.
	QueryToken string
	DataDir    string
	Log        cli.Logging

	logger *slog.Logger
	js     jetstream.JetStream
	api    *query.Client
	pub    *broker.Publisher
	close  []func()
}

func (b *bulkEnv) register(fs *flag.FlagSet) {
	b.NATS.Register(fs, "")
	cli.String(fs, &b.QueryURL, "query-url", "QUERY_URL", "http://127.0.0.1:8181", "query service URL (used with --nats-url)")
	cli.Secret(fs, &b.QueryToken, "query-token", "CAIRN_QUERY_TOKEN", "bearer token for the query service (when it requires one)")
	cli.String(fs, &b.DataDir, "data-dir", "CAIRN_DATA_DIR", ".cairn", "data directory of the in-process pipeline (without --nats-url)")
	b.Log.Register(fs, "warn")
}

func (b *bulkEnv) check(stderr io.Writer) error {
	if err := b.NATS.Check(); err != nil {
		return err
	}
	var err error
	b.logger, err = b.Log.Logger(stderr)
	return err
}

// open connects to NATS and the query service, or starts the in-process
// pipeline in --data-dir when no NATS URL is set.
func (b *bulkEnv) open(ctx context.Context, stdout io.Writer) error {
	if b.NATS.URL == "" {
		p, err := pipeline.Start(ctx, pipeline.Config{Dir: b.DataDir, Root: b.NATS.Root, Fleet: b.NATS.Fleet, Logger: b.logger})
		if err != nil {
			return fmt.Errorf("start the in-process pipeline in %s: %w", b.DataDir, err)
		}
		b.close = append(b.close, func() { p.Close() })
		abs, _ := filepath.Abs(b.DataDir)
		fmt.Fprintf(stdout, "in-process pipeline: JetStream %s, SQLite %s, query service %s\n",
			p.NATS.URL(), filepath.Join(abs, "cairn.db"), p.QueryURL)
		b.js, b.api, b.pub = p.JS, query.NewClient(p.QueryURL, nil), p.Publisher
		return nil
	}
	cfg := b.NATS.ConnConfig
	cfg.Name = "cairn-agent"
	nc, err := broker.Connect(ctx, cfg)
	if err != nil {
		return err
	}
	b.close = append(b.close, func() { nc.Close() })
	if b.js, err = jetstream.New(nc); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if _, err := broker.EnsureStreams(ctx, b.js, broker.StreamConfig{Root: b.NATS.Root}); err != nil {
		return err
	}
	if b.pub, err = broker.NewPublisher(b.js, broker.PublisherConfig{Root: b.NATS.Root, Fleet: b.NATS.Fleet, Logger: b.logger}); err != nil {
		return err
	}
	b.api = query.NewClient(b.QueryURL, nil)
	b.api.Token = b.QueryToken
	fmt.Fprintf(stdout, "publishing to %s (fleet %s), reading from %s\n", b.NATS.URL, b.NATS.Fleet, b.QueryURL)
	return nil
}

// asyncPublisher returns an asynchronous publisher into the fleet.
func (b *bulkEnv) asyncPublisher(maxInFlight, maxQueued int) (*broker.AsyncPublisher, error) {
	p, err := broker.NewAsyncPublisher(b.js, broker.AsyncConfig{
		PublisherConfig: broker.PublisherConfig{Root: b.NATS.Root, Fleet: b.NATS.Fleet, Logger: b.logger},
		MaxInFlight:     maxInFlight, MaxQueued: maxQueued,
	})
	if err != nil {
		return nil, err
	}
	b.close = append(b.close, p.Close)
	return p, nil
}

func (b *bulkEnv) shutdown() {
	for i := len(b.close) - 1; i >= 0; i-- {
		b.close[i]()
	}
}

// usage returns a flag set's usage function with a description.
func usage(fs *flag.FlagSet, w io.Writer, line, about string) func() {
	return func() {
		fmt.Fprintf(w, "Usage: %s\n\n%s\n\nFlags:\n", line, about)
		fs.PrintDefaults()
	}
}
