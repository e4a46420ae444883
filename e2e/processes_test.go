// Package e2e runs cairn's commands as separate processes, as the README
// tells a newcomer to: the agent demo on the in-process default (twice, in
// one data directory), and nats-server, writer, query and agent as four
// processes wired by flags.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds the three commands and nats-server once per test run.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "cairn-e2e-bin")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/",
			"github.com/cairn-io/cairn/cmd/agent", "github.com/cairn-io/cairn/cmd/writer",
			"github.com/cairn-io/cairn/cmd/query", "github.com/nats-io/nats-server/v2")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// process is a started command whose output is kept for failures.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T, dir, name string, args ...string) *process {
	t.Helper()
	p := &process{name: name, out: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(filepath.Join(binaries(t), name), args...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = cleanEnv()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s output:\n%s", name, p.out.String())
		}
	})
	return p
}

// stop sends SIGTERM and returns the exit error.
func (p *process) stop(t *testing.T) error {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not stop within 20s of SIGTERM", p.name)
		return nil
	}
}

// cleanEnv drops cairn's and NATS's variables, so the host's environment
// cannot change what the test runs.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "NATS_") || strings.HasPrefix(kv, "CAIRN_") || strings.HasPrefix(kv, "QUERY_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func runCmd(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binaries(t), name), args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func eventually(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func assertDemoOutput(t *testing.T, out string) {
	t.Helper()
	for _, want := range []string{
		"== 3. Lineage, newest first ==",
		"v3   parent=v2",
		"v2   parent=v1",
		"v1   parent=-",
		`metadata={"turn":3,"iterations":1,"stop_reason":"stop"}`,
		"== 4. Rehydrate v1 ==",
		"[user] Open the incident: checkout-api p99 is up 4x over the last 15 minutes.",
		"channel=status value=\"we are investigating\"",
		"channel=pagerduty value=\"warmed\"",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	i3, i2, i1 := strings.Index(out, "v3   parent"), strings.Index(out, "v2   parent"), strings.Index(out, "v1   parent")
	if !(i3 < i2 && i2 < i1) {
		t.Errorf("lineage not newest first: v3 at %d, v2 at %d, v1 at %d", i3, i2, i1)
	}
}

func TestDemoInProcessTwice(t *testing.T) {
	dir := t.TempDir()
	first := runCmd(t, dir, "agent")
	assertDemoOutput(t, first)
	second := runCmd(t, dir, "agent", "--cleanup")
	assertDemoOutput(t, second)
	if !strings.Contains(second, "thread deleted") {
		t.Errorf("--cleanup did not report the deletion:\n%s", second)
	}
	// Both runs share one stream: the second run's checkpoints come later.
	if !strings.Contains(second, "stream seq 7,") {
		t.Errorf("second run should continue the first run's stream (v1 at seq 7):\n%s", second)
	}
}

func TestThreeServicesAsProcesses(t *testing.T) {
	dir := t.TempDir()
	svc := startServices(t, dir)
	natsURL, queryURL := svc.natsURL, svc.queryURL

	out := runCmd(t, dir, "agent", "--nats-url", natsURL, "--query-url", queryURL, "--thread", "incident-e2e")
	assertDemoOutput(t, out)
	out = runCmd(t, dir, "agent", "delete", "--nats-url", natsURL, "--query-url", queryURL, "--thread", "incident-e2e")
	if !strings.Contains(out, "thread incident-e2e deleted") {
		t.Errorf("delete output: %s", out)
	}
	svc.stop(t)
}
