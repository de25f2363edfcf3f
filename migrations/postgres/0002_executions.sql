-- The release executor: one row per execution, its state as JSON, leased by a runner.

ALTER TABLE tickets ADD COLUMN outcome TEXT;

CREATE TABLE executions (
    id BIGSERIAL PRIMARY KEY,
    ticket_id BIGINT NOT NULL UNIQUE REFERENCES tickets (id),
    plan_id TEXT NOT NULL,
    plan TEXT NOT NULL,
    application TEXT NOT NULL,
    environment TEXT NOT NULL,
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    platform TEXT NOT NULL,
    channel TEXT NOT NULL,
    version BIGINT NOT NULL,
    next_wake BIGINT NOT NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX executions_due ON executions (finished_at, next_wake);

CREATE TABLE baselines (
    id BIGSERIAL PRIMARY KEY,
    application TEXT NOT NULL,
    environment TEXT NOT NULL,
    execution_id BIGINT REFERENCES executions (id),
    kind TEXT NOT NULL,
    version TEXT NOT NULL,
    replicas BIGINT NOT NULL,
    config_version TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX baselines_app ON baselines (application, environment, id);
