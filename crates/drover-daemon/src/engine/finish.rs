//! Ending a task: the outcome from structured signals (then gates and the judge), the commit of
//! its work, the terminal state.

use super::terminal::{active, apply_commit, commit_work};
use super::{gates, judge, Engine};
use drover_agents::Adapter;
use drover_shim::ExitInfo;
use drover_store::{now, StoreError, TaskPatch, TaskRecord};
use drover_types::text::{excerpt, Limit};
use drover_types::{
    ErrorKind, EventKind, GateStatus, NewEvent, Outcome, StopReason, TaskState, Verdict,
};
use serde_json::json;
use std::sync::Arc;

/// Decides the outcome, commits the work and moves the task to its terminal state.
pub(crate) async fn finish(
    engine: &Arc<Engine>,
    id: &str,
    adapter: &dyn Adapter,
    exit: ExitInfo,
) -> Result<(), StoreError> {
    let task = engine.store.get_task(id).await?;
    // The agent is gone: end what is left of its group, read what it used, remove it.
    let used = super::limits::collect(engine, id).await;
    let last_result = last_result(engine, id).await?;
    let mut outcome = if task.stop_requested && task.stop_reason == Some(StopReason::BudgetExceeded)
    {
        Outcome::fail(ErrorKind::BudgetExceeded, budget_reason(engine, id).await?)
    } else if task.stop_requested {
        Outcome::fail(ErrorKind::Cancelled, "stopped by request")
    } else {
        structured(adapter, &exit, last_result.as_ref(), &task)
    };
    // A clock that stopped the task: which one ran out.
    if let Some(timeout) = super::clocks::outcome(&task) {
        outcome = timeout;
    }
    if let Some(oom) = used.and_then(|u| super::limits::out_of_memory(&task, &u, &outcome)) {
        outcome = oom;
    }
    if outcome.error_kind.is_none() {
        if let Some(failed) = gate_failure(engine, &task, adapter).await? {
            outcome = if super::clocks::wall_expired(&task) {
                // The gates were cut at the wall clock's deadline.
                let timeout = super::clocks::outcome(&TaskRecord {
                    stop_requested: true,
                    stop_reason: Some(super::clocks::WALL),
                    ..task.clone()
                });
                // ... and say so when it ran out before they could even start.
                match timeout {
                    Some(t) if failed.starts_with(super::protect::NOT_RUN) => {
                        Outcome::fail(ErrorKind::Timeout, format!("{}; {failed}", t.reason))
                    }
                    Some(t) => t,
                    None => Outcome::fail(ErrorKind::GateFailed, failed),
                }
            } else {
                Outcome::fail(ErrorKind::GateFailed, failed)
            };
        }
    }
    if matches!(outcome.error_kind, None | Some(ErrorKind::GateFailed)) {
        if let Some(changed) = super::protect::tampered(engine, &task).await {
            let reason = match outcome.error_kind {
                Some(_) => format!("{changed}; {}", outcome.reason),
                None => changed,
            };
            outcome = Outcome::fail(ErrorKind::GateFailed, reason);
        }
    }
    let result = match (adapter.multi_turn(), &task.result) {
        (_, Some(r)) => Some(r.clone()),
        (false, None) => last_text(engine, id).await?,
        _ => None,
    };
    let summary = task
        .name
        .clone()
        .unwrap_or_else(|| first_line(&task.prompt));
    let commit_started = std::time::SystemTime::now();
    let commit = commit_work(engine, id, &summary).await;
    let mut attrs = vec![opentelemetry::KeyValue::new(
        "drover.task.id",
        id.to_string(),
    )];
    if let Ok(Some((sha, _))) = &commit {
        attrs.push(opentelemetry::KeyValue::new("drover.commit", sha.clone()));
    }
    let commit_error = commit.as_ref().err().cloned();
    super::trace::child_span(engine, &task, "commit", commit_started, attrs, commit_error).await;
    // A multi-repo task's commits were just recorded in `repos` (engine::workspace).
    let task = super::workspace::with_recorded_commits(engine, task).await?;
    if let Err(e) = &commit {
        if outcome.error_kind.is_none() || outcome.error_kind == Some(ErrorKind::AgentExit) {
            outcome = Outcome::fail(ErrorKind::GitError, e.clone());
        }
    }
    if let (None, Ok(Some((sha, _)))) = (outcome.error_kind, &commit) {
        if let Some(changed) = super::protect::committed(engine, &task, sha).await {
            outcome = Outcome::fail(ErrorKind::GateFailed, changed);
        }
    }
    let mut events = vec![];
    if outcome.verdict == Verdict::Success {
        let sha = commit
            .as_ref()
            .ok()
            .and_then(|c| c.as_ref())
            .map(|(sha, _)| sha.as_str());
        if let Some(judged) = ask_judge(engine, &task, result.as_deref(), sha, &mut events).await? {
            outcome = judged;
        }
    }
    if outcome.verdict == Verdict::Success && commit.as_ref().is_ok_and(|c| c.is_some()) {
        // A forge repo gets drover/<id> (docs/design.md §9); failing that, the task fails.
        if let Err(e) = super::push::push_task(engine, &task).await {
            outcome = Outcome::fail(ErrorKind::GitError, e.reason);
        }
    }
    if outcome.verdict == Verdict::Success && task.pr.is_some() {
        // The branch is pushed: the PRs, recorded on the task as they exist (docs/design.md §9).
        let sha = match &commit {
            Ok(Some((sha, _))) => Some(sha.clone()),
            _ => task.commit.clone(),
        };
        let pushed = TaskRecord {
            commit: sha,
            ..task.clone()
        };
        match super::publish::open_prs(engine, &pushed).await {
            Ok(_) => {}
            Err(super::publish::PublishError::Store(StoreError::WrongState { .. })) => {
                return Ok(())
            }
            Err(super::publish::PublishError::Store(e)) => return Err(e),
            Err(e) => outcome = Outcome::fail(ErrorKind::GitError, e.to_string()),
        }
    }
    let state = terminal_state(&outcome);
    let patch = TaskPatch::new()
        .state(state, json!({ "reason": outcome.reason }))
        .outcome(Some(&outcome))
        .result(result)
        .finished_at(Some(now()))
        .pid(None)
        .pgid(None)
        .pending_input(None);
    let patch = match used {
        Some(u) => patch
            .peak_memory_bytes(u.peak_memory_bytes.map(|b| b.min(i64::MAX as u64) as i64))
            .cpu_seconds(u.cpu_seconds),
        None => patch,
    };
    let (patch, mut commit_events) = apply_commit(patch, commit);
    events.append(&mut commit_events);
    match engine.update(id, Some(&active()), patch, events).await {
        Ok(_) | Err(StoreError::WrongState { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Why the gates failed, if they did. Single-turn agents run theirs here, after they exited.
pub(crate) async fn gate_failure(
    engine: &Engine,
    task: &TaskRecord,
    adapter: &dyn Adapter,
) -> Result<Option<String>, StoreError> {
    if task.verify.is_empty() || task.gate_status == Some(GateStatus::Passed) {
        return Ok(None);
    }
    let failed = if task.gate_status == Some(GateStatus::Failed) {
        let last = last_of(engine, &task.id, EventKind::Gate).await?;
        Some(last.map_or_else(
            || "a gate failed".to_string(),
            |g| {
                if g["passed"] == true {
                    "the gates passed only with the protected paths put back".to_string()
                } else if let Some(e) = g["protect"]["error"].as_str() {
                    e.to_string()
                } else {
                    format!(
                        "gate `{}` failed (exit {})",
                        g["command"].as_str().unwrap_or(""),
                        g["exit_code"]
                    )
                }
            },
        ))
    } else {
        // Gates that have not run for the last turn run now: single-turn agents always get
        // here, and a multi-turn agent that exited right after its result must not skip them.
        let patch = TaskPatch::new().state(TaskState::Verifying, json!({}));
        engine
            .update(&task.id, Some(&active()), patch, vec![])
            .await?;
        let runs = gates::run_all(engine, task).await?;
        runs.iter().find(|r| !r.passed()).map(|r| {
            if r.exit_code.is_none() && r.tail.starts_with(super::protect::NOT_RUN) {
                return r.tail.clone();
            }
            let code = r
                .exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "none".into());
            format!("gate `{}` failed (exit {code})", r.command)
        })
    };
    let rounds = if adapter.multi_turn() {
        format!(" after {} feedback rounds", task.gate_rounds)
    } else {
        String::new()
    };
    Ok(failed.map(|f| format!("{f}{rounds}")))
}

/// Asks the judge when one is configured; `None` keeps the structured success.
pub(crate) async fn ask_judge(
    engine: &Engine,
    task: &TaskRecord,
    result: Option<&str>,
    commit: Option<&str>,
    events: &mut Vec<NewEvent>,
) -> Result<Option<Outcome>, StoreError> {
    let Some(model) = task
        .judge_model
        .clone()
        .or_else(|| engine.config.judge_model.clone())
    else {
        return Ok(None);
    };
    let gates: Vec<serde_json::Value> = engine
        .store
        .events(&task.id, 0, i64::MAX)
        .await?
        .into_iter()
        .filter(|e| e.kind == EventKind::Gate)
        .map(|e| e.data)
        .collect();
    let diff = match (commit, &task.base_commit, &task.repo_dir) {
        (Some(c), Some(base), Some(dir)) => diff_stat(dir, base, c).await,
        _ => "unknown".into(),
    };
    let input = judge::JudgeInput {
        model: &model,
        prompt: &task.prompt,
        final_message: result.unwrap_or(""),
        gates: &gates,
        diff_summary: &diff,
        endpoint: match &engine.gateway {
            Some(g) => Some(g.judge_endpoint(task)),
            None => engine.config.direct_judge_endpoint(),
        },
    };
    match judge::judge(&input).await {
        Ok(o) => {
            events.push(NewEvent::new(
                EventKind::Result,
                json!({ "judge": { "model": model, "verdict": o.verdict.as_str(), "reason": o.reason } }),
            ));
            Ok(Some(o))
        }
        Err(e) => {
            events.push(NewEvent::new(
                EventKind::Error,
                json!({ "message": format!("judge: {e}; the structured outcome stands") }),
            ));
            Ok(None)
        }
    }
}

pub(crate) async fn diff_stat(repo: &str, base: &str, commit: &str) -> String {
    let out = drover_sandbox::git_command()
        .args(["-C", repo, "diff", "--stat", base, commit])
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => {
            let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if s.is_empty() {
                "no changes".into()
            } else {
                excerpt(&s, Limit::Bytes(4000))
            }
        }
        _ => "unknown".into(),
    }
}

/// The terminal state an outcome puts a task in.
pub(crate) fn terminal_state(outcome: &Outcome) -> TaskState {
    match (&outcome.error_kind, outcome.verdict) {
        (Some(ErrorKind::Cancelled), _) => TaskState::Cancelled,
        (_, Verdict::Success) => TaskState::Succeeded,
        _ => TaskState::Failed,
    }
}

/// Structured signals only: exit status and the agent's own result fields. No text matching.
pub(crate) fn structured(
    adapter: &dyn Adapter,
    exit: &ExitInfo,
    result: Option<&serde_json::Value>,
    task: &TaskRecord,
) -> Outcome {
    if let Some(err) = &exit.spawn_error {
        let hint = adapter
            .capabilities()
            .missing_binary_hint
            .unwrap_or_default();
        return Outcome::fail(ErrorKind::AgentExit, format!("{err}{hint}"));
    }
    if !adapter.multi_turn() {
        return if exit.success() {
            Outcome::success("command exited 0")
        } else {
            Outcome::fail(ErrorKind::AgentExit, exit.describe())
        };
    }
    let Some(r) = result else {
        return Outcome::fail(
            ErrorKind::AgentExit,
            format!("{} before its turn ended", exit.describe()),
        );
    };
    let s = |k: &str| {
        r.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let is_error = r.get("is_error").and_then(|v| v.as_bool()).unwrap_or(false);
    let subtype = s("subtype");
    let stop_reason = s("stop_reason");
    let errors: Vec<String> = r
        .get("errors")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if stop_reason == "max_tokens" || stop_reason == "model_context_window_exceeded" {
        return Outcome::fail(
            ErrorKind::Truncated,
            format!("the model's answer was cut off ({stop_reason})"),
        );
    }
    if is_error || (!subtype.is_empty() && subtype != "success") {
        let kind = match subtype.as_str() {
            "error_max_budget_usd" => ErrorKind::BudgetExceeded,
            _ if r.get("api_error_status").is_some_and(|v| !v.is_null()) => {
                ErrorKind::ProviderError
            }
            _ => ErrorKind::AgentExit,
        };
        let text = if errors.is_empty() {
            task.result.clone().unwrap_or_default()
        } else {
            errors.join("; ")
        };
        return Outcome::fail(kind, format!("{subtype}: {text}"));
    }
    if !exit.success() && exit.code != Some(0) && task.turns_done < task.turns_sent {
        return Outcome::fail(ErrorKind::AgentExit, exit.describe());
    }
    Outcome::success("the agent finished its turn")
}

pub(crate) async fn last_result(
    engine: &Engine,
    id: &str,
) -> Result<Option<serde_json::Value>, StoreError> {
    last_of(engine, id, EventKind::Result).await
}

pub(crate) async fn last_text(engine: &Engine, id: &str) -> Result<Option<String>, StoreError> {
    Ok(last_of(engine, id, EventKind::Text)
        .await?
        .and_then(|d| d.get("text").and_then(|t| t.as_str()).map(String::from)))
}

pub(crate) async fn last_of(
    engine: &Engine,
    id: &str,
    kind: EventKind,
) -> Result<Option<serde_json::Value>, StoreError> {
    let mut after = 0;
    let mut found = None;
    loop {
        let page = engine.store.events(id, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        if let Some(e) = page.iter().rev().find(|e| e.kind == kind) {
            found = Some(e.data.clone());
        }
    }
    Ok(found)
}

/// Why the gateway refused the task's request: the message of its last budget refusal.
async fn budget_reason(engine: &Engine, id: &str) -> Result<String, StoreError> {
    let mut after = 0;
    let mut found = None;
    loop {
        let page = engine.store.events(id, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        let refusal = page
            .iter()
            .rev()
            .find(|e| crate::ledger::is_budget_refusal(e));
        if let Some(m) = refusal.and_then(|e| e.data["message"].as_str()) {
            found = Some(m.to_string());
        }
    }
    Ok(found.unwrap_or_else(|| "a budget is spent; the gateway refused the next request".into()))
}

pub(crate) fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    excerpt(line, Limit::Bytes(72))
}
