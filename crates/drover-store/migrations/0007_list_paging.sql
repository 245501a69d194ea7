-- drover store, version 7: `GET /v1/tasks` pages in queue order and filters on finished_at.
CREATE INDEX IF NOT EXISTS tasks_queue_seq ON tasks(queue_seq);
CREATE INDEX IF NOT EXISTS tasks_finished_at ON tasks(finished_at);
