-- The release executor: one row per execution, its state as JSON, leased by a runner.

ALTER TABLE tickets ADD COLUMN outcome TEXT;

CREATE TABLE executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id INTEGER NOT NULL UNIQUE REFERENCES tickets (id),
    plan_id TEXT NOT NULL,
    plan TEXT NOT NULL,
    application TEXT NOT NULL,
    environment TEXT NOT NULL,
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    platform TEXT NOT NULL,
    channel TEXT NOT NULL,
    version INTEGER NOT NULL,
    next_wake INTEGER NOT NULL,
    lease_until INTEGER NOT NULL DEFAULT 0,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX executions_due ON executions (finished_at, next_wake);

CREATE TABLE baselines (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    application TEXT NOT NULL,
    environment TEXT NOT NULL,
    execution_id INTEGER REFERENCES executions (id),
    kind TEXT NOT NULL,
    version TEXT NOT NULL,
    replicas INTEGER NOT NULL,
    config_version TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX baselines_app ON baselines (application, environment, id);
