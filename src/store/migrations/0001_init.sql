-- Deliveries received from GitHub, keyed by X-GitHub-Delivery: the dedup record.
CREATE TABLE deliveries (
    id          TEXT PRIMARY KEY,
    event       TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    repo        TEXT,
    git_ref     TEXT,
    sha         TEXT,
    outcome     TEXT NOT NULL,
    reason      TEXT
);

CREATE TABLE deployments (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    app         TEXT NOT NULL,
    sha         TEXT,
    git_ref     TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    actor       TEXT NOT NULL,
    delivery_id TEXT REFERENCES deliveries(id),
    state       TEXT NOT NULL,
    reason      TEXT,
    spec        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER
);
CREATE INDEX deployments_app ON deployments(app, id);
CREATE INDEX deployments_state ON deployments(state, app);

CREATE TABLE steps (
    deployment_id INTEGER NOT NULL REFERENCES deployments(id),
    idx           INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    started_at    INTEGER,
    finished_at   INTEGER,
    outcome       TEXT,
    log           TEXT,
    PRIMARY KEY (deployment_id, idx)
);

CREATE TABLE releases (
    deployment_id INTEGER PRIMARY KEY REFERENCES deployments(id),
    app           TEXT NOT NULL,
    sha           TEXT NOT NULL,
    git_ref       TEXT NOT NULL,
    content       TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX releases_app ON releases(app, deployment_id);

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail  TEXT
);
CREATE INDEX audit_target ON audit(target, id);
