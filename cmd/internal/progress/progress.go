// Package progress shows the progress of a long command: a live bar with
// rate and ETA when the output is a terminal, otherwise one plain log line
// per interval, so that logs of unattended runs stay readable.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// DefaultEvery is the default interval between plain log lines.
const DefaultEvery = 5 * time.Second

// Reporter reports progress towards a total. It is safe for concurrent
// use.
type Reporter struct {
	w     io.Writer
	desc  string
	total int64
	every time.Duration
	start time.Time

	mu       sync.Mutex
	bar      *progressbar.ProgressBar
	last     time.Time
	n        int64
	finished bool
}

// New returns a reporter writing to w (stderr in the commands): a bar if w
// is a terminal, else a line every every (DefaultEvery if 0). total may be
// 0 when unknown.
func New(w io.Writer, desc string, total int64, every time.Duration) *Reporter {
	if every <= 0 {
		every = DefaultEvery
	}
	r := &Reporter{w: w, desc: desc, total: total, every: every, start: time.Now(), last: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		max := total
		if max <= 0 {
			max = -1
		}
		r.bar = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("events"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionFullWidth(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	return r
}

// SetTotal changes the total.
func (r *Reporter) SetTotal(total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total = total
	if r.bar != nil && total > 0 {
		r.bar.ChangeMax64(total)
	}
}

// Set reports n done; detail, if not "", is shown with it.
func (r *Reporter) Set(n int64, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return
	}
	r.n = n
	if r.bar != nil {
		if detail != "" {
			r.bar.Describe(r.desc + " " + detail)
		}
		_ = r.bar.Set64(n)
		return
	}
	if time.Since(r.last) >= r.every {
		r.last = time.Now()
		r.line(detail)
	}
}

// Finish ends the display with a last report.
func (r *Reporter) Finish(detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return
	}
	r.finished = true
	if r.bar != nil {
		if detail != "" {
			r.bar.Describe(r.desc + " " + detail)
		}
		if r.total > 0 && r.n >= r.total {
			_ = r.bar.Finish()
		} else {
			_ = r.bar.Exit()
			fmt.Fprintln(r.w)
		}
		return
	}
	r.line(detail)
}

func (r *Reporter) line(detail string) {
	el := time.Since(r.start)
	rate := 0.0
	if el > 0 {
		rate = float64(r.n) / el.Seconds()
	}
	s := fmt.Sprintf("%s: %d", r.desc, r.n)
	if r.total > 0 {
		s += fmt.Sprintf("/%d (%.0f%%)", r.total, 100*float64(r.n)/float64(r.total))
	}
	s += fmt.Sprintf(", %.0f/s, elapsed %s", rate, el.Round(time.Second))
	if r.total > 0 && rate > 0 && r.n < r.total {
		s += fmt.Sprintf(", eta %s", time.Duration(float64(r.total-r.n)/rate*float64(time.Second)).Round(time.Second))
	}
	if detail != "" {
		s += ", " + detail
	}
	fmt.Fprintln(r.w, s)
}
