//! Task clocks and the stop escalation (docs/design.md §11), level-triggered from the task row: the
//! supervisor calls [`tick`] on every step, so a restarted daemon keeps every deadline and
//! carries a stop's INT/TERM/KILL on from the last step the previous one recorded.
//!
//! - Wall clock (`timeout_secs`): from `started_at` (the first start; a resumed attempt keeps
//!   it), in every active state — time in `verifying` counts, and gates are cut at the deadline.
//! - Stall clock (`stall_timeout_secs`): from `activity_at` (the last agent output or event),
//!   only while `running`: `needs_input` waits for a person and `verifying` for gates, which
//!   have their own `gate_timeout_secs`.
//! - `needs_input_timeout` (config): a request pending longer is denied, and the task goes on.
//!
//! An expired clock asks for a stop (`stop_reason` `timeout` / `stall_timeout`), then the
//! escalation runs: polite (the agent's interrupt, stdin closed), then INT, TERM, KILL to the
//! agent's group, `stop_grace_secs` apart. Each step is done, then recorded (`stop_step`,
//! `stop_step_at`, an `input` event): a crash in between repeats a step, never skips one.

use super::Engine;
use drover_agents::Adapter;
use drover_shim::{proc, ShimClient};
use drover_store::record::parse_ts;
use drover_store::{now, StoreError, TaskPatch, TaskRecord};
use drover_types::clock::{check_secs, format_secs, StopStep};
use drover_types::{
    AnsweredBy, ErrorKind, EventKind, NewEvent, Outcome, PermissionPolicy, StopReason, TaskState,
};
use serde_json::json;

/// `stop_reason` of an expired wall clock.
pub const WALL: StopReason = StopReason::Timeout;
/// `stop_reason` of an expired stall clock.
pub const STALL: StopReason = StopReason::StallTimeout;

/// A request's clocks, defaulted from the config and bounded; an error names the flag.
pub fn resolve(
    config: &crate::Config,
    timeout: Option<u64>,
    stall: Option<u64>,
) -> Result<(Option<i64>, Option<i64>), String> {
    let check = |flag: &str, v: Option<u64>| -> Result<Option<i64>, String> {
        v.map(|s| {
            check_secs(s)
                .map(|s| s as i64)
                .map_err(|e| format!("{flag}: {e}"))
        })
        .transpose()
    };
    Ok((
        check("--timeout", timeout.or(config.task_timeout))?,
        check("--stall-timeout", stall.or(config.stall_timeout))?,
    ))
}

/// Which clock ran out, if one did (and no stop is under way).
pub fn expired(task: &TaskRecord, at: chrono::DateTime<chrono::Utc>) -> Option<StopReason> {
    if task.stop_requested || !task.state.is_active() {
        return None;
    }
    if task.timeout_at().is_some_and(|d| d <= at) {
        return Some(WALL);
    }
    if task.state == TaskState::Running {
        let base = task
            .activity_at
            .as_deref()
            .or(task.started_at.as_deref())
            .and_then(parse_ts);
        if let (Some(base), Some(secs)) = (base, task.stall_timeout_secs) {
            if base + chrono::Duration::seconds(secs) <= at {
                return Some(STALL);
            }
        }
    }
    None
}

/// The outcome of a task a clock stopped; `None` if no clock did.
pub fn outcome(task: &TaskRecord) -> Option<Outcome> {
    if !task.stop_requested {
        return None;
    }
    let secs = |v: Option<i64>| format_secs(v.unwrap_or(0).max(0) as u64);
    match task.stop_reason {
        Some(WALL) => Some(Outcome::fail(
            ErrorKind::Timeout,
            format!("wall-clock timeout {}", secs(task.timeout_secs)),
        )),
        Some(STALL) => Some(Outcome::fail(
            ErrorKind::Timeout,
            format!(
                "no output for {} (stall timeout)",
                secs(task.stall_timeout_secs)
            ),
        )),
        _ => None,
    }
}

