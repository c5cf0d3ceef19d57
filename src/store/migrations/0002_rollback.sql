-- A rollback deployment reproduces the release of an earlier deployment exactly.
ALTER TABLE deployments ADD COLUMN restore_from INTEGER REFERENCES deployments(id);

-- Apps whose automatic deploys are paused (after a rollback) until resumed.
CREATE TABLE paused (
    app    TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    actor  TEXT NOT NULL,
    at     INTEGER NOT NULL
);
