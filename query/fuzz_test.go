package query_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/pipeline"
	"github.com/cairn-io/cairn/pipeline/pipelinetest"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/query"
)

// abuseWait is the read-your-writes timeout of the abuse fixture: a
// well-formed min_seq beyond the projection answers 503 after it.
const abuseWait = 50 * time.Millisecond

// hangAfter is how long one request may take before it counts as a hang.
const hangAfter = 5 * time.Second

// abuseFixture is the query service over the fixture's events as the real
// pipeline projects them: published to an embedded nats-server, projected
// by a writer into SQLite, read-your-writes answered from the writer's
// consumer.
type abuseFixture struct {
	handler http.Handler
	store   projector.Store
}

func newAbuseFixture(tb testing.TB) *abuseFixture {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := pipelinetest.MustStart(tb, pipeline.Config{Logger: quietLogger()})
	for _, r := range newFixture(tb).recs {
		if _, err := p.Publisher.Publish(ctx, r.Event); err != nil {
			tb.Fatal(err)
		}
	}
	pipelinetest.WaitProjected(tb, p, 0)
	pos, err := broker.NewPosition(ctx, p.JS, events.DefaultRoot, events.DefaultFleet, projector.DefaultPrefix)
	if err != nil {
		tb.Fatal(err)
	}
	svc := query.NewService(p.Store, pos, query.Config{WaitTimeout: abuseWait, Logger: quietLogger()})
	return &abuseFixture{handler: svc.Handler(), store: p.Store}
}

// serve runs one raw request target through the handler, failing t if it
// takes longer than hangAfter. ok is false when net/http itself would have
// refused the request line (the handler never sees it).
func (f *abuseFixture) serve(t *testing.T, target string) (resp *httptest.ResponseRecorder, req *http.Request, ok bool) {
	t.Helper()
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: cairn\r\n\r\n")))
	if err != nil {
		return nil, nil, false
	}
	resp = httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.handler.ServeHTTP(resp, req)
	}()
	select {
	case <-done:
	case <-time.After(hangAfter):
		t.Fatalf("GET %q: no answer after %v", target, hangAfter)
	}
	return resp, req, true
}

// checkAnswer fails t unless an answer to GET target is acceptable from a
// hostile client's point of view: never a 5xx, except the documented 503
// of a well-formed min_seq not projected yet; errors are JSON
// {"code","message"}; successes are JSON; redirects (the router cleaning
// "." and ".." segments) stay on this server.
func checkAnswer(t *testing.T, target string, status int, header http.Header, body []byte, query url.Values) {
	t.Helper()
	switch {
	case status >= 200 && status < 300:
		if !json.Valid(body) {
			t.Errorf("GET %q: %d with a body that is not JSON: %q", target, status, body)
		}
		return
	case status >= 300 && status < 400:
		loc, err := url.Parse(header.Get("Location"))
		if err != nil || loc.Scheme != "" || loc.Host != "" || loc.Path == "" {
			t.Errorf("GET %q: %d redirect to %q, want a path on this server", target, status, header.Get("Location"))
		}
		return
	}
	var e struct{ Code, Message string }
	if err := json.Unmarshal(body, &e); err != nil || e.Code == "" || e.Message == "" {
		t.Errorf("GET %q: %d with body %q, want a JSON {code, message} error", target, status, body)
	}
	if header.Get("Content-Type") != "application/json" {
		t.Errorf("GET %q: content type %q", target, header.Get("Content-Type"))
	}
	if status >= 500 {
		v := query.Get("min_seq")
		_, numErr := strconv.ParseUint(v, 10, 63)
		if status != http.StatusServiceUnavailable || e.Code != "unavailable" || (v != "head" && numErr != nil) {
			t.Errorf("GET %q: %d %s: a server error from client input", target, status, body)
		}
	}
}