/// Whether the wall clock has run out (e.g. while gates ran after the agent exited).
pub fn wall_expired(task: &TaskRecord) -> bool {
    task.timeout_at().is_some_and(|d| d <= chrono::Utc::now())
}

/// How long a gate may run: the gate timeout, cut to what is left of the wall clock.
pub fn gate_budget(engine: &Engine, task: &TaskRecord) -> std::time::Duration {
    let gate = engine.config.gate_timeout;
    match task.timeout_at() {
        Some(d) => (d - chrono::Utc::now())
            .to_std()
            .unwrap_or_default()
            .min(gate),
        None => gate,
    }
}

/// One supervisor step's worth of clock work. Returns whether it changed the task row.
pub async fn tick(engine: &Engine, task: &TaskRecord, adapter: &dyn Adapter) -> bool {
    let at = chrono::Utc::now();
    if let Some(which) = expired(task, at) {
        if let Err(e) = request_stop(engine, &task.id, which).await {
            tracing::warn!(task = task.id.as_str(), "clock stop: {e}");
        }
        return true;
    }
    if let (Some(req), Some(limit), Some(since)) = (
        &task.pending_input,
        engine.config.needs_input_timeout,
        task.pending_since.as_deref().and_then(parse_ts),
    ) {
        let due = since + chrono::Duration::seconds(limit as i64) <= at;
        if due && task.permissions == PermissionPolicy::Ask && !task.stop_requested {
            let message = format!(
                "no answer within {} (needs_input_timeout): denied",
                format_secs(limit)
            );
            let by = AnsweredBy::NeedsInputTimeout;
            if let Err(e) =
                super::answer::answer(engine, task, adapter, req, false, Some(&message), by).await
            {
                tracing::warn!(task = task.id.as_str(), "needs_input timeout: {e}");
            }
            return true;
        }
    }
    match escalate(engine, task, adapter).await {
        Ok(acted) => acted,
        Err(e) => {
            tracing::warn!(task = task.id.as_str(), "stop escalation: {e}");
            false
        }
    }
}

/// Records that the task is to stop and why; the supervisor's [`escalate`] does the rest. A
/// stop already under way keeps its first reason and time.
pub async fn request_stop(
    engine: &Engine,
    id: &str,
    why: StopReason,
) -> Result<TaskRecord, StoreError> {
    let task = engine.store.get_task(id).await?;
    if task.stop_requested {
        engine.poke(id).notify_one();
        return Ok(task);
    }
    let mut events = vec![];
    let patch = TaskPatch::new()
        .stop_requested(true)
        .stop_reason(Some(why))
        .stop_requested_at(Some(now()));
    let stopping = TaskRecord {
        stop_requested: true,
        stop_reason: Some(why),
        ..task
    };
    if let Some(o) = outcome(&stopping) {
        events.push(NewEvent::new(
            EventKind::Error,
            json!({ "message": o.reason, "error_kind": ErrorKind::Timeout.as_str() }),
        ));
    }
    let (t, _) = engine.update(id, None, patch, events).await?;
    engine.poke(id).notify_one();
    Ok(t)
}

