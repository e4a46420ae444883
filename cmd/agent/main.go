// Command agent runs cairn's incident-commander agent demo and thread
// maintenance. With no NATS_URL it runs the whole pipeline in-process (an
// embedded JetStream server, a writer on SQLite and the query service, all
// in --data-dir); with NATS_URL it publishes there and reads from
// QUERY_URL. Every flag has an environment default; see --help.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/cmd/internal/cli"
	"github.com/cairn-io/cairn/demo"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/pipeline"
	"github.com/cairn-io/cairn/query"
	"github.com/cairn-io/cairn/saver"
)

// commands are agent's subcommands; each file registers its own.
var commands = cli.Commands{
	Program: "agent",
	Default: "demo",
	Intro: `With no NATS_URL the whole pipeline runs in this process, with its data in
--data-dir; with NATS_URL the agent publishes there and reads from QUERY_URL.`,
}

func init() {
	commands.Add("demo", cli.Command{
		Summary: "run the incident-commander demo: three turns, lineage, rehydrate, writes",
		Run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			return runMain(ctx, "demo", args, stdout, stderr)
		},
	})
	commands.Add("delete", cli.Command{
		Summary: "delete a thread (publishes thread.delete) and wait until reads no longer see it",
		Run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			return runMain(ctx, "delete", args, stdout, stderr)
		},
	})
}

func main() {
	ctx, stop := cli.SignalContext()
	err := commands.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.Exit("agent", err))
}

// runMain parses the shared flags of cmd, opens the pipeline or the remote
// connections, and runs cmd.
func runMain(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	m := &Main{Stdout: stdout, Stderr: stderr}
	if err := m.ParseFlags(cmd, args); err != nil {
		return err
	}
	if err := m.Open(ctx); err != nil {
		return err
	}
	defer m.Close()
	if cmd == "delete" {
		return m.Delete(ctx)
	}
	return m.Demo(ctx)
}

// Main is the agent command.
type Main struct {
	Stdout, Stderr io.Writer

	NATS     cli.NATS
	QueryURL string
	// QueryToken is the bearer token sent to the query service.
	QueryToken string
	DataDir    string
	Thread     string
	Cleanup    bool
	Log        cli.Logging
	// Flags, if set, registers a subcommand's own flags. ParseFlags calls it
	// after registering the shared flags (so it may adjust their usage) and
	// before parsing.
	Flags func(fs *flag.FlagSet)

	logger *slog.Logger
	saver  *saver.Saver
	close  []func()
}

