-- perdure schema 1: instances, history, inbox (orchestrator messages), tasks (activities), settings.
CREATE TABLE instances (
    hub                TEXT    NOT NULL,
    instance_id        TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    execution_id       TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    input              TEXT,
    output             TEXT,
    failure            TEXT,
    custom_status      TEXT,
    created_at         REAL    NOT NULL,
    updated_at         REAL    NOT NULL,
    completed_at       REAL,
    parent_instance_id TEXT,
    history_length     INTEGER NOT NULL DEFAULT 0,
    lock_owner         TEXT,
    lock_expires       REAL    NOT NULL DEFAULT 0,
    PRIMARY KEY (hub, instance_id)
);
CREATE INDEX instances_created ON instances (hub, created_at, instance_id);
CREATE INDEX instances_status ON instances (hub, status, created_at);

CREATE TABLE history (
    hub          TEXT    NOT NULL,
    instance_id  TEXT    NOT NULL,
    execution_id TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    event_type   TEXT    NOT NULL,
    data         TEXT    NOT NULL,
    PRIMARY KEY (hub, instance_id, execution_id, seq)
) WITHOUT ROWID;

CREATE TABLE inbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    hub          TEXT    NOT NULL,
    instance_id  TEXT    NOT NULL,
    execution_id TEXT,
    event_type   TEXT    NOT NULL,
    data         TEXT    NOT NULL,
    visible_at   REAL    NOT NULL,
    created_at   REAL    NOT NULL
);
CREATE INDEX inbox_visible ON inbox (hub, visible_at);
CREATE INDEX inbox_instance ON inbox (hub, instance_id, id);

CREATE TABLE tasks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    hub           TEXT    NOT NULL,
    instance_id   TEXT    NOT NULL,
    execution_id  TEXT    NOT NULL,
    task_id       INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    input         TEXT,
    created_at    REAL    NOT NULL,
    lock_owner    TEXT,
    lock_expires  REAL    NOT NULL DEFAULT 0,
    dequeue_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tasks_ready ON tasks (hub, lock_expires, id);
CREATE INDEX tasks_instance ON tasks (hub, instance_id);

CREATE TABLE settings (
    hub   TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (hub, key)
);
