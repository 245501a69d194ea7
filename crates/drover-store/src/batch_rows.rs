//! The `batches` row, shared by the SQLite and PostgreSQL stores (same column names and types).

use crate::batches::BatchRecord;
use crate::error::{Result, StoreError};
use crate::rows::{json_list, json_opt, parse};

#[derive(sqlx::FromRow)]
pub(crate) struct BatchRow {
    name: String,
    state: String,
    team: Option<String>,
    created_by: Option<String>,
    created_at: String,
    stopped_at: Option<String>,
    repos: String,
    prompt: String,
    base_ref: String,
    agent: String,
    cmd: Option<String>,
    model: Option<String>,
    judge_model: Option<String>,
    slots: Option<i64>,
    pr: Option<String>,
    permissions: String,
    verify: String,
    verify_rounds: i64,
    max_usd: Option<f64>,
    max_tokens: Option<i64>,
    timeout_secs: Option<i64>,
    stall_timeout_secs: Option<i64>,
    protect: String,
}

impl TryFrom<BatchRow> for BatchRecord {
    type Error = StoreError;
    fn try_from(r: BatchRow) -> Result<BatchRecord> {
        Ok(BatchRecord {
            state: parse("batches.state", r.state)?,
            repos: json_list("batches.repos", &r.repos)?,
            pr: json_opt("batches.pr", r.pr)?,
            permissions: parse("batches.permissions", r.permissions)?,
            verify: json_list("batches.verify", &r.verify)?,
            protect: json_list("batches.protect", &r.protect)?,
            max_tokens: r.max_tokens.map(|v| v.max(0) as u64),
            name: r.name,
            team: r.team,
            created_by: r.created_by,
            created_at: r.created_at,
            stopped_at: r.stopped_at,
            prompt: r.prompt,
            base_ref: r.base_ref,
            agent: r.agent,
            cmd: r.cmd,
            model: r.model,
            judge_model: r.judge_model,
            slots: r.slots,
            verify_rounds: r.verify_rounds,
            max_usd: r.max_usd,
            timeout_secs: r.timeout_secs,
            stall_timeout_secs: r.stall_timeout_secs,
        })
    }
}

/// The columns `create_batch` writes, in the order of its placeholders.
pub(crate) const INSERT_COLUMNS: &str =
    "name, state, team, created_by, created_at, repos, prompt, \
     base_ref, agent, cmd, model, judge_model, slots, pr, permissions, verify, verify_rounds, \
     max_usd, max_tokens, timeout_secs, stall_timeout_secs, protect";

/// How many placeholders [`INSERT_COLUMNS`] takes (`state` is written as `'running'`).
pub(crate) const INSERT_BINDS: usize = 21;

/// The condition (over a task aliased `t`) of a task that holds one of its batch's slots:
/// claimed by a worker (still `queued`) or active.
pub(crate) const HOLDS_SLOT: &str =
    "t.state IN ('queued', 'preparing', 'running', 'needs_input', 'verifying') \
     AND (t.worker IS NOT NULL OR t.state <> 'queued')";

/// The queued, unclaimed tasks a claim may take, batch slots respected, in queue order (a
/// SELECT of `id` and `queue_seq`; `extra` is an added condition on the candidate `t`, such as
/// PostgreSQL's `runs_on`). Each batch's queued tasks are numbered in queue order (`rn`); the
/// n-th is eligible when the batch's held slots plus n stay within its slots, so one claim of
/// several tasks never overfills a batch either.
pub(crate) fn claimable(extra: &str) -> String {
    format!(
        "SELECT c.id, c.queue_seq FROM (\
           SELECT t.id, t.queue_seq, t.batch, \
           ROW_NUMBER() OVER (PARTITION BY t.batch ORDER BY t.queue_seq) AS rn \
           FROM tasks t WHERE t.state = 'queued' AND t.worker IS NULL {extra}) c \
         LEFT JOIN batches b ON b.name = c.batch \
         WHERE c.batch IS NULL OR b.slots IS NULL OR c.rn + (\
           SELECT COUNT(*) FROM tasks t WHERE t.batch = c.batch AND {HOLDS_SLOT}) <= b.slots"
    )
}

/// Binds a [`crate::batches::NewBatch`]'s values in [`INSERT_COLUMNS`]' order (without `state`).
macro_rules! bind_batch {
    ($q:expr, $b:expr, $created_at:expr) => {{
        let b = $b;
        $q.bind(&b.name)
            .bind(&b.team)
            .bind(&b.created_by)
            .bind($created_at)
            .bind($crate::rows::to_json(&b.repos)?)
            .bind(&b.prompt)
            .bind(&b.base_ref)
            .bind(&b.agent)
            .bind(&b.cmd)
            .bind(&b.model)
            .bind(&b.judge_model)
            .bind(b.slots)
            .bind(b.pr.as_ref().map($crate::rows::to_json).transpose()?)
            .bind(b.permissions.to_string())
            .bind($crate::rows::to_json(&b.verify)?)
            .bind(b.verify_rounds)
            .bind(b.max_usd)
            .bind(b.max_tokens.map(|v| v.min(i64::MAX as u64) as i64))
            .bind(b.timeout_secs)
            .bind(b.stall_timeout_secs)
            .bind($crate::rows::to_json(&b.protect)?)
    }};
}
pub(crate) use bind_batch;

/// A retry may make a new task for a repository whose latest task (of `(repo, state)` pairs,
/// oldest first) ended without success: failed, cancelled or interrupted.
pub(crate) fn retryable(tasks: &[(String, String)], repo: &str) -> bool {
    tasks
        .iter()
        .rev()
        .find(|(r, _)| r == repo)
        .is_some_and(|(_, state)| matches!(state.as_str(), "failed" | "cancelled" | "interrupted"))
}
