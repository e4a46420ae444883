package query

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/cairn-io/cairn/events"
)

// Defaults for MicroConfig.
const (
	DefaultMicroName        = "cairn-query"
	DefaultMicroMaxInFlight = 64
)

// MicroVersion is the version the micro service announces: the version of
// the API in /openapi.json.
const MicroVersion = "1.0.0"

// MicroConfig configures the NATS micro service.
type MicroConfig struct {
	// Root and Fleet name the subjects: <root>_query.<fleet>.<endpoint>.
	// Defaults events.DefaultRoot and events.DefaultFleet.
	Root, Fleet string
	// Name of the service (and its queue group, so that several query
	// services share the requests); default DefaultMicroName.
	Name string
	// MaxInFlight bounds the requests answered at once; more are refused
	// as unavailable. Default DefaultMicroMaxInFlight.
	MaxInFlight int
}

// MicroSubjectPrefix returns the subject prefix of the micro service's
// endpoints for a root and fleet. It lies outside <root>.>, so requests
// are not captured by the event stream.
func MicroSubjectPrefix(root, fleet string) string { return root + "_query." + fleet }

// MicroService is the query service's reads as a NATS micro service.
type MicroService struct {
	svc    micro.Service
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
	slots  chan struct{}
}

// StartMicro offers every route with a micro name (see Routes) as an
// endpoint of a NATS micro service on nc: the request is a JSON object of
// the route's parameters, path parameters (thread, id) included, for
// example {"thread":"incident-42","id":"v3","depth":10,"min_seq":"head"};
// values are strings, numbers or booleans, and filter may be given as an
// object. The answer is the JSON body the HTTP API would send; an error
// answers with the Nats-Service-Error-Code header set to the HTTP status
// and the JSON error as the body. No token is asked for: NATS permissions
// on the subjects decide who may call (see deploy/nats/query-permissions.conf).
func (s *Service) StartMicro(nc *nats.Conn, cfg MicroConfig) (*MicroService, error) {
	if cfg.Root == "" {
		cfg.Root = events.DefaultRoot
	}
	if cfg.Fleet == "" {
		cfg.Fleet = events.DefaultFleet
	}
	if err := events.CheckNames(cfg.Root, cfg.Fleet); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = DefaultMicroName
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMicroMaxInFlight
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        cfg.Name,
		Version:     MicroVersion,
		Description: "cairn lineage reads (the HTTP query API over NATS request-reply)",
		QueueGroup:  cfg.Name,
		Metadata:    map[string]string{"root": cfg.Root, "fleet": cfg.Fleet},
	})
	if err != nil {
		return nil, events.Errorf(events.Unavailable, "start micro service: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &MicroService{svc: svc, ctx: ctx, cancel: cancel, slots: make(chan struct{}, cfg.MaxInFlight)}
	g := svc.AddGroup(MicroSubjectPrefix(cfg.Root, cfg.Fleet))
	for _, rt := range s.routes {
		if rt.Micro == "" {
			continue
		}
		err := g.AddEndpoint(rt.Micro, micro.HandlerFunc(func(req micro.Request) { m.dispatch(s, rt, req) }),
			micro.WithEndpointMetadata(map[string]string{"http": rt.Method + " " + rt.Path, "params": strings.Join(append(pathParams(rt.Path), rt.Params...), ",")}))
		if err != nil {
			m.Stop()
			return nil, events.Errorf(events.Unavailable, "add micro endpoint %s: %w", rt.Micro, err)
		}
	}
	// Subscriptions reach the server asynchronously: wait until it has them,
	// so that a request sent once StartMicro returns finds a responder.
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		m.Stop()
		return nil, events.Errorf(events.Unavailable, "start micro service: %w", err)
	}
	return m, nil
}

// Info describes the running service, as `nats micro info` shows it.
func (m *MicroService) Info() micro.Info { return m.svc.Info() }

// Stop unsubscribes, cancels the requests in flight and waits for them.
func (m *MicroService) Stop() error {
	err := m.svc.Stop()
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	return err
}

// dispatch answers req in its own goroutine, so that a read-your-writes
// wait does not hold up the endpoint's other requests.
func (m *MicroService) dispatch(s *Service, rt Route, req micro.Request) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		respondError(s, rt, req, events.Errorf(events.Unavailable, "the query service is stopping"))
		return
	}
	select {
	case m.slots <- struct{}{}:
	default:
		m.mu.Unlock()
		respondError(s, rt, req, events.Errorf(events.Unavailable, "too many requests in flight"))
		return
	}
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		defer func() { <-m.slots }()
		body, err := s.microRead(m.ctx, rt, req.Data())
		if err != nil {
			respondError(s, rt, req, err)
			return
		}
		_ = req.Respond(body)
	}()
}

func respondError(s *Service, rt Route, req micro.Request, err error) {
	a := s.errorAnswer("nats "+rt.Micro, err)
	_ = req.Error(strconv.Itoa(a.status), a.msg, a.body)
}

// pathParams returns the names of a route's path parameters.
func pathParams(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, strings.Trim(seg, "{}"))
		}
	}
	return out
}

// microRead runs rt's read with the parameters of a micro request.
func (s *Service) microRead(ctx context.Context, rt Route, data []byte) ([]byte, error) {
	if len(strings.TrimSpace(string(data))) == 0 {
		data = []byte("{}")
	}
	ms, err := events.ObjectMembers(data)
	if err != nil {
		return nil, events.Errorf(events.Invalid, "request: want a JSON object of parameters: %v", err)
	}
	r := &http.Request{Method: rt.Method, URL: &url.URL{Path: rt.Path}, Header: http.Header{}}
	inPath := make(map[string]bool)
	for _, p := range pathParams(rt.Path) {
		inPath[p] = true
	}
	q := url.Values{}
	for _, m := range ms {
		var v string
		switch kindOf(m.Value) {
		case 'n':
			continue // null: as if absent
		case '"':
			if err := json.Unmarshal(m.Value, &v); err != nil {
				return nil, events.Errorf(events.Invalid, "%s: %v", m.Key, err)
			}
		case '{', '[':
			if m.Key != "filter" {
				return nil, events.Errorf(events.Invalid, "%s: want a string, number or boolean", m.Key)
			}
			v = string(m.Value)
		default: // number, true, false: their text
			v = string(m.Value)
		}
		if inPath[m.Key] {
			r.SetPathValue(m.Key, v)
			continue
		}
		q.Add(m.Key, v)
	}
	allowed := make(map[string]bool, len(rt.Params))
	for _, p := range rt.Params {
		allowed[p] = true
	}
	if err := checkQuery(q, allowed); err != nil {
		return nil, err
	}
	return rt.read(ctx, params{r: r, q: q})
}
