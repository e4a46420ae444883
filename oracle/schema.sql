-- cairn schema for Oracle Database 23ai/26ai, table prefix "cairn", version 2.
--
-- Generated from oracle/migrations/*.sql by SchemaScript; do not edit. To
-- regenerate: go generate ./oracle (or go test ./oracle -run TestSchemaFile -update).
-- For another prefix, replace every "cairn_" below with "<prefix>_" (a lowercase
-- letter, then lowercase letters, digits or '_', at most 40 bytes).
--
-- Every statement is idempotent (IF NOT EXISTS, MERGE ... WHEN NOT MATCHED):
-- running the script twice changes nothing. A writer started with
-- --oracle-no-ddl checks that these tables exist and that the version below is
-- recorded, and creates nothing.

CREATE TABLE IF NOT EXISTS cairn_schema_version (
    version    NUMBER(10) NOT NULL,
    applied_at TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    CONSTRAINT cairn_schema_version_pk PRIMARY KEY (version)
);

-- version 1: 0001_init.sql

-- cairn schema version 1 for Oracle Database 23ai/26ai: the tables of prefix
-- cairn. Statements end with ";" at the end of a line and contain no
-- blank lines, so that the same text runs from Go and from SQL*Plus or SQLcl.
--
-- Ids are VARCHAR2(512 BYTE): the event format caps every id at 512 bytes of
-- UTF-8, and BYTE semantics (whatever NLS_LENGTH_SEMANTICS says) keep the
-- widest key, the writes primary key (4 x 512 bytes + idx), near 2,100 bytes:
-- inside the index key limit (about 6,398 bytes with the default 8 KB blocks,
-- 3,118 with 4 KB blocks). With 512 CHAR columns in AL32UTF8 the same key
-- could need 8,192 bytes and would not fit.
--
-- Oracle stores '' as NULL, so the empty namespace and the empty task path
-- are stored as a single space (events.EmptySentinel, which events/ rejects
-- as input) and decoded back to "".
--
-- Checkpoint, metadata and write values are CLOBs holding the exact published
-- text, checked IS JSON. The native JSON type is not used for them: it stores
-- OSON, which keeps neither key order nor more than 38 significant digits.
CREATE TABLE IF NOT EXISTS cairn_threads (
    thread_id  VARCHAR2(512 BYTE) NOT NULL,
    watermark  NUMBER(19) DEFAULT 0 NOT NULL,
    last_seq   NUMBER(19) DEFAULT 0 NOT NULL,
    CONSTRAINT cairn_threads_pk PRIMARY KEY (thread_id)
);

CREATE TABLE IF NOT EXISTS cairn_checkpoints (
    thread_id            VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_ns        VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_id        VARCHAR2(512 BYTE) NOT NULL,
    parent_checkpoint_id VARCHAR2(512 BYTE),
    created_at           VARCHAR2(64 BYTE)  NOT NULL,
    seq                  NUMBER(19)         NOT NULL,
    event_id             VARCHAR2(512 BYTE) NOT NULL,
    content_hash         VARCHAR2(64 BYTE)  NOT NULL,
    checkpoint           CLOB               NOT NULL,
    metadata             CLOB               NOT NULL,
    CONSTRAINT cairn_checkpoints_pk PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id),
    CONSTRAINT cairn_checkpoints_state_json CHECK (checkpoint IS JSON),
    CONSTRAINT cairn_checkpoints_meta_json CHECK (metadata IS JSON)
);

-- Newest-first reads of one namespace (thread, ns, seq DESC): Oracle scans
-- this ascending index backwards, so no DESC column is needed.
CREATE INDEX IF NOT EXISTS cairn_checkpoints_ns_seq ON cairn_checkpoints (thread_id, checkpoint_ns, seq);

CREATE INDEX IF NOT EXISTS cairn_checkpoints_thread_seq ON cairn_checkpoints (thread_id, seq);

CREATE INDEX IF NOT EXISTS cairn_checkpoints_seq ON cairn_checkpoints (seq);

CREATE TABLE IF NOT EXISTS cairn_conflicts (
    thread_id            VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_ns        VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_id        VARCHAR2(512 BYTE) NOT NULL,
    seq                  NUMBER(19)         NOT NULL,
    parent_checkpoint_id VARCHAR2(512 BYTE),
    created_at           VARCHAR2(64 BYTE)  NOT NULL,
    event_id             VARCHAR2(512 BYTE) NOT NULL,
    content_hash         VARCHAR2(64 BYTE)  NOT NULL,
    checkpoint           CLOB               NOT NULL,
    metadata             CLOB               NOT NULL,
    CONSTRAINT cairn_conflicts_pk PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, seq),
    CONSTRAINT cairn_conflicts_state_json CHECK (checkpoint IS JSON),
    CONSTRAINT cairn_conflicts_meta_json CHECK (metadata IS JSON)
);

CREATE TABLE IF NOT EXISTS cairn_duplicates (
    thread_id            VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_ns        VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_id        VARCHAR2(512 BYTE) NOT NULL,
    seq                  NUMBER(19)         NOT NULL,
    parent_checkpoint_id VARCHAR2(512 BYTE),
    created_at           VARCHAR2(64 BYTE)  NOT NULL,
    event_id             VARCHAR2(512 BYTE) NOT NULL,
    content_hash         VARCHAR2(64 BYTE)  NOT NULL,
    CONSTRAINT cairn_duplicates_pk PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, seq)
);

CREATE TABLE IF NOT EXISTS cairn_write_sets (
    thread_id     VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_ns VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_id VARCHAR2(512 BYTE) NOT NULL,
    task_id       VARCHAR2(512 BYTE) NOT NULL,
    task_path     VARCHAR2(512 BYTE) NOT NULL,
    seq           NUMBER(19)         NOT NULL,
    event_id      VARCHAR2(512 BYTE) NOT NULL,
    created_at    VARCHAR2(64 BYTE)  NOT NULL,
    CONSTRAINT cairn_write_sets_pk PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id)
);

CREATE TABLE IF NOT EXISTS cairn_writes (
    thread_id     VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_ns VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_id VARCHAR2(512 BYTE) NOT NULL,
    task_id       VARCHAR2(512 BYTE) NOT NULL,
    idx           NUMBER(10)         NOT NULL,
    task_path     VARCHAR2(512 BYTE) NOT NULL,
    channel       VARCHAR2(512 BYTE) NOT NULL,
    seq           NUMBER(19)         NOT NULL,
    value         CLOB               NOT NULL,
    CONSTRAINT cairn_writes_pk PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx),
    CONSTRAINT cairn_writes_value_json CHECK (value IS JSON)
);

CREATE TABLE IF NOT EXISTS cairn_live (
    thread_id     VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_ns VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_id VARCHAR2(512 BYTE) NOT NULL,
    seq           NUMBER(19)         NOT NULL,
    CONSTRAINT cairn_live_pk PRIMARY KEY (thread_id, checkpoint_ns)
);

MERGE INTO cairn_schema_version v
USING (SELECT 1 AS version FROM dual) s
ON (v.version = s.version)
WHEN NOT MATCHED THEN INSERT (version) VALUES (s.version);

-- version 2: 0002_lineage.sql

-- cairn schema version 2 for Oracle Database 23ai/26ai: indexes for lineage
-- reads (projector.Lineage, oracle/lineage.go) on the tables of prefix
-- cairn. On a store that already holds data each index is built in one go:
-- writes to its table wait for the build, and a build that finds a
-- transaction open on the table fails with ORA-00054 and is retried.
--
-- Threads listing, newest activity first (read backwards).
CREATE INDEX IF NOT EXISTS cairn_threads_last_seq ON cairn_threads (last_seq);

-- Children of a checkpoint, newest first. Oracle has no partial indexes, so
-- roots (a NULL parent) are indexed too.
CREATE INDEX IF NOT EXISTS cairn_checkpoints_parent ON cairn_checkpoints (thread_id, checkpoint_ns, parent_checkpoint_id, seq);

-- Cross-thread forks by origin thread, newest first: a function-based
-- index on JSON_VALUE over the metadata CLOB (checked IS JSON), keyed by the
-- thread id under forked_from. Queries use the very same expression, with the
-- same RETURNING type and ON ERROR / ON EMPTY handling (oracle/lineage.go,
-- forkOrigin), or Oracle would not use the index. Metadata whose
-- forked_from.thread_id is missing, not a scalar or over 512 bytes is indexed
-- under NULL, never refused.
CREATE INDEX IF NOT EXISTS cairn_checkpoints_forks ON cairn_checkpoints
    (JSON_VALUE(metadata, '$.forked_from.thread_id' RETURNING VARCHAR2(512 BYTE) NULL ON ERROR NULL ON EMPTY), seq);

MERGE INTO cairn_schema_version v
USING (SELECT 2 AS version FROM dual) s
ON (v.version = s.version)
WHEN NOT MATCHED THEN INSERT (version) VALUES (s.version);

COMMIT;
