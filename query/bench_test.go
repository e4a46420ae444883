package query_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-io/cairn/postgres"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/query"
	"github.com/cairn-io/cairn/sqlite"
)

// The benchmark data set, in one store per backend:
//
//	long:      10,000 checkpoints in a chain (list, ancestors)
//	tree:      1,000 checkpoints with 50 forks (tree)
//	t-NNNNN:   10,000 threads of one checkpoint each (threads listing)
//
// Each state is an agent state of a few messages (about 450 bytes).
const (
	benchLong    = 10000
	benchTree    = 1000
	benchForks   = 50
	benchThreads = 10000
)

var benchState = agentState(3, "system: you are the on-call incident commander for the payments service",
	"user: checkout latency is above 2s for 5 minutes", "assistant: paging the payments on-call and checking the last deploy",
	"tool: deploy 4127 rolled out 12 minutes ago to 100% of hosts")

func benchRecords() []projector.Record {
	var recs []projector.Record
	seq := uint64(0)
	put := func(thread, id, parent string) {
		seq++
		recs = append(recs, projector.Record{Seq: seq, Event: checkpointEvent(fmt.Sprintf("e%d", seq), thread, "", id, parent, benchState, fmt.Sprintf(`{"turn":%d}`, seq))})
	}
	for i := range benchLong {
		parent := ""
		if i > 0 {
			parent = fmt.Sprintf("c%05d", i-1)
		}
		put("long", fmt.Sprintf("c%05d", i), parent)
	}
	// A chain where every 20th checkpoint branches off the one 10 back,
	// which already has a child: 50 forks.
	for i := range benchTree {
		parent := ""
		switch {
		case i > 0 && i%(benchTree/benchForks) == 0:
			parent = fmt.Sprintf("n%04d", i-10)
		case i > 0:
			parent = fmt.Sprintf("n%04d", i-1)
		}
		put("tree", fmt.Sprintf("n%04d", i), parent)
	}
	for i := range benchThreads {
		put(fmt.Sprintf("t-%05d", i), "v1", "")
	}
	// Many writers interleave threads: shuffle, so that rows are not
	// stored in thread order.
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	return recs
}

type benchBackend struct {
	name string
	open func(b *testing.B) projector.Store
	// analyze, if set, runs after loading.
	analyze func(b *testing.B, s projector.Store)
}

var (
	benchOnce    = map[string]*sync.Once{}
	benchStores  = map[string]projector.Store{}
	benchCleanup []func()
)

func benchBackends() []benchBackend {
	backends := []benchBackend{{name: "sqlite", open: func(b *testing.B) projector.Store {
		dir, err := os.MkdirTemp("", "cairn-bench-")
		if err != nil {
			b.Fatal(err)
		}
		db, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "bench.db")})
		if err != nil {
			b.Fatal(err)
		}
		benchCleanup = append(benchCleanup, func() { db.Close(); os.RemoveAll(dir) })
		return db
	}}}
	if url := os.Getenv("CAIRN_TEST_POSTGRES_URL"); url != "" {
		backends = append(backends, benchBackend{name: "postgres", open: func(b *testing.B) projector.Store {
			db, err := postgres.Open(context.Background(), postgres.Config{URL: url, Prefix: fmt.Sprintf("bench%08x", rand.Uint32())})
			if err != nil {
				b.Fatal(err)
			}
			benchCleanup = append(benchCleanup, func() { db.DropTables(context.Background()); db.Close() })
			return db
		}, analyze: func(b *testing.B, s projector.Store) {
			// Statistics, as autovacuum gathers them on a default server
			// (the test server runs without autovacuum).
			conn, err := pgx.Connect(context.Background(), url)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close(context.Background())
			p := s.(*postgres.DB).Prefix()
			if _, err := conn.Exec(context.Background(), "ANALYZE "+p+"_checkpoints, "+p+"_threads, "+p+"_live"); err != nil {
				b.Fatal(err)
			}
		}})
	}
	return backends
}

