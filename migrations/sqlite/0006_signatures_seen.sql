-- Signed requests already accepted, for platforms whose signature does not cover the body
-- (DingTalk signs only the timestamp): the same pair is refused for as long as it would
-- pass the time check, on every replica.
CREATE TABLE signatures_seen (
    platform TEXT NOT NULL,
    signature TEXT NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (platform, signature)
);
CREATE INDEX signatures_seen_at ON signatures_seen (seen_at);
