package projector

import (
	"context"
	"encoding/json"
	"time"
)

// Store is the contract every database adapter (sqlite, postgres, oracle)
// implements. Stores are deliberately dumb: the projection rules live in this
// package, once; a store persists rows, locks threads and answers reads. The
// conformance suite in projector/storetest checks a store against the rules.
//
// A Store is safe for concurrent use. Several Stores (in several processes)
// may share one database and table prefix: Update's thread locks make their
// batches serialise per thread.
type Store interface {
	Reader
	// Update runs fn inside one transaction and commits it if fn returns
	// nil; otherwise it rolls back and returns fn's error. Errors the store
	// itself raises carry an events code: Unavailable for a lost connection,
	// a deadlock or a serialisation failure (the whole call may be retried),
	// anything else for errors that retrying the same input will not cure.
	Update(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
	// Close releases the store's connections.
	Close() error
}

// Tx is one store transaction. Its bulk methods take slices so that a store
// can send each as one statement or one round trip; an empty slice is a no-op.
// Every write is idempotent by key: upserts replace by primary key, deletes
// of missing rows succeed.
type Tx interface {
	// LockThreads creates missing thread rows (watermark 0) and locks the
	// rows of ids against other transactions until this one ends. It returns
	// the threads' stored state, keyed by id.
	LockThreads(ctx context.Context, ids []string) (map[string]Thread, error)
	// PutThreads stores thread rows (by id).
	PutThreads(ctx context.Context, threads []Thread) error

	// LoadVersions returns every stored version of the given keys that has
	// any: the winner from the checkpoints table and the conflicts with their
	// payloads, the duplicates without (their payload is the winner's).
	LoadVersions(ctx context.Context, keys []CheckpointKey) (map[CheckpointKey]*StoredKey, error)
	// KeysWithVersionsFrom returns the keys of thread that have a
	// duplicate or a conflict at or above seq.
	KeysWithVersionsFrom(ctx context.Context, threadID string, seq uint64) ([]CheckpointKey, error)
	// PutCheckpoints upserts winners by key.
	PutCheckpoints(ctx context.Context, rows []Version) error
	// DeleteCheckpoints deletes winners by key.
	DeleteCheckpoints(ctx context.Context, keys []CheckpointKey) error
	// PutConflicts upserts conflict rows by (key, seq).
	PutConflicts(ctx context.Context, rows []Version) error
	// PutDuplicates upserts duplicate rows by (key, seq); State and Metadata
	// are not stored.
	PutDuplicates(ctx context.Context, rows []Version) error
	// DeleteVersions deletes conflict and duplicate rows by (key, seq).
	DeleteVersions(ctx context.Context, refs []VersionRef) error

	// LoadWriteSets returns the stored head of each given task's write set.
	LoadWriteSets(ctx context.Context, keys []TaskKey) (map[TaskKey]WriteSet, error)
	// ReplaceWriteSets replaces, per task, the head and all its write rows.
	ReplaceWriteSets(ctx context.Context, sets []WriteSet) error

	// Truncate deletes every row of the thread (checkpoints, conflicts,
	// duplicates, write sets, writes) whose seq is below the given one.
	Truncate(ctx context.Context, threadID string, below uint64) error
	// RefreshLive recomputes the live rows of the threads from their
	// checkpoints: per namespace, the checkpoint with the highest seq; none
	// when the namespace has none.
	RefreshLive(ctx context.Context, threadIDs []string) error
	// RaiseLive makes each row the live row of its thread and namespace
	// where that has none or one with a lower seq, and leaves the others
	// as they are. The rows are distinct by (thread, namespace).
	RaiseLive(ctx context.Context, rows []LiveRow) error
}

// Reader is the read side of a Store. Reads see committed data only.
// Missing single items are NotFound errors.
type Reader interface {
	// Latest returns the live checkpoint of (thread, ns).
	Latest(ctx context.Context, threadID, ns string) (Version, error)
	// Checkpoint returns the checkpoint at key.
	Checkpoint(ctx context.Context, key CheckpointKey) (Version, error)
	// List returns checkpoints newest first (by seq).
	List(ctx context.Context, q ListQuery) ([]Version, error)
	// Writes returns the pending writes of a checkpoint ordered by task id,
	// then idx; of one task only when taskID is not "".
	Writes(ctx context.Context, key CheckpointKey, taskID string) ([]WriteRow, error)
	// Ancestors follows parent links from key (excluded) within its thread
	// and namespace and returns at most depth checkpoints, nearest first. The
	// walk stops early at a parent that is not stored.
	Ancestors(ctx context.Context, key CheckpointKey, depth int) ([]Version, error)
	// Dump returns every table in canonical form, for comparison.
	Dump(ctx context.Context) (Dump, error)
}

// ListQuery selects checkpoints for Reader.List.
type ListQuery struct {
	ThreadID  string // "" for all threads
	NS        string // the namespace when AllNS is false
	AllNS     bool   // true for every namespace
	BeforeSeq uint64 // only seq below it; 0 for no bound
	Limit     int    // at most this many; must be > 0
}

// CheckpointKey identifies a checkpoint.
type CheckpointKey struct {
	ThreadID string
	NS       string
	ID       string
}

// TaskKey identifies the write set of one task against one checkpoint.
type TaskKey struct {
	ThreadID     string
	NS           string
	CheckpointID string
	TaskID       string
}

// Thread is a row of the threads table: the thread's watermark and the
// highest seq of any of its events.
type Thread struct {
	ID string
	// Watermark: every row the thread's events below it produced is gone,
	// and such events are ignored.
	Watermark uint64
	LastSeq   uint64
}

// Version is one checkpoint.put event of a key as stored: the winner row of
// the checkpoints table, or a conflict or duplicate row.
type Version struct {
	CheckpointKey
	ParentID  string
	State     json.RawMessage // nil for a duplicate row as loaded
	Metadata  json.RawMessage // nil for a duplicate row as loaded
	CreatedAt time.Time
	Seq       uint64
	EventID   string
	// Hash identifies the content (parent, state, metadata); see ContentHash.
	Hash string
}

// StoredKey is everything stored for one checkpoint key.
type StoredKey struct {
	Winner     *Version // the checkpoints row; nil if none
	Conflicts  []Version
	Duplicates []Version
}

// VersionRef names one conflict or duplicate row.
type VersionRef struct {
	CheckpointKey
	Seq uint64
}

// WriteSet is the complete set of pending writes of one task, from the
// writes.put event with the highest seq.
type WriteSet struct {
	TaskKey
	TaskPath  string
	Seq       uint64
	EventID   string
	CreatedAt time.Time
	Writes    []WriteRow // nil when loaded by LoadWriteSets
}

// WriteRow is one row of the writes table.
type WriteRow struct {
	TaskKey
	TaskPath string
	Idx      int64
	Channel  string
	Value    json.RawMessage
	Seq      uint64
}
