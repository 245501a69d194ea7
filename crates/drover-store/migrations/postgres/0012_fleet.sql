-- The web dashboard's fleet view (docs/design.md §10): SQLite migration 0022.
CREATE INDEX tasks_team_finished ON tasks (team, finished_at);
