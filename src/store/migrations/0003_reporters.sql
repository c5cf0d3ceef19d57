-- What each reporter last told the outside world about a deployment (the Discord message id,
-- the last GitHub status posted, the GitHub deployment id), so a retried step or a restart
-- edits what exists instead of posting again.
CREATE TABLE reporter_state (
    deployment_id INTEGER NOT NULL REFERENCES deployments(id),
    reporter      TEXT NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (deployment_id, reporter)
);
