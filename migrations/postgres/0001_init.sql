-- releasebot schema (PostgreSQL). Times are Unix milliseconds.

CREATE TABLE role_members (
    id BIGSERIAL PRIMARY KEY,
    role TEXT NOT NULL,
    platform TEXT NOT NULL,
    user_id TEXT NOT NULL,
    application TEXT NOT NULL DEFAULT '',
    added_by TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    UNIQUE (role, platform, user_id, application)
);

CREATE TABLE tickets (
    id BIGSERIAL PRIMARY KEY,
    flow_id TEXT NOT NULL,
    service TEXT NOT NULL,
    application TEXT NOT NULL,
    status TEXT NOT NULL,
    stage BIGINT NOT NULL,
    round BIGINT NOT NULL,
    submitter_platform TEXT NOT NULL,
    submitter_id TEXT NOT NULL,
    fields TEXT NOT NULL,
    channel TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX tickets_status ON tickets (status);
CREATE INDEX tickets_submitter ON tickets (submitter_platform, submitter_id);

CREATE TABLE decisions (
    id BIGSERIAL PRIMARY KEY,
    ticket_id BIGINT NOT NULL REFERENCES tickets (id),
    round BIGINT NOT NULL,
    stage BIGINT NOT NULL,
    platform TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    comment TEXT,
    at BIGINT NOT NULL,
    UNIQUE (ticket_id, round, stage, platform, user_id)
);

CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    ticket_id BIGINT,
    at BIGINT NOT NULL,
    platform TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_ticket ON audit_log (ticket_id, id);
CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'audit_log is append-only'; END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE inbox (
    id BIGSERIAL PRIMARY KEY,
    platform TEXT NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    lease_until BIGINT NOT NULL DEFAULT 0,
    received_at BIGINT NOT NULL,
    processed_at BIGINT,
    error TEXT
);
CREATE INDEX inbox_pending ON inbox (status, id);

CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    platform TEXT NOT NULL,
    channel_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    msg_key TEXT,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    last_error TEXT
);
CREATE INDEX outbox_pending ON outbox (status, channel_key, id);
CREATE INDEX outbox_msg_key ON outbox (msg_key, status);

CREATE TABLE outbox_channels (
    channel_key TEXT PRIMARY KEY,
    next_at BIGINT NOT NULL
);

CREATE TABLE message_refs (
    msg_key TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    channel TEXT NOT NULL,
    ts TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