// abuseSeeds are request targets, well-formed and hostile, that seed the
// fuzzer.
var abuseSeeds = []string{
	"/v1/threads/t1/latest",
	"/v1/threads/t1/latest?ns=sub&min_seq=head",
	"/v1/threads/t1/checkpoints?ns=&limit=2&before_seq=5&min_seq=3",
	"/v1/threads/t1/checkpoints/v2?ns=",
	"/v1/threads/t1/checkpoints/v2/writes?task=task-b",
	"/v1/threads/t1/checkpoints/v3/ancestors?depth=2",
	"/v1/checkpoints?thread=meta&filter=%7B%22n%22%3A1%7D&limit=3",
	"/v1/threads/a%2Fb/checkpoints/a%2Fb",
	"/v1/threads/t1/latest?min_seq=99999",
	"/v1/threads?prefix=t&limit=5",
	"/v1/threads/t1/tree?ns=",
	"/v1/threads/t1/forks?checkpoint=v1",
	"/v1/threads/t1/diff?from=v1&to=v3",
	"/v1/threads/t1/checkpoints/v1/children?limit=1",
}

// hostile is a request a careless or malicious client might send, and the
// status it must get.
type hostile struct {
	name   string
	target string
	status int // after following redirects
}

var hostileRequests = []hostile{
	// SQL fragments: bind variables make them plain (absent) ids.
	{"quote in thread", "/v1/threads/x'%20OR%20'1'%3D'1/latest", 404},
	{"statement in thread", "/v1/threads/t1%3B%20DROP%20TABLE%20cairn_checkpoints%3B%20--/checkpoints", 200},
	{"union in ns", "/v1/threads/t1/latest?ns=%27%20UNION%20SELECT%20*%20FROM%20cairn_threads%20--", 404},
	{"comment in checkpoint id", "/v1/threads/t1/checkpoints/v1'--", 404},
	{"like pattern in task", "/v1/threads/t1/checkpoints/v2/writes?task=%25", 200},
	{"quote in before", "/v1/threads/t1/checkpoints?ns=&before=v1'%20OR%20''%3D'", 404},
	{"SQL in a filter value", "/v1/checkpoints?filter=%7B%22n%22%3A%22'%20OR%201%3D1%20--%22%7D", 200},
	{"SQL as a filter key", "/v1/checkpoints?filter=%7B%22n')%20OR%201%3D1%20--%22%3A1%7D", 200},
	{"SQL as a limit", "/v1/checkpoints?limit=1%3B%20DELETE%20FROM%20cairn_live", 400},
	// Path traversal: the router cleans the path, or the segment is an id.
	{"dot-dot segments", "/v1/threads/../../../etc/passwd", 404},
	{"dot-dot to another endpoint", "/v1/threads/t1/checkpoints/../../../checkpoints", 404},
	{"empty segment", "/v1//threads/t1/latest", 404},
	{"escaped dot-dot thread is the thread named ..", "/v1/threads/%2e%2e/latest", 200},
	{"escaped dot-dot checkpoint", "/v1/threads/t1/checkpoints/%2e%2e", 404},
	{"escaped slashes", "/v1/threads/..%2F..%2Fetc%2Fpasswd/latest", 404},
	{"escaped backslashes", "/v1/threads/..%5C..%5Cwindows/latest", 404},
	{"absolute file", "/v1/threads/%2Fetc%2Fpasswd/checkpoints/%2Fetc%2Fshadow", 404},
	// Huge, negative and malformed numbers.
	{"negative limit", "/v1/checkpoints?limit=-1", 400},
	{"zero limit", "/v1/checkpoints?limit=0", 400},
	{"limit over the maximum", "/v1/checkpoints?limit=1001", 400},
	{"limit over int64", "/v1/checkpoints?limit=99999999999999999999999", 400},
	{"float limit", "/v1/checkpoints?limit=1e3", 400},
	{"hex limit", "/v1/checkpoints?limit=0x10", 400},
	{"negative depth", "/v1/threads/t1/checkpoints/v3/ancestors?depth=-5", 400},
	{"huge depth", "/v1/threads/t1/checkpoints/v3/ancestors?depth=10000000000", 400},
	{"negative before_seq", "/v1/threads/t1/checkpoints?before_seq=-1", 400},
	{"before_seq over uint64", "/v1/threads/t1/checkpoints?before_seq=18446744073709551616", 400},
	{"before_seq over int64", "/v1/threads/t1/checkpoints?before_seq=9223372036854775808", 400},
	{"negative min_seq", "/v1/threads/t1/latest?min_seq=-1", 400},
	{"min_seq over int64", "/v1/threads/t1/latest?min_seq=99999999999999999999", 400},
	{"min_seq word", "/v1/threads/t1/latest?min_seq=tail", 400},
	// Invalid UTF-8 and odd bytes.
	{"invalid UTF-8 thread", "/v1/threads/%ff%fe/latest", 400},
	{"overlong slash", "/v1/threads/%c0%af/latest", 400},
	{"invalid UTF-8 ns", "/v1/threads/t1/latest?ns=%ed%a0%80", 400},
	{"invalid UTF-8 filter", "/v1/checkpoints?filter=%7B%22a%22%3A%22%ff%22%7D", 400},
	{"NUL in thread", "/v1/threads/t%001/latest", 404},
	{"bad escape in query", "/v1/threads/t1/latest?ns=%zz", 400},
	// Sizes and shapes.
	{"long thread id", "/v1/threads/" + strings.Repeat("x", 4096) + "/latest", 400},
	{"long ns", "/v1/threads/t1/latest?ns=" + strings.Repeat("n", 100000), 400},
	{"deep filter", "/v1/checkpoints?filter=" + strings.Repeat("%5B", 100000), 400},
	{"filter not an object", "/v1/checkpoints?filter=%22x%22", 400},
	{"repeated parameter", "/v1/checkpoints?limit=1&limit=2", 400},
	{"unknown parameter", "/v1/checkpoints?order=asc", 400},
	{"unknown endpoint", "/v1/admin/drop", 404},
}