// ParseFlags parses the flags of subcommand cmd.
func (m *Main) ParseFlags(cmd string, args []string) error {
	fs := flag.NewFlagSet("agent "+cmd, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	m.NATS.Register(fs, "")
	cli.String(fs, &m.QueryURL, "query-url", "QUERY_URL", "http://127.0.0.1:8181", "query service URL (used with --nats-url)")
	cli.Secret(fs, &m.QueryToken, "query-token", "CAIRN_QUERY_TOKEN", "bearer token for the query service (when it requires one)")
	cli.String(fs, &m.DataDir, "data-dir", "CAIRN_DATA_DIR", ".cairn", "data directory of the in-process pipeline (without --nats-url)")
	m.Log.Register(fs, "warn")
	threadHelp := "thread id (default: a new incident-<random> thread per run)"
	if cmd == "delete" {
		threadHelp = "thread id to delete (required)"
	} else if cmd == "demo" {
		fs.BoolVar(&m.Cleanup, "cleanup", false, "delete the thread at the end and show it is gone")
	}
	fs.StringVar(&m.Thread, "thread", "", threadHelp)
	if m.Flags != nil {
		m.Flags(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(m.Stderr, "Usage: agent %s [flags]\n\nFlags:\n", cmd)
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if err := m.NATS.Check(); err != nil {
		return err
	}
	if cmd == "delete" && m.Thread == "" {
		return cli.Usagef("delete needs --thread")
	}
	if m.Thread == "" {
		m.Thread = "incident-" + uuid.NewString()[:8]
	}
	var err error
	m.logger, err = m.Log.Logger(m.Stderr)
	return err
}

// Open connects to NATS and the query service, or starts the in-process
// pipeline when no NATS URL is set.
func (m *Main) Open(ctx context.Context) error {
	if m.NATS.URL == "" {
		pc := pipeline.Config{Dir: m.DataDir, Root: m.NATS.Root, Fleet: m.NATS.Fleet, Logger: m.logger}
		abs, _ := filepath.Abs(m.DataDir)
		storeName := "SQLite " + filepath.Join(abs, "cairn.db")
		// With ORACLE_DSN (and friends) set, the pipeline projects into
		// Oracle, as the reference notebook does.
		if st, ok := cli.OracleFromEnv(); ok {
			store, err := st.Open(ctx)
			if err != nil {
				return fmt.Errorf("open the Oracle store (ORACLE_DSN is set): %w", err)
			}
			m.close = append(m.close, func() { store.Close() })
			pc.Store, pc.Prefix, storeName = store, st.Prefix, st.Describe()
		}
		p, err := pipeline.Start(ctx, pc)
		if err != nil {
			return fmt.Errorf("start the in-process pipeline in %s: %w", m.DataDir, err)
		}
		m.close = append(m.close, func() { p.Close() })
		fmt.Fprintf(m.Stdout, "in-process pipeline: JetStream %s (data %s), %s, query service %s\n",
			p.NATS.URL(), filepath.Join(abs, "nats"), storeName, p.QueryURL)
		m.saver = saver.New(p.Publisher, query.NewClient(p.QueryURL, nil))
		return nil
	}
	cfg := m.NATS.ConnConfig
	cfg.Name = "cairn-agent"
	nc, err := broker.Connect(ctx, cfg)
	if err != nil {
		return err
	}
	m.close = append(m.close, func() { nc.Close() })
	pub, err := m.publisher(ctx, nc)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "publishing to %s (fleet %s), reading from %s\n", m.NATS.URL, m.NATS.Fleet, m.QueryURL)
	api := query.NewClient(m.QueryURL, nil)
	api.Token = m.QueryToken
	m.saver = saver.New(pub, api)
	return nil
}

func (m *Main) publisher(ctx context.Context, nc *nats.Conn) (*broker.Publisher, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if _, err := broker.EnsureStreams(ctx, js, broker.StreamConfig{Root: m.NATS.Root}); err != nil {
		return nil, err
	}
	return broker.NewPublisher(js, broker.PublisherConfig{Root: m.NATS.Root, Fleet: m.NATS.Fleet, Logger: m.logger})
}

// Close releases what Open started.
func (m *Main) Close() {
	for i := len(m.close) - 1; i >= 0; i-- {
		m.close[i]()
	}
}

// Demo runs the demo.
func (m *Main) Demo(ctx context.Context) error {
	_, err := demo.Run(ctx, m.saver, demo.Config{
		ThreadID: m.Thread, RunID: uuid.NewString(), AgentID: "incident-commander",
		Cleanup: m.Cleanup, Out: m.Stdout,
	})
	if err != nil {
		return err
	}
	if !m.Cleanup {
		fmt.Fprintf(m.Stdout, "\nthread %s is kept; delete it with: agent delete --thread %s\n", m.Thread, m.Thread)
	}
	return nil
}

// Delete deletes a thread and waits until the query service no longer
// returns it.
func (m *Main) Delete(ctx context.Context) error {
	seq, err := m.saver.DeleteThread(ctx, m.Thread)
	if err != nil {
		return err
	}
	if _, err := m.saver.Get(ctx, saver.Ref{ThreadID: m.Thread}); !errors.Is(err, events.ErrNotFound) {
		return fmt.Errorf("thread %s deleted at stream seq %d, but a read still answers: %v", m.Thread, seq, err)
	}
	fmt.Fprintf(m.Stdout, "thread %s deleted (stream seq %d)\n", m.Thread, seq)
	return nil
}
