-- Drift: an app whose live services or sites differ from its last release. One row per
-- drifted app (the same drift seen again changes nothing); notices owed to chat are an outbox
-- written in the same transaction as the change they tell of.
CREATE TABLE drift (
    app TEXT PRIMARY KEY,
    release_id INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    diff TEXT NOT NULL,
    since INTEGER NOT NULL,
    heal_attempts INTEGER NOT NULL DEFAULT 0,
    next_heal_at INTEGER,
    heal_deployment INTEGER
);
CREATE TABLE drift_notices (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    app TEXT NOT NULL,
    kind TEXT NOT NULL,
    diff TEXT NOT NULL,
    at INTEGER NOT NULL,
    posted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX drift_notices_owed ON drift_notices (posted, seq);
