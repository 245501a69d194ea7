//! The embedded store: SQLite in WAL mode.
//!
//! Concurrency: all writes go through a pool of exactly one connection, so SQLite never has two
//! writers racing for the lock (a deferred transaction upgrading to a write lock would fail with
//! SQLITE_BUSY instead of waiting). Reads use a separate pool and see committed snapshots (WAL).

use crate::pools::{NewPool, PoolEvent, PoolRecord, PoolStats};
use crate::record::{parse_outcome, NewTask, TaskPatch, TaskRecord, Val};
use crate::{now, ListFilter, Result, Store, StoreError};
use async_trait::async_trait;
use drover_types::clock::StopStep;
use drover_types::{Budget, Event, EventKind, NewEvent, PoolState, TaskState, Usage, UsageBy};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool, Transaction};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

pub struct SqliteStore {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
    /// The select list of a task summary: every column of `tasks`, long texts cut.
    summary_cols: String,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("./migrations").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await?;
        let summary_cols = summary_columns(&reader).await?;
        Ok(SqliteStore {
            writer,
            reader,
            summary_cols,
        })
    }

    async fn fetch(&self, conn: &SqlitePool, id: &str) -> Result<TaskRecord> {
        let row = sqlx::query("SELECT * FROM tasks WHERE id = ?")
            .bind(id)
            .fetch_optional(conn)
            .await?;
        match row {
            Some(r) => row_to_task(&r),
            None => Err(StoreError::NotFound(id.to_string())),
        }
    }
}

/// Every column of `tasks` (whatever migrations added), with prompt, result and cmd read from
/// their short copies (`*_head`, kept by triggers: see migration 0007) and `pending_input` as a
/// short form.
async fn summary_columns(conn: &SqlitePool) -> Result<String> {
    let cols: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info('tasks')")
        .fetch_all(conn)
        .await?;
    Ok(cols
        .iter()
        .filter(|c| !c.ends_with("_head"))
        .map(|c| match c.as_str() {
            "prompt" | "result" | "cmd" => format!("{c}_head AS {c}"),
            // A short form: who asks for what, an excerpt of the input (the whole request is in
            // `GET /v1/tasks/{id}`; `send --allow` needs only the id).
            "pending_input" => "CASE WHEN pending_input IS NULL THEN NULL ELSE json_object(\
                 'request_id', json_extract(pending_input, '$.request_id'), \
                 'tool', json_extract(pending_input, '$.tool'), \
                 'input', substr(json_extract(pending_input, '$.input'), 1, 200), \
                 'summary', json('true')) END AS pending_input"
                .to_string(),
            _ => format!("\"{c}\""),
        })
        .collect::<Vec<_>>()
        .join(", "))
}

