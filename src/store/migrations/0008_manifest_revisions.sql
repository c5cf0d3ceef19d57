-- Manifests read from git: each deployment records the manifest revision its spec came from,
-- and a run of only the release's images (a manifest change alone builds nothing).
ALTER TABLE deployments ADD COLUMN manifests TEXT;
ALTER TABLE deployments ADD COLUMN images_from INTEGER;

-- Every revision of a git manifest source Gantry has taken in: `pending` until it is loaded,
-- validated and reconciled (the deployments it causes are recorded in the same transaction as
-- `applied`), or `refused` with its problems. The newest applied one of a source is in force.
CREATE TABLE source_revisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    sha TEXT NOT NULL,
    state TEXT NOT NULL,
    push TEXT,
    trigger TEXT NOT NULL,
    delivery_id TEXT,
    detail TEXT,
    created_at INTEGER NOT NULL,
    decided_at INTEGER,
    UNIQUE (source, sha)
);
CREATE INDEX source_revisions_pending ON source_revisions (state, seq);
