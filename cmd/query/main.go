// Command query serves cairn's lineage reads: the HTTP JSON API (threads,
// trees, forks, diffs, latest, by id, newest-first lists, writes and
// ancestors; /openapi.json describes it), the lineage page at /ui/,
// /healthz, /readyz and /metrics, with read-your-writes when it can reach
// NATS, and optionally the same reads as a NATS micro service. Bearer tokens
// (a file or the environment) guard the API; without them it listens on
// loopback only. Every flag has an environment default; see --help.
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
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/cmd/internal/cli"
	"github.com/cairn-io/cairn/query"
)

// Environment variables holding tokens, besides --tokens-file.
const (
	// TokensEnv holds bearer tokens inline, in the format of a tokens file
	// (entries separated by newlines or ';').
	TokensEnv = "CAIRN_QUERY_TOKENS"
	// TokenEnv holds one bearer token for every thread, named "env" (what
	// docker-compose.yml sets).
	TokenEnv = "CAIRN_QUERY_TOKEN"
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
	// TokensFile and the TokensEnv variable hold the bearer tokens.
	TokensFile string
	// ListenAnyWithoutAuth allows a non-loopback address with no tokens.
	ListenAnyWithoutAuth bool
	// Micro serves the reads as a NATS micro service too.
	Micro  bool
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
	cli.String(fs, &m.TokensFile, "tokens-file", "CAIRN_QUERY_TOKENS_FILE", "", "bearer tokens, one per line: <name> <secret> <thread-id prefix or *>...")
	boolFlag(fs, &m.ListenAnyWithoutAuth, "listen-any-without-auth", "CAIRN_QUERY_LISTEN_ANY_WITHOUT_AUTH",
		"with no tokens configured, listen on --listen even if it is not a loopback address (anyone who can reach it reads everything)")
	boolFlag(fs, &m.Micro, "micro", "CAIRN_QUERY_MICRO", "also serve the reads as a NATS micro service on <root>_query.<fleet>.<endpoint> (needs --nats-url)")
	m.NATS.Register(fs, "")
	m.Store.Register(fs)
	m.Log.Register(fs, "info")
	cli.Duration(fs, &m.Query.WaitTimeout, "wait-timeout", "CAIRN_WAIT_TIMEOUT", query.DefaultWaitTimeout, "longest read-your-writes wait before answering 503")
	cli.Int(fs, &m.Query.MaxLimit, "max-limit", "CAIRN_MAX_LIMIT", query.DefaultMaxLimit, "largest page a list may ask for")
	cli.Int(fs, &m.Query.MaxTreeLimit, "max-tree-limit", "CAIRN_MAX_TREE_LIMIT", query.DefaultMaxTreeLimit, "largest page of a checkpoint tree")
	fs.Usage = func() {
		fmt.Fprintf(m.Stderr, `Usage: query [flags]

Serves the query API, the lineage page (/ui/), /healthz, /readyz and /metrics.
Without --nats-url the service still serves reads, but min_seq (read-your-writes) answers 503.

Tokens come from --tokens-file, from %s (same format, entries separated
by newlines or ';') and from %s (one secret for every thread). With none, the
API is open and the service listens on loopback only, unless --listen-any-without-auth.

Flags:
`, TokensEnv, TokenEnv)
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if err := m.NATS.Check(); err != nil {
		return err
	}
	if m.Micro && m.NATS.URL == "" {
		return cli.Usagef("--micro needs --nats-url")
	}
	var err error
	if m.Query.Tokens, err = m.tokens(); err != nil {
		return err
	}
	m.logger, err = m.Log.Logger(m.Stderr)
	return err
}

// tokens reads the tokens file and the TokensEnv variable.
func (m *Main) tokens() ([]query.Token, error) {
	var text string
	if m.TokensFile != "" {
		b, err := os.ReadFile(m.TokensFile)
		if err != nil {
			return nil, cli.Usagef("--tokens-file: %v", err)
		}
		text = string(b)
	}
	text += "\n" + os.Getenv(TokensEnv)
	toks, err := query.ParseTokens(text)
	if err != nil {
		return nil, cli.Usagef("tokens (--tokens-file, %s): %v", TokensEnv, err)
	}
	if secret := strings.TrimSpace(os.Getenv(TokenEnv)); secret != "" {
		one, err := query.ParseTokens("env " + strconv.Quote(secret) + " *")
		if err != nil {
			return nil, cli.Usagef("%s: %v", TokenEnv, err)
		}
		for _, t := range toks {
			if t.Name == "env" || t.Secret == secret {
				return nil, cli.Usagef("%s: its token (named env) is also in --tokens-file or %s", TokenEnv, TokensEnv)
			}
		}
		toks = append(toks, one...)
	}
	return toks, nil
}

// boolFlag registers a boolean flag whose default comes from env ("1",
// "true", ...).
func boolFlag(fs *flag.FlagSet, p *bool, name, env, usage string) {
	v, _ := strconv.ParseBool(os.Getenv(env))
	fs.BoolVar(p, name, v, fmt.Sprintf("%s (env %s)", usage, env))
}

// listenAddr returns the address to listen on: addr itself, or, with no
// tokens and no permission to listen wider without them, addr's port on
// 127.0.0.1 when addr is not a loopback address (narrowed is then true).
func listenAddr(addr string, auth, anyWithoutAuth bool) (listen string, narrowed bool, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", false, cli.Usagef("--listen %q: %v", addr, err)
	}
	if auth || anyWithoutAuth || isLoopback(host) {
		return addr, false, nil
	}
	return net.JoinHostPort("127.0.0.1", port), true, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Run serves until ctx is cancelled. If ready is not nil it receives the
// listening address once the service accepts connections.
func (m *Main) Run(ctx context.Context, ready chan<- string) error {
	addr, narrowed, err := listenAddr(m.Listen, len(m.Query.Tokens) > 0, m.ListenAnyWithoutAuth)
	if err != nil {
		return err
	}
	store, err := m.Store.Open(ctx)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer store.Close()
	qc := m.Query
	qc.Logger = m.logger
	qc.Registry = prometheus.NewRegistry()
	qc.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var svc *query.Service
	if m.NATS.URL != "" {
		cfg := m.NATS.ConnConfig
		cfg.Name = "cairn-query"
		conn, err := broker.Connect(ctx, cfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		js, err := jetstream.New(conn)
		if err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
		if _, err := broker.EnsureStreams(ctx, js, broker.StreamConfig{Root: m.NATS.Root}); err != nil {
			return err
		}
		pos, err := broker.NewPosition(ctx, js, m.NATS.Root, m.NATS.Fleet, m.Store.Prefix)
		if err != nil {
			return err
		}
		if qc.Lag, err = query.NewConsumerLag(ctx, js, m.NATS.Root, m.NATS.Fleet, m.Store.Prefix); err != nil {
			return err
		}
		svc = query.NewService(store, pos, qc)
		if m.Micro {
			ms, err := svc.StartMicro(conn, query.MicroConfig{Root: m.NATS.Root, Fleet: m.NATS.Fleet})
			if err != nil {
				return err
			}
			defer ms.Stop()
			m.logger.Info("serving the NATS micro service", "name", query.DefaultMicroName,
				"subjects", query.MicroSubjectPrefix(m.NATS.Root, m.NATS.Fleet)+".>")
		}
	} else {
		m.logger.Warn("no --nats-url: reads with min_seq (read-your-writes) will answer 503")
		svc = query.NewService(store, nil, qc)
	}
	switch {
	case len(qc.Tokens) > 0:
		names := make([]string, len(qc.Tokens))
		for i, t := range qc.Tokens {
			names[i] = t.Name
		}
		m.logger.Info("bearer tokens required for /v1", "tokens", strings.Join(names, ","))
	case narrowed:
		m.logger.Warn("no tokens configured: the API is open, so the service listens on loopback only; set --tokens-file, "+TokensEnv+
			" or "+TokenEnv+", or pass --listen-any-without-auth, to listen on "+m.Listen, "addr", addr)
	case isLoopbackAddr(addr):
		m.logger.Warn("no tokens configured: the API is open to anyone on this machine (loopback only)")
	default:
		m.logger.Warn("no tokens configured and --listen-any-without-auth: the API is open to anyone who can reach it", "addr", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 10 * time.Second}
	m.logger.Info("serving", "addr", "http://"+ln.Addr().String(), "ui", "http://"+ln.Addr().String()+"/ui/",
		"store", m.Store.Describe(), "fleet", m.NATS.Fleet)
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

func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && isLoopback(host)
}
