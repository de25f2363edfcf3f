-- releasebot schema (SQLite). Times are Unix milliseconds.

CREATE TABLE role_members (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    role TEXT NOT NULL,
    platform TEXT NOT NULL,
    user_id TEXT NOT NULL,
    application TEXT NOT NULL DEFAULT '',
    added_by TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    UNIQUE (role, platform, user_id, application)
);

CREATE TABLE tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    flow_id TEXT NOT NULL,
    service TEXT NOT NULL,
    application TEXT NOT NULL,
    status TEXT NOT NULL,
    stage INTEGER NOT NULL,
    round INTEGER NOT NULL,
    submitter_platform TEXT NOT NULL,
    submitter_id TEXT NOT NULL,
    fields TEXT NOT NULL,
    channel TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX tickets_status ON tickets (status);
CREATE INDEX tickets_submitter ON tickets (submitter_platform, submitter_id);

CREATE TABLE decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id INTEGER NOT NULL REFERENCES tickets (id),
    round INTEGER NOT NULL,
    stage INTEGER NOT NULL,
    platform TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    comment TEXT,
    at INTEGER NOT NULL,
    UNIQUE (ticket_id, round, stage, platform, user_id)
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id INTEGER,
    at INTEGER NOT NULL,
    platform TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_ticket ON audit_log (ticket_id, id);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    platform TEXT NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER NOT NULL DEFAULT 0,
    received_at INTEGER NOT NULL,
    processed_at INTEGER,
    error TEXT
);
CREATE INDEX inbox_pending ON inbox (status, id);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    platform TEXT NOT NULL,
    channel_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    msg_key TEXT,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    sent_at INTEGER,
    last_error TEXT
);
CREATE INDEX outbox_pending ON outbox (status, channel_key, id);
CREATE INDEX outbox_msg_key ON outbox (msg_key, status);

CREATE TABLE outbox_channels (
    channel_key TEXT PRIMARY KEY,
    next_at INTEGER NOT NULL
);

CREATE TABLE message_refs (
    msg_key TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    channel TEXT NOT NULL,
    ts TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
