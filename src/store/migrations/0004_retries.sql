-- A step waiting to retry a transient failure: when its next attempt starts.
ALTER TABLE steps ADD COLUMN next_retry_at INTEGER;
