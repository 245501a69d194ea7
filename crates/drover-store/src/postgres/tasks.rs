//! [`TaskStore`] on PostgreSQL: the SQLite semantics (`sqlite/tasks.rs`) for several daemons
//! writing at once.
//!
//! - Every write to a task locks its row first (`UPDATE` or `SELECT … FOR UPDATE`) and keeps the
//!   lock to commit: the fence, the `from` states and the event seqs (taken from the row's
//!   `next_seq`) are checked and allocated under it, so concurrent updates from any daemon keep
//!   a task's seqs contiguous and its state transitions serial.
//! - `queue_seq` comes from a sequence (creates and requeues on several daemons never collide).
//! - An idempotency key is held by a transaction-scoped advisory lock on its hash while it is
//!   looked up and recorded: concurrent creates with one key (from any daemon) make one task.

use super::PgStore;
use crate::error::{now, Result, StoreError};
use crate::record::{NewTask, TaskPatch, TaskRecord};
use crate::rows::{to_json, EventRow, TaskRow};
use crate::tasks::{Idempotency, Idempotent, ListFilter, TaskFilter, TaskStore};
use async_trait::async_trait;
use drover_types::{Event, EventKind, NewEvent, TaskState};
use sqlx::{Postgres, QueryBuilder, Transaction};

/// The first key of the advisory locks idempotency keys take (the second is the key's hash).
const IDEMPOTENCY_LOCK: i32 = 0x4452_4931; // "DRI1"

/// Appends `events` with the task's next seqs, moving `next_seq` past them under the row's lock
/// (for other areas writing a task's events, as SQLite's usage area does).
#[allow(dead_code)] // until the usage area (pgareas) uses it
pub(super) async fn append(
    tx: &mut Transaction<'_, Postgres>,
    id: &str,
    events: Vec<NewEvent>,
) -> Result<Vec<Event>> {
    if events.is_empty() {
        return Ok(vec![]);
    }
    let n = events.len() as i64;
    let first: i64 = sqlx::query_scalar(
        "UPDATE tasks SET next_seq = next_seq + $2 WHERE id = $1 RETURNING next_seq - $2",
    )
    .bind(id)
    .bind(n)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    insert_events(tx, id, first, events).await
}

/// Inserts `events` as seqs `first`, `first + 1`, … (the caller moved the task's `next_seq`
/// past them in `tx`, holding its row).
async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    id: &str,
    first: i64,
    events: Vec<NewEvent>,
) -> Result<Vec<Event>> {
    let ts = now();
    let out: Vec<Event> = events
        .into_iter()
        .enumerate()
        .map(|(i, ev)| Event {
            task_id: id.to_string(),
            seq: first + i as i64,
            ts: ts.clone(),
            kind: ev.kind,
            data: ev.data,
        })
        .collect();
    // A few statements at most (5 binds per row, PostgreSQL takes 65535).
    for chunk in out.chunks(1000) {
        let mut qb =
            QueryBuilder::<Postgres>::new("INSERT INTO events (task_id, seq, ts, kind, data) ");
        qb.push_values(chunk, |mut b, e| {
            b.push_bind(id)
                .push_bind(e.seq)
                .push_bind(&e.ts)
                .push_bind(e.kind.as_str())
                .push_bind(e.data.to_string());
        });
        qb.build().execute(&mut **tx).await?;
    }
    Ok(out)
}

