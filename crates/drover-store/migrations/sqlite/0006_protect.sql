-- drover store, version 6: protected paths (`--protect GLOB`), a JSON list of globs.
ALTER TABLE tasks ADD COLUMN protect TEXT NOT NULL DEFAULT '[]';
ALTER TABLE pools ADD COLUMN protect TEXT NOT NULL DEFAULT '[]';
