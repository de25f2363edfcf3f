-- An execution's plan (as it was when it started) in a table of its own: the plan never
-- changes while the state is rewritten at every step, and in the same row the plan made
-- each rewrite copy it too (on SQLite, several overflow pages per step).
CREATE TABLE execution_plans (
    execution_id BIGINT PRIMARY KEY REFERENCES executions (id),
    plan TEXT NOT NULL
);
INSERT INTO execution_plans (execution_id, plan) SELECT id, plan FROM executions;
ALTER TABLE executions DROP COLUMN plan;