/// Inserts a queued task (at the back of the queue: the sequence's next value) and its first
/// `state` event; the task as stored.
pub(super) async fn insert_task(
    tx: &mut Transaction<'_, Postgres>,
    t: &NewTask,
) -> Result<TaskRecord> {
    let row = sqlx::query_as::<_, TaskRow>(
        "INSERT INTO tasks (id, name, state, agent, model, repo, repo_dir, base_ref, \
         base_commit, branch, prompt, cmd, verify, permissions, created_at, max_usd, max_tokens, \
         session_id, pool, team, created_by, verify_rounds, judge_model, timeout_secs, \
         stall_timeout_secs, protect, memory_bytes, cpus, pids, tags, runs_on, repos, pr, batch, next_seq) \
         VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, 2) \
         RETURNING *",
    )
    .bind(&t.id)
    .bind(&t.name)
    .bind(t.agent.to_string())
    .bind(&t.model)
    .bind(&t.repo)
    .bind(&t.repo_dir)
    .bind(&t.base_ref)
    .bind(&t.base_commit)
    .bind(format!("drover/{}", t.id))
    .bind(&t.prompt)
    .bind(&t.cmd)
    .bind(to_json(&t.verify)?)
    .bind(t.permissions.to_string())
    .bind(now())
    .bind(t.budget.max_usd)
    .bind(t.budget.max_tokens.map(|v| v.min(i64::MAX as u64) as i64))
    .bind(&t.session_id)
    .bind(&t.pool)
    .bind(&t.team)
    .bind(&t.created_by)
    .bind(t.verify_rounds)
    .bind(&t.judge_model)
    .bind(t.timeout_secs)
    .bind(t.stall_timeout_secs)
    .bind(to_json(&t.protect)?)
    .bind(t.limits.memory_bytes.map(|v| v.min(i64::MAX as u64) as i64))
    .bind(t.limits.cpus)
    .bind(t.limits.pids.map(|v| v.min(i64::MAX as u64) as i64))
    .bind(to_json(&t.tags)?)
    .bind(&t.runs_on)
    .bind(if t.repos.is_empty() { None } else { Some(to_json(&t.repos)?) })
    .bind(t.pr.as_ref().map(to_json).transpose()?)
    .bind(&t.batch)
    .fetch_one(&mut **tx)
    .await?;
    // Its first event is seq 1 (`next_seq` is 2 already).
    let ev = NewEvent::new(EventKind::State, serde_json::json!({"state": "queued"}));
    insert_events(tx, &t.id, 1, vec![ev]).await?;
    row.try_into()
}