pub(crate) async fn append(
    tx: &mut Transaction<'_, Sqlite>,
    id: &str,
    events: Vec<NewEvent>,
) -> Result<Vec<Event>> {
    if events.is_empty() {
        return Ok(vec![]);
    }
    let first: i64 = sqlx::query_scalar("SELECT next_seq FROM tasks WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    let ts = now();
    let mut out = Vec::with_capacity(events.len());
    for (i, ev) in events.into_iter().enumerate() {
        let seq = first + i as i64;
        sqlx::query("INSERT INTO events (task_id, seq, ts, kind, data) VALUES (?, ?, ?, ?, ?)")
            .bind(id)
            .bind(seq)
            .bind(&ts)
            .bind(ev.kind.as_str())
            .bind(ev.data.to_string())
            .execute(&mut **tx)
            .await?;
        out.push(Event {
            task_id: id.to_string(),
            seq,
            ts: ts.clone(),
            kind: ev.kind,
            data: ev.data,
        });
    }
    sqlx::query("UPDATE tasks SET next_seq = ? WHERE id = ?")
        .bind(first + out.len() as i64)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(out)
}

/// Inserts a queued task (at the back of the queue) and its first `state` event.
pub(crate) async fn insert_task(tx: &mut Transaction<'_, Sqlite>, t: &NewTask) -> Result<()> {
    let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(queue_seq), 0) + 1 FROM tasks")
        .fetch_one(&mut **tx)
        .await?;
    let verify =
        serde_json::to_string(&t.verify).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO tasks (id, queue_seq, name, state, agent, model, repo, repo_dir, base_ref, \
         base_commit, branch, prompt, cmd, verify, permissions, created_at, max_usd, max_tokens, \
         session_id, pool, team, created_by, verify_rounds, judge_model, timeout_secs, \
         stall_timeout_secs) \
         VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&t.id)
    .bind(seq)
    .bind(&t.name)
    .bind(&t.agent)
    .bind(&t.model)
    .bind(&t.repo)
    .bind(&t.repo_dir)
    .bind(&t.base_ref)
    .bind(&t.base_commit)
    .bind(format!("drover/{}", t.id))
    .bind(&t.prompt)
    .bind(&t.cmd)
    .bind(verify)
    .bind(t.permissions.as_str())
    .bind(now())
    .bind(t.budget.max_usd)
    .bind(t.budget.max_tokens.map(|v| v as i64))
    .bind(&t.session_id)
    .bind(&t.pool)
    .bind(&t.team)
    .bind(&t.created_by)
    .bind(t.verify_rounds)
    .bind(&t.judge_model)
    .bind(t.timeout_secs)
    .bind(t.stall_timeout_secs)
    .execute(&mut **tx)
    .await?;
    if !t.protect.is_empty() {
        let protect =
            serde_json::to_string(&t.protect).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query("UPDATE tasks SET protect = ? WHERE id = ?")
            .bind(protect)
            .bind(&t.id)
            .execute(&mut **tx)
            .await?;
    }
    let ev = NewEvent::new(EventKind::State, serde_json::json!({"state": "queued"}));
    append(tx, &t.id, vec![ev]).await?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_task(&self, t: NewTask) -> Result<TaskRecord> {
        let mut tx = self.writer.begin().await?;
        insert_task(&mut tx, &t).await?;
        tx.commit().await?;
        self.fetch(&self.writer, &t.id).await
    }

    async fn get_task(&self, id: &str) -> Result<TaskRecord> {
        self.fetch(&self.reader, id).await
    }

    async fn find_task(&self, id: &str) -> Result<TaskRecord> {
        // An empty id would be a prefix of every id: refused, never "the first task".
        if id.trim().is_empty() {
            return Err(StoreError::EmptyId);
        }
        if let Ok(t) = self.fetch(&self.reader, id).await {
            return Ok(t);
        }
        // A plain byte comparison of the prefix: no LIKE, so `%` and `_` are just characters.
        let rows = sqlx::query(
            "SELECT * FROM tasks WHERE substr(id, 1, length(?1)) = ?1 OR name = ?1 \
             ORDER BY queue_seq LIMIT 5",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?;
        match rows.len() {
            0 => Err(StoreError::NotFound(id.to_string())),
            1 => row_to_task(&rows[0]),
            _ => {
                let ids: Vec<String> = rows.iter().filter_map(|r| r.try_get("id").ok()).collect();
                let more = if rows.len() == 5 { ", …" } else { "" };
                Err(StoreError::Ambiguous(
                    id.to_string(),
                    format!("{}{more}", ids.join(", ")),
                ))
            }
        }
    }

    async fn list_tasks(&self, filter: ListFilter, since: &str) -> Result<Vec<TaskRecord>> {
        let rows = match filter {
            ListFilter::All => {
                sqlx::query("SELECT * FROM tasks ORDER BY queue_seq").fetch_all(&self.reader).await?
            }
            ListFilter::ActiveOrFinishedSince => sqlx::query(
                "SELECT * FROM tasks WHERE finished_at IS NULL OR finished_at >= ? ORDER BY queue_seq",
            )
            .bind(since)
            .fetch_all(&self.reader)
            .await?,
        };
        rows.iter().map(row_to_task).collect()
    }

    async fn list_page(
        &self,
        filter: ListFilter,
        since: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<TaskRecord>> {
        let cols = &self.summary_cols;
        let sql = match filter {
            ListFilter::All => {
                format!("SELECT {cols} FROM tasks WHERE queue_seq > ?1 ORDER BY queue_seq LIMIT ?2")
            }
            ListFilter::ActiveOrFinishedSince => format!(
                "SELECT {cols} FROM tasks WHERE queue_seq > ?1 \
                 AND (finished_at IS NULL OR finished_at >= ?3) ORDER BY queue_seq LIMIT ?2"
            ),
        };
        let mut query = sqlx::query(&sql).bind(after).bind(limit);
        if filter == ListFilter::ActiveOrFinishedSince {
            query = query.bind(since);
        }
        let rows = query.fetch_all(&self.reader).await?;
        rows.iter().map(row_to_task).collect()
    }

    async fn queued(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM tasks WHERE state = 'queued' ORDER BY queue_seq")
                .fetch_all(&self.reader)
                .await?,
        )
    }

    async fn active(&self) -> Result<Vec<TaskRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM tasks WHERE state IN ('preparing','running','needs_input','verifying') \
             ORDER BY queue_seq",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(row_to_task).collect()
    }

    async fn update(
        &self,
        id: &str,
        from: Option<&[TaskState]>,
        patch: TaskPatch,
        mut events: Vec<NewEvent>,
    ) -> Result<(TaskRecord, Vec<Event>)> {
        let mut tx = self.writer.begin().await?;
        if let (Some(from), Some(_)) = (from, patch.state) {
            let cur: Option<String> = sqlx::query_scalar("SELECT state FROM tasks WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let cur = cur.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
            let cur = TaskState::from_str(&cur).map_err(StoreError::Corrupt)?;
            if !from.contains(&cur) {
                let expected: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
                return Err(StoreError::WrongState {
                    id: id.to_string(),
                    actual: cur,
                    expected: expected.join("|"),
                });
            }
        }
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("UPDATE tasks SET next_seq = next_seq");
        if let Some(s) = patch.state {
            qb.push(", state = ").push_bind(s.as_str());
            let mut data = serde_json::json!({ "state": s.as_str() });
            if let (Some(serde_json::Value::Object(extra)), Some(obj)) =
                (patch.state_data.clone(), data.as_object_mut())
            {
                obj.extend(extra);
            }
            events.push(NewEvent::new(EventKind::State, data));
        }
        for (col, val) in patch.sets {
            qb.push(format!(", {col} = "));
            match val {
                Val::Null => qb.push("NULL"),
                Val::Int(v) => qb.push_bind(v),
                Val::Real(v) => qb.push_bind(v),
                Val::Text(v) => qb.push_bind(v),
            };
        }
        for col in patch.increments {
            if col == "queue_seq_requeue" {
                qb.push(", queue_seq = (SELECT MAX(queue_seq) + 1 FROM tasks)");
            } else {
                qb.push(format!(", {col} = {col} + 1"));
            }
        }
        if !events.is_empty() {
            // Any new event is activity (the stall clock's base).
            qb.push(", activity_at = ").push_bind(now());
        }
        qb.push(" WHERE id = ").push_bind(id);
        let res = qb.build().execute(&mut *tx).await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound(id.to_string()));
        }
        let stored = append(&mut tx, id, events).await?;
        tx.commit().await?;
        Ok((self.fetch(&self.writer, id).await?, stored))
    }

    async fn events(&self, id: &str, after: i64, limit: i64) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT seq, ts, kind, data FROM events WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                let data: String = r.try_get("data")?;
                Ok(Event {
                    task_id: id.to_string(),
                    seq: r.try_get("seq")?,
                    ts: r.try_get("ts")?,
                    kind: EventKind::from_str(&kind).map_err(StoreError::Corrupt)?,
                    data: serde_json::from_str(&data)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                })
            })
            .collect()
    }

    async fn events_page(
        &self,
        id: &str,
        after: i64,
        limit: i64,
        max_bytes: usize,
    ) -> Result<Vec<Event>> {
        use futures::TryStreamExt;
        let mut rows = sqlx::query(
            "SELECT seq, ts, kind, data FROM events WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(id)
        .bind(after)
        .bind(limit)
        .fetch(&self.reader);
        let (mut out, mut bytes) = (Vec::new(), 0usize);
        while let Some(r) = rows.try_next().await? {
            let data: String = r.try_get("data")?;
            bytes += data.len();
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            let kind: String = r.try_get("kind")?;
            out.push(Event {
                task_id: id.to_string(),
                seq: r.try_get("seq")?,
                ts: r.try_get("ts")?,
                kind: EventKind::from_str(&kind).map_err(StoreError::Corrupt)?,
                data: serde_json::from_str(&data)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            });
        }
        Ok(out)
    }

    async fn delete_task(&self, id: &str) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM events WHERE task_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let res = sqlx::query("DELETE FROM tasks WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound(id.to_string()));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn create_pool(&self, pool: NewPool) -> Result<PoolRecord> {
        self.pool_create(pool).await
    }
    async fn get_pool(&self, name: &str) -> Result<PoolRecord> {
        self.pool_get(name).await
    }
    async fn list_pools(&self) -> Result<Vec<PoolRecord>> {
        self.pool_list().await
    }
    async fn set_pool_state(
        &self,
        name: &str,
        state: PoolState,
        stop_reason: Option<&str>,
        reset_streak: bool,
    ) -> Result<PoolRecord> {
        self.pool_set_state(name, state, stop_reason, reset_streak)
            .await
    }
    async fn mark_pool_notified(&self, name: &str) -> Result<bool> {
        self.pool_mark_notified(name).await
    }
    async fn launch_pool_task(&self, name: &str, task: NewTask) -> Result<Option<TaskRecord>> {
        self.pool_launch(name, task).await
    }
    async fn pool_stats(&self, name: &str, soft_fail_counts: bool) -> Result<PoolStats> {
        SqliteStore::pool_stats(self, name, soft_fail_counts).await
    }
    async fn pool_event(&self, name: &str, kind: &str, data: serde_json::Value) -> Result<()> {
        SqliteStore::pool_event(self, name, kind, data).await
    }
    async fn pool_events(&self, name: &str, limit: i64) -> Result<Vec<PoolEvent>> {
        SqliteStore::pool_events(self, name, limit).await
    }

    async fn record_usage(&self, rows: &[crate::usage::UsageRow]) -> Result<()> {
        self.usage_record(rows).await
    }
    async fn usage_last_id(&self) -> Result<i64> {
        SqliteStore::usage_last_id(self).await
    }
    async fn spent(
        &self,
        task_id: &str,
        pool: Option<&str>,
        team: Option<&str>,
        day_start: &str,
        up_to: i64,
    ) -> Result<crate::usage::Spent> {
        self.usage_spent(task_id, pool, team, day_start, up_to)
            .await
    }
    async fn usage_report(&self, by: UsageBy) -> Result<Vec<crate::usage::UsageLine>> {
        SqliteStore::usage_report(self, by).await
    }
}

