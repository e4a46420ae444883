package query_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-io/cairn/query"
)

const (
	opsSecret    = "ops-secret-0123456789abcdef"
	scopedSecret = "incident-b-and-other-secret-0123"
)

func TestParseTokens(t *testing.T) {
	toks, err := query.ParseTokens(`
# name  secret                         prefixes
ops     ` + opsSecret + `   *
agents  agents-secret-0123456789   incident- "with space" ;  other  other-secret-0123456789ab other-
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 3 || toks[0].Name != "ops" || !slices.Equal(toks[0].Prefixes, []string{""}) ||
		!slices.Equal(toks[1].Prefixes, []string{"incident-", "with space"}) || toks[2].Secret != "other-secret-0123456789ab" {
		t.Errorf("tokens: got %+v", toks)
	}
	for _, tt := range []struct{ text, want string }{
		{"a short *", "shorter than 8"},
		{"a " + opsSecret, "want <name> <secret>"},
		{"a " + opsSecret + " *\na other-secret-0123456789ab *", "name \"a\" used twice"},
		{"a " + opsSecret + " *\nb " + opsSecret + " x", "same secret as a"},
		{`a ` + opsSecret + ` "unterminated`, "quoted field"},
		{`a ` + opsSecret + ` ""`, "empty prefix"},
	} {
		_, err := query.ParseTokens(tt.text)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: got %v, want an error containing %q", tt.text, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), opsSecret) {
			t.Errorf("%q: the error shows the secret: %v", tt.text, err)
		}
	}
}

// syncBuffer is a log destination safe for concurrent handlers.
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

func do(t *testing.T, srv *httptest.Server, path, token string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	return resp.StatusCode, resp.Header, body.Bytes()
}