/// The task's state, its row locked for the rest of `tx`.
async fn lock_state(tx: &mut Transaction<'_, Postgres>, id: &str) -> Result<TaskState> {
    let cur: Option<String> =
        sqlx::query_scalar("SELECT state FROM tasks WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    let cur = cur.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    crate::rows::parse("state", cur)
}

#[async_trait]
impl TaskStore for PgStore {
    async fn create_task(&self, t: NewTask) -> Result<TaskRecord> {
        let mut tx = self.pool.begin().await?;
        let rec = insert_task(&mut tx, &t).await?;
        self.commit(tx).await?;
        Ok(rec)
    }

    async fn create_task_idempotent(&self, t: NewTask, idem: &Idempotency) -> Result<Idempotent> {
        let mut tx = self.pool.begin().await?;
        // Serialises every transaction using this key, on any daemon, until commit.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2 || ':' || $3))")
            .bind(IDEMPOTENCY_LOCK)
            .bind(&idem.scope)
            .bind(&idem.key)
            .execute(&mut *tx)
            .await?;
        let held: Option<(String, String)> = sqlx::query_as(
            "SELECT body_hash, task_id FROM idempotency \
             WHERE scope = $1 AND key = $2 AND created_at >= $3 \
             AND task_id IN (SELECT id FROM tasks)",
        )
        .bind(&idem.scope)
        .bind(&idem.key)
        .bind(&idem.not_before)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((hash, task_id)) = held {
            if hash != idem.body_hash {
                return Ok(Idempotent::Conflict(task_id));
            }
            return Ok(Idempotent::Replayed(Self::fetch(&mut *tx, &task_id).await?));
        }
        let rec = insert_task(&mut tx, &t).await?;
        // An expired key (or one whose task was removed) is taken over; old rows go with it
        // (those no other transaction holds: concurrent clean-ups never wait on each other).
        sqlx::query(
            "DELETE FROM idempotency WHERE (scope, key) IN (SELECT scope, key FROM idempotency \
             WHERE created_at < $1 FOR UPDATE SKIP LOCKED)",
        )
        .bind(&idem.not_before)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO idempotency (scope, key, body_hash, task_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (scope, key) DO UPDATE SET body_hash = excluded.body_hash, \
             task_id = excluded.task_id, created_at = excluded.created_at",
        )
        .bind(&idem.scope)
        .bind(&idem.key)
        .bind(&idem.body_hash)
        .bind(&t.id)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(Idempotent::Created(rec))
    }

    async fn get_task(&self, id: &str) -> Result<TaskRecord> {
        Self::fetch(&self.pool, id).await
    }

    async fn find_task(&self, id: &str) -> Result<TaskRecord> {
        // An empty id would be a prefix of every id: refused, never "the first task".
        if id.trim().is_empty() {
            return Err(StoreError::EmptyId);
        }
        if let Ok(t) = Self::fetch(&self.pool, id).await {
            return Ok(t);
        }
        // `starts_with` compares plain text: no LIKE, so `%` and `_` are just characters.
        let mut rows = sqlx::query_as::<_, TaskRow>(
            "SELECT * FROM tasks WHERE starts_with(id, $1) OR name = $1 \
             ORDER BY queue_seq LIMIT 5",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        match rows.len() {
            0 => Err(StoreError::NotFound(id.to_string())),
            1 => rows.remove(0).try_into(),
            n => {
                let ids: Vec<String> = rows.into_iter().map(|r| r.id).collect();
                let more = if n == 5 { ", …" } else { "" };
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
                sqlx::query_as::<_, TaskRow>("SELECT * FROM tasks ORDER BY queue_seq")
                    .fetch_all(&self.pool)
                    .await?
            }
            ListFilter::ActiveOrFinishedSince => {
                sqlx::query_as::<_, TaskRow>(
                    "SELECT * FROM tasks WHERE finished_at IS NULL OR finished_at >= $1 \
                 ORDER BY queue_seq",
                )
                .bind(since)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.into_iter().map(TaskRecord::try_from).collect()
    }

    async fn list_page(
        &self,
        filter: ListFilter,
        since: &str,
        narrow: &TaskFilter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<TaskRecord>> {
        let cols = &self.summary_cols;
        let mut qb =
            QueryBuilder::<Postgres>::new(format!("SELECT {cols} FROM tasks WHERE queue_seq > "));
        qb.push_bind(after);
        if filter == ListFilter::ActiveOrFinishedSince {
            qb.push(" AND (finished_at IS NULL OR finished_at >= ")
                .push_bind(since)
                .push(")");
        }
        if let Some(state) = narrow.state {
            qb.push(" AND state = ").push_bind(state.as_str());
        }
        if let Some(pool) = &narrow.pool {
            qb.push(" AND pool = ").push_bind(pool);
        }
        if let Some(team) = &narrow.team {
            qb.push(" AND team = ").push_bind(team);
        }
        if let Some((name, value)) = &narrow.tag {
            // A key look-up, not a JSON path: a tag's name may hold any character.
            qb.push(
                " AND EXISTS (SELECT 1 FROM jsonb_each_text(tasks.tags::jsonb) t WHERE t.key = ",
            )
            .push_bind(name)
            .push(" AND t.value = ")
            .push_bind(value)
            .push(")");
        }
        qb.push(" ORDER BY queue_seq LIMIT ").push_bind(limit);
        let rows = qb.build_query_as::<TaskRow>().fetch_all(&self.pool).await?;
        rows.into_iter().map(TaskRecord::try_from).collect()
    }

    async fn queued(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM tasks WHERE state = 'queued' ORDER BY queue_seq")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn active(&self) -> Result<Vec<TaskRecord>> {
        let rows = sqlx::query_as::<_, TaskRow>(
            "SELECT * FROM tasks WHERE state IN ('preparing','running','needs_input','verifying') \
             ORDER BY queue_seq",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(TaskRecord::try_from).collect()
    }

    async fn update(
        &self,
        id: &str,
        from: Option<&[TaskState]>,
        patch: TaskPatch,
        mut events: Vec<NewEvent>,
    ) -> Result<(TaskRecord, Vec<Event>)> {
        let mut tx = self.pool.begin().await?;
        if let Some(fence) = patch.fenced_by() {
            super::hosts::check_fence(&mut tx, id, fence).await?;
        }
        if let (Some(from), Some(_)) = (from, patch.state) {
            // The row is locked from here to commit: the state checked is the state replaced.
            let cur = lock_state(&mut tx, id).await?;
            if !from.contains(&cur) {
                let expected: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
                return Err(StoreError::WrongState {
                    id: id.to_string(),
                    actual: cur,
                    expected: expected.join("|"),
                });
            }
        }
        if let Some(s) = patch.state {
            let mut data = serde_json::json!({ "state": s.as_str() });
            if let (Some(serde_json::Value::Object(extra)), Some(obj)) =
                (patch.state_data, data.as_object_mut())
            {
                obj.extend(extra);
            }
            events.push(NewEvent::new(EventKind::State, data));
        }
        // The events' seqs are taken in the same row write: one statement locks the row,
        // applies the patch, moves `next_seq` past the events and returns the task as stored.
        let n = events.len() as i64;
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new("UPDATE tasks SET next_seq = next_seq + ");
        qb.push_bind(n);
        if let Some(s) = patch.state {
            qb.push(", state = ").push_bind(s.as_str());
        }
        let mut fields = patch.fields;
        if !events.is_empty() {
            // Any new event is activity (the stall clock's base); it wins over the patch's
            // value, as on SQLite (one assignment per column here).
            fields.activity_at = None;
            qb.push(", activity_at = ").push_bind(now());
        }
        let inc = patch.inc;
        // An increment wins over a set of the same column (as on SQLite, where the later
        // assignment wins).
        if inc.turns_sent {
            fields.turns_sent = None;
        }
        if inc.turns_done {
            fields.turns_done = None;
        }
        crate::patch_sql::push_fields(&mut qb, fields)?;
        for (on, col) in [
            (inc.turns_sent, "turns_sent"),
            (inc.turns_done, "turns_done"),
            (inc.gate_rounds, "gate_rounds"),
            (inc.attempt, "attempt"),
        ] {
            if on {
                qb.push(format!(", {col} = {col} + 1"));
            }
        }
        if inc.requeue {
            qb.push(", queue_seq = nextval('tasks_queue_seq')");
        }
        qb.push(" WHERE id = ").push_bind(id).push(" RETURNING *");
        let rec: TaskRecord = qb
            .build_query_as::<TaskRow>()
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?
            .try_into()?;
        let stored = insert_events(&mut tx, id, rec.next_seq - n, events).await?;
        self.commit(tx).await?;
        Ok((rec, stored))
    }

    async fn events(&self, id: &str, after: i64, limit: i64) -> Result<Vec<Event>> {
        let rows = sqlx::query_as::<_, EventRow>(
            "SELECT seq, ts, kind, data FROM events WHERE task_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| r.into_event(id)).collect()
    }

    async fn events_page(
        &self,
        id: &str,
        after: i64,
        limit: i64,
        max_bytes: usize,
    ) -> Result<Vec<Event>> {
        use futures::TryStreamExt;
        let mut rows = sqlx::query_as::<_, EventRow>(
            "SELECT seq, ts, kind, data FROM events WHERE task_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(id)
        .bind(after)
        .bind(limit)
        .fetch(&self.pool);
        let (mut out, mut bytes) = (Vec::new(), 0usize);
        while let Some(r) = rows.try_next().await? {
            bytes += r.data_len();
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(r.into_event(id)?);
        }
        Ok(out)
    }

    async fn delete_task(&self, id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let res = sqlx::query("DELETE FROM tasks WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound(id.to_string()));
        }
        sqlx::query("DELETE FROM events WHERE task_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await
    }
}
