package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/cairn-io/cairn/cmd/internal/cli"
	"github.com/cairn-io/cairn/cmd/internal/progress"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/replay"
)

func init() {
	commands.Add("replay", cli.Command{
		Summary: "rebuild a fleet's tables from the stream into a fresh prefix (resumable)",
		Run:     runReplay,
	})
}

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	m := &Main{Stdout: stdout, Stderr: stderr}
	var (
		cfg      replay.Config
		fromTime string
		every    time.Duration
	)
	fs := flag.NewFlagSet("writer replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	m.NATS.Register(fs, "nats://127.0.0.1:4222")
	m.Store.Register(fs)
	m.Log.Register(fs, "warn")
	fs.Uint64Var(&cfg.FromSeq, "from-seq", 0, "start at this stream sequence (default: the start of the stream)")
	fs.StringVar(&fromTime, "from-time", "", "start at the first event stored at or after this time (RFC 3339)")
	fs.BoolVar(&cfg.Restart, "restart", false, "ignore the progress of an earlier replay into this prefix and start over")
	cli.Int(fs, &cfg.BatchSize, "batch-size", "CAIRN_BATCH_SIZE", replay.DefaultBatchSize, "most events per transaction")
	cli.Int(fs, &cfg.MaxEventBytes, "max-event-bytes", "CAIRN_MAX_EVENT_BYTES", events.DefaultMaxEventBytes, "larger events are skipped as invalid")
	cli.Duration(fs, &every, "progress-every", "CAIRN_PROGRESS_EVERY", progress.DefaultEvery, "interval of progress lines when the output is not a terminal")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: writer replay --prefix NEW [flags]

Rebuilds the fleet's projection from the event stream into the tables of
--prefix, which must be fresh (no checkpoints) and not a live writer's prefix.
It reads with an ordered consumer, so the live writers' consumer is untouched,
up to the stream's last sequence when it starts. Progress is saved after every
batch: run the same command again to resume an interrupted replay, or later to
apply what arrived since. Then compare with: writer verify --prefix NEW
--against-prefix LIVE. Events removed by the stream's limits (MaxAge,
MaxBytes) cannot be replayed; the summary says where the stream begins.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if err := m.NATS.Check(); err != nil {
		return err
	}
	if fromTime != "" {
		t, err := time.Parse(time.RFC3339Nano, fromTime)
		if err != nil {
			return cli.Usagef("--from-time %q: want RFC 3339, e.g. 2026-11-28T13:58:00Z", fromTime)
		}
		cfg.FromTime = t
	}
	logger, err := m.Log.Logger(stderr)
	if err != nil {
		return err
	}
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
	cfg.Root, cfg.Fleet, cfg.Prefix, cfg.Logger = m.NATS.Root, m.NATS.Fleet, m.Store.Prefix, logger
	bar := progress.New(stderr, "replay", 0, every)
	cfg.ProgressEvery = 200 * time.Millisecond
	cfg.Progress = func(p replay.Progress) {
		if p.EndSeq >= p.StartSeq {
			bar.SetTotal(int64(p.EndSeq - p.StartSeq + 1))
		}
		bar.Set(int64(p.AppliedSeq+1-p.StartSeq), fmt.Sprintf("seq %d/%d", p.AppliedSeq, p.EndSeq))
	}
	fmt.Fprintf(stdout, "replaying fleet %s into %s\n", m.NATS.Fleet, m.Store.Describe())
	res, err := replay.Run(ctx, js, store, cfg)
	bar.Finish("")
	if err != nil && res.Events == 0 && ctx.Err() == nil {
		return fmt.Errorf("replay: %w", err)
	}
	if res.Resumed {
		fmt.Fprintf(stdout, "resumed an earlier replay at stream seq %d\n", res.StartSeq)
	}
	fmt.Fprintf(stdout, "stream seqs %d..%d: %d events in %s (%.0f events/s), applied through seq %d\n",
		res.StartSeq, res.EndSeq, res.Events, res.Elapsed.Round(time.Millisecond), res.EventsPerSecond(), res.AppliedSeq)
	fmt.Fprintf(stdout, "applied %d, duplicate %d, conflict %d, superseded %d, ignored %d, invalid %d, failed %d\n",
		res.Applied, res.Duplicate, res.Conflict, res.Superseded, res.Ignored, res.Invalid, res.Failed)
	for _, r := range res.Reasons {
		fmt.Fprintf(stdout, "  %s\n", r)
	}
	if res.FirstSeq > 1 {
		fmt.Fprintf(stdout, "note: the stream begins at seq %d; events before it were removed by its limits (MaxAge/MaxBytes) and are not in the rebuilt tables\n", res.FirstSeq)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("replay interrupted at stream seq %d; run the same command again to resume", res.AppliedSeq)
		}
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}
