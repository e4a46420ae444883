package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/cairn-io/cairn/cmd/internal/cli"
	"github.com/cairn-io/cairn/cmd/internal/progress"
	"github.com/cairn-io/cairn/retention"
)

func init() {
	commands.Add("prune", cli.Command{
		Summary: "prune old checkpoints of a thread (or all threads) by a retention policy",
		Run:     runPrune,
	})
}

func runPrune(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		env      bulkEnv
		thread   string
		all      bool
		policy   retention.Policy
		belowSeq uint64
		dryRun   bool
		every    time.Duration
	)
	fs := flag.NewFlagSet("agent prune", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env.register(fs)
	fs.StringVar(&thread, "thread", "", "thread to prune")
	fs.BoolVar(&all, "all-threads", false, "prune every thread that has checkpoints")
	fs.IntVar(&policy.KeepLast, "keep-last", 0, "keep the newest N checkpoints of each thread")
	fs.DurationVar(&policy.MaxAge, "max-age", 0, "keep checkpoints created within this duration (and always the newest)")
	fs.Uint64Var(&belowSeq, "below-seq", 0, "prune --thread below this stream sequence, whatever the policy")
	fs.BoolVar(&dryRun, "dry-run", false, "show what would be pruned; publish nothing")
	cli.Duration(fs, &every, "progress-every", "CAIRN_PROGRESS_EVERY", progress.DefaultEvery, "interval of progress lines when the output is not a terminal")
	fs.Usage = usage(fs, stderr, "agent prune (--thread ID | --all-threads) (--keep-last N | --max-age D | --below-seq S) [flags]",
		`Resolves the policy to a stream-sequence watermark per thread and publishes a
thread.prune event: the writers remove everything the thread's events below
the watermark produced (checkpoints and pending writes). With both --keep-last
and --max-age a checkpoint is kept when either keeps it. A replay of the stream
applies the same prunes. Threads with nothing to prune get no event.`)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	switch {
	case (thread == "") == !all:
		return cli.Usagef("give --thread ID or --all-threads")
	case belowSeq > 0 && (all || policy.Enabled()):
		return cli.Usagef("--below-seq takes --thread and no policy")
	case belowSeq == 0 && !policy.Enabled():
		return cli.Usagef("give --keep-last, --max-age or --below-seq")
	}
	if err := policy.Check(); err != nil {
		return cli.Usagef("%v", err)
	}
	if err := env.check(stderr); err != nil {
		return err
	}
	if err := env.open(ctx, stdout); err != nil {
		return err
	}
	defer env.shutdown()
	pr := retention.Pruner{Reader: retention.QueryLister{Client: env.api}, Publisher: env.pub}
	verb := "pruned"
	if dryRun {
		verb = "would prune"
	}
	if belowSeq > 0 {
		out, err := pr.PruneBelow(ctx, thread, belowSeq, dryRun)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s below stream seq %d (prune event at seq %d)\n", verb, thread, belowSeq, out.Seq)
		return nil
	}
	threads := []string{thread}
	if all {
		var err error
		if threads, err = retention.Threads(ctx, pr.Reader); err != nil {
			return err
		}
	}
	bar := progress.New(stderr, "prune", int64(len(threads)), every)
	pruned := 0
	for i, th := range threads {
		out, err := pr.Prune(ctx, th, policy, dryRun)
		if err != nil {
			bar.Finish("")
			return err
		}
		if out.Pruned {
			pruned++
			fmt.Fprintf(stdout, "%s %s below stream seq %d\n", verb, th, out.Below)
		}
		bar.Set(int64(i+1), "")
	}
	bar.Finish("")
	fmt.Fprintf(stdout, "%d of %d threads %s (%s)\n", pruned, len(threads), verb, policy)
	return nil
}
