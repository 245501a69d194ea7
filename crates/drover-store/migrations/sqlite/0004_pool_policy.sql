-- drover store, version 4: pool model policy and failure policy.
ALTER TABLE pools ADD COLUMN allowed_models TEXT;
-- 'finish' (running tasks finish when the failure streak stops the pool) or 'hard' (they stop).
ALTER TABLE pools ADD COLUMN failure_policy TEXT NOT NULL DEFAULT 'finish';
