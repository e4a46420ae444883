package projector

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/cairn-io/cairn/events"
)

// The rules, stated once (the conformance suite checks every store against
// them, and Expect computes them directly from a set of records):
//
//   - A thread's watermark is the largest of its thread.delete sequences and
//     thread.prune bounds. Records below it are ignored; rows they produced
//     are removed.
//   - Checkpoints: per key, of the surviving checkpoint.put records the one
//     with the lowest seq is the row. Others with the same content are
//     duplicates (kept as bookkeeping, without payload); others with
//     different content are conflicts (kept, with payload).
//   - Writes: per task, the surviving writes.put with the highest seq is the
//     task's whole write set.
//   - Live: per thread and namespace, the surviving checkpoint row with the
//     highest seq.
//
// Every rule is a min, a max or a filter over the set of records, so the
// result does not depend on the order or grouping in which records arrive.

// ApplyTx applies recs inside tx and returns each record's outcome. It is
// exported for stores' own tests; writers use Projector.Apply.
func ApplyTx(ctx context.Context, tx Tx, recs []Record) ([]Outcome, error) {
	outs := make([]Outcome, len(recs))
	first := make(map[uint64]int, len(recs)) // seq -> index of its first record
	threadSet := make(map[string]bool)
	for i, r := range recs {
		if r.Event == nil || r.Seq == 0 {
			return nil, events.Errorf(events.Invalid, "record %d: no event or no sequence", i)
		}
		if j, ok := first[r.Seq]; ok {
			if recs[j].Event.EventID != r.Event.EventID {
				return nil, events.Errorf(events.Invalid, "records %d and %d share seq %d", j, i, r.Seq)
			}
			outs[i] = Duplicate
			continue
		}
		first[r.Seq] = i
		threadSet[r.Event.ThreadID] = true
	}
	threadIDs := slices.Sorted(maps.Keys(threadSet))
	stored, err := tx.LockThreads(ctx, threadIDs)
	if err != nil {
		return nil, fmt.Errorf("lock threads: %w", err)
	}

	// Watermarks and last seqs.
	threads := make(map[string]Thread, len(threadIDs))
	for _, id := range threadIDs {
		threads[id] = stored[id]
		if t := threads[id]; t.ID == "" {
			t.ID = id
			threads[id] = t
		}
	}
	for i, r := range recs {
		if outs[i] != 0 {
			continue
		}
		t := threads[r.Event.ThreadID]
		t.Watermark = max(t.Watermark, watermarkOf(r))
		t.LastSeq = max(t.LastSeq, r.Seq)
		threads[r.Event.ThreadID] = t
	}
	var changedThreads []Thread
	var raised []string
	for _, id := range threadIDs {
		if threads[id] != stored[id] {
			changedThreads = append(changedThreads, threads[id])
		}
		if threads[id].Watermark > stored[id].Watermark {
			raised = append(raised, id)
		}
	}

	// Classify records; collect the keys and tasks they touch.
	keySet := make(map[CheckpointKey]bool)
	batchVersions := make(map[CheckpointKey][]Version)
	bestSets := make(map[TaskKey]Record)
	for i, r := range recs {
		if outs[i] != 0 {
			continue
		}
		w := threads[r.Event.ThreadID].Watermark
		switch r.Event.Kind {
		case events.KindThreadDelete, events.KindThreadPrune:
			outs[i] = Applied
		case events.KindCheckpointPut:
			if r.Seq < w {
				outs[i] = Ignored
				continue
			}
			v := versionOf(r)
			keySet[v.CheckpointKey] = true
			batchVersions[v.CheckpointKey] = append(batchVersions[v.CheckpointKey], v)
		case events.KindWritesPut:
			if r.Seq < w {
				outs[i] = Ignored
				continue
			}
			tk := taskKeyOf(r)
			if cur, ok := bestSets[tk]; !ok || r.Seq > cur.Seq {
				bestSets[tk] = r
			}
		default:
			return nil, events.Errorf(events.Invalid, "record %d: unknown kind %q", i, r.Event.Kind)
		}
	}
	for _, id := range raised {
		keys, err := tx.KeysWithVersionsFrom(ctx, id, threads[id].Watermark)
		if err != nil {
			return nil, fmt.Errorf("find versions to promote: %w", err)
		}
		for _, k := range keys {
			keySet[k] = true
		}
	}

	// Checkpoints: recompute each touched key from everything known of it.
	keys := slices.SortedFunc(maps.Keys(keySet), compareKeys)
	loaded, err := tx.LoadVersions(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("load versions: %w", err)
	}
	var (
		putWinners, putConflicts, putDups []Version
		delWinners                        []CheckpointKey
		delVersions                       []VersionRef
		liveSet                           = make(map[string]bool) // threads whose live rows are recomputed
		added                             []Version               // winners of keys that had none
		roleBySeq                         = make(map[uint64]Outcome)
	)
	for _, id := range raised {
		liveSet[id] = true
	}
	for _, k := range keys {
		old := loaded[k]
		if old == nil {
			old = &StoredKey{}
		}
		all := slices.Concat(old.Conflicts, old.Duplicates, batchVersions[k])
		if old.Winner != nil {
			all = append(all, *old.Winner)
		}
		winner, conflicts, dups, err := partition(all, threads[k.ThreadID].Watermark)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %q/%q/%q: %w", k.ThreadID, k.NS, k.ID, err)
		}
		if winner != nil {
			roleBySeq[winner.Seq] = Applied
		}
		for _, v := range conflicts {
			roleBySeq[v.Seq] = Conflict
		}
		for _, v := range dups {
			roleBySeq[v.Seq] = Duplicate
		}
		switch {
		case winner == nil && old.Winner != nil:
			delWinners = append(delWinners, k)
			liveSet[k.ThreadID] = true
		case winner != nil && old.Winner == nil:
			putWinners = append(putWinners, *winner)
			added = append(added, *winner)
		case winner != nil && old.Winner.Seq != winner.Seq:
			putWinners = append(putWinners, *winner)
			liveSet[k.ThreadID] = true
		}
		oldSeqs := make(map[uint64]bool)
		for _, v := range slices.Concat(old.Conflicts, old.Duplicates) {
			oldSeqs[v.Seq] = true
		}
		newConflicts := seqSet(conflicts)
		newDups := seqSet(dups)
		for _, v := range old.Conflicts {
			if !newConflicts[v.Seq] {
				delVersions = append(delVersions, VersionRef{k, v.Seq})
			}
		}
		for _, v := range old.Duplicates {
			if !newDups[v.Seq] {
				delVersions = append(delVersions, VersionRef{k, v.Seq})
			}
		}
		oldConflicts, oldDups := seqSet(old.Conflicts), seqSet(old.Duplicates)
		for _, v := range conflicts {
			if !oldConflicts[v.Seq] {
				putConflicts = append(putConflicts, v)
			}
		}
		for _, v := range dups {
			if !oldDups[v.Seq] {
				putDups = append(putDups, v)
			}
		}
	}
	for i, r := range recs {
		if outs[i] == 0 && r.Event.Kind == events.KindCheckpointPut {
			outs[i] = roleBySeq[r.Seq]
			if outs[i] == 0 { // cannot happen: every surviving version has a role
				return nil, fmt.Errorf("record %d: no outcome", i)
			}
			if old := loaded[checkpointKeyOf(r)]; old != nil && old.has(r.Seq) {
				outs[i] = Duplicate // redelivered
			}
		}
	}

	// Write sets: the highest seq wins the task.
	taskKeys := slices.SortedFunc(maps.Keys(bestSets), compareTasks)
	heads, err := tx.LoadWriteSets(ctx, taskKeys)
	if err != nil {
		return nil, fmt.Errorf("load write sets: %w", err)
	}
	var replace []WriteSet
	for _, tk := range taskKeys {
		best := bestSets[tk]
		head, ok := heads[tk]
		if ok && head.Seq >= threads[tk.ThreadID].Watermark && head.Seq >= best.Seq {
			continue
		}
		replace = append(replace, writeSetOf(best))
	}
	winningSet := make(map[uint64]bool, len(replace))
	for _, ws := range replace {
		winningSet[ws.Seq] = true
	}
	for i, r := range recs {
		if outs[i] == 0 && r.Event.Kind == events.KindWritesPut {
			switch head, ok := heads[taskKeyOf(r)]; {
			case winningSet[r.Seq]:
				outs[i] = Applied
			case ok && head.Seq == r.Seq:
				outs[i] = Duplicate
			default:
				outs[i] = Superseded
			}
		}
	}

	// Write, removals first: the watermark truncation, then per-key deletes,
	// then upserts of rows that are all at or above the watermark.
	for _, id := range raised {
		if err := tx.Truncate(ctx, id, threads[id].Watermark); err != nil {
			return nil, fmt.Errorf("truncate thread: %w", err)
		}
	}
	steps := []struct {
		name string
		run  func() error
	}{
		{"delete checkpoints", func() error { return tx.DeleteCheckpoints(ctx, delWinners) }},
		{"delete versions", func() error { return tx.DeleteVersions(ctx, delVersions) }},
		{"put checkpoints", func() error { return tx.PutCheckpoints(ctx, putWinners) }},
		{"put conflicts", func() error { return tx.PutConflicts(ctx, putConflicts) }},
		{"put duplicates", func() error { return tx.PutDuplicates(ctx, putDups) }},
		{"replace write sets", func() error { return tx.ReplaceWriteSets(ctx, replace) }},
		{"put threads", func() error { return tx.PutThreads(ctx, changedThreads) }},
		{"refresh live", func() error { return tx.RefreshLive(ctx, slices.Sorted(maps.Keys(liveSet))) }},
		{"raise live", func() error { return tx.RaiseLive(ctx, raisedLive(added, liveSet)) }},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return outs, nil
}

