-- Keys releasebot generates once and keeps (the page links' HMAC key when
-- RELEASEBOT_LINK_SECRET is not set).
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The local chat platform's messages: what the bot posted, as the neutral model (JSON).
-- `visible_to` is set for an ephemeral message; `parent` for a reply under another.
CREATE TABLE local_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    visible_to TEXT,
    parent BIGINT,
    message TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    delivery TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX local_messages_channel ON local_messages (channel, id);
CREATE UNIQUE INDEX local_messages_delivery ON local_messages (delivery);

-- Forms the bot opened for a person of the local chat, until answered or dismissed.
CREATE TABLE local_forms (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    form TEXT NOT NULL,
    open INTEGER NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);
CREATE INDEX local_forms_user ON local_forms (user_id, open);
