package main

import (
	"context"
	"flag"
	"io"

	"github.com/cairn-io/cairn/cmd/internal/cli"
	"github.com/cairn-io/cairn/saver"
)

func init() {
	commands.Add("fork", cli.Command{
		Summary: "continue any checkpoint of a thread on a new thread (its first checkpoint records forked_from)",
		Run:     runFork,
	})
}

func runFork(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f runFlags
	var at, newThread string
	m := &Main{Stdout: stdout, Stderr: stderr, Flags: func(fs *flag.FlagSet) {
		f.register(fs)
		fs.Lookup("thread").Usage = "thread to fork from (required)"
		fs.Lookup("prompt").Usage = "a user turn to play on the new thread (repeatable; played in order)"
		fs.StringVar(&at, "at", "", "checkpoint id to fork from, such as 000003 (required)")
		fs.StringVar(&newThread, "new-thread", "", "id of the new thread, which must not exist yet (required)")
	}}
	if err := m.ParseFlags("fork", args); err != nil {
		return err
	}
	switch {
	case !f.isSet("thread"):
		return cli.Usagef("fork needs --thread")
	case at == "":
		return cli.Usagef("fork needs --at (a checkpoint id of --thread)")
	case newThread == "":
		return cli.Usagef("fork needs --new-thread")
	}
	r, err := f.open(ctx, m)
	if err != nil {
		return err
	}
	defer m.Close()
	th, res, err := r.Fork(ctx, saver.Ref{ThreadID: m.Thread, CheckpointID: at}, newThread)
	if err != nil {
		return err
	}
	more, err := r.Run(ctx, th, f.Prompts)
	if err != nil {
		return err
	}
	res.Checkpoints = append(res.Checkpoints, more.Checkpoints...)
	res.ModelCalls, res.ToolsRun = more.ModelCalls, more.ToolsRun
	return finish(ctx, stdout, r, th, res)
}
