package query

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// statusByCode maps each error kind to its HTTP status: the one place the
// query service makes that decision.
var statusByCode = map[events.Code]int{
	events.Invalid:     http.StatusBadRequest,
	events.NotFound:    http.StatusNotFound,
	events.Conflict:    http.StatusConflict,
	events.Unavailable: http.StatusServiceUnavailable,
	events.Internal:    http.StatusInternalServerError,
}

// Route is one endpoint of the HTTP API: what /openapi.json documents and
// what the NATS micro service mirrors.
type Route struct {
	// Method and Path as a net/http pattern: "GET /v1/threads/{thread}/tree".
	Method, Path string
	// Params are the query parameters the route accepts; any other is a 400.
	Params []string
	// Micro names the route's endpoint in the NATS micro service; "" when
	// the route is served over HTTP only.
	Micro string
	// Public routes are served without a token.
	Public bool
	read   func(ctx context.Context, p params) ([]byte, error) // a JSON read
	serve  http.HandlerFunc                                    // any other route
}

// Routes returns the routes of the HTTP API.
func (s *Service) Routes() []Route { return s.routes }

func (s *Service) newRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/v1/threads", Params: []string{"prefix", "before_seq", "limit", "min_seq"}, Micro: "threads", read: s.getThreads},
		{Method: "GET", Path: "/v1/threads/{thread}/latest", Params: []string{"ns", "min_seq"}, Micro: "latest", read: s.getLatest},
		{Method: "GET", Path: "/v1/threads/{thread}/checkpoints", Params: []string{"ns", "filter", "before", "before_seq", "limit", "min_seq"}, Micro: "checkpoints", read: s.getList},
		{Method: "GET", Path: "/v1/threads/{thread}/checkpoints/{id}", Params: []string{"ns", "min_seq"}, Micro: "checkpoint", read: s.getCheckpoint},
		{Method: "GET", Path: "/v1/threads/{thread}/checkpoints/{id}/writes", Params: []string{"ns", "task", "min_seq"}, Micro: "writes", read: s.getWrites},
		{Method: "GET", Path: "/v1/threads/{thread}/checkpoints/{id}/ancestors", Params: []string{"ns", "depth", "follow_forks", "min_seq"}, Micro: "ancestors", read: s.getAncestors},
		{Method: "GET", Path: "/v1/threads/{thread}/checkpoints/{id}/children", Params: []string{"ns", "before_seq", "limit", "min_seq"}, Micro: "children", read: s.getChildren},
		{Method: "GET", Path: "/v1/threads/{thread}/tree", Params: []string{"ns", "before_seq", "limit", "min_seq"}, Micro: "tree", read: s.getTree},
		{Method: "GET", Path: "/v1/threads/{thread}/forks", Params: []string{"ns", "checkpoint", "before_seq", "limit", "min_seq"}, Micro: "forks", read: s.getForks},
		{Method: "GET", Path: "/v1/threads/{thread}/diff", Params: []string{"ns", "from", "to", "min_seq"}, Micro: "diff", read: s.getDiff},
		{Method: "GET", Path: "/v1/checkpoints", Params: []string{"thread", "ns", "filter", "before_seq", "limit", "min_seq"}, Micro: "list", read: s.getList},
		{Method: "GET", Path: "/healthz", Public: true, serve: func(w http.ResponseWriter, r *http.Request) {
			writeBody(w, http.StatusOK, []byte(`{"status":"ok"}`))
		}},
		{Method: "GET", Path: "/readyz", Public: true, serve: s.serveReady},
		{Method: "GET", Path: "/metrics", Public: true, serve: s.metrics.handler().ServeHTTP},
		{Method: "GET", Path: "/openapi.json", Public: true, serve: serveOpenAPI},
	}
}

