package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/cairn-io/cairn/cmd/internal/cli"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/replay"
)

func init() {
	commands.Add("verify", cli.Command{
		Summary: "compare two prefixes (or a prefix and the stream) by canonical checksums",
		Run:     runVerify,
	})
}

// errDiffer is returned when verify finds differences (exit status 1).
var errDiffer = errors.New("the projections differ")

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	m := &Main{Stdout: stdout, Stderr: stderr}
	var (
		other        cli.Store
		stream       bool
		maxDiff      int
		maxEventSize int
	)
	fs := flag.NewFlagSet("writer verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	m.NATS.Register(fs, "nats://127.0.0.1:4222")
	m.Store.Register(fs)
	m.Log.Register(fs, "warn")
	fs.StringVar(&other.Prefix, "against-prefix", "", "the prefix to compare with")
	fs.StringVar(&other.Kind, "against-store", "", "its store: sqlite or postgres (default: --store)")
	fs.StringVar(&other.SQLitePath, "against-sqlite-path", "", "its SQLite file (default: --sqlite-path)")
	fs.StringVar(&other.PostgresURL, "against-postgres-url", "", "its PostgreSQL URL (default: --postgres-url)")
	fs.BoolVar(&stream, "against-stream", false, "compare with the tables the projection rules give for the stream's events (reads them all into memory)")
	fs.IntVar(&maxDiff, "max-diff", 20, "how many differing rows to print")
	cli.Int(fs, &maxEventSize, "max-event-bytes", "CAIRN_MAX_EVENT_BYTES", events.DefaultMaxEventBytes, "larger events count as invalid (as for the writers)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: writer verify --prefix A (--against-prefix B | --against-stream) [flags]

Compares every projected table (threads, checkpoints, conflicts, duplicates,
write sets, writes, live) row by row with payloads byte for byte, prints the
row counts and canonical checksums of both sides and the first differing rows
("-" only in A, "+" only in B). Exit status 0 when identical, 1 when not.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if (other.Prefix == "") == !stream {
		return cli.Usagef("give --against-prefix or --against-stream")
	}
	if err := m.NATS.Check(); err != nil {
		return err
	}
	a, err := m.Store.Open(ctx)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer a.Close()
	da, err := a.Dump(ctx)
	if err != nil {
		return fmt.Errorf("read %s: %w", m.Store.Describe(), err)
	}
	var (
		db    projector.Dump
		label string
	)
	if stream {
		nc, js, err := m.connect(ctx)
		if err != nil {
			return err
		}
		defer nc.Close()
		var si replay.StreamInfo
		if db, si, err = replay.StreamDump(ctx, js, m.NATS.Root, m.NATS.Fleet, maxEventSize); err != nil {
			return err
		}
		label = fmt.Sprintf("stream (fleet %s, seqs %d..%d, %d events, %d invalid)", m.NATS.Fleet, si.FirstSeq, si.LastSeq, si.Events, si.Invalid)
		if si.FirstSeq > 1 {
			fmt.Fprintf(stdout, "note: the stream begins at seq %d; events before it were removed by its limits, so a projection that saw them differs\n", si.FirstSeq)
		}
	} else {
		if other.Kind == "" {
			other.Kind = m.Store.Kind
		}
		if other.SQLitePath == "" {
			other.SQLitePath = m.Store.SQLitePath
		}
		if other.PostgresURL == "" {
			other.PostgresURL = m.Store.PostgresURL
		}
		b, err := other.Open(ctx)
		if err != nil {
			return fmt.Errorf("open the other store: %w", err)
		}
		defer b.Close()
		if db, err = b.Dump(ctx); err != nil {
			return fmt.Errorf("read %s: %w", other.Describe(), err)
		}
		label = other.Describe()
	}
	c := replay.Compare(da, db, maxDiff)
	fmt.Fprintf(stdout, "A: %s\n   %s\n   sha256 %s\n", m.Store.Describe(), countLine(c.CountsA), c.ChecksumA)
	fmt.Fprintf(stdout, "B: %s\n   %s\n   sha256 %s\n", label, countLine(c.CountsB), c.ChecksumB)
	if c.Identical {
		fmt.Fprintln(stdout, "identical")
		return nil
	}
	fmt.Fprintf(stdout, "DIFFERENT; first differing rows:\n")
	for _, l := range c.Diff {
		if len(l) > 400 {
			l = strings.ToValidUTF8(l[:400], "") + "…"
		}
		fmt.Fprintf(stdout, "  %s\n", l)
	}
	return errDiffer
}

func countLine(counts []int) string {
	parts := make([]string, len(counts))
	for i, n := range counts {
		parts[i] = fmt.Sprintf("%s %d", replay.Tables[i], n)
	}
	return strings.Join(parts, ", ")
}
