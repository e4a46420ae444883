package query_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/query"
)

// request calls a micro endpoint and returns the answer's status (200, or
// the Nats-Service-Error-Code) and body.
func request(t *testing.T, nc *nats.Conn, endpoint, params string) (int, []byte) {
	t.Helper()
	msg, err := nc.Request(query.MicroSubjectPrefix(events.DefaultRoot, events.DefaultFleet)+"."+endpoint, []byte(params), 10*time.Second)
	if err != nil {
		t.Fatalf("request %s %s: %v", endpoint, params, err)
	}
	status := 200
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		if status, err = strconv.Atoi(code); err != nil {
			t.Fatalf("%s: error code %q", endpoint, code)
		}
	}
	return status, msg.Data
}

func TestMicroService(t *testing.T) {
	f := newLineageFixture(t)
	nh := mustNATS(t)
	ctx := testContext(t)
	svc := query.NewService(f.store, nil, query.Config{Logger: quietLogger()})
	ms, err := svc.StartMicro(nh.nc, query.MicroConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Stop()
	srv := MustServe(t, svc)

	// The same answers as the HTTP API.
	for _, tt := range []struct{ endpoint, params, path string }{
		{"threads", `{}`, "/v1/threads"},
		{"threads", `{"prefix":"incident-","limit":1}`, "/v1/threads?prefix=incident-&limit=1"},
		{"latest", `{"thread":"incident-a"}`, "/v1/threads/incident-a/latest"},
		{"checkpoint", `{"thread":"incident-a","id":"a3","ns":""}`, "/v1/threads/incident-a/checkpoints/a3?ns="},
		{"checkpoints", `{"thread":"incident-a","ns":"","limit":2}`, "/v1/threads/incident-a/checkpoints?ns=&limit=2"},
		{"checkpoints", `{"thread":"incident-a","filter":{"turn":3}}`, "/v1/threads/incident-a/checkpoints?filter=%7B%22turn%22%3A3%7D"},
		{"writes", `{"thread":"incident-a","id":"a3","task":"status-page-update"}`, "/v1/threads/incident-a/checkpoints/a3/writes?task=status-page-update"},
		{"ancestors", `{"thread":"incident-b","id":"b2","depth":2,"follow_forks":true}`, "/v1/threads/incident-b/checkpoints/b2/ancestors?depth=2&follow_forks=true"},
		{"children", `{"thread":"incident-a","id":"a2"}`, "/v1/threads/incident-a/checkpoints/a2/children"},
		{"tree", `{"thread":"incident-b","ns":null}`, "/v1/threads/incident-b/tree"},
		{"forks", `{"thread":"incident-a"}`, "/v1/threads/incident-a/forks"},
		{"diff", `{"thread":"incident-a","from":"a1","to":"a3"}`, "/v1/threads/incident-a/diff?from=a1&to=a3"},
		{"list", `{"thread":"incident-a","limit":3}`, "/v1/checkpoints?thread=incident-a&limit=3"},
		{"list", ``, "/v1/checkpoints"},
	} {
		status, body := request(t, nh.nc, tt.endpoint, tt.params)
		hstatus, _, hbody := get(t, srv, tt.path)
		if status != 200 || hstatus != 200 || strings.TrimSpace(string(body)) != strings.TrimSpace(string(hbody)) {
			t.Errorf("%s %s: got %d %.300s\nHTTP %s: %d %.300s", tt.endpoint, tt.params, status, body, tt.path, hstatus, hbody)
		}
	}
	// Errors carry the HTTP status and the JSON error.
	for _, tt := range []struct {
		endpoint, params string
		status           int
		code             string
	}{
		{"latest", `{"thread":"nope"}`, 404, "not_found"},
		{"latest", `{}`, 400, "invalid"},
		{"latest", `{"thread":"incident-a","bogus":1}`, 400, "invalid"},
		{"latest", `{"thread":"incident-a","thread":"x"}`, 400, "invalid"},
		{"latest", `[1]`, 400, "invalid"},
		{"latest", `{"thread":["a"]}`, 400, "invalid"},
		{"threads", `{"limit":1001}`, 400, "invalid"},
		{"tree", `{"thread":"incident-a","min_seq":5}`, 503, "unavailable"},
	} {
		status, body := request(t, nh.nc, tt.endpoint, tt.params)
		var e struct{ Code, Message string }
		if status != tt.status || json.Unmarshal(body, &e) != nil || e.Code != tt.code || e.Message == "" {
			t.Errorf("%s %s: got %d %s, want %d %s", tt.endpoint, tt.params, status, body, tt.status, tt.code)
		}
	}

	// Discovery, as `nats micro ls` and `nats micro info` do it.
	msg, err := nh.nc.Request("$SRV.INFO.cairn-query", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ep := range info.Endpoints {
		names = append(names, ep.Name)
		if !strings.HasPrefix(ep.Subject, "cairn_query.default.") || ep.QueueGroup != "cairn-query" {
			t.Errorf("endpoint %s: subject %q queue %q", ep.Name, ep.Subject, ep.QueueGroup)
		}
	}
	slices.Sort(names)
	want := []string{"ancestors", "checkpoint", "checkpoints", "children", "diff", "forks", "latest", "list", "threads", "tree", "writes"}
	if info.Name != "cairn-query" || info.Version != query.MicroVersion || !slices.Equal(names, want) {
		t.Errorf("info: %s %s endpoints %v, want %v", info.Name, info.Version, names, want)
	}
	if _, err := nh.nc.Request("$SRV.PING.cairn-query", nil, 5*time.Second); err != nil {
		t.Errorf("ping: %v", err)
	}

	// Requests are not captured by the event stream.
	si, err := nh.st.Info(ctx)
	if err != nil || si.State.Msgs != 0 {
		t.Errorf("event stream after the requests: %d messages, %v", si.State.Msgs, err)
	}
	if err := ms.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if _, err := nh.nc.Request(query.MicroSubjectPrefix(events.DefaultRoot, events.DefaultFleet)+".threads", nil, time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("after stop: got %v, want no responders", err)
	}
}

// TestMicroPermissions runs a server with deploy/nats/query-permissions.conf
// and checks its claims: the service user can serve and read positions,
// a caller can call and discover, anyone else is refused.
func TestMicroPermissions(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	perms, err := os.ReadFile(filepath.Join("..", "deploy", "nats", "query-permissions.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "query-permissions.conf"), perms, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := `listen: 127.0.0.1:-1
jetstream { store_dir: "` + filepath.Join(dir, "js") + `" }
include ./query-permissions.conf
authorization {
  users = [
    { user: admin, password: admin-pass }
    { user: query, password: query-pass, permissions: $CAIRN_QUERY_SERVICE }
    { user: agent, password: agent-pass, permissions: $CAIRN_QUERY_CALLER }
    { user: other, password: other-pass, permissions: { publish: { allow: ["other.>"] }, subscribe: { allow: ["_INBOX.>"] } } }
  ]
}
`
	path := filepath.Join(dir, "server.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("the permissions file does not load: %v", err)
	}
	opts.NoSigs, opts.NoLog = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	connect := func(user, pass string) *nats.Conn {
		t.Helper()
		nc, err := broker.Connect(ctx, broker.ConnConfig{URL: ns.ClientURL(), User: user, Password: pass, Name: user})
		if err != nil {
			t.Fatalf("connect as %s: %v", user, err)
		}
		t.Cleanup(nc.Close)
		return nc
	}

	// An admin (a writer, in production) creates the streams and the
	// writers' consumer and publishes one event.
	admin := connect("admin", "admin-pass")
	ajs, _ := jetstream.New(admin)
	st, err := broker.EnsureStreams(ctx, ajs, broker.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: broker.DurableName(events.DefaultFleet, projector.DefaultPrefix), AckPolicy: jetstream.AckExplicitPolicy,
		FilterSubject: events.FleetFilter(events.DefaultRoot, events.DefaultFleet),
	}); err != nil {
		t.Fatal(err)
	}
	apub, err := broker.NewPublisher(ajs, broker.PublisherConfig{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	seq, err := apub.Publish(ctx, checkpointEvent("p1", "incident-a", "", "a9", "", `{}`, `{}`))
	if err != nil {
		t.Fatal(err)
	}

	// The query service's user: what cmd/query does at start, then serve.
	qnc := connect("query", "query-pass")
	qjs, _ := jetstream.New(qnc)
	if _, err := broker.EnsureStreams(ctx, qjs, broker.StreamConfig{}); err != nil {
		t.Fatalf("query user: look up streams: %v", err)
	}
	pos, err := broker.NewPosition(ctx, qjs, events.DefaultRoot, events.DefaultFleet, projector.DefaultPrefix)
	if err != nil {
		t.Fatalf("query user: position: %v", err)
	}
	if head, err := pos.Head(ctx, "incident-a"); err != nil || head != seq {
		t.Errorf("query user: head of incident-a: got %d, %v; want %d", head, err, seq)
	}
	if ok, _, err := pos.Covered(ctx, seq); err != nil || ok {
		t.Errorf("query user: covered(%d): got %v, %v; want false (not acknowledged)", seq, ok, err)
	}
	lag, err := query.NewConsumerLag(ctx, qjs, events.DefaultRoot, events.DefaultFleet, projector.DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := lag.Lag(ctx); err != nil || !l.Known || l.Events == 0 {
		t.Errorf("query user: lag: got %+v, %v", l, err)
	}
	f := newLineageFixture(t)
	svc := query.NewService(f.store, pos, query.Config{WaitTimeout: 200 * time.Millisecond, Logger: quietLogger()})
	ms, err := svc.StartMicro(qnc, query.MicroConfig{})
	if err != nil {
		t.Fatalf("query user: start the micro service: %v", err)
	}
	defer ms.Stop()
	if err := qnc.Publish("cairn.default.incident-a", []byte("{}")); err != nil {
		t.Fatal(err)
	}

	// A caller reads and discovers; read-your-writes answers through NATS.
	agent := connect("agent", "agent-pass")
	if status, body := request(t, agent, "tree", `{"thread":"incident-a","ns":""}`); status != 200 || !strings.Contains(string(body), `"checkpoint_id":"a3b"`) {
		t.Errorf("agent: tree: got %d %.200s", status, body)
	}
	if status, body := request(t, agent, "latest", `{"thread":"incident-a","min_seq":"head"}`); status != 503 || !strings.Contains(string(body), `"applied_seq":0`) {
		t.Errorf("agent: latest with min_seq=head before the writer acked: got %d %s, want 503 with applied_seq 0", status, body)
	}
	if _, err := agent.Request("$SRV.PING.cairn-query", nil, 5*time.Second); err != nil {
		t.Errorf("agent: discovery: %v", err)
	}
	// Anyone else is refused by the server.
	other := connect("other", "other-pass")
	if _, err := other.Request("cairn_query.default.threads", []byte(`{}`), 500*time.Millisecond); err == nil {
		t.Error("a user without the caller permissions got an answer")
	}
	// The query service user cannot write events: its publish is dropped.
	ssi, err := st.Info(ctx)
	if err != nil || ssi.State.Msgs != 1 {
		t.Errorf("event stream: %d messages, %v; want 1 (the query user's publish refused)", ssi.State.Msgs, err)
	}
}
