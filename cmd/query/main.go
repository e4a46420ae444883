// Command query serves cairn's lineage reads over HTTP: latest, by id,
// newest-first lists, writes and ancestors, with read-your-writes when it
// can reach NATS. Every flag has an environment default; see --help.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/cmd/internal/cli"
	"github.com/cairn-io/cairn/query"
)

func main() {
	ctx, stop := cli.SignalContext()
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(cli.Exit("query", err))
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	m := &Main{Stderr: stderr}
	if err := m.ParseFlags(args); err != nil {
		return err
	}
	return m.Run(ctx, nil)
}

// Main is the query command.
type Main struct {
	Stderr io.Writer

	Listen string
	NATS   cli.NATS
	Store  cli.Store
	Log    cli.Logging
	Query  query.Config
	logger *slog.Logger
}

// ParseFlags parses the command line.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	cli.String(fs, &m.Listen, "listen", "CAIRN_QUERY_ADDR", "127.0.0.1:8181", "HTTP listen address")
	m.NATS.Register(fs, "")
	m.Store.Register(fs)
	m.Log.Register(fs, "info")
	cli.Duration(fs, &m.Query.WaitTimeout, "wait-timeout", "CAIRN_WAIT_TIMEOUT", query.DefaultWaitTimeout, "longest read-your-writes wait before answering 503")
	cli.Int(fs, &m.Query.MaxLimit, "max-limit", "CAIRN_MAX_LIMIT", query.DefaultMaxLimit, "largest page a list may ask for")
	fs.Usage = func() {
		fmt.Fprintf(m.Stderr, "Usage: query [flags]\n\nWithout --nats-url the service still serves reads, but min_seq (read-your-writes) answers 503.\n\nFlags:\n")
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

// Run serves until ctx is cancelled. If ready is not nil it receives the
// listening address once the service accepts connections.
func (m *Main) Run(ctx context.Context, ready chan<- string) error {
	store, err := m.Store.Open(ctx)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer store.Close()
	var pos query.Positioner
	if m.NATS.URL != "" {
		cfg := m.NATS.ConnConfig
		cfg.Name = "cairn-query"
		nc, err := broker.Connect(ctx, cfg)
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
		if _, err := broker.EnsureStreams(ctx, js, broker.StreamConfig{Root: m.NATS.Root}); err != nil {
			return err
		}
		p, err := broker.NewPosition(ctx, js, m.NATS.Root, m.NATS.Fleet, m.Store.Prefix)
		if err != nil {
			return err
		}
		pos = p
	} else {
		m.logger.Warn("no --nats-url: reads with min_seq (read-your-writes) will answer 503")
	}
	qc := m.Query
	qc.Logger = m.logger
	svc := query.NewService(store, pos, qc)
	ln, err := net.Listen("tcp", m.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", m.Listen, err)
	}
	srv := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 10 * time.Second}
	m.logger.Info("serving", "addr", "http://"+ln.Addr().String(), "store", m.Store.Describe(), "fleet", m.NATS.Fleet)
	if ready != nil {
		ready <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	m.logger.Info("stopped")
	return nil
}
