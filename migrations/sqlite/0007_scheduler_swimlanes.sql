-- The durable scheduler: a job's firings live here, one row per (job, due time, what is
-- due), so that a restart neither loses nor repeats one. A pending firing is claimed through the one
-- lease mechanism (`due_at` is when it falls due, or the end of its lease).
CREATE TABLE firings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    due BIGINT NOT NULL,
    payload TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'pending',
    due_at BIGINT NOT NULL,
    lease_owner TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    fired_at BIGINT,
    UNIQUE (job, due, payload)
);
CREATE INDEX firings_due ON firings (due_at, id) WHERE status = 'pending';
CREATE INDEX firings_job ON firings (job) WHERE status = 'pending';

-- Cron jobs of the configuration, with the schedule their pending firing was planned by.
CREATE TABLE cron_jobs (
    name TEXT PRIMARY KEY,
    schedule TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Swimlanes: the lane as JSON, with the columns queries need.
CREATE TABLE swimlanes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    owner TEXT NOT NULL,
    channel_key TEXT NOT NULL,
    data TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX swimlanes_live_name ON swimlanes (name) WHERE status <> 'deleted';
CREATE INDEX swimlanes_owner ON swimlanes (owner, id) WHERE status <> 'deleted';
CREATE INDEX swimlanes_channel ON swimlanes (channel_key, id) WHERE status <> 'deleted';
