-- drover store, version 15: the repositories a team's tasks may use (docs/design.md §7):
-- a JSON list of directories and URL prefixes; NULL: any.
ALTER TABLE teams ADD COLUMN allowed_repos TEXT;
