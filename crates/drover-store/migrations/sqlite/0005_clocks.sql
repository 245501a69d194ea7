-- drover store, version 5: task clocks and a stop escalation that survives a daemon restart.
-- Wall-clock and stall limits, in seconds (NULL: none), fixed when the task is created.
ALTER TABLE tasks ADD COLUMN timeout_secs INTEGER;
ALTER TABLE tasks ADD COLUMN stall_timeout_secs INTEGER;
-- The last agent output or event (the stall clock's base).
ALTER TABLE tasks ADD COLUMN activity_at TEXT;
-- Since when the pending permission request waits (needs_input_timeout).
ALTER TABLE tasks ADD COLUMN pending_since TEXT;
-- When a stop was asked for, the last escalation step taken (1 polite, 2 INT, 3 TERM, 4 KILL)
-- and when: the next daemon carries the escalation on from here.
ALTER TABLE tasks ADD COLUMN stop_requested_at TEXT;
ALTER TABLE tasks ADD COLUMN stop_step INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN stop_step_at TEXT;
-- A pool's tasks inherit its clocks.
ALTER TABLE pools ADD COLUMN timeout_secs INTEGER;
ALTER TABLE pools ADD COLUMN stall_timeout_secs INTEGER;
