-- Discord interaction ids already acted on, so a replayed (signed, in-window) interaction
-- is answered without acting twice. Rows older than the signature window are pruned.
CREATE TABLE interactions (
    id TEXT PRIMARY KEY,
    at INTEGER NOT NULL
);
