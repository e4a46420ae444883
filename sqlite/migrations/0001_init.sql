-- cairn schema version 1 for SQLite. {{p}} is the validated table prefix.
-- JSON payloads are TEXT holding the exact published bytes.
CREATE TABLE IF NOT EXISTS {{p}}_threads (
    thread_id  TEXT    NOT NULL PRIMARY KEY,
    watermark  INTEGER NOT NULL DEFAULT 0,
    last_seq   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS {{p}}_checkpoints (
    thread_id            TEXT    NOT NULL,
    checkpoint_ns        TEXT    NOT NULL,
    checkpoint_id        TEXT    NOT NULL,
    parent_checkpoint_id TEXT,
    checkpoint           TEXT    NOT NULL,
    metadata             TEXT    NOT NULL,
    created_at           TEXT    NOT NULL,
    seq                  INTEGER NOT NULL,
    event_id             TEXT    NOT NULL,
    content_hash         TEXT    NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
);
CREATE INDEX IF NOT EXISTS {{p}}_checkpoints_ns_seq ON {{p}}_checkpoints (thread_id, checkpoint_ns, seq);
CREATE INDEX IF NOT EXISTS {{p}}_checkpoints_thread_seq ON {{p}}_checkpoints (thread_id, seq);
CREATE INDEX IF NOT EXISTS {{p}}_checkpoints_seq ON {{p}}_checkpoints (seq);

CREATE TABLE IF NOT EXISTS {{p}}_conflicts (
    thread_id            TEXT    NOT NULL,
    checkpoint_ns        TEXT    NOT NULL,
    checkpoint_id        TEXT    NOT NULL,
    seq                  INTEGER NOT NULL,
    parent_checkpoint_id TEXT,
    checkpoint           TEXT    NOT NULL,
    metadata             TEXT    NOT NULL,
    created_at           TEXT    NOT NULL,
    event_id             TEXT    NOT NULL,
    content_hash         TEXT    NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, seq)
);

CREATE TABLE IF NOT EXISTS {{p}}_duplicates (
    thread_id            TEXT    NOT NULL,
    checkpoint_ns        TEXT    NOT NULL,
    checkpoint_id        TEXT    NOT NULL,
    seq                  INTEGER NOT NULL,
    parent_checkpoint_id TEXT,
    created_at           TEXT    NOT NULL,
    event_id             TEXT    NOT NULL,
    content_hash         TEXT    NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, seq)
);

CREATE TABLE IF NOT EXISTS {{p}}_write_sets (
    thread_id     TEXT    NOT NULL,
    checkpoint_ns TEXT    NOT NULL,
    checkpoint_id TEXT    NOT NULL,
    task_id       TEXT    NOT NULL,
    task_path     TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    event_id      TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id)
);

CREATE TABLE IF NOT EXISTS {{p}}_writes (
    thread_id     TEXT    NOT NULL,
    checkpoint_ns TEXT    NOT NULL,
    checkpoint_id TEXT    NOT NULL,
    task_id       TEXT    NOT NULL,
    idx           INTEGER NOT NULL,
    task_path     TEXT    NOT NULL,
    channel       TEXT    NOT NULL,
    value         TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);

CREATE TABLE IF NOT EXISTS {{p}}_live (
    thread_id     TEXT    NOT NULL,
    checkpoint_ns TEXT    NOT NULL,
    checkpoint_id TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns)
);
