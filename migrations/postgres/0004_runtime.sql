-- The runtime at volume: one lease mechanism for every queue. A row (an inbox event, an
-- outbox channel, an execution) can be claimed while it is live and `due_at <= now`;
-- claiming moves `due_at` to the end of the lease and names the `lease_owner`, so a dead
-- owner's lease simply falls due again. Each claim query reads one partial index.

ALTER TABLE inbox ADD COLUMN order_key TEXT NOT NULL DEFAULT '';
ALTER TABLE inbox ADD COLUMN due_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE inbox ADD COLUMN lease_owner TEXT;
UPDATE inbox SET status = 'pending', due_at = lease_until WHERE status = 'processing';
UPDATE inbox SET due_at = received_at WHERE status = 'pending' AND due_at = 0;
DROP INDEX inbox_pending;
ALTER TABLE inbox DROP COLUMN lease_until;
CREATE INDEX inbox_due ON inbox (due_at, id) WHERE status = 'pending';
CREATE INDEX inbox_order ON inbox (order_key, id) WHERE status = 'pending';
CREATE INDEX inbox_processed ON inbox (processed_at) WHERE status IN ('done', 'failed');

DROP INDEX outbox_pending;
ALTER TABLE outbox DROP COLUMN lease_until;
CREATE INDEX outbox_queue ON outbox (channel_key, id) WHERE status IN ('pending', 'sending');
CREATE INDEX outbox_finished ON outbox (sent_at) WHERE status IN ('sent', 'superseded', 'failed');

-- One row per delivery queue (a channel, a user's DMs …): its pacing and its lease.
DROP TABLE outbox_channels;
CREATE TABLE outbox_channels (
    channel_key TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    pending BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL DEFAULT 0,
    due_at BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT
);
INSERT INTO outbox_channels (channel_key, platform, pending, next_at, due_at)
    SELECT channel_key, MIN(platform), COUNT(*), 0, MIN(next_attempt_at)
    FROM outbox WHERE status IN ('pending', 'sending') GROUP BY channel_key;
CREATE INDEX outbox_channels_due ON outbox_channels (platform, due_at, channel_key) WHERE pending > 0;

CREATE INDEX message_refs_location ON message_refs (platform, ts);

ALTER TABLE executions ADD COLUMN due_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN lease_owner TEXT;
UPDATE executions SET due_at = CASE WHEN lease_until > next_wake THEN lease_until ELSE next_wake END
    WHERE finished_at IS NULL;
DROP INDEX executions_due;
ALTER TABLE executions DROP COLUMN lease_until;
CREATE INDEX executions_due ON executions (due_at, id) WHERE finished_at IS NULL;
CREATE INDEX executions_target ON executions (application, environment, id) WHERE finished_at IS NULL;

-- One release per application and environment at a time.
CREATE TABLE release_locks (
    application TEXT NOT NULL,
    environment TEXT NOT NULL,
    execution_id BIGINT NOT NULL,
    since BIGINT NOT NULL,
    PRIMARY KEY (application, environment)
);

ALTER TABLE baselines ADD COLUMN simulated BIGINT NOT NULL DEFAULT 0;
CREATE INDEX baselines_completed ON baselines (application, environment, id) WHERE kind IN ('after', 'rollback');

-- The interaction an answer belongs to (Discord's token), so that the route finds it at once.
ALTER TABLE outbox ADD COLUMN reply_key TEXT;
CREATE INDEX outbox_reply ON outbox (reply_key) WHERE status = 'pending';
