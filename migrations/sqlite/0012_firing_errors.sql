-- A firing whose handler failed keeps its last error (shown in /metrics while it waits to
-- fire again); a firing that succeeds is done, and its error no longer counts.
ALTER TABLE firings ADD COLUMN last_error TEXT;
