package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestListenAddr(t *testing.T) {
	for _, tt := range []struct {
		addr           string
		auth, anyOK    bool
		want           string
		narrowed, fail bool
	}{
		{addr: "127.0.0.1:8181", want: "127.0.0.1:8181"},
		{addr: "localhost:8181", want: "localhost:8181"},
		{addr: "[::1]:8181", want: "[::1]:8181"},
		{addr: "0.0.0.0:8181", want: "127.0.0.1:8181", narrowed: true},
		{addr: ":8181", want: "127.0.0.1:8181", narrowed: true},
		{addr: "10.1.2.3:0", want: "127.0.0.1:0", narrowed: true},
		{addr: "0.0.0.0:8181", auth: true, want: "0.0.0.0:8181"},
		{addr: "0.0.0.0:8181", anyOK: true, want: "0.0.0.0:8181"},
		{addr: "no-port", fail: true},
	} {
		got, narrowed, err := listenAddr(tt.addr, tt.auth, tt.anyOK)
		if (err != nil) != tt.fail || got != tt.want || narrowed != tt.narrowed {
			t.Errorf("listenAddr(%q, auth %v, any %v): got %q narrowed %v, %v; want %q narrowed %v", tt.addr, tt.auth, tt.anyOK, got, narrowed, err, tt.want, tt.narrowed)
		}
	}
}

// lockedBuffer is the command's stderr, read while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs the command with args until the test ends and returns its
// address and its log.
func start(t *testing.T, args ...string) (string, *lockedBuffer) {
	t.Helper()
	var stderr lockedBuffer
	m := &Main{Stderr: &stderr}
	if err := m.ParseFlags(append([]string{"--sqlite-path", filepath.Join(t.TempDir(), "q.db")}, args...)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, ready) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case addr := <-ready:
		return addr, &stderr
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("not serving after 30s")
	}
	return "", nil
}

func status(t *testing.T, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestRunWithoutTokensNarrowsToLoopback(t *testing.T) {
	t.Setenv(TokensEnv, "")
	t.Setenv(TokenEnv, "")
	addr, log := start(t, "--listen", "0.0.0.0:0")
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("listening on %s, want 127.0.0.1", addr)
	}
	if !strings.Contains(log.String(), "listens on loopback only") {
		t.Errorf("the log does not say so:\n%s", log)
	}
	if got := status(t, "http://"+addr+"/v1/threads", ""); got != 200 {
		t.Errorf("open API: got %d", got)
	}
}

func TestRunWithTokens(t *testing.T) {
	const secret = "file-secret-0123456789"
	const envSecret = "env-secret-0123456789"
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("# ops\nops "+secret+" *\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const oneSecret = "change-me"
	t.Setenv(TokensEnv, "agents "+envSecret+" incident-")
	t.Setenv(TokenEnv, oneSecret)
	addr, log := start(t, "--listen", "0.0.0.0:0", "--tokens-file", file)
	if strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("with tokens, listening on %s, want every interface", addr)
	}
	addr = strings.Replace(addr, "[::]", "127.0.0.1", 1)
	addr = strings.Replace(addr, "0.0.0.0", "127.0.0.1", 1)
	for _, tt := range []struct {
		path, token string
		want        int
	}{
		{"/v1/threads", "", 401},
		{"/v1/threads", secret, 200},
		{"/v1/threads", envSecret, 200},
		{"/v1/threads/other/latest", envSecret, 404},
		{"/v1/threads/other/latest", oneSecret, 404}, // open to every thread: this one is missing
		{"/v1/threads", oneSecret, 200},
		{"/healthz", "", 200},
		{"/ui/", "", 200},
		{"/openapi.json", "", 200},
		{"/metrics", "", 200},
	} {
		if got := status(t, "http://"+addr+tt.path, tt.token); got != tt.want {
			t.Errorf("GET %s (token %v): got %d, want %d", tt.path, tt.token != "", got, tt.want)
		}
	}
	if l := log.String(); strings.Contains(l, secret) || strings.Contains(l, envSecret) || strings.Contains(l, oneSecret) || !strings.Contains(l, "tokens=ops,agents,env") {
		t.Errorf("log: want the token names and no secret:\n%s", l)
	}
}

func TestFlagErrors(t *testing.T) {
	t.Setenv(TokensEnv, "")
	t.Setenv(TokenEnv, "")
	for _, tt := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--micro"}, "", "--micro needs --nats-url"},
		{[]string{"--tokens-file", "/nonexistent/tokens"}, "", "--tokens-file"},
		{nil, "x short *", "shorter than 8"},
	} {
		t.Setenv(TokensEnv, tt.env)
		m := &Main{Stderr: &bytes.Buffer{}}
		if err := m.ParseFlags(tt.args); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v (env %q): got %v, want an error containing %q", tt.args, tt.env, err, tt.want)
		}
	}
}
