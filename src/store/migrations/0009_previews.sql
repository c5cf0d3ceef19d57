-- Plan previews of pull requests on manifest sources: recorded with the delivery, posted (a
-- commit status and one comment, edited in place) by the sources' worker, level-triggered.
CREATE TABLE previews (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    sha TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    detail TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (source, number, sha)
);
CREATE INDEX previews_pending ON previews (state, seq);