// benchStore returns the backend's store filled with the data set, once
// per run of the benchmarks.
func benchStore(b *testing.B, be benchBackend) projector.Store {
	if benchOnce[be.name] == nil {
		benchOnce[be.name] = new(sync.Once)
	}
	benchOnce[be.name].Do(func() {
		s := be.open(b)
		recs := benchRecords()
		start := time.Now()
		for i := 0; i < len(recs); i += 500 {
			res, err := projector.New(s).Apply(context.Background(), recs[i:min(i+500, len(recs))])
			if err != nil {
				b.Fatal(err)
			}
			for j, o := range res.Outcomes {
				if o != projector.Applied {
					b.Fatalf("record %d: %v %v", i+j, o, res.Errors[j])
				}
			}
		}
		if be.analyze != nil {
			be.analyze(b, s)
		}
		b.Logf("%s: %d checkpoints loaded in %v", be.name, len(recs), time.Since(start).Round(time.Millisecond))
		benchStores[be.name] = s
	})
	return benchStores[be.name]
}

// BenchmarkQuery measures the lineage reads through the HTTP handler (no
// network) on each backend and reports p50 and p99 latencies. Run with
//
//	CAIRN_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//	  go test -run '^$' -bench BenchmarkQuery -benchtime 3s ./query
func BenchmarkQuery(b *testing.B) {
	defer func() {
		for _, c := range benchCleanup {
			c()
		}
		benchCleanup, benchOnce, benchStores = nil, map[string]*sync.Once{}, map[string]projector.Store{}
	}()
	for _, be := range benchBackends() {
		b.Run(be.name, func(b *testing.B) {
			h := query.NewService(benchStore(b, be), nil, query.Config{Logger: quietLogger()}).Handler()
			for _, bm := range []struct {
				name, path string
				check      func(b *testing.B, body []byte)
			}{
				{"list_limit50_of_10000", "/v1/threads/long/checkpoints?ns=&limit=50", wantLen("checkpoints", 50)},
				{"list_limit50_deep_page", "/v1/threads/long/checkpoints?ns=&limit=50&before=c05000", wantLen("checkpoints", 50)},
				{"ancestors_depth1000", "/v1/threads/long/checkpoints/c09999/ancestors?depth=1000", wantLen("ancestors", 1000)},
				{"tree_1000_with_50_forks", "/v1/threads/tree/tree?limit=1000", wantLen("nodes", 1000)},
				{"threads_limit50_of_10002", "/v1/threads?limit=50", wantLen("threads", 50)},
				{"threads_prefix_limit50", "/v1/threads?prefix=t-05&limit=50", wantLen("threads", 50)},
			} {
				b.Run(bm.name, func(b *testing.B) { measure(b, h, bm.path, bm.check) })
			}
		})
	}
}

func wantLen(field string, n int) func(b *testing.B, body []byte) {
	return func(b *testing.B, body []byte) {
		var m map[string]json.RawMessage
		var items []json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil || json.Unmarshal(m[field], &items) != nil || len(items) != n {
			b.Fatalf("%s: got %d items, want %d: %.200s", field, len(items), n, body)
		}
	}
}

// measure runs GET path on h until the benchmark is done and reports the
// p50 and p99 latencies in milliseconds.
func measure(b *testing.B, h http.Handler, path string, check func(b *testing.B, body []byte)) {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	serve := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body.Bytes())
		}
		return rec
	}
	check(b, serve().Body.Bytes())
	var durs []time.Duration
	for b.Loop() {
		start := time.Now()
		serve()
		durs = append(durs, time.Since(start))
	}
	slices.Sort(durs)
	ms := func(q float64) float64 {
		return float64(durs[min(len(durs)-1, int(q*float64(len(durs))))].Microseconds()) / 1000
	}
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}
