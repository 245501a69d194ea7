-- drover store, version 7: `GET /v1/tasks` pages of summaries.
-- A summary must not load whole prompts (SQLite reads a whole value for any function on it), so
-- the first 500 characters of prompt, result and cmd are kept in columns of their own, set by
-- triggers whenever the long value is written.
CREATE INDEX IF NOT EXISTS tasks_queue_seq ON tasks(queue_seq);
CREATE INDEX IF NOT EXISTS tasks_finished_at ON tasks(finished_at);

ALTER TABLE tasks ADD COLUMN prompt_head TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN result_head TEXT;
ALTER TABLE tasks ADD COLUMN cmd_head TEXT;

UPDATE tasks SET
    prompt_head = CASE WHEN length(prompt) > 500 THEN substr(prompt, 1, 500) || '…' ELSE prompt END,
    result_head = CASE WHEN length(result) > 500 THEN substr(result, 1, 500) || '…' ELSE result END,
    cmd_head = CASE WHEN length(cmd) > 500 THEN substr(cmd, 1, 500) || '…' ELSE cmd END;

CREATE TRIGGER tasks_heads_insert AFTER INSERT ON tasks BEGIN
    UPDATE tasks SET
        prompt_head = CASE WHEN length(NEW.prompt) > 500 THEN substr(NEW.prompt, 1, 500) || '…' ELSE NEW.prompt END,
        result_head = CASE WHEN length(NEW.result) > 500 THEN substr(NEW.result, 1, 500) || '…' ELSE NEW.result END,
        cmd_head = CASE WHEN length(NEW.cmd) > 500 THEN substr(NEW.cmd, 1, 500) || '…' ELSE NEW.cmd END
    WHERE id = NEW.id;
END;

CREATE TRIGGER tasks_heads_result AFTER UPDATE OF result ON tasks BEGIN
    UPDATE tasks SET
        result_head = CASE WHEN length(NEW.result) > 500 THEN substr(NEW.result, 1, 500) || '…' ELSE NEW.result END
    WHERE id = NEW.id;
END;
