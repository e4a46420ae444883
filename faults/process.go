package faults

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StopTimeout bounds how long a process may take to exit after a signal.
const StopTimeout = 30 * time.Second

// Build compiles packages (import paths, e.g.
// "github.com/cairn-io/cairn/cmd/writer") into dir with `go build`, from
// the module that contains the working directory.
func Build(dir string, packages ...string) error {
	cmd := exec.Command("go", append([]string{"build", "-o", dir + string(filepath.Separator)}, packages...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(packages, " "), err, out)
	}
	return nil
}

// Process is a started program whose output (stdout and stderr) is kept.
// Start it again with Restart after it has exited.
type Process struct {
	Name string
	bin  string
	args []string
	dir  string
	env  []string
	cred *syscall.Credential
	out  *Output

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result once done is closed
}

// ProcessConfig describes a program to run.
type ProcessConfig struct {
	Name string // for messages; default the binary's base name
	Bin  string
	Args []string
	Dir  string   // working directory; default the current one
	Env  []string // environment; default the current one without NATS_*, CAIRN_* and QUERY_* variables
	// Credential runs the program as another user (needs root).
	Credential *syscall.Credential
}

// Start starts a program. It is killed, if still running, when the test
// ends, and its output is logged if the test failed.
func Start(tb testing.TB, cfg ProcessConfig) *Process {
	tb.Helper()
	if cfg.Name == "" {
		cfg.Name = filepath.Base(cfg.Bin)
	}
	if cfg.Env == nil {
		cfg.Env = CleanEnv()
	}
	p := &Process{Name: cfg.Name, bin: cfg.Bin, args: cfg.Args, dir: cfg.Dir, env: cfg.Env, cred: cfg.Credential, out: &Output{}}
	if err := p.start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		p.Kill()
		if tb.Failed() {
			tb.Logf("--- %s output (last 60 lines):\n%s", p.Name, p.out.Tail(60))
		}
	})
	return p
}

func (p *Process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Dir, cmd.Env = p.dir, p.env
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Restart starts the program again with the same arguments. It must have
// exited.
func (p *Process) Restart(tb testing.TB) {
	tb.Helper()
	if !p.Exited() {
		tb.Fatalf("restart %s: it is still running", p.Name)
	}
	if err := p.start(); err != nil {
		tb.Fatal(err)
	}
}

// Pid returns the process id of the current run.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Exited reports whether the current run has ended.
func (p *Process) Exited() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// CheckAlive fails tb if the process has exited.
func (p *Process) CheckAlive(tb testing.TB) {
	tb.Helper()
	if p.Exited() {
		p.mu.Lock()
		err := p.err
		p.mu.Unlock()
		tb.Fatalf("%s exited unexpectedly (%v); its last lines:\n%s", p.Name, err, p.out.Tail(30))
	}
}

// Kill sends SIGKILL and waits for the process to be gone. It does
// nothing if the process has exited.
func (p *Process) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Kill()
	<-done
}

// Stop sends SIGTERM and returns the exit error once the process is gone;
// it fails tb if that takes longer than StopTimeout.
func (p *Process) Stop(tb testing.TB) error {
	tb.Helper()
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	select {
	case <-done:
	default:
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(StopTimeout):
			p.Kill()
			tb.Fatalf("%s did not exit within %v of SIGTERM", p.Name, StopTimeout)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Output is everything the process has written so far, over all its runs.
func (p *Process) Output() *Output { return p.out }

// WaitOutput waits until the output holds at least n lines containing
// substr, failing tb after timeout or if the process exits first.
func (p *Process) WaitOutput(tb testing.TB, substr string, n int, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for p.out.Count(substr) < n {
		if p.Exited() {
			p.CheckAlive(tb)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: no %d lines containing %q after %v; its last lines:\n%s", p.Name, n, substr, timeout, p.out.Tail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Output is a process's output, safe for concurrent use.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *Output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(b)
}

// Lines returns the complete lines written so far.
func (o *Output) Lines() []string {
	o.mu.Lock()
	s := o.b.String()
	o.mu.Unlock()
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.Split(s[:i], "\n")
	}
	return nil
}

// Count returns how many lines contain substr.
func (o *Output) Count(substr string) int {
	n := 0
	for _, l := range o.Lines() {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// Tail returns the last n lines.
func (o *Output) Tail(n int) string {
	lines := o.Lines()
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// CleanEnv returns the environment without cairn's and NATS's variables,
// so that the host's environment cannot change what a scenario runs.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "NATS_") || strings.HasPrefix(kv, "CAIRN_") || strings.HasPrefix(kv, "QUERY_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
