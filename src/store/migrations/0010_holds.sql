-- A pause is someone's choice to stop automatic deploys; a hold is the one a rollback (or a
-- promotion of an older release) puts on an environment: automation respects both.
ALTER TABLE paused ADD COLUMN kind TEXT NOT NULL DEFAULT 'pause';
UPDATE paused SET kind = 'hold' WHERE reason LIKE 'rolled back%';
