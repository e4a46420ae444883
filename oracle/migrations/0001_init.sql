-- cairn schema version 1 for Oracle Database 23ai/26ai: the tables of prefix
-- {{p}}. Statements end with ";" at the end of a line and contain no
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
CREATE TABLE IF NOT EXISTS {{p}}_threads (
    thread_id  VARCHAR2(512 BYTE) NOT NULL,
    watermark  NUMBER(19) DEFAULT 0 NOT NULL,
    last_seq   NUMBER(19) DEFAULT 0 NOT NULL,
    CONSTRAINT {{p}}_threads_pk PRIMARY KEY (thread_id)
);

CREATE TABLE IF NOT EXISTS {{p}}_checkpoints (
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
    CONSTRAINT {{p}}_checkpoints_pk PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id),
    CONSTRAINT {{p}}_checkpoints_state_json CHECK (checkpoint IS JSON),
    CONSTRAINT {{p}}_checkpoints_meta_json CHECK (metadata IS JSON)
);

-- Newest-first reads of one namespace (thread, ns, seq DESC): Oracle scans
-- this ascending index backwards, so no DESC column is needed.
CREATE INDEX IF NOT EXISTS {{p}}_checkpoints_ns_seq ON {{p}}_checkpoints (thread_id, checkpoint_ns, seq);

CREATE INDEX IF NOT EXISTS {{p}}_checkpoints_thread_seq ON {{p}}_checkpoints (thread_id, seq);

CREATE INDEX IF NOT EXISTS {{p}}_checkpoints_seq ON {{p}}_checkpoints (seq);

CREATE TABLE IF NOT EXISTS {{p}}_conflicts (
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
    CONSTRAINT {{p}}_conflicts_pk PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, seq),
    CONSTRAINT {{p}}_conflicts_state_json CHECK (checkpoint IS JSON),
    CONSTRAINT {{p}}_conflicts_meta_json CHECK (metadata IS JSON)
);

CREATE TABLE IF NOT EXISTS {{p}}_duplicates (
    thread_id            VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_ns        VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_id        VARCHAR2(512 BYTE) NOT NULL,
    seq                  NUMBER(19)         NOT NULL,
    parent_checkpoint_id VARCHAR2(512 BYTE),
    created_at           VARCHAR2(64 BYTE)  NOT NULL,
    event_id             VARCHAR2(512 BYTE) NOT NULL,
    content_hash         VARCHAR2(64 BYTE)  NOT NULL,
    CONSTRAINT {{p}}_duplicates_pk PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, seq)
);

CREATE TABLE IF NOT EXISTS {{p}}_write_sets (
    thread_id     VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_ns VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_id VARCHAR2(512 BYTE) NOT NULL,
    task_id       VARCHAR2(512 BYTE) NOT NULL,
    task_path     VARCHAR2(512 BYTE) NOT NULL,
    seq           NUMBER(19)         NOT NULL,
    event_id      VARCHAR2(512 BYTE) NOT NULL,
    created_at    VARCHAR2(64 BYTE)  NOT NULL,
    CONSTRAINT {{p}}_write_sets_pk PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id)
);

CREATE TABLE IF NOT EXISTS {{p}}_writes (
    thread_id     VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_ns VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_id VARCHAR2(512 BYTE) NOT NULL,
    task_id       VARCHAR2(512 BYTE) NOT NULL,
    idx           NUMBER(10)         NOT NULL,
    task_path     VARCHAR2(512 BYTE) NOT NULL,
    channel       VARCHAR2(512 BYTE) NOT NULL,
    seq           NUMBER(19)         NOT NULL,
    value         CLOB               NOT NULL,
    CONSTRAINT {{p}}_writes_pk PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx),
    CONSTRAINT {{p}}_writes_value_json CHECK (value IS JSON)
);

CREATE TABLE IF NOT EXISTS {{p}}_live (
    thread_id     VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_ns VARCHAR2(512 BYTE) NOT NULL,
    checkpoint_id VARCHAR2(512 BYTE) NOT NULL,
    seq           NUMBER(19)         NOT NULL,
    CONSTRAINT {{p}}_live_pk PRIMARY KEY (thread_id, checkpoint_ns)
);