// Handler returns the HTTP API (see Routes and /openapi.json), the lineage
// page under /ui/, and / redirecting to it:
//
//	GET /v1/threads                                        ?prefix= &before_seq= &limit= &min_seq=
//	GET /v1/threads/{thread}/latest                        ?ns= &min_seq=
//	GET /v1/threads/{thread}/checkpoints                   ?ns= &filter= &before= &before_seq= &limit= &min_seq=
//	GET /v1/threads/{thread}/checkpoints/{id}              ?ns= &min_seq=            (with pending writes)
//	GET /v1/threads/{thread}/checkpoints/{id}/writes       ?ns= &task= &min_seq=
//	GET /v1/threads/{thread}/checkpoints/{id}/ancestors    ?ns= &depth= &follow_forks= &min_seq=
//	GET /v1/threads/{thread}/checkpoints/{id}/children     ?ns= &before_seq= &limit= &min_seq=
//	GET /v1/threads/{thread}/tree                          ?ns= &before_seq= &limit= &min_seq=
//	GET /v1/threads/{thread}/forks                         ?ns= &checkpoint= &before_seq= &limit= &min_seq=
//	GET /v1/threads/{thread}/diff                          ?ns= &from= &to= &min_seq=
//	GET /v1/checkpoints                                    ?thread= &ns= &filter= &before_seq= &limit= &min_seq=
//	GET /healthz  /readyz  /metrics  /openapi.json
//
// Path segments are URL-escaped ids. ns absent means the root namespace ""
// for single-checkpoint reads and every namespace for lists and trees;
// "ns=" is the root namespace. min_seq is a stream sequence or "head" (the
// last event on the thread's subject). With tokens configured, /v1 needs
// "Authorization: Bearer <token>" (401 without a known one) and a thread
// outside the token's prefixes answers 404, as a missing thread does.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routes {
		h := rt.serve
		if rt.read != nil {
			h = s.handle(rt)
		}
		mux.HandleFunc(rt.Method+" "+rt.Path, h)
	}
	mux.Handle("GET /ui/", uiHandler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "ui/", http.StatusFound)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, events.Errorf(events.NotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return s.rejectUnclean(s.instrument(mux))
}

// rejectUnclean answers a request whose path has empty, "." or ".."
// segments (as sent, before unescaping: "%2E" is an id) with a JSON 404,
// where ServeMux would redirect to the cleaned path: a client of an API
// gets an error it can read, not a redirect to an endpoint it did not ask
// for.
func (s *Service) rejectUnclean(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath()
		clean := path.Clean(p)
		if strings.HasSuffix(p, "/") && clean != "/" {
			clean += "/"
		}
		if p != clean {
			s.writeError(w, r, events.Errorf(events.NotFound, "no such endpoint: %s %s (the path has empty, \".\" or \"..\" segments)", r.Method, p))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// params reads and validates request parameters.
type params struct {
	r *http.Request
	q url.Values
}

// handle wraps a read: it checks the bearer token (when tokens are
// configured) and rejects unknown or repeated query parameters, then writes
// the read's body or its error.
func (s *Service) handle(rt Route) http.HandlerFunc {
	ok := make(map[string]bool, len(rt.Params))
	for _, a := range rt.Params {
		ok[a] = true
	}
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if s.tokens != nil && !rt.Public {
			sc, err := s.tokens.authenticate(r)
			if err != nil {
				s.cfg.Logger.Debug("unauthorized request", "method", r.Method, "path", r.URL.Path, "reason", err.Error())
				writeUnauthorized(w, err)
				return
			}
			ctx = withScope(ctx, sc)
		}
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			s.writeError(w, r, events.Errorf(events.Invalid, "query string: %v", err))
			return
		}
		if err := checkQuery(q, ok); err != nil {
			s.writeError(w, r, err)
			return
		}
		body, err := rt.read(ctx, params{r: r, q: q})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeBody(w, http.StatusOK, body)
	}
}

// checkQuery rejects parameters not in allowed and repeated ones.
func checkQuery(q url.Values, allowed map[string]bool) error {
	for k, vs := range q {
		if !allowed[k] {
			return events.Errorf(events.Invalid, "unknown parameter %q", k)
		}
		if len(vs) > 1 {
			return events.Errorf(events.Invalid, "parameter %q given %d times", k, len(vs))
		}
	}
	return nil
}

// id returns a path segment that must be a valid id.
func (p params) id(name string) (string, error) {
	v := p.r.PathValue(name)
	if err := checkParam(name, v, false); err != nil {
		return "", err
	}
	return v, nil
}

// str returns an optional query parameter and whether it was given.
func (p params) str(name string) (string, bool, error) {
	if !p.q.Has(name) {
		return "", false, nil
	}
	v := p.q.Get(name)
	return v, true, checkParam(name, v, true)
}

func checkParam(name, v string, emptyOK bool) error {
	switch {
	case v == "" && !emptyOK:
		return events.Errorf(events.Invalid, "%s: must not be empty", name)
	case len(v) > events.MaxIDBytes && name != "filter":
		return events.Errorf(events.Invalid, "%s: longer than %d bytes", name, events.MaxIDBytes)
	case !utf8.ValidString(v):
		return events.Errorf(events.Invalid, "%s: not valid UTF-8", name)
	}
	return nil
}

func (p params) uint(name string) (uint64, error) {
	v, ok, err := p.str(name)
	if err != nil || !ok {
		return 0, err
	}
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil {
		return 0, events.Errorf(events.Invalid, "%s: want a non-negative integer, got %q", name, v)
	}
	return n, nil
}

