-- Deploy windows: a deployment outside its windows waits in state 'waiting' (the reason in
-- `reason`); who started one anyway is recorded on it.
ALTER TABLE deployments ADD COLUMN window_override TEXT;
