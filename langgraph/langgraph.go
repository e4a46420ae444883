// Package langgraph reads a LangGraph SQLite checkpoint database (the
// tables "checkpoints" and "writes" as LangGraph's SqliteSaver creates
// them) as cairn events, so that an existing audit trail can be backfilled.
// Rows whose serializer type is "json" are imported with their JSON text
// unchanged; rows in any other encoding (msgpack, pickle, bytes) are
// counted and reported, never imported, since cairn stores JSON only.
package langgraph

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/cairn-io/cairn/backfill"
	"github.com/cairn-io/cairn/events"
)

// Report says what Read found besides the importable events.
type Report struct {
	// CheckpointRows and WriteRows are the rows read.
	CheckpointRows, WriteRows int
	// NotJSON counts rows not imported because of their serializer type,
	// by "<table>/<type>"; NotJSONRows names them (up to 100).
	NotJSON     map[string]int
	NotJSONRows []string
}

// Read opens the database at path read-only and returns its rows as
// backfill items of fleet, with the rows that cannot be imported rejected (invalid
// JSON) or reported (another encoding). Each checkpoint becomes a
// checkpoint.put whose created_at is the checkpoint's "ts" (or the time in
// its UUID v1/v6/v7 id); each (checkpoint, task) group of writes becomes
// one writes.put with the checkpoint's created_at. Event ids are derived
// from the rows' keys, so reading the same database twice gives the same
// events and a second backfill publishes nothing.
func Read(ctx context.Context, path, fleet string) (backfill.Source, Report, error) {
	var src backfill.Source
	rep := Report{NotJSON: make(map[string]int)}
	if _, err := os.Stat(path); err != nil {
		return src, rep, fmt.Errorf("langgraph database: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+url.PathEscape(path)+"?mode=ro")
	if err != nil {
		return src, rep, fmt.Errorf("open langgraph database %s: %w", path, err)
	}
	defer db.Close()
	created, err := readCheckpoints(ctx, db, fleet, &src, &rep)
	if err != nil {
		return src, rep, err
	}
	if err := readWrites(ctx, db, fleet, created, &src, &rep); err != nil {
		return src, rep, err
	}
	return src, rep, nil
}

type ckptKey struct{ thread, ns, id string }

func (r *Report) notJSON(table, typ, where string) {
	if typ == "" {
		typ = "(none)"
	}
	r.NotJSON[table+"/"+typ]++
	if len(r.NotJSONRows) < 100 {
		r.NotJSONRows = append(r.NotJSONRows, fmt.Sprintf("%s: type %s", where, typ))
	}
}

func readCheckpoints(ctx context.Context, db *sql.DB, fleet string, src *backfill.Source, rep *Report) (map[ckptKey]time.Time, error) {
	rows, err := db.QueryContext(ctx, `SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata
		FROM checkpoints ORDER BY thread_id, checkpoint_ns, checkpoint_id`)
	if err != nil {
		return nil, fmt.Errorf("read checkpoints table (is this a LangGraph SqliteSaver database?): %w", err)
	}
	defer rows.Close()
	created := make(map[ckptKey]time.Time)
	for rows.Next() {
		var (
			thread, ns, id string
			parent, typ    sql.NullString
			body, metadata []byte
		)
		if err := rows.Scan(&thread, &ns, &id, &parent, &typ, &body, &metadata); err != nil {
			return nil, fmt.Errorf("read checkpoint row: %w", err)
		}
		rep.CheckpointRows++
		where := fmt.Sprintf("checkpoint %s/%s/%s", thread, ns, id)
		if typ.String != "json" {
			rep.notJSON("checkpoints", typ.String, where)
			continue
		}
		if len(strings.TrimSpace(string(metadata))) == 0 {
			metadata = []byte(`{}`)
		}
		at, err := createdAt(body, id)
		if err != nil {
			src.Rejected = append(src.Rejected, backfill.Rejected{Where: where, Reason: err.Error()})
			continue
		}
		e := &events.Event{
			Kind:      events.KindCheckpointPut,
			EventID:   eventID("checkpoint", thread, ns, id),
			Fleet:     fleet,
			ThreadID:  thread,
			CreatedAt: at,
			Checkpoint: &events.Checkpoint{
				NS: ns, ID: id, ParentID: parent.String,
				State: json.RawMessage(body), Metadata: json.RawMessage(metadata),
			},
		}
		if err := e.Validate(); err != nil {
			src.Rejected = append(src.Rejected, backfill.Rejected{Where: where, Reason: err.Error()})
			continue
		}
		created[ckptKey{thread, ns, id}] = at
		src.Items = append(src.Items, backfill.Item{Where: where, Pos: len(src.Items), Event: e})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	return created, nil
}

func readWrites(ctx context.Context, db *sql.DB, fleet string, created map[ckptKey]time.Time, src *backfill.Source, rep *Report) error {
	hasPath, err := hasColumn(ctx, db, "writes", "task_path")
	if err != nil {
		return err
	}
	pathCol := "''"
	if hasPath {
		pathCol = "COALESCE(task_path, '')"
	}
	rows, err := db.QueryContext(ctx, `SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, `+pathCol+`, idx, channel, type, value
		FROM writes ORDER BY thread_id, checkpoint_ns, checkpoint_id, task_id, idx`)
	if err != nil {
		return fmt.Errorf("read writes table: %w", err)
	}
	defer rows.Close()
	type group struct {
		key      ckptKey
		task     string
		path     string
		writes   []events.Write
		notJSON  []string // types of rows that are not JSON
		where    string
		rejected string
	}
	var groups []*group
	var cur *group
	for rows.Next() {
		var (
			thread, ns, id, task, path, channel string
			idx                                 int64
			typ                                 sql.NullString
			value                               []byte
		)
		if err := rows.Scan(&thread, &ns, &id, &task, &path, &idx, &channel, &typ, &value); err != nil {
			return fmt.Errorf("read write row: %w", err)
		}
		rep.WriteRows++
		k := ckptKey{thread, ns, id}
		if cur == nil || cur.key != k || cur.task != task {
			cur = &group{key: k, task: task, path: path, where: fmt.Sprintf("writes %s/%s/%s task %s", thread, ns, id, task)}
			groups = append(groups, cur)
		}
		if typ.String != "json" {
			rep.notJSON("writes", typ.String, fmt.Sprintf("%s idx %d", cur.where, idx))
			cur.notJSON = append(cur.notJSON, typ.String)
			continue
		}
		if err := events.CheckJSON(value); err != nil && cur.rejected == "" {
			cur.rejected = fmt.Sprintf("idx %d: value is not valid JSON: %v", idx, err)
		}
		cur.writes = append(cur.writes, events.Write{Idx: idx, Channel: channel, Value: json.RawMessage(value)})
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read writes: %w", err)
	}
	for _, g := range groups {
		switch {
		case len(g.notJSON) > 0:
			// A write set is replaced as a whole: importing part of it
			// would misstate it. Its rows are counted above.
			if len(g.writes) > 0 {
				src.Rejected = append(src.Rejected, backfill.Rejected{Where: g.where,
					Reason: fmt.Sprintf("%d of its writes are not JSON (%s); the set is not imported", len(g.notJSON), strings.Join(slices.Compact(g.notJSON), ", "))})
			}
			continue
		case g.rejected != "":
			src.Rejected = append(src.Rejected, backfill.Rejected{Where: g.where, Reason: g.rejected})
			continue
		}
		at, ok := created[g.key]
		if !ok {
			var err error
			if at, err = createdAt(nil, g.key.id); err != nil {
				src.Rejected = append(src.Rejected, backfill.Rejected{Where: g.where, Reason: "no checkpoint row to take a time from, and " + err.Error()})
				continue
			}
		}
		e := &events.Event{
			Kind:      events.KindWritesPut,
			EventID:   eventID("writes", g.key.thread, g.key.ns, g.key.id, g.task),
			Fleet:     fleet,
			ThreadID:  g.key.thread,
			CreatedAt: at,
			Writes:    &events.Writes{NS: g.key.ns, CheckpointID: g.key.id, TaskID: g.task, TaskPath: g.path, Writes: g.writes},
		}
		if err := e.Validate(); err != nil {
			src.Rejected = append(src.Rejected, backfill.Rejected{Where: g.where, Reason: err.Error()})
			continue
		}
		src.Items = append(src.Items, backfill.Item{Where: g.where, Pos: len(src.Items), Event: e})
	}
	return nil
}

func hasColumn(ctx context.Context, db *sql.DB, table, column string) (bool, error) {
	rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return false, fmt.Errorf("columns of %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return false, fmt.Errorf("columns of %s: %w", table, err)
		}
		if name == column {
			return true, nil
		}
	}
	return false, rows.Err()
}

// createdAt is the checkpoint's "ts", or the time in its UUID id.
func createdAt(body []byte, id string) (time.Time, error) {
	if len(body) > 0 {
		var c struct {
			TS string `json:"ts"`
		}
		if err := json.Unmarshal(body, &c); err == nil && c.TS != "" {
			if t, err := time.Parse(time.RFC3339Nano, c.TS); err == nil {
				return t.UTC(), nil
			}
		}
	}
	if u, err := uuid.Parse(id); err == nil {
		switch u.Version() {
		case 1, 6, 7:
			sec, nsec := u.Time().UnixTime()
			return time.Unix(sec, nsec).UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("checkpoint %q has no \"ts\" and its id holds no time", id)
}

// eventID derives a stable event id from a row's key.
func eventID(kind string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return "langgraph-" + kind + "-" + hex.EncodeToString(h.Sum(nil))[:32]
}
