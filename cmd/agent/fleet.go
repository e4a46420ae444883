package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/cmd/internal/cli"
	"github.com/cairn-io/cairn/cmd/internal/progress"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/fleet"
	"github.com/cairn-io/cairn/query"
)

func init() {
	commands.Add("fleet", cli.Command{
		Summary: "run N concurrent agents x M turns, publishing asynchronously; report rate and ack latency",
		Run:     runFleet,
	})
}

// fleetCmd is `agent fleet`.
type fleetCmd struct {
	env         bulkEnv
	cfg         fleet.Config
	maxInFlight int
	maxQueued   int
	wait        bool
	waitTimeout time.Duration
	every       time.Duration
}

func runFleet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := &fleetCmd{}
	fs := flag.NewFlagSet("agent fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.env.register(fs)
	cli.Int(fs, &c.cfg.Agents, "agents", "CAIRN_FLEET_AGENTS", fleet.DefaultAgents, "concurrent agents, one thread each")
	cli.Int(fs, &c.cfg.Turns, "turns", "CAIRN_FLEET_TURNS", fleet.DefaultTurns, "turns per agent (a checkpoint each)")
	cli.Int(fs, &c.cfg.Writes, "writes", "CAIRN_FLEET_WRITES", fleet.DefaultWrites, "pending writes per turn, published as one writes.put (0 or -1 for none)")
	cli.Int(fs, &c.cfg.CheckpointBytes, "checkpoint-bytes", "CAIRN_FLEET_CHECKPOINT_BYTES", 0, "pad each checkpoint to at least this many bytes (0 = the natural size)")
	cli.Int(fs, &c.cfg.Workers, "workers", "CAIRN_FLEET_WORKERS", 0, "goroutines playing turns (0 = one per CPU)")
	cli.String(fs, &c.cfg.ThreadPrefix, "thread-prefix", "CAIRN_FLEET_THREAD_PREFIX", "", "thread id prefix (default fleet-<random>-)")
	cli.Int(fs, &c.maxInFlight, "max-in-flight", "CAIRN_MAX_IN_FLIGHT", broker.DefaultMaxInFlight, "most publishes awaiting their ack")
	cli.Int(fs, &c.maxQueued, "max-queued", "CAIRN_MAX_QUEUED", broker.DefaultMaxQueued, "most accepted, unacknowledged events before agents block (backpressure)")
	fs.BoolVar(&c.wait, "wait", false, "after publishing, wait until the query service sees every event")
	cli.Duration(fs, &c.waitTimeout, "wait-timeout", "CAIRN_WAIT_TIMEOUT", 5*time.Minute, "longest --wait")
	cli.Duration(fs, &c.every, "progress-every", "CAIRN_PROGRESS_EVERY", progress.DefaultEvery, "interval of progress lines when the output is not a terminal")
	fs.Usage = usage(fs, stderr, "agent fleet [flags]",
		`Runs --agents concurrent agents (the offline incident commander), each on its own
thread, for --turns turns. After every turn an agent publishes its checkpoint
(its message history grows turn by turn) and the turn's pending writes.
Publishing is asynchronous: at most --max-in-flight acks outstanding, one event
per thread at a time, and agents block once --max-queued events wait.
At the end it prints events published, events/s, publish-ack latency p50/p99
and failures; it exits 1 if any event was not stored.`)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if c.cfg.Agents <= 0 || c.cfg.Turns <= 0 {
		return cli.Usagef("--agents and --turns must be at least 1")
	}
	if c.cfg.Writes == 0 {
		c.cfg.Writes = -1 // none (in fleet.Config, 0 means the default)
	}
	if err := c.env.check(stderr); err != nil {
		return err
	}
	if err := c.env.open(ctx, stdout); err != nil {
		return err
	}
	defer c.env.shutdown()
	pub, err := c.env.asyncPublisher(c.maxInFlight, c.maxQueued)
	if err != nil {
		return err
	}
	total := int64(c.cfg.Agents) * int64(c.cfg.Turns)
	if c.cfg.Writes >= 0 {
		total *= 2
	}
	bar := progress.New(stderr, "fleet", total, c.every)
	res, err := fleet.Run(ctx, pub, c.cfg, 100*time.Millisecond, func(p fleet.Progress) {
		detail := ""
		if p.Failed > 0 {
			detail = fmt.Sprintf("failed %d", p.Failed)
		}
		bar.Set(p.Acked+p.Failed, detail)
	})
	bar.Finish("")
	fmt.Fprintf(stdout, "fleet: %d agents x %d turns on threads %s*\n", res.Agents, res.Turns, res.ThreadPrefix)
	fmt.Fprintf(stdout, "events published: %d (%d checkpoints, %d write sets, %d duplicates)\n", res.Published, res.Checkpoints, res.WriteSets, res.Duplicates)
	fmt.Fprintf(stdout, "rate: %.0f events/s over %s\n", res.EventsPerSecond(), res.Elapsed.Round(time.Millisecond))
	if res.Latency != nil {
		fmt.Fprintf(stdout, "publish-ack latency: p50 %s, p99 %s, max %s\n",
			res.Latency.Percentile(0.50).Round(10*time.Microsecond), res.Latency.Percentile(0.99).Round(10*time.Microsecond), res.Latency.Max().Round(10*time.Microsecond))
	}
	fmt.Fprintf(stdout, "failures: %d\n", res.Failed)
	if err != nil {
		return err
	}
	if c.wait && res.MaxSeq > 0 {
		start := time.Now()
		if err := waitVisible(ctx, c.env.api, res.MaxSeq, c.waitTimeout); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "visible through the query service %s after the last ack (stream seq %d)\n", time.Since(start).Round(time.Millisecond), res.MaxSeq)
	}
	return nil
}

// waitVisible waits until a read with min_seq=seq succeeds.
func waitVisible(ctx context.Context, api *query.Client, seq uint64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		_, _, err := api.List(ctx, query.ListParams{AllNS: true, Limit: 1, MinSeq: query.MinSeq{Seq: seq}})
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("events up to stream seq %d not visible after %s: %w", seq, timeout, err)
		}
		if !errors.Is(err, events.ErrUnavailable) {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
