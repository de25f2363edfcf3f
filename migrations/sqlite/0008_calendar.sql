-- The release calendar: ad-hoc freezes (/freeze start), deploy locks (/lock) and the
-- overrides that let one release through them. Configured freezes live in the TOML.
CREATE TABLE freezes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    from_at BIGINT NOT NULL,
    until_at BIGINT,
    ended_at BIGINT,
    ended_by TEXT
);
CREATE INDEX freezes_open ON freezes (id) WHERE ended_at IS NULL;

CREATE TABLE deploy_locks (
    application TEXT NOT NULL,
    environment TEXT NOT NULL,
    reason TEXT NOT NULL,
    locked_by TEXT NOT NULL,
    since BIGINT NOT NULL,
    PRIMARY KEY (application, environment)
);

CREATE TABLE release_overrides (
    ticket_id BIGINT NOT NULL,
    round INTEGER NOT NULL,
    reason TEXT NOT NULL,
    by_actor TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (ticket_id, round)
);
