-- drover store, version 9: a task's tags (docs/design.md §7), a JSON object of strings
-- ({"customer": "acme"}), carried into `drover usage --by tag:NAME` and accounting rows.
ALTER TABLE tasks ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';