pub(crate) fn row_to_task(r: &SqliteRow) -> Result<TaskRecord> {
    let state: String = r.try_get("state")?;
    let verify: String = r.try_get("verify")?;
    let pending: Option<String> = r.try_get("pending_input")?;
    let max_tokens: Option<i64> = r.try_get("max_tokens")?;
    let u = |c: &str| -> Result<u64> { Ok(r.try_get::<i64, _>(c)?.max(0) as u64) };
    Ok(TaskRecord {
        id: r.try_get("id")?,
        queue_seq: r.try_get("queue_seq")?,
        name: r.try_get("name")?,
        state: TaskState::from_str(&state).map_err(StoreError::Corrupt)?,
        agent: r.try_get("agent")?,
        model: r.try_get("model")?,
        repo: r.try_get("repo")?,
        repo_dir: r.try_get("repo_dir")?,
        base_ref: r.try_get("base_ref")?,
        base_commit: r.try_get("base_commit")?,
        branch: r.try_get("branch")?,
        prompt: r.try_get("prompt")?,
        cmd: r.try_get("cmd")?,
        verify: serde_json::from_str(&verify).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        permissions: word(r, "permissions")?,
        created_at: r.try_get("created_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        result: r.try_get("result")?,
        outcome: parse_outcome(
            r.try_get("verdict")?,
            r.try_get("reason")?,
            r.try_get("error_kind")?,
        )
        .map_err(StoreError::Corrupt)?,
        usage: Usage {
            input_tokens: u("input_tokens")?,
            output_tokens: u("output_tokens")?,
            cache_read_tokens: u("cache_read_tokens")?,
            cache_write_tokens: u("cache_write_tokens")?,
        },
        cost_usd: r.try_get("cost_usd")?,
        budget: Budget {
            max_usd: r.try_get("max_usd")?,
            max_tokens: max_tokens.map(|v| v.max(0) as u64),
        },
        session_id: r.try_get("session_id")?,
        commit: r.try_get("commit_sha")?,
        pool: r.try_get("pool")?,
        team: r.try_get("team")?,
        created_by: r.try_get("created_by")?,
        sandbox: r.try_get("sandbox")?,
        sandbox_kind: opt_word(r, "sandbox_kind")?,
        pending_input: pending.and_then(|p| serde_json::from_str(&p).ok()),
        shim_pid: r.try_get("shim_pid")?,
        shim_start: r.try_get("shim_start")?,
        pid: r.try_get("pid")?,
        pgid: r.try_get("pgid")?,
        agent_start: r.try_get("agent_start")?,
        stdout_offset: r.try_get("stdout_offset")?,
        stderr_offset: r.try_get("stderr_offset")?,
        turns_sent: r.try_get("turns_sent")?,
        turns_done: r.try_get("turns_done")?,
        attempt: r.try_get("attempt")?,
        stop_requested: r.try_get::<i64, _>("stop_requested")? != 0,
        next_seq: r.try_get("next_seq")?,
        verify_rounds: r.try_get("verify_rounds")?,
        gate_rounds: r.try_get("gate_rounds")?,
        gate_status: opt_word(r, "gate_status")?,
        judge_model: r.try_get("judge_model")?,
        stop_reason: opt_word(r, "stop_reason")?,
        metered_by: word(r, "metered_by")?,
        agent_cost_usd: r.try_get("agent_cost_usd")?,
        agent_usage: r
            .try_get::<Option<String>, _>("agent_usage")?
            .and_then(|s| serde_json::from_str(&s).ok()),
        timeout_secs: r.try_get("timeout_secs")?,
        stall_timeout_secs: r.try_get("stall_timeout_secs")?,
        activity_at: r.try_get("activity_at")?,
        pending_since: r.try_get("pending_since")?,
        stop_requested_at: r.try_get("stop_requested_at")?,
        stop_step: StopStep::from_index(r.try_get("stop_step")?),
        stop_step_at: r.try_get("stop_step_at")?,
        protect: json_list(r, "protect")?,
    })
}

/// A word of a closed set (`drover_types::vocab`) in a TEXT column.
pub(crate) fn word<T>(r: &SqliteRow, col: &str) -> Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let text: String = r.try_get(col)?;
    text.parse()
        .map_err(|e: T::Err| StoreError::Corrupt(format!("{col}: {e}")))
}

/// [`word`] in a nullable column.
pub(crate) fn opt_word<T>(r: &SqliteRow, col: &str) -> Result<Option<T>>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let text: Option<String> = r.try_get(col)?;
    text.map(|t| {
        t.parse()
            .map_err(|e: T::Err| StoreError::Corrupt(format!("{col}: {e}")))
    })
    .transpose()
}

/// A JSON list of strings in a TEXT column.
pub(crate) fn json_list(r: &SqliteRow, col: &str) -> Result<Vec<String>> {
    let text: String = r.try_get(col)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}
