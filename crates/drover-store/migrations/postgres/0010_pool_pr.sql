-- `pool start --pr …` (docs/design.md §9): the PR options every task of the pool carries (JSON;
-- NULL: no PR).
ALTER TABLE pools ADD COLUMN pr TEXT;
