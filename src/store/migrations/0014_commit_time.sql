-- When a deployment's commit was made (committer time, read by the fetch step): DORA's lead
-- time for changes runs from it to the deployment's end.
ALTER TABLE deployments ADD COLUMN committed_at INTEGER;
CREATE INDEX deployments_finished ON deployments (finished_at);