func TestAuth(t *testing.T) {
	f := newLineageFixture(t)
	toks, err := query.ParseTokens("ops " + opsSecret + " *\nscoped " + scopedSecret + " incident-b other-")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc := query.NewService(f.store, nil, query.Config{Tokens: toks, Logger: logger})
	srv := MustServe(t, svc)

	t.Run("401 without a known token", func(t *testing.T) {
		for _, tok := range []string{"", "not-a-token-at-all-xxxxx", strings.ToUpper(opsSecret)} {
			for _, path := range []string{"/v1/threads", "/v1/threads/incident-a/latest", "/v1/checkpoints", "/v1/threads/incident-a/tree"} {
				status, h, body := do(t, srv, path, tok)
				var e struct{ Code, Message string }
				if status != 401 || json.Unmarshal(body, &e) != nil || e.Code != "unauthorized" || e.Message == "" ||
					h.Get("Content-Type") != "application/json" || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s with token %q: got %d %s (WWW-Authenticate %q), want 401 unauthorized JSON", path, tok, status, body, h.Get("WWW-Authenticate"))
				}
			}
		}
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/threads", nil)
		req.Header.Set("Authorization", "Basic "+opsSecret)
		if resp, err := srv.Client().Do(req); err != nil || resp.StatusCode != 401 {
			t.Errorf("basic scheme: got %v, %v; want 401", resp.StatusCode, err)
		} else {
			resp.Body.Close()
		}
	})

	t.Run("public routes need no token", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json", "/ui/"} {
			if status, _, body := do(t, srv, path, ""); status != 200 {
				t.Errorf("%s without a token: got %d %.200s", path, status, body)
			}
		}
	})

	t.Run("a token for every thread", func(t *testing.T) {
		for _, path := range []string{"/v1/threads/incident-a/latest", "/v1/threads/incident-a/checkpoints/a1", "/v1/threads/incident-a/tree"} {
			if status, _, body := do(t, srv, path, opsSecret); status != 200 {
				t.Errorf("%s: got %d %s", path, status, body)
			}
		}
		c := query.NewClient(srv.URL, srv.Client())
		c.Token = opsSecret
		ts, _, err := c.Threads(testContext(t), query.ThreadsParams{})
		if err != nil || len(ts) != 3 {
			t.Errorf("client with the ops token: got %d threads, %v", len(ts), err)
		}
	})

	t.Run("404 outside the token's prefixes", func(t *testing.T) {
		// Every route about a thread, for a thread that exists and one that
		// does not: the same 404, so the answer does not tell them apart.
		for _, rt := range svc.Routes() {
			if !strings.Contains(rt.Path, "{thread}") {
				continue
			}
			var bodies []string
			for _, thread := range []string{"incident-a", "incident-zzz"} {
				path := strings.NewReplacer("{thread}", thread, "{id}", "a1").Replace(rt.Path)
				if strings.HasSuffix(path, "/diff") {
					path += "?from=a1&to=a2"
				}
				status, _, body := do(t, srv, path, scopedSecret)
				if status != 404 || !strings.Contains(string(body), `"code":"not_found"`) {
					t.Errorf("%s with the scoped token: got %d %s, want 404", path, status, body)
				}
				bodies = append(bodies, strings.ReplaceAll(string(body), thread, "T"))
			}
			if bodies[0] != bodies[1] {
				t.Errorf("%s: an existing thread answers %s, a missing one %s", rt.Path, bodies[0], bodies[1])
			}
		}
		for _, path := range []string{"/v1/checkpoints?thread=incident-a", "/v1/threads/incident-ab/latest"} {
			if status, _, body := do(t, srv, path, scopedSecret); status != 404 {
				t.Errorf("%s with the scoped token: got %d %s, want 404", path, status, body)
			}
		}
	})

	t.Run("listings show only the token's threads", func(t *testing.T) {
		c := query.NewClient(srv.URL, srv.Client())
		c.Token = scopedSecret
		ctx := testContext(t)
		ts, _, err := c.Threads(ctx, query.ThreadsParams{})
		var ids []string
		for _, th := range ts {
			ids = append(ids, th.ThreadID)
		}
		if err != nil || !slices.Equal(ids, []string{"other-c", "incident-b"}) {
			t.Errorf("threads: got %v, %v", ids, err)
		}
		if ts, _, _ := c.Threads(ctx, query.ThreadsParams{Prefix: "incident-"}); len(ts) != 1 || ts[0].ThreadID != "incident-b" {
			t.Errorf("threads with prefix incident-: got %+v", ts)
		}
		if ts, _, _ := c.Threads(ctx, query.ThreadsParams{Prefix: "incident-a"}); len(ts) != 0 {
			t.Errorf("threads with prefix incident-a: got %+v, want none", ts)
		}
		for _, limit := range []int{1, 100} {
			var seen []string
			var before uint64
			for {
				cps, next, err := c.List(ctx, query.ListParams{AllNS: true, Limit: limit, BeforeSeq: before})
				if err != nil {
					t.Fatal(err)
				}
				for _, cp := range cps {
					seen = append(seen, cp.ThreadID+"/"+cp.ID)
				}
				if next == 0 {
					break
				}
				before = next
			}
			if want := []string{"other-c/c1", "incident-b/b2", "incident-b/b1"}; !slices.Equal(seen, want) {
				t.Errorf("all checkpoints, limit %d: got %v, want %v", limit, seen, want)
			}
		}
		// incident-b's lineage continues into incident-a, which the token
		// may not read: it stops at the edge of the scope.
		anc, err := c.Ancestors(ctx, "incident-b", "", "b2", 0, query.MinSeq{})
		if err != nil || len(anc) != 1 || anc[0].ID != "b1" {
			t.Errorf("ancestors of b2 in scope: got %+v, %v; want [b1]", anc, err)
		}
		if _, _, err := c.Forks(ctx, query.ForksParams{ThreadID: "incident-a", AllNS: true}); err == nil {
			t.Error("forks of an out-of-scope thread: no error")
		}
	})

	t.Run("forks only in scope", func(t *testing.T) {
		toks, _ := query.ParseTokens("a " + opsSecret + " incident-")
		srv := MustServe(t, query.NewService(f.store, nil, query.Config{Tokens: toks, Logger: quietLogger()}))
		c := query.NewClient(srv.URL, srv.Client())
		c.Token = opsSecret
		forks, _, err := c.Forks(testContext(t), query.ForksParams{ThreadID: "incident-a", AllNS: true})
		if err != nil || !slices.Equal(nodeIDs(forks), []string{"b1"}) {
			t.Errorf("forks of incident-a for incident-*: got %v, %v; want [b1] (other-c is out of scope)", nodeIDs(forks), err)
		}
	})

	if l := logs.String(); strings.Contains(l, opsSecret) || strings.Contains(l, scopedSecret) || strings.Contains(l, strings.ToUpper(opsSecret)) {
		t.Errorf("a token secret appears in the log:\n%s", l)
	} else if !strings.Contains(l, "unauthorized request") {
		t.Errorf("no debug line for unauthorized requests in the log:\n%s", l)
	}
}
