package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// services is nats-server, writer and query running as processes, wired
// as the README's "separate processes" section tells.
type services struct {
	natsURL, queryURL string
	procs             []*process // in stopping order: query, writer, nats-server
}

// startServices starts the three services in dir, on random ports, and
// returns once the query service answers.
func startServices(t *testing.T, dir string) services {
	t.Helper()
	natsPort, queryPort := freePort(t), freePort(t)
	conf, err := os.ReadFile("../deploy/nats/single.conf")
	if err != nil {
		t.Fatal(err)
	}
	confText := strings.Replace(string(conf), "listen: 127.0.0.1:14222", fmt.Sprintf("listen: 127.0.0.1:%d", natsPort), 1)
	if confText == string(conf) {
		t.Fatal("deploy/nats/single.conf no longer listens on 127.0.0.1:14222; update this test")
	}
	if err := os.WriteFile(filepath.Join(dir, "nats.conf"), []byte(confText), 0o644); err != nil {
		t.Fatal(err)
	}
	s := services{
		natsURL:  fmt.Sprintf("nats://127.0.0.1:%d", natsPort),
		queryURL: fmt.Sprintf("http://127.0.0.1:%d", queryPort),
	}
	nats := start(t, dir, "nats-server", "-c", "nats.conf")
	eventually(t, "nats-server to listen", 20*time.Second, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", natsPort))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	writer := start(t, dir, "writer", "--nats-url", s.natsURL, "--sqlite-path", "cairn.db")
	query := start(t, dir, "query", "--nats-url", s.natsURL, "--sqlite-path", "cairn.db", "--listen", fmt.Sprintf("127.0.0.1:%d", queryPort))
	eventually(t, "query service to answer", 20*time.Second, func() bool {
		resp, err := http.Get(s.queryURL + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	s.procs = []*process{query, writer, nats}
	return s
}

// stop stops the services with SIGTERM; each must exit cleanly.
func (s services) stop(t *testing.T) {
	t.Helper()
	for _, p := range s.procs {
		if err := p.stop(t); err != nil {
			t.Errorf("%s exited with %v after SIGTERM", p.name, err)
		}
	}
}

// statusCounter is the status webhook the agent's post_status_update tool
// calls: it counts the posts of each idempotency key, the side effect that
// must happen exactly once per tool call.
type statusCounter struct {
	*httptest.Server
	mu    sync.Mutex
	posts map[string]int
}

func newStatusCounter(t *testing.T) *statusCounter {
	c := &statusCounter{posts: make(map[string]int)}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var u struct{ Key, Audience, Message string }
		if err := json.NewDecoder(r.Body).Decode(&u); err != nil || u.Key == "" {
			t.Errorf("status post without a key: %v", err)
		}
		c.mu.Lock()
		c.posts[u.Key]++
		c.mu.Unlock()
		fmt.Fprintf(w, `{"id":"upd-%s"}`, u.Audience)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *statusCounter) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.posts))
	for k, v := range c.posts {
		out[k] = v
	}
	return out
}

// TestAgentKillAndResume kills the agent with SIGKILL at a point the test
// controls (the pending write of the first of two status posts in one step
// acknowledged, the second not started), restarts it on the same thread,
// and counts the posts: each tool ran exactly once. It does so with the
// services as separate processes (only the agent dies) and with the
// in-process pipeline (the broker and the writer die with it).
func TestAgentKillAndResume(t *testing.T) {
	for _, mode := range []string{"separate services", "in-process"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var svc services
			conn := []string{"--data-dir", filepath.Join(dir, "data")}
			if mode == "separate services" {
				svc = startServices(t, dir)
				conn = []string{"--nats-url", svc.natsURL, "--query-url", svc.queryURL}
			}
			status := newStatusCounter(t)
			thread := "incident-kill"
			first, second := thread+"/call_3", thread+"/call_4"
			args := append([]string{"run", "--thread", thread, "--status-webhook", status.URL}, conn...)

			agent := start(t, dir, "agent", append(args, "--test-halt-after-tool-write", "call_3")...)
			eventually(t, "the agent to halt after call_3's pending write", 90*time.Second, func() bool {
				select {
				case err := <-agent.done:
					t.Fatalf("agent exited (%v) before the halt point:\n%s", err, agent.out.String())
				default:
				}
				return strings.Contains(agent.out.String(), "test halt: the pending write of tool call call_3 is acknowledged")
			})
			if got := status.counts(); got[first] != 1 || got[second] != 0 {
				t.Fatalf("at the halt: posts %v, want %s once and %s not yet", got, first, second)
			}
			// The step's checkpoint 000009 holds the recorded model response
			// and the first post's result, not the second's.
			checkWrites := func(queryURL string) {
				var ws struct {
					Writes []struct {
						TaskID string `json:"task_id"`
					} `json:"writes"`
				}
				getJSON(t, queryURL+"/v1/threads/incident-kill/checkpoints/000009/writes?min_seq=head", &ws)
				var tasks []string
				for _, w := range ws.Writes {
					tasks = append(tasks, w.TaskID)
				}
				if strings.Join(tasks, ",") != "call_3,model" {
					t.Errorf("pending writes of 000009: got %v, want call_3 and model", tasks)
				}
			}
			if mode == "in-process" {
				// The in-process query service dies with the agent, so read
				// through it before the kill.
				m := regexp.MustCompile(`query service (http://\S+)`).FindStringSubmatch(agent.out.String())
				if m == nil {
					t.Fatalf("no query service URL in the agent's output:\n%s", agent.out.String())
				}
				checkWrites(m[1])
				// Not an assertion, only speed: the embedded server writes
				// its consumer's acks to disk at most every 100 ms. Acks it
				// loses with the kill make the restarted writer wait for
				// redelivery (AckWait, 30 s) before the resume can read;
				// the outcome is the same either way.
				time.Sleep(300 * time.Millisecond)
			}
			if err := agent.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			var exitErr *exec.ExitError
			if err := <-agent.done; !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("agent: got %v, want killed by SIGKILL", err)
			}
			if mode == "separate services" {
				checkWrites(svc.queryURL)
			}

			out := runCmd(t, dir, "agent", args...)
			for _, want := range []string{
				"thread incident-kill: latest checkpoint 000009",
				"recorded pending writes: call_3, model",
				"(recorded before, not asked again)",
				"call_3 post_status_update: result recorded before, not run again",
				"call_4 post_status_update → posted to internal",
				"checkpoint 000011 (parent 000010)",
				"reused 1 recorded model responses and 1 recorded tool results",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("resumed run lacks %q:\n%s", want, out)
				}
			}
			got := status.counts()
			if got[first] != 1 || got[second] != 1 || len(got) != 2 {
				t.Errorf("after the resume: posts %v, want exactly %s once and %s once", got, first, second)
			}
			if mode != "separate services" {
				return
			}

			// Through the query API: the thread's latest state holds each
			// post once; a fork of turn 1 shows its origin.
			var latest struct {
				ID         string `json:"checkpoint_id"`
				Checkpoint struct {
					ToolExecutions []struct {
						ToolCallID string `json:"tool_call_id"`
					} `json:"tool_executions"`
				} `json:"checkpoint"`
			}
			getJSON(t, svc.queryURL+"/v1/threads/incident-kill/latest?min_seq=head", &latest)
			var ids []string
			for _, e := range latest.Checkpoint.ToolExecutions {
				ids = append(ids, e.ToolCallID)
			}
			if latest.ID != "000011" || strings.Join(ids, ",") != "call_1,call_2,call_3,call_4" {
				t.Errorf("latest %s, tool executions %v", latest.ID, ids)
			}
			out = runCmd(t, dir, "agent", append([]string{"fork", "--thread", thread, "--at", "000003",
				"--new-thread", "incident-kill-b", "--prompt", "What did we deploy at 13:12?"}, conn...)...)
			if !strings.Contains(out, `checkpoint 000004 (parent -), seq`) || !strings.Contains(out, "search-indexer v7.3.1") {
				t.Errorf("fork output:\n%s", out)
			}
			var forked struct {
				Metadata json.RawMessage `json:"metadata"`
			}
			getJSON(t, svc.queryURL+"/v1/threads/incident-kill-b/checkpoints/000004?min_seq=head", &forked)
			if want := `{"source":"fork","step":4,"turn":1,"forked_from":{"thread_id":"incident-kill","checkpoint_ns":"","checkpoint_id":"000003"}}`; string(forked.Metadata) != want {
				t.Errorf("fork metadata: got %s, want %s", forked.Metadata, want)
			}
			svc.stop(t)
		})
	}
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, b)
	}
}
