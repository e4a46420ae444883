package oracle

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/cairn-io/cairn/projector"
)

// txn implements projector.Tx on one Oracle transaction. Each bulk method
// sends the calls that sql.go plans for it: array-bound DML (one round trip
// per statement, whatever the number of rows) and chunked reads. Every
// statement is idempotent by primary key (see newStatements).
type txn struct {
	tx *sql.Tx
	s  *DB
}

var _ projector.Tx = (*txn)(nil)

// exec runs the calls in order, skipping those without rows.
func (t *txn) exec(ctx context.Context, calls ...call) error {
	for _, c := range calls {
		if c.rows == 0 {
			continue
		}
		if _, err := t.tx.ExecContext(ctx, c.query, c.args...); err != nil {
			return err
		}
	}
	return nil
}

// query runs the read calls in order and scans every row with fn.
func (t *txn) query(ctx context.Context, calls []call, fn func(sc scanner) error) error {
	for _, c := range calls {
		rows, err := t.tx.QueryContext(ctx, c.query, c.args...)
		if err != nil {
			return err
		}
		if err := scanAll(rows, fn); err != nil {
			return err
		}
	}
	return nil
}

func (t *txn) LockThreads(ctx context.Context, ids []string) (map[string]projector.Thread, error) {
	out := make(map[string]projector.Thread, len(ids))
	// ids come sorted (projector.ApplyTx sorts them) and the MERGE creates
	// and locks the rows in that order. Two writers creating the same new
	// thread at once: the second's insert waits for the first to commit and
	// then fails with ORA-00001. The thread exists now, so running the MERGE
	// again matches and locks it; each retry is owed to another of the ids
	// having been committed meanwhile, so len(ids) retries suffice.
	var err error
	for range len(ids) + 1 {
		if err = t.exec(ctx, t.s.stmts.lockThreadsCall(ids)); oraCode(err) != codeUniqueViolation {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create and lock threads: %w", err)
	}
	err = t.query(ctx, selectThreadsCalls(t.s.prefix, ids), func(sc scanner) error {
		var th projector.Thread
		var w, l int64
		if err := sc.Scan(&th.ID, &w, &l); err != nil {
			return err
		}
		th.Watermark, th.LastSeq = uint64(w), uint64(l)
		out[th.ID] = th
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read threads: %w", err)
	}
	return out, nil
}

func (t *txn) PutThreads(ctx context.Context, threads []projector.Thread) error {
	return t.exec(ctx, t.s.stmts.putThreadsCall(threads))
}

func (t *txn) LoadVersions(ctx context.Context, keys []projector.CheckpointKey) (map[projector.CheckpointKey]*projector.StoredKey, error) {
	out := make(map[projector.CheckpointKey]*projector.StoredKey)
	for _, table := range loadTables {
		err := t.query(ctx, selectVersionsCalls(t.s.prefix, table, keys), func(sc scanner) error {
			v, err := scanVersion(sc, table != "duplicates")
			if err != nil {
				return err
			}
			sk := out[v.CheckpointKey]
			if sk == nil {
				sk = &projector.StoredKey{}
				out[v.CheckpointKey] = sk
			}
			switch table {
			case "checkpoints":
				sk.Winner = &v
			case "conflicts":
				sk.Conflicts = append(sk.Conflicts, v)
			default:
				sk.Duplicates = append(sk.Duplicates, v)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", table, err)
		}
	}
	return out, nil
}

func (t *txn) KeysWithVersionsFrom(ctx context.Context, threadID string, seq uint64) ([]projector.CheckpointKey, error) {
	c := call{t.s.stmts.keysWithVersions, []any{threadID, seqArg(seq), threadID, seqArg(seq)}, 1}
	var out []projector.CheckpointKey
	err := t.query(ctx, []call{c}, func(sc scanner) error {
		k := projector.CheckpointKey{ThreadID: threadID}
		if err := sc.Scan(&k.NS, &k.ID); err != nil {
			return err
		}
		k.NS = fromKeyText(k.NS)
		out = append(out, k)
		return nil
	})
	return out, err
}

func (t *txn) PutCheckpoints(ctx context.Context, rows []projector.Version) error {
	return t.exec(ctx, t.s.stmts.putCheckpointsCalls(rows)...)
}

func (t *txn) DeleteCheckpoints(ctx context.Context, keys []projector.CheckpointKey) error {
	return t.exec(ctx, t.s.stmts.deleteCheckpointsCall(keys))
}

func (t *txn) PutConflicts(ctx context.Context, rows []projector.Version) error {
	return t.exec(ctx, t.s.stmts.putConflictsCalls(rows)...)
}

func (t *txn) PutDuplicates(ctx context.Context, rows []projector.Version) error {
	return t.exec(ctx, t.s.stmts.putDuplicatesCall(rows))
}

func (t *txn) DeleteVersions(ctx context.Context, refs []projector.VersionRef) error {
	return t.exec(ctx, t.s.stmts.deleteVersionsCalls(refs)...)
}

func (t *txn) LoadWriteSets(ctx context.Context, keys []projector.TaskKey) (map[projector.TaskKey]projector.WriteSet, error) {
	out := make(map[projector.TaskKey]projector.WriteSet)
	err := t.query(ctx, selectWriteSetsCalls(t.s.prefix, keys), func(sc scanner) error {
		ws, err := scanWriteSet(sc)
		out[ws.TaskKey] = ws
		return err
	})
	return out, err
}

func (t *txn) ReplaceWriteSets(ctx context.Context, sets []projector.WriteSet) error {
	return t.exec(ctx, t.s.stmts.replaceWriteSetsCalls(sets)...)
}

func (t *txn) Truncate(ctx context.Context, threadID string, below uint64) error {
	for i, c := range t.s.stmts.truncateCalls(threadID, below) {
		if err := t.exec(ctx, c); err != nil {
			return fmt.Errorf("truncate %s: %w", truncateTables[i], err)
		}
	}
	return nil
}

func (t *txn) RefreshLive(ctx context.Context, threadIDs []string) error {
	return t.exec(ctx, t.s.stmts.refreshLiveCalls(threadIDs)...)
}

func (t *txn) RaiseLive(ctx context.Context, rows []projector.LiveRow) error {
	return t.exec(ctx, t.s.stmts.raiseLiveCall(rows))
}
