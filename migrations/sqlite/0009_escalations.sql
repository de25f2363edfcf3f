-- A stage waiting past its SLA, escalated: its backup role may decide it too.
CREATE TABLE escalations (
    ticket_id BIGINT NOT NULL,
    round INTEGER NOT NULL,
    stage INTEGER NOT NULL,
    role TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (ticket_id, round, stage)
);
