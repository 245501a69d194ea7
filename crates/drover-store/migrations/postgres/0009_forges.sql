-- Forges (docs/design.md §9): a multi-repo task's repositories, its pull requests, the PR it
-- was asked for and its batch. JSON in TEXT columns; NULL: none.
ALTER TABLE tasks ADD COLUMN repos TEXT;
ALTER TABLE tasks ADD COLUMN prs TEXT;
ALTER TABLE tasks ADD COLUMN pr TEXT;
ALTER TABLE tasks ADD COLUMN batch TEXT;
CREATE INDEX tasks_batch ON tasks (batch) WHERE batch IS NOT NULL;
