package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// rawPublish publishes n messages of size bytes with plain nats.go, the
// way its own benchmark does: PublishMsgAsync with a message id in a
// loop, at most window pending (the client blocks beyond), then
// PublishAsyncComplete; on a stream of its own configured like cairn's. It
// returns messages/s.
func rawPublish(ctx context.Context, nc *nats.Conn, n, size, window int) (float64, error) {
	const root = "benchraw"
	var failed atomic.Int64
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { failed.Add(1) }))
	if err != nil {
		return 0, err
	}
	if _, err := broker.EnsureStreams(ctx, js, broker.StreamConfig{Root: root}); err != nil {
		return 0, err
	}
	defer func() {
		_ = js.DeleteStream(context.Background(), broker.StreamName(root))
		_ = js.DeleteStream(context.Background(), broker.DLQStreamName(root))
	}()
	payload := []byte(`{"pad":"` + strings.Repeat("x", max(size-10, 0)) + `"}`)
	start := time.Now()
	for i := range n {
		msg := &nats.Msg{Subject: fmt.Sprintf("%s.default.t%d", root, i%1000), Data: payload, Header: nats.Header{}}
		if _, err := js.PublishMsgAsync(msg, jetstream.WithMsgID(fmt.Sprintf("raw-%d", i)), jetstream.WithStallWait(10*time.Second)); err != nil {
			return 0, fmt.Errorf("raw publish: %w", err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if f := failed.Load(); f > 0 {
		return 0, fmt.Errorf("raw publish: %d messages failed", f)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// fleetRows reads the bench fleet's events (up to lastSeq) back from the
// stream and returns the checkpoint rows the projection writes for them, so
// that the raw inserts write exactly the same rows, byte for byte.
func fleetRows(ctx context.Context, js jetstream.JetStream, lastSeq uint64) ([]projector.Version, error) {
	st, err := js.Stream(ctx, broker.StreamName(events.DefaultRoot))
	if err != nil {
		return nil, fmt.Errorf("read the fleet back: %w", err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.FleetFilter(events.DefaultRoot, "bench")}})
	if err != nil {
		return nil, fmt.Errorf("read the fleet back: %w", err)
	}
	var rows []projector.Version
	for {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, fmt.Errorf("read the fleet back: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				return nil, err
			}
			if md.Sequence.Stream > lastSeq {
				return rows, nil
			}
			e, err := events.Decode(msg.Data(), 0)
			if err != nil {
				return nil, fmt.Errorf("read the fleet back: seq %d: %w", md.Sequence.Stream, err)
			}
			if c := e.Checkpoint; c != nil {
				rows = append(rows, projector.Version{
					CheckpointKey: projector.CheckpointKey{ThreadID: e.ThreadID, NS: c.NS, ID: c.ID}, ParentID: c.ParentID,
					State: c.State, Metadata: c.Metadata, CreatedAt: e.CreatedAt, Seq: md.Sequence.Stream,
					EventID: e.EventID, Hash: projector.ContentHash(c.ParentID, c.State, c.Metadata),
				})
			}
			if md.Sequence.Stream == lastSeq {
				return rows, nil
			}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("read the fleet back: %w", err)
		}
		if n == 0 {
			return rows, nil
		}
	}
}

const rawCols = `thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata, created_at, seq, event_id, content_hash`

// rawSQLite inserts rows into <prefix>_checkpoints of the SQLite file with
// plain SQL, batch rows per transaction, as the store's own statements do
// (a prepared INSERT per row). It returns rows/s.
func rawSQLite(ctx context.Context, path, prefix string, rows []projector.Version, batch int) (float64, error) {
	// The same settings as the store (sqlite.Open), so that only the SQL differs.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"+
		"&_pragma=cache_size(-16384)&_pragma=temp_store(MEMORY)&_pragma=wal_autocheckpoint(10000)&_txlock=immediate")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	start := time.Now()
	for lo := 0; lo < len(rows); lo += batch {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return 0, err
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO `+prefix+`_checkpoints (`+rawCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			tx.Rollback()
			return 0, err
		}
		for _, v := range rows[lo:min(lo+batch, len(rows))] {
			var parent any
			if v.ParentID != "" {
				parent = v.ParentID
			}
			if _, err := stmt.ExecContext(ctx, v.ThreadID, v.NS, v.ID, parent, string(v.State), string(v.Metadata),
				v.CreatedAt.Format(events.TimeFormat), int64(v.Seq), v.EventID, v.Hash); err != nil {
				tx.Rollback()
				return 0, fmt.Errorf("raw sqlite insert: %w", err)
			}
		}
		stmt.Close()
		if err := tx.Commit(); err != nil {
			return 0, err
		}
	}
	return float64(len(rows)) / time.Since(start).Seconds(), nil
}

// rawPostgres inserts rows into <prefix>_checkpoints with plain SQL, batch
// rows per transaction as one array-bound INSERT (unnest), as the store
// does. It returns rows/s.
func rawPostgres(ctx context.Context, url, prefix string, rows []projector.Version, batch int) (float64, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	q := `INSERT INTO ` + prefix + `_checkpoints (` + rawCols + `) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
		$5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[])`
	start := time.Now()
	for lo := 0; lo < len(rows); lo += batch {
		part := rows[lo:min(lo+batch, len(rows))]
		k := len(part)
		th, ns, id, parent := make([]string, k), make([]string, k), make([]string, k), make([]*string, k)
		st, md, ca, ev, h := make([]string, k), make([]string, k), make([]string, k), make([]string, k), make([]string, k)
		seq := make([]int64, k)
		for i, v := range part {
			th[i], ns[i], id[i] = v.ThreadID, v.NS, v.ID
			if v.ParentID != "" {
				p := v.ParentID
				parent[i] = &p
			}
			st[i], md[i], ca[i] = string(v.State), string(v.Metadata), v.CreatedAt.Format(events.TimeFormat)
			seq[i], ev[i], h[i] = int64(v.Seq), v.EventID, v.Hash
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return 0, err
		}
		if _, err := tx.Exec(ctx, q, th, ns, id, parent, st, md, ca, seq, ev, h); err != nil {
			tx.Rollback(ctx)
			return 0, fmt.Errorf("raw postgres insert: %w", err)
		}
		if err := tx.Commit(ctx); err != nil {
			return 0, err
		}
	}
	return float64(len(rows)) / time.Since(start).Seconds(), nil
}
