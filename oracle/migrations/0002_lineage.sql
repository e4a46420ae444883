-- cairn schema version 2 for Oracle Database 23ai/26ai: indexes for lineage
-- reads (projector.Lineage, oracle/lineage.go) on the tables of prefix
-- {{p}}. On a store that already holds data each index is built in one go:
-- writes to its table wait for the build, and a build that finds a
-- transaction open on the table fails with ORA-00054 and is retried.
--
-- Threads listing, newest activity first (read backwards).
CREATE INDEX IF NOT EXISTS {{p}}_threads_last_seq ON {{p}}_threads (last_seq);

-- Children of a checkpoint, newest first. Oracle has no partial indexes, so
-- roots (a NULL parent) are indexed too.
CREATE INDEX IF NOT EXISTS {{p}}_checkpoints_parent ON {{p}}_checkpoints (thread_id, checkpoint_ns, parent_checkpoint_id, seq);

-- Cross-thread forks by origin thread, newest first: a function-based
-- index on JSON_VALUE over the metadata CLOB (checked IS JSON), keyed by the
-- thread id under forked_from. Queries use the very same expression, with the
-- same RETURNING type and ON ERROR / ON EMPTY handling (oracle/lineage.go,
-- forkOrigin), or Oracle would not use the index. Metadata whose
-- forked_from.thread_id is missing, not a scalar or over 512 bytes is indexed
-- under NULL, never refused.
CREATE INDEX IF NOT EXISTS {{p}}_checkpoints_forks ON {{p}}_checkpoints
    (JSON_VALUE(metadata, '$.forked_from.thread_id' RETURNING VARCHAR2(512 BYTE) NULL ON ERROR NULL ON EMPTY), seq);
