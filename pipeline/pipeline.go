// Package pipeline runs the whole of cairn in one process: an embedded
// nats-server with JetStream, a writer projecting into a store (SQLite by
// default) and the query service on a local port. It is the no-setup
// default of `go run ./cmd/agent` and the harness of end-to-end tests.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/query"
	"github.com/cairn-io/cairn/sqlite"
	"github.com/cairn-io/cairn/writer"
)

// DefaultAckWait is the writers' AckWait in the in-process pipeline.
const DefaultAckWait = 5 * time.Second

// Config configures Start.
type Config struct {
	// Dir holds the broker's storage (Dir/nats) and, unless Store is set,
	// the SQLite database (Dir/cairn.db). Required.
	Dir string
	// Store, if set, is projected into instead of Dir/cairn.db; the
	// pipeline does not close it.
	Store projector.Store
	// Root, Fleet and Prefix as everywhere; defaults apply.
	Root, Fleet, Prefix string
	// QueryAddr is where the query service listens; default 127.0.0.1:0.
	QueryAddr string
	// Writers is how many writers share the durable consumer; default 1.
	Writers int
	// Writer tunes the writers (Root, Fleet and Prefix are set from above).
	Writer writer.Config
	// Query tunes the query service.
	Query  query.Config
	Logger *slog.Logger
}

// Pipeline is a running in-process cairn.
type Pipeline struct {
	NATS      *broker.Embedded
	Conn      *nats.Conn
	JS        jetstream.JetStream
	Store     projector.Store
	Writers   []*writer.Writer
	Publisher *broker.Publisher
	// QueryURL is the query service's base URL.
	QueryURL string

	ownStore bool
	srv      *http.Server
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	errMu    sync.Mutex
	err      error
}

// Start starts everything and returns once the writers' consumer exists
// and the query service accepts connections.
func Start(ctx context.Context, cfg Config) (_ *Pipeline, err error) {
	if cfg.Dir == "" {
		return nil, errors.New("pipeline: no data directory")
	}
	if cfg.Root == "" {
		cfg.Root = events.DefaultRoot
	}
	if cfg.Fleet == "" {
		cfg.Fleet = events.DefaultFleet
	}
	if cfg.Prefix == "" {
		cfg.Prefix = projector.DefaultPrefix
	}
	if cfg.QueryAddr == "" {
		cfg.QueryAddr = "127.0.0.1:0"
	}
	if cfg.Writers <= 0 {
		cfg.Writers = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	p := &Pipeline{Store: cfg.Store}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.NATS, err = broker.StartEmbedded(broker.EmbeddedConfig{Dir: filepath.Join(cfg.Dir, "nats")}); err != nil {
		return nil, err
	}
	if p.Conn, err = broker.Connect(ctx, broker.ConnConfig{URL: p.NATS.URL(), Name: "cairn-pipeline"}); err != nil {
		return nil, err
	}
	if p.JS, err = jetstream.New(p.Conn); err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if p.Store == nil {
		db, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(cfg.Dir, "cairn.db"), Prefix: cfg.Prefix})
		if err != nil {
			return nil, err
		}
		p.Store, p.ownStore = db, true
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	if cfg.Writer.AckWait == 0 {
		// In one process the writer's batches take milliseconds; a short
		// AckWait means events a killed process held are redelivered to
		// its next run within seconds instead of half a minute.
		cfg.Writer.AckWait = DefaultAckWait
	}
	// One registry: the query service's /metrics shows the writers' too.
	reg := cfg.Query.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if cfg.Writer.Metrics == nil {
		if cfg.Writer.Metrics, err = writer.NewMetrics(reg); err != nil {
			return nil, fmt.Errorf("writer metrics: %w", err)
		}
	}
	for i := range cfg.Writers {
		wc := cfg.Writer
		wc.Root, wc.Fleet, wc.Prefix = cfg.Root, cfg.Fleet, cfg.Prefix
		if wc.Logger == nil {
			wc.Logger = cfg.Logger.With("writer", i)
		}
		w, err := writer.New(p.JS, p.Store, wc)
		if err != nil {
			return nil, err
		}
		if _, err := w.EnsureConsumer(ctx); err != nil {
			return nil, err
		}
		p.Writers = append(p.Writers, w)
		p.wg.Go(func() {
			if err := w.Run(runCtx); err != nil {
				p.setErr(fmt.Errorf("writer %d: %w", i, err))
				cfg.Logger.Error("writer stopped", "err", err)
			}
		})
	}
	if p.Publisher, err = broker.NewPublisher(p.JS, broker.PublisherConfig{Root: cfg.Root, Fleet: cfg.Fleet, Logger: cfg.Logger}); err != nil {
		return nil, err
	}
	pos, err := broker.NewPosition(ctx, p.JS, cfg.Root, cfg.Fleet, cfg.Prefix)
	if err != nil {
		return nil, err
	}
	qc := cfg.Query
	qc.Registry = reg
	if qc.Logger == nil {
		qc.Logger = cfg.Logger
	}
	svc := query.NewService(p.Store, pos, qc)
	ln, err := net.Listen("tcp", cfg.QueryAddr)
	if err != nil {
		return nil, fmt.Errorf("query service: %w", err)
	}
	p.QueryURL = "http://" + ln.Addr().String()
	p.srv = &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 10 * time.Second}
	p.wg.Go(func() {
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.setErr(fmt.Errorf("query service: %w", err))
		}
	})
	return p, nil
}

func (p *Pipeline) setErr(err error) {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

// Err returns the first error a background part stopped with, if any.
func (p *Pipeline) Err() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

// Close stops the query service and the writers (nothing uncommitted is
// acknowledged), then the store it opened and the broker.
func (p *Pipeline) Close() error {
	if p.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		p.srv.Shutdown(ctx)
		cancel()
	}
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	if p.Conn != nil {
		p.Conn.Close()
	}
	if p.ownStore && p.Store != nil {
		p.Store.Close()
	}
	if p.NATS != nil {
		p.NATS.Close()
	}
	return p.Err()
}
