-- Reporting is level-triggered from the store: every change a reporter can show moves the
-- deployment's `rev` (one store-wide, increasing sequence, assigned by the triggers below in
-- the same transaction as the change). Each reporter keeps a cursor (the highest rev it has
-- handled) and a row per deployment it still owes a report (failed, and when to try again, or
-- an edit held back to coalesce), so a crash or a lagging reporter loses nothing.
ALTER TABLE deployments ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deployments_by_rev ON deployments (rev);

CREATE TRIGGER deployments_rev_on_insert AFTER INSERT ON deployments BEGIN
    UPDATE deployments SET rev = (SELECT MAX(rev) FROM deployments) + 1 WHERE id = NEW.id;
END;
CREATE TRIGGER deployments_rev_on_update
    AFTER UPDATE OF state, reason, sha, started_at, finished_at ON deployments BEGIN
    UPDATE deployments SET rev = (SELECT MAX(rev) FROM deployments) + 1 WHERE id = NEW.id;
END;
-- A step's log alone does not move rev: no reporter shows a running step's log.
CREATE TRIGGER steps_rev_on_update
    AFTER UPDATE OF state, outcome, started_at, finished_at, next_retry_at ON steps BEGIN
    UPDATE deployments SET rev = (SELECT MAX(rev) FROM deployments) + 1
    WHERE id = NEW.deployment_id;
END;

CREATE TABLE report_cursors (
    reporter TEXT PRIMARY KEY,
    rev      INTEGER NOT NULL
);

CREATE TABLE report_pending (
    deployment_id INTEGER NOT NULL REFERENCES deployments(id),
    reporter      TEXT NOT NULL,
    -- Failed attempts so far (0: an edit held back, not a failure).
    attempts      INTEGER NOT NULL,
    -- When to try again; NULL once the reporter gave up (it still shows as failing).
    next_at       INTEGER,
    -- The last failure, redacted.
    error         TEXT,
    since         INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, reporter)
);
