-- cairn schema version 2 for SQLite: indexes for lineage reads
-- (projector.Lineage). {{p}} is the validated table prefix.

-- Threads listing, newest activity first.
CREATE INDEX IF NOT EXISTS {{p}}_threads_last_seq ON {{p}}_threads (last_seq);

-- Children of a checkpoint, newest first. Partial, so that only a query
-- that compares parent_checkpoint_id can use it: without statistics the
-- planner would otherwise take it for the primary key's lookups (ancestor
-- walks) and for newest-first lists, and scan a whole thread per step.
CREATE INDEX IF NOT EXISTS {{p}}_checkpoints_parent ON {{p}}_checkpoints (thread_id, checkpoint_ns, parent_checkpoint_id, seq)
    WHERE parent_checkpoint_id IS NOT NULL;

-- Cross-thread forks: only checkpoints whose metadata mentions "forked_from"
-- are indexed, so finding fork candidates reads few rows. instr() cannot
-- fail on any text, so this index never refuses a row.
CREATE INDEX IF NOT EXISTS {{p}}_checkpoints_forks ON {{p}}_checkpoints (seq)
    WHERE instr(metadata, '"forked_from"') > 0;
