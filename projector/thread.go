package projector

import "context"

// ThreadReader reads a thread's bookkeeping row. A store implements it
// next to Reader; the query service type-asserts, and uses it to say when a
// checkpoint's parent was pruned.
type ThreadReader interface {
	// Thread returns the thread's row (its watermark and latest sequence),
	// or a NotFound error when no event of the thread was ever projected.
	Thread(ctx context.Context, threadID string) (Thread, error)
}

// ParentPruned reports whether v's parent was removed by a watermark
// (thread.prune or thread.delete) rather than never stored: v names a
// parent, the parent is not stored, and the thread's watermark lies above 0
// and at or below v's sequence. A parent that is missing without such a
// watermark was never stored, or has not arrived yet.
func ParentPruned(v Version, parentStored bool, t Thread) bool {
	return v.ParentID != "" && !parentStored && t.Watermark > 0 && v.Seq >= t.Watermark
}
