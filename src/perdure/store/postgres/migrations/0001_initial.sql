-- perdure PostgreSQL schema 1: the same tables and meaning as the SQLite store.
-- Times are epoch seconds (double precision), like SQLite, so tokens and
-- comparisons behave identically. IDs use the "C" collation: byte order, the
-- same as SQLite's, and cheaper to compare.
-- Every table leads with hub so several task hubs can share one database.

CREATE TABLE perdure.instances (
    hub                text COLLATE "C" NOT NULL,
    instance_id        text COLLATE "C" NOT NULL,
    name               text             NOT NULL,
    execution_id       text COLLATE "C" NOT NULL,
    status             text COLLATE "C" NOT NULL,
    input              text,
    output             text,
    failure            text,
    custom_status      text,
    created_at         double precision NOT NULL,
    updated_at         double precision NOT NULL,
    completed_at       double precision,
    parent_instance_id text COLLATE "C",
    history_length     integer          NOT NULL DEFAULT 0,
    lock_owner         text COLLATE "C",
    lock_expires       double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (hub, instance_id)
) WITH (fillfactor = 80);  -- room for HOT updates: rows are rewritten on every lease and checkpoint
CREATE INDEX instances_created ON perdure.instances (hub, created_at, instance_id);
CREATE INDEX instances_status ON perdure.instances (hub, status, created_at);
-- Only leased rows are indexed, so finding live/dead owners stays cheap at any table size.
CREATE INDEX instances_owner ON perdure.instances (hub, lock_owner) WHERE lock_owner IS NOT NULL;

CREATE TABLE perdure.history (
    hub          text COLLATE "C" NOT NULL,
    instance_id  text COLLATE "C" NOT NULL,
    execution_id text COLLATE "C" NOT NULL,
    seq          integer          NOT NULL,
    event_type   text             NOT NULL,
    data         text             NOT NULL,
    -- A second writer of the same history position fails here (split-brain guard).
    PRIMARY KEY (hub, instance_id, execution_id, seq)
);

CREATE TABLE perdure.inbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hub          text COLLATE "C" NOT NULL,
    instance_id  text COLLATE "C" NOT NULL,
    execution_id text COLLATE "C",
    event_type   text             NOT NULL,
    data         text             NOT NULL,
    visible_at   double precision NOT NULL,
    created_at   double precision NOT NULL
);
CREATE INDEX inbox_visible ON perdure.inbox (hub, visible_at);
CREATE INDEX inbox_instance ON perdure.inbox (hub, instance_id, id);

CREATE TABLE perdure.tasks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hub           text COLLATE "C" NOT NULL,
    instance_id   text COLLATE "C" NOT NULL,
    execution_id  text COLLATE "C" NOT NULL,
    task_id       integer          NOT NULL,
    name          text             NOT NULL,
    input         text,
    created_at    double precision NOT NULL,
    lock_owner    text COLLATE "C",
    lock_expires  double precision NOT NULL DEFAULT 0,
    dequeue_count integer          NOT NULL DEFAULT 0
);
CREATE INDEX tasks_ready ON perdure.tasks (hub, lock_expires, id);
CREATE INDEX tasks_instance ON perdure.tasks (hub, instance_id);
CREATE INDEX tasks_owner ON perdure.tasks (hub, lock_owner) WHERE lock_owner IS NOT NULL;

CREATE TABLE perdure.settings (
    hub   text COLLATE "C" NOT NULL,
    key   text COLLATE "C" NOT NULL,
    value text             NOT NULL,
    PRIMARY KEY (hub, key)
);