// rawGet sends GET target over a raw connection to addr, so that the
// target reaches the server byte for byte, and follows redirects on the
// same server. It fails t if an answer takes longer than hangAfter.
func rawGet(t *testing.T, addr, target string) (status int, header http.Header, body []byte) {
	t.Helper()
	for range 5 {
		conn, err := net.DialTimeout("tcp", addr, hangAfter)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(hangAfter))
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: cairn\r\nConnection: close\r\n\r\n", target)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			conn.Close()
			t.Fatalf("GET %q: %v", target, err)
		}
		body, err = io.ReadAll(resp.Body)
		conn.Close()
		if err != nil {
			t.Fatalf("GET %q: read body: %v", target, err)
		}
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, "/") {
			return resp.StatusCode, resp.Header, body
		}
		target = loc
	}
	t.Fatalf("GET %q: too many redirects", target)
	return 0, nil, nil
}

func TestHostileQueries(t *testing.T) {
	f := newAbuseFixture(t)
	before, err := f.store.Dump(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.handler)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, h := range hostileRequests {
		t.Run(h.name, func(t *testing.T) {
			status, header, body := rawGet(t, addr, h.target)
			if status != h.status {
				t.Errorf("GET %.200q: got %d %.300s, want %d", h.target, status, body, h.status)
			}
			q, _ := url.ParseQuery(h.target[strings.IndexByte(h.target+"?", '?'):])
			checkAnswer(t, h.target, status, header, body, q)
		})
	}
	after, err := f.store.Dump(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if before.Checksum() != after.Checksum() {
		t.Errorf("hostile reads changed the tables:\n%s", strings.Join(projector.DiffLines(before, after, 20), "\n"))
	}
}

// FuzzQueryAPI sends arbitrary request targets under /v1/ (paths and query
// strings) to the query API: the answer is never a 5xx (but for the documented 503
// of a well-formed min_seq not yet projected), errors are JSON, and no
// request hangs. CI runs it briefly:
//
//	go test -run '^$' -fuzz FuzzQueryAPI -fuzztime 20s ./query/
func FuzzQueryAPI(f *testing.F) {
	for _, s := range abuseSeeds {
		f.Add(s)
	}
	for _, h := range hostileRequests {
		if len(h.target) < 1000 {
			f.Add(h.target)
		}
	}
	fx := newAbuseFixture(f)
	f.Fuzz(func(t *testing.T, target string) {
		if !strings.HasPrefix(target, "/v1/") {
			target = "/v1/" + target
		}
		resp, req, ok := fx.serve(t, target)
		if !ok {
			return // net/http refuses the request line before any handler runs
		}
		checkAnswer(t, target, resp.Code, resp.Header(), bytes.Clone(resp.Body.Bytes()), req.URL.Query())
	})
}