// raisedLive returns the live rows to raise for the winners of keys that
// had none, leaving out the threads in refresh, whose live rows are
// recomputed: per thread and namespace, the added winner with the highest
// seq.
//
// Why raising is enough for the other threads: a namespace's live row is
// the maximum seq over its keys' winners. A thread outside refresh had, in
// this batch, no winner replaced or deleted and no watermark raised (each
// of those puts it in refresh), so its set of winners only grew by the
// added ones, and the new maximum is the larger of the stored live row and
// the added winners' highest. The stored live row was right when the batch
// began: every batch leaves it so, and the thread lock keeps other writers
// off the thread until this one commits. A replaced winner is not raised:
// with the watermark where it was, a key's winner can only be replaced by
// a version with a lower seq, which can lower the maximum, so that thread
// is recomputed.
func raisedLive(added []Version, refresh map[string]bool) []LiveRow {
	best := make(map[[2]string]LiveRow)
	for _, v := range added {
		if refresh[v.ThreadID] {
			continue
		}
		k := [2]string{v.ThreadID, v.NS}
		if cur, ok := best[k]; !ok || v.Seq > cur.Seq {
			best[k] = LiveRow{ThreadID: v.ThreadID, NS: v.NS, CheckpointID: v.ID, Seq: v.Seq}
		}
	}
	return slices.SortedFunc(maps.Values(best), func(a, b LiveRow) int {
		return cmp.Or(cmp.Compare(a.ThreadID, b.ThreadID), cmp.Compare(a.NS, b.NS))
	})
}