func (p params) positive(name string) (int, error) {
	v, ok, err := p.str(name)
	if err != nil || !ok {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, events.Errorf(events.Invalid, "%s: want a positive integer, got %q", name, v)
	}
	return n, nil
}

// boolean reads "true" or "false"; def when absent.
func (p params) boolean(name string, def bool) (bool, error) {
	v, ok, err := p.str(name)
	if err != nil || !ok {
		return def, err
	}
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, events.Errorf(events.Invalid, "%s: want true or false, got %q", name, v)
}

func (p params) minSeq() (MinSeq, error) {
	v, ok, err := p.str("min_seq")
	if err != nil || !ok {
		return MinSeq{}, err
	}
	if v == "head" {
		return MinSeq{Head: true}, nil
	}
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil {
		return MinSeq{}, events.Errorf(events.Invalid, "min_seq: want a stream sequence or \"head\", got %q", v)
	}
	return MinSeq{Seq: n}, nil
}

// key reads thread, ns and id; ns defaults to the root namespace.
func (p params) key() (projector.CheckpointKey, error) {
	var k projector.CheckpointKey
	var err error
	if k.ThreadID, err = p.id("thread"); err != nil {
		return k, err
	}
	if k.ID, err = p.id("id"); err != nil {
		return k, err
	}
	k.NS, _, err = p.str("ns")
	return k, err
}

func (s *Service) getLatest(ctx context.Context, p params) ([]byte, error) {
	thread, err := p.id("thread")
	if err != nil {
		return nil, err
	}
	ns, _, err := p.str("ns")
	if err != nil {
		return nil, err
	}
	m, err := p.minSeq()
	if err != nil {
		return nil, err
	}
	cw, err := s.Checkpoint(ctx, projector.CheckpointKey{ThreadID: thread, NS: ns}, m)
	if err != nil {
		return nil, err
	}
	return appendCheckpointWithWrites(nil, cw), nil
}

func (s *Service) getCheckpoint(ctx context.Context, p params) ([]byte, error) {
	k, err := p.key()
	if err != nil {
		return nil, err
	}
	m, err := p.minSeq()
	if err != nil {
		return nil, err
	}
	cw, err := s.Checkpoint(ctx, k, m)
	if err != nil {
		return nil, err
	}
	return appendCheckpointWithWrites(nil, cw), nil
}

func (s *Service) getWrites(ctx context.Context, p params) ([]byte, error) {
	k, err := p.key()
	if err != nil {
		return nil, err
	}
	task, _, err := p.str("task")
	if err != nil {
		return nil, err
	}
	m, err := p.minSeq()
	if err != nil {
		return nil, err
	}
	ws, err := s.Writes(ctx, k, task, m)
	if err != nil {
		return nil, err
	}
	b := []byte(`{"writes":`)
	b = appendWrites(b, ws)
	return append(b, '}'), nil
}

func (s *Service) getAncestors(ctx context.Context, p params) ([]byte, error) {
	k, err := p.key()
	if err != nil {
		return nil, err
	}
	depth, err := p.positive("depth")
	if err != nil {
		return nil, err
	}
	follow, err := p.boolean("follow_forks", true)
	if err != nil {
		return nil, err
	}
	m, err := p.minSeq()
	if err != nil {
		return nil, err
	}
	vs, err := s.ancestors(ctx, k, depth, follow, m)
	if err != nil {
		return nil, err
	}
	b := append(make([]byte, 0, encodedSize(vs)), `{"ancestors":[`...)
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCheckpoint(b, v, nil, false)
	}
	return append(b, ']', '}'), nil
}

func (s *Service) getList(ctx context.Context, p params) ([]byte, error) {
	var lp ListParams
	var err error
	if p.r.PathValue("thread") != "" {
		if lp.ThreadID, err = p.id("thread"); err != nil {
			return nil, err
		}
	} else if lp.ThreadID, _, err = p.str("thread"); err != nil {
		return nil, err
	}
	var given bool
	if lp.NS, given, err = p.str("ns"); err != nil {
		return nil, err
	}
	lp.AllNS = !given
	filter, _, err := p.str("filter")
	if err != nil {
		return nil, err
	}
	lp.Filter = []byte(filter)
	if lp.Before, _, err = p.str("before"); err != nil {
		return nil, err
	}
	if lp.BeforeSeq, err = p.uint("before_seq"); err != nil {
		return nil, err
	}
	if lp.Limit, err = p.positive("limit"); err != nil {
		return nil, err
	}
	if lp.MinSeq, err = p.minSeq(); err != nil {
		return nil, err
	}
	res, err := s.List(ctx, lp)
	if err != nil {
		return nil, err
	}
	b := append(make([]byte, 0, encodedSize(res.Checkpoints)), `{"checkpoints":[`...)
	for i, v := range res.Checkpoints {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCheckpoint(b, v, nil, false)
	}
	b = append(b, `],"next_before_seq":`...)
	if res.NextBeforeSeq == 0 {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendUint(b, res.NextBeforeSeq, 10)
	}
	return append(b, '}'), nil
}

