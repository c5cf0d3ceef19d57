-- Approvals: who approved or rejected a deployment awaiting approval (state
-- 'awaiting_approval'); one verdict per person per deployment, the first one standing.
CREATE TABLE approvals (
    deployment_id INTEGER NOT NULL REFERENCES deployments(id),
    actor TEXT NOT NULL,
    approve INTEGER NOT NULL,
    counted INTEGER NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, actor)
);
