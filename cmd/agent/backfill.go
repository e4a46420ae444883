package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/cairn-io/cairn/backfill"
	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/cmd/internal/cli"
	"github.com/cairn-io/cairn/cmd/internal/progress"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/langgraph"
)

func init() {
	commands.Add("backfill", cli.Command{
		Summary: "import historical checkpoints and writes (JSON Lines, gzip, or a LangGraph SQLite database)",
		Run:     runBackfill,
	})
}

func runBackfill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		env         bulkEnv
		from        string
		format      string
		cfg         backfill.Config
		maxInFlight int
		maxBytes    int
		every       time.Duration
	)
	fs := flag.NewFlagSet("agent backfill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env.register(fs)
	fs.StringVar(&from, "from", "", "file to import (required): JSON Lines (.gz accepted) or a LangGraph SQLite database")
	fs.StringVar(&format, "format", "auto", "input format: auto, jsonl or langgraph-sqlite")
	fs.BoolVar(&cfg.Force, "force", false, "publish into threads that already hold newer checkpoints or different content")
	fs.BoolVar(&cfg.DryRun, "dry-run", false, "check and count; publish nothing")
	cli.Int(fs, &maxInFlight, "max-in-flight", "CAIRN_MAX_IN_FLIGHT", broker.DefaultMaxInFlight, "most publishes awaiting their ack")
	cli.Int(fs, &maxBytes, "max-event-bytes", "CAIRN_MAX_EVENT_BYTES", events.DefaultMaxEventBytes, "largest event accepted")
	cli.Duration(fs, &every, "progress-every", "CAIRN_PROGRESS_EVERY", progress.DefaultEvery, "interval of progress lines when the output is not a terminal")
	fs.Usage = usage(fs, stderr, "agent backfill --from FILE [flags]",
		`Publishes historical checkpoints and pending writes with their original event
ids and timestamps, each thread's events in historical order (parent before
child, then by created_at). Running it again publishes nothing: events whose
content a thread already holds are skipped. A thread that already holds newer
checkpoints is refused unless --force. JSON Lines: one event per line as in
the event format (schema and fleet may be omitted); gzip is detected. A
LangGraph SqliteSaver database imports rows of type json and reports others.
Exit status 1 if any input was rejected (each is listed with its reason).`)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if from == "" {
		return cli.Usagef("backfill needs --from FILE")
	}
	if err := env.check(stderr); err != nil {
		return err
	}
	kind, err := detectFormat(from, format)
	if err != nil {
		return err
	}
	var (
		src backfill.Source
		rep *langgraph.Report
	)
	switch kind {
	case "jsonl":
		f, err := os.Open(from)
		if err != nil {
			return fmt.Errorf("backfill: %w", err)
		}
		src, err = backfill.ReadJSONL(f, env.NATS.Fleet, maxBytes)
		f.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", from, err)
		}
	case "langgraph-sqlite":
		var r langgraph.Report
		if src, r, err = langgraph.Read(ctx, from, env.NATS.Fleet); err != nil {
			return err
		}
		rep = &r
	}
	fmt.Fprintf(stdout, "read %s (%s): %d events, %d rejected while reading\n", from, kind, len(src.Items), len(src.Rejected))
	if err := env.open(ctx, stdout); err != nil {
		return err
	}
	defer env.shutdown()
	pub, err := env.asyncPublisher(maxInFlight, 0)
	if err != nil {
		return err
	}
	bar := progress.New(stderr, "backfill", int64(len(src.Items)), every)
	cfg.ProgressEvery = 100 * time.Millisecond
	cfg.Progress = func(p backfill.Progress) {
		bar.SetTotal(p.Total)
		bar.Set(p.Done, "")
	}
	res, err := backfill.Run(ctx, pub, env.api, src, cfg)
	bar.Finish("")
	verb := "published"
	if cfg.DryRun {
		verb = "would publish"
	}
	fmt.Fprintf(stdout, "threads: %d (%d refused)\n%s: %d\nskipped as duplicate: %d\nrejected: %d\n",
		res.Threads, len(res.RefusedThreads), verb, res.Published, res.Skipped, len(res.Rejected))
	for _, r := range res.Rejected {
		fmt.Fprintf(stdout, "  %s: %s\n", r.Where, r.Reason)
	}
	if rep != nil && len(rep.NotJSON) > 0 {
		fmt.Fprintf(stdout, "not imported (encoding other than json):\n")
		for _, k := range slices.Sorted(maps.Keys(rep.NotJSON)) {
			fmt.Fprintf(stdout, "  %s: %d rows\n", k, rep.NotJSON[k])
		}
		for _, r := range rep.NotJSONRows {
			fmt.Fprintf(stdout, "  %s\n", r)
		}
	}
	if err != nil {
		return err
	}
	if len(res.Rejected) > 0 {
		return fmt.Errorf("%d inputs rejected (listed above)", len(res.Rejected))
	}
	return nil
}

// detectFormat picks the input format: a SQLite file starts with its
// header string, anything else is read as JSON Lines.
func detectFormat(path, format string) (string, error) {
	switch format {
	case "jsonl", "langgraph-sqlite":
		return format, nil
	case "auto":
	default:
		return "", cli.Usagef("--format %q: want auto, jsonl or langgraph-sqlite", format)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("backfill: %w", err)
	}
	defer f.Close()
	head := make([]byte, 16)
	n, _ := io.ReadFull(f, head)
	if bytes.Equal(head[:n], []byte("SQLite format 3\x00")) {
		return "langgraph-sqlite", nil
	}
	return "jsonl", nil
}