func (k *StoredKey) has(seq uint64) bool {
	if k.Winner != nil && k.Winner.Seq == seq {
		return true
	}
	for _, v := range slices.Concat(k.Conflicts, k.Duplicates) {
		if v.Seq == seq {
			return true
		}
	}
	return false
}

// partition applies the checkpoint rule to every known version of one key:
// versions below the watermark are dropped; the lowest seq wins; the rest are
// duplicates (same hash) or conflicts. Versions loaded without payload take
// it from a version with the same hash.
func partition(all []Version, watermark uint64) (winner *Version, conflicts, dups []Version, err error) {
	type payload struct{ state, metadata json.RawMessage }
	payloads := make(map[string]payload)
	for _, v := range all {
		if v.State != nil {
			payloads[v.Hash] = payload{v.State, v.Metadata}
		}
	}
	bySeq := make(map[uint64]Version)
	for _, v := range all {
		if v.Seq >= watermark {
			if _, ok := bySeq[v.Seq]; !ok || v.State != nil {
				bySeq[v.Seq] = v
			}
		}
	}
	surv := slices.SortedFunc(maps.Values(bySeq), func(a, b Version) int { return cmp.Compare(a.Seq, b.Seq) })
	if len(surv) == 0 {
		return nil, nil, nil, nil
	}
	fill := func(v Version) (Version, error) {
		if v.State == nil {
			p, ok := payloads[v.Hash]
			if !ok {
				return v, fmt.Errorf("no stored payload for content %s (seq %d)", v.Hash, v.Seq)
			}
			v.State, v.Metadata = p.state, p.metadata
		}
		return v, nil
	}
	w, err := fill(surv[0])
	if err != nil {
		return nil, nil, nil, err
	}
	for _, v := range surv[1:] {
		if v.Hash == w.Hash {
			v.State, v.Metadata = nil, nil
			dups = append(dups, v)
			continue
		}
		if v, err = fill(v); err != nil {
			return nil, nil, nil, err
		}
		conflicts = append(conflicts, v)
	}
	return &w, conflicts, dups, nil
}

func seqSet(vs []Version) map[uint64]bool {
	m := make(map[uint64]bool, len(vs))
	for _, v := range vs {
		m[v.Seq] = true
	}
	return m
}

func compareKeys(a, b CheckpointKey) int {
	return cmp.Or(cmp.Compare(a.ThreadID, b.ThreadID), cmp.Compare(a.NS, b.NS), cmp.Compare(a.ID, b.ID))
}

func compareTasks(a, b TaskKey) int {
	return cmp.Or(cmp.Compare(a.ThreadID, b.ThreadID), cmp.Compare(a.NS, b.NS),
		cmp.Compare(a.CheckpointID, b.CheckpointID), cmp.Compare(a.TaskID, b.TaskID))
}
