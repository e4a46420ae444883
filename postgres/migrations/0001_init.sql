-- cairn schema version 1 for PostgreSQL. {{p}} is the validated table prefix.
-- JSON payloads are TEXT holding the exact published bytes.
-- Text columns use the "C" collation so that ordering by ids is by bytes, as
-- in every other cairn store.
CREATE TABLE IF NOT EXISTS {{p}}_threads (
    thread_id  TEXT COLLATE "C"    NOT NULL PRIMARY KEY,
    watermark  BIGINT NOT NULL DEFAULT 0,
    last_seq   BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS {{p}}_checkpoints (
    thread_id            TEXT COLLATE "C"    NOT NULL,
    checkpoint_ns        TEXT COLLATE "C"    NOT NULL,
    checkpoint_id        TEXT COLLATE "C"    NOT NULL,
    parent_checkpoint_id TEXT,
    checkpoint           TEXT COLLATE "C"    NOT NULL,
    metadata             TEXT COLLATE "C"    NOT NULL,
    created_at           TEXT COLLATE "C"    NOT NULL,
    seq                  BIGINT NOT NULL,
    event_id             TEXT COLLATE "C"    NOT NULL,
    content_hash         TEXT COLLATE "C"    NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
);
CREATE INDEX IF NOT EXISTS {{p}}_checkpoints_ns_seq ON {{p}}_checkpoints (thread_id, checkpoint_ns, seq);
CREATE INDEX IF NOT EXISTS {{p}}_checkpoints_thread_seq ON {{p}}_checkpoints (thread_id, seq);
CREATE INDEX IF NOT EXISTS {{p}}_checkpoints_seq ON {{p}}_checkpoints (seq);

CREATE TABLE IF NOT EXISTS {{p}}_conflicts (
    thread_id            TEXT COLLATE "C"    NOT NULL,
    checkpoint_ns        TEXT COLLATE "C"    NOT NULL,
    checkpoint_id        TEXT COLLATE "C"    NOT NULL,
    seq                  BIGINT NOT NULL,
    parent_checkpoint_id TEXT,
    checkpoint           TEXT COLLATE "C"    NOT NULL,
    metadata             TEXT COLLATE "C"    NOT NULL,
    created_at           TEXT COLLATE "C"    NOT NULL,
    event_id             TEXT COLLATE "C"    NOT NULL,
    content_hash         TEXT COLLATE "C"    NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, seq)
);

CREATE TABLE IF NOT EXISTS {{p}}_duplicates (
    thread_id            TEXT COLLATE "C"    NOT NULL,
    checkpoint_ns        TEXT COLLATE "C"    NOT NULL,
    checkpoint_id        TEXT COLLATE "C"    NOT NULL,
    seq                  BIGINT NOT NULL,
    parent_checkpoint_id TEXT,
    created_at           TEXT COLLATE "C"    NOT NULL,
    event_id             TEXT COLLATE "C"    NOT NULL,
    content_hash         TEXT COLLATE "C"    NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, seq)
);

CREATE TABLE IF NOT EXISTS {{p}}_write_sets (
    thread_id     TEXT COLLATE "C"    NOT NULL,
    checkpoint_ns TEXT COLLATE "C"    NOT NULL,
    checkpoint_id TEXT COLLATE "C"    NOT NULL,
    task_id       TEXT COLLATE "C"    NOT NULL,
    task_path     TEXT COLLATE "C"    NOT NULL,
    seq           BIGINT NOT NULL,
    event_id      TEXT COLLATE "C"    NOT NULL,
    created_at    TEXT COLLATE "C"    NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id)
);

CREATE TABLE IF NOT EXISTS {{p}}_writes (
    thread_id     TEXT COLLATE "C"    NOT NULL,
    checkpoint_ns TEXT COLLATE "C"    NOT NULL,
    checkpoint_id TEXT COLLATE "C"    NOT NULL,
    task_id       TEXT COLLATE "C"    NOT NULL,
    idx           BIGINT NOT NULL,
    task_path     TEXT COLLATE "C"    NOT NULL,
    channel       TEXT COLLATE "C"    NOT NULL,
    value         TEXT COLLATE "C"    NOT NULL,
    seq           BIGINT NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);

CREATE TABLE IF NOT EXISTS {{p}}_live (
    thread_id     TEXT COLLATE "C"    NOT NULL,
    checkpoint_ns TEXT COLLATE "C"    NOT NULL,
    checkpoint_id TEXT COLLATE "C"    NOT NULL,
    seq           BIGINT NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns)
);
