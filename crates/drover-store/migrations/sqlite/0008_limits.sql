-- drover store, version 8: resource limits and what the agent used (docs/design.md §11).
-- Limits of the task's cgroup (NULL: none), fixed when the task is created.
ALTER TABLE tasks ADD COLUMN memory_bytes INTEGER;
ALTER TABLE tasks ADD COLUMN cpus REAL;
ALTER TABLE tasks ADD COLUMN pids INTEGER;
-- How the agent was confined ('full' | 'none'), from the config when the task started.
ALTER TABLE tasks ADD COLUMN isolation TEXT;
-- Read from the cgroup once the agent is gone.
ALTER TABLE tasks ADD COLUMN peak_memory_bytes INTEGER;
ALTER TABLE tasks ADD COLUMN cpu_seconds REAL;
-- A pool's tasks inherit its limits.
ALTER TABLE pools ADD COLUMN memory_bytes INTEGER;
ALTER TABLE pools ADD COLUMN cpus REAL;
ALTER TABLE pools ADD COLUMN pids INTEGER;
