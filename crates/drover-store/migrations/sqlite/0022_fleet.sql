-- The web dashboard's fleet view (docs/design.md §10) reads each team's most recently finished
-- tasks and counts them: one index walk per team instead of a scan of every finished task.
CREATE INDEX tasks_team_finished ON tasks (team, finished_at);
