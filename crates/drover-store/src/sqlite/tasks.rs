//! [`TaskStore`] over SQLite: tasks, their events, and typed patches turned into one `UPDATE`.

use super::SqliteStore;
use crate::error::{now, Result, StoreError};
use crate::record::{NewTask, TaskPatch, TaskRecord};
use crate::rows::{to_json, EventRow, TaskRow};
use crate::tasks::{Idempotency, Idempotent, ListFilter, TaskFilter, TaskStore};
use async_trait::async_trait;
use drover_types::{Event, EventKind, NewEvent, TaskState};
use sqlx::{QueryBuilder, Sqlite, Transaction};

/// Appends `events` with the task's next seqs and moves `next_seq` past them.
pub(super) async fn append(
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
pub(super) async fn insert_task(tx: &mut Transaction<'_, Sqlite>, t: &NewTask) -> Result<()> {
    let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(queue_seq), 0) + 1 FROM tasks")
        .fetch_one(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO tasks (id, queue_seq, name, state, agent, model, repo, repo_dir, base_ref, \
         base_commit, branch, prompt, cmd, verify, permissions, created_at, max_usd, max_tokens, \
         session_id, pool, team, created_by, verify_rounds, judge_model, timeout_secs, \
         stall_timeout_secs, protect, memory_bytes, cpus, pids, tags, runs_on, repos, pr, batch) \
         VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&t.id)
    .bind(seq)
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
    .bind(t.budget.max_tokens.map(|v| v as i64))
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
    .execute(&mut **tx)
    .await?;
    let ev = NewEvent::new(EventKind::State, serde_json::json!({"state": "queued"}));
    append(tx, &t.id, vec![ev]).await?;
    Ok(())
}

#[async_trait]
impl TaskStore for SqliteStore {
    async fn create_task(&self, t: NewTask) -> Result<TaskRecord> {
        let mut tx = self.writer.begin().await?;
        insert_task(&mut tx, &t).await?;
        self.commit(tx).await?;
        Self::fetch(&self.writer, &t.id).await
    }

    async fn create_task_idempotent(&self, t: NewTask, idem: &Idempotency) -> Result<Idempotent> {
        // One writer connection: the look-up and the inserts are one transaction, never
        // interleaved with another request's.
        let mut tx = self.writer.begin().await?;
        let held: Option<(String, String)> = sqlx::query_as(
            "SELECT body_hash, task_id FROM idempotency \
             WHERE scope = ? AND key = ? AND created_at >= ? \
             AND task_id IN (SELECT id FROM tasks)",
        )
        .bind(&idem.scope)
        .bind(&idem.key)
        .bind(&idem.not_before)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((hash, task_id)) = held {
            drop(tx);
            if hash != idem.body_hash {
                return Ok(Idempotent::Conflict(task_id));
            }
            return Ok(Idempotent::Replayed(
                Self::fetch(&self.writer, &task_id).await?,
            ));
        }
        insert_task(&mut tx, &t).await?;
        // An expired key (or one whose task was removed) is taken over; old rows go with it.
        sqlx::query("DELETE FROM idempotency WHERE created_at < ?")
            .bind(&idem.not_before)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO idempotency (scope, key, body_hash, task_id, created_at) \
             VALUES (?, ?, ?, ?, ?) \
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
        Ok(Idempotent::Created(Self::fetch(&self.writer, &t.id).await?))
    }

    async fn get_task(&self, id: &str) -> Result<TaskRecord> {
        Self::fetch(&self.reader, id).await
    }

    async fn find_task(&self, id: &str) -> Result<TaskRecord> {
        // An empty id would be a prefix of every id: refused, never "the first task".
        if id.trim().is_empty() {
            return Err(StoreError::EmptyId);
        }
        if let Ok(t) = Self::fetch(&self.reader, id).await {
            return Ok(t);
        }
        // A plain byte comparison of the prefix: no LIKE, so `%` and `_` are just characters.
        let mut rows = sqlx::query_as::<_, TaskRow>(
            "SELECT * FROM tasks WHERE substr(id, 1, length(?1)) = ?1 OR name = ?1 \
             ORDER BY queue_seq LIMIT 5",
        )
        .bind(id)
        .fetch_all(&self.reader)
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
                    .fetch_all(&self.reader)
                    .await?
            }
            ListFilter::ActiveOrFinishedSince => sqlx::query_as::<_, TaskRow>(
                "SELECT * FROM tasks WHERE finished_at IS NULL OR finished_at >= ? ORDER BY queue_seq",
            )
            .bind(since)
            .fetch_all(&self.reader)
            .await?,
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
            QueryBuilder::<Sqlite>::new(format!("SELECT {cols} FROM tasks WHERE queue_seq > "));
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
            // json_each, not a JSON path: a tag's name may hold any character.
            qb.push(" AND EXISTS (SELECT 1 FROM json_each(tasks.tags) WHERE json_each.key = ")
                .push_bind(name)
                .push(" AND json_each.value = ")
                .push_bind(value)
                .push(")");
        }
        qb.push(" ORDER BY queue_seq LIMIT ").push_bind(limit);
        let rows = qb
            .build_query_as::<TaskRow>()
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(TaskRecord::try_from).collect()
    }

    async fn queued(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM tasks WHERE state = 'queued' ORDER BY queue_seq")
                .fetch_all(&self.reader)
                .await?,
        )
    }

    async fn active(&self) -> Result<Vec<TaskRecord>> {
        let rows = sqlx::query_as::<_, TaskRow>(
            "SELECT * FROM tasks WHERE state IN ('preparing','running','needs_input','verifying') \
             ORDER BY queue_seq",
        )
        .fetch_all(&self.reader)
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
        let mut tx = self.writer.begin().await?;
        if let Some(fence) = &patch.fence {
            super::hosts::check_fence(&mut tx, id, fence).await?;
        }
        if let (Some(from), Some(_)) = (from, patch.state) {
            let cur: Option<String> = sqlx::query_scalar("SELECT state FROM tasks WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let cur = cur.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
            let cur: TaskState = crate::rows::parse("state", cur)?;
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
                (patch.state_data, data.as_object_mut())
            {
                obj.extend(extra);
            }
            events.push(NewEvent::new(EventKind::State, data));
        }
        crate::patch_sql::push_fields(&mut qb, patch.fields)?;
        let inc = patch.inc;
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
            qb.push(", queue_seq = (SELECT MAX(queue_seq) + 1 FROM tasks)");
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
        self.commit(tx).await?;
        Ok((Self::fetch(&self.writer, id).await?, stored))
    }

    async fn events(&self, id: &str, after: i64, limit: i64) -> Result<Vec<Event>> {
        let rows = sqlx::query_as::<_, EventRow>(
            "SELECT seq, ts, kind, data FROM events WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
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
            "SELECT seq, ts, kind, data FROM events WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(id)
        .bind(after)
        .bind(limit)
        .fetch(&self.reader);
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
        self.commit(tx).await
    }
}