// writeError maps err to a status and writes {code, message}. Internal
// errors are logged and their text is not sent.
func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	a := s.errorAnswer(r.Method+" "+r.URL.Path, err)
	if a.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeBody(w, a.status, a.body)
}

// errAnswer is an error as the API answers it.
type errAnswer struct {
	status int
	msg    string // what the caller is told
	body   []byte // {"code","message"[,"applied_seq"]}
}

// errorAnswer maps err to its answer, over HTTP or NATS alike. what names
// the request in the log line of an internal error.
func (s *Service) errorAnswer(what string, err error) errAnswer {
	code := events.ErrorCode(err)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		code = events.Unavailable
	}
	status, ok := statusByCode[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	msg := err.Error()
	if status == http.StatusInternalServerError {
		s.cfg.Logger.Error("query failed", "request", what, "err", err)
		msg = "internal error"
	}
	b := []byte(`{"code":`)
	b = events.AppendString(b, string(code))
	b = append(b, `,"message":`...)
	b = events.AppendString(b, msg)
	var ue *UnavailableError
	if errors.As(err, &ue) {
		b = append(b, `,"applied_seq":`...)
		b = strconv.AppendUint(b, ue.Applied, 10)
	}
	return errAnswer{status: status, msg: msg, body: append(b, '}')}
}

func writeBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// encodedSize estimates the JSON size of checkpoints, to allocate once.
func encodedSize(vs []projector.Version) int {
	n := 64
	for _, v := range vs {
		n += len(v.State) + len(v.Metadata) + len(v.ThreadID) + len(v.NS) + len(v.ID) + len(v.ParentID) + len(v.EventID) + 200
	}
	return n
}

// appendCheckpoint writes one checkpoint object; the JSON values are the
// stored text, embedded byte for byte.
func appendCheckpoint(b []byte, v projector.Version, writes []projector.WriteRow, withWrites bool) []byte {
	b = appendKeyFields(b, v.CheckpointKey)
	b = appendParent(b, v.ParentID)
	b = append(b, `,"checkpoint":`...)
	b = append(b, v.State...)
	b = append(b, `,"metadata":`...)
	b = append(b, v.Metadata...)
	b = append(b, `,"created_at":`...)
	b = events.AppendString(b, v.CreatedAt.UTC().Format(time.RFC3339Nano))
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, v.Seq, 10)
	b = append(b, `,"event_id":`...)
	b = events.AppendString(b, v.EventID)
	if withWrites {
		b = append(b, `,"pending_writes":`...)
		b = appendWrites(b, writes)
	}
	return append(b, '}')
}

// appendCheckpointWithWrites writes a checkpoint with its pending writes
// and whether its parent was pruned.
func appendCheckpointWithWrites(b []byte, cw CheckpointWithWrites) []byte {
	b = appendCheckpoint(b, cw.Version, cw.Writes, true)
	b = append(b[:len(b)-1], `,"parent_pruned":`...)
	b = strconv.AppendBool(b, cw.ParentPruned)
	return append(b, '}')
}

// appendKeyFields opens an object with a checkpoint's key.
func appendKeyFields(b []byte, k projector.CheckpointKey) []byte {
	b = append(b, `{"thread_id":`...)
	b = events.AppendString(b, k.ThreadID)
	b = append(b, `,"checkpoint_ns":`...)
	b = events.AppendString(b, k.NS)
	b = append(b, `,"checkpoint_id":`...)
	return events.AppendString(b, k.ID)
}

// appendParent writes parent_checkpoint_id, null for none.
func appendParent(b []byte, parentID string) []byte {
	b = append(b, `,"parent_checkpoint_id":`...)
	if parentID == "" {
		return append(b, "null"...)
	}
	return events.AppendString(b, parentID)
}

func appendWrites(b []byte, ws []projector.WriteRow) []byte {
	b = append(b, '[')
	for i, w := range ws {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"task_id":`...)
		b = events.AppendString(b, w.TaskID)
		b = append(b, `,"task_path":`...)
		b = events.AppendString(b, w.TaskPath)
		b = append(b, `,"idx":`...)
		b = strconv.AppendInt(b, w.Idx, 10)
		b = append(b, `,"channel":`...)
		b = events.AppendString(b, w.Channel)
		b = append(b, `,"value":`...)
		b = append(b, w.Value...)
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, w.Seq, 10)
		b = append(b, '}')
	}
	return append(b, ']')
}