/// Takes the next step of a requested stop when it is due. Returns whether it took one.
pub async fn escalate(
    engine: &Engine,
    task: &TaskRecord,
    adapter: &dyn Adapter,
) -> Result<bool, StoreError> {
    if !task.stop_requested || !task.state.is_active() || task.shim_pid.is_none() {
        return Ok(false);
    }
    let last = task.stop_step;
    if last.is_some() {
        let since = task.stop_step_at.as_deref().and_then(parse_ts);
        let grace = chrono::Duration::from_std(engine.config.stop_grace).unwrap_or_default();
        if since.is_some_and(|s| chrono::Utc::now() < s + grace) {
            return Ok(false);
        }
    }
    let step = StopStep::next(last);
    let client = ShimClient::new(engine.home.task(&task.id));
    match step {
        StopStep::Polite => {
            if let Some(line) = adapter.interrupt() {
                if let Err(e) = client.write_line(line).await {
                    // Not fatal: stdin is closed next, and the next steps signal.
                    tracing::debug!(task = task.id.as_str(), "polite interrupt: {e}");
                }
            }
            let lock = engine.stdin_lock(&task.id);
            let mut st = lock.lock().await;
            if client.close_stdin().await.is_ok() {
                st.closed = true;
            }
        }
        StopStep::Int | StopStep::Term | StopStep::Kill => {
            let signal = step.as_str();
            if client.signal(signal).await.is_err() {
                // No shim to ask: signal the group ourselves — only members of the agent's
                // group in its shim's session, never a reused id.
                if let (Some(pgid), Some(sid), Some(sig)) =
                    (task.pgid, task.shim_pid, proc::parse_signal(signal))
                {
                    proc::signal_members(pgid, sid, sig);
                    // An agent can leave its group: TERM and KILL also reach its pid (if it is
                    // still that process), and KILL whatever the task left running.
                    if let (Some(pid), Some(start)) = (task.pid, task.agent_start) {
                        if matches!(step, StopStep::Term | StopStep::Kill) {
                            proc::signal_process(pid, start, sig);
                        }
                    }
                    if let (StopStep::Kill, Some(shim_start)) = (step, task.shim_start) {
                        proc::signal_task_processes(sid, shim_start, sig);
                    }
                }
            }
        }
    }
    if step == StopStep::Kill {
        // Everything of the task, wherever it went (setsid, nohup, ignoring TERM): its cgroup.
        super::limits::kill(engine, &task.id).await;
    }
    let repeat = last == Some(StopStep::Kill);
    let events = if repeat {
        vec![]
    } else {
        vec![NewEvent::new(
            EventKind::Input,
            json!({ "stop": step, "by": task.stop_reason.unwrap_or(StopReason::User) }),
        )]
    };
    let patch = TaskPatch::new().stop_step(step).stop_step_at(Some(now()));
    engine.update(&task.id, None, patch, events).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::fixtures::task;
    use super::*;

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        parse_ts(s).unwrap()
    }

    #[test]
    fn each_clock_runs_out_at_its_own_deadline() {
        let t = task(TaskState::Running);
        assert_eq!(expired(&t, at("2026-01-01T00:00:39.000Z")), None);
        assert_eq!(expired(&t, at("2026-01-01T00:00:40.000Z")), Some(STALL));
        let mut quiet = t;
        quiet.stall_timeout_secs = None;
        assert_eq!(expired(&quiet, at("2026-01-01T00:00:59.000Z")), None);
        assert_eq!(expired(&quiet, at("2026-01-01T00:01:00.000Z")), Some(WALL));
    }

    #[test]
    fn a_person_is_not_a_stall_but_the_wall_clock_runs_on() {
        let t = task(TaskState::NeedsInput);
        assert_eq!(expired(&t, at("2026-01-01T00:00:50.000Z")), None);
        assert_eq!(expired(&t, at("2026-01-01T00:01:00.000Z")), Some(WALL));
        let v = task(TaskState::Verifying);
        assert_eq!(expired(&v, at("2026-01-01T00:01:00.000Z")), Some(WALL));
    }

    #[test]
    fn a_stop_under_way_is_not_asked_for_twice_and_says_which_clock() {
        let mut t = task(TaskState::Running);
        t.stop_requested = true;
        t.stop_reason = Some(STALL);
        assert_eq!(expired(&t, at("2026-01-02T00:00:00.000Z")), None);
        let o = outcome(&t).unwrap();
        assert_eq!(o.error_kind, Some(ErrorKind::Timeout));
        assert_eq!(o.reason, "no output for 10s (stall timeout)");
        t.stop_reason = Some(WALL);
        assert_eq!(outcome(&t).unwrap().reason, "wall-clock timeout 1m");
        t.stop_reason = Some(StopReason::User);
        assert_eq!(outcome(&t), None);
    }
}
