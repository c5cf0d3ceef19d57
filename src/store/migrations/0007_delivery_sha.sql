-- Polls and webhooks take each pushed sha in once between them: intake looks up earlier
-- deliveries of the same repository, ref and sha.
CREATE INDEX deliveries_sha ON deliveries(sha, git_ref);
