//! Pools: one prompt, N sessions at a time, each a fresh task; every finished slot is refilled
//! until the pool is stopped, reaches `--count`, or hits `--max-failures` consecutive failures
//! (then the notify command runs once and the pool stops dispatching).
//!
//! All pool state that matters after a crash is in the store: the pool row (state, launched,
//! streak start, notified) and its tasks (counters are derived from them). A slot is filled by
//! one transaction that checks the pool's live task count, so a restarted daemon never fills a
//! slot twice.

use super::{new_task_id, Engine};
use drover_store::{NewTask, PoolRecord, StoreError};
use drover_types::{Budget, FailurePolicy, PoolState};
use serde_json::json;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

/// Called by the scheduler on every wake-up.
pub async fn tick(engine: &Arc<Engine>) -> Result<(), StoreError> {
    for pool in engine.store.list_pools().await? {
        if pool.state != PoolState::Running {
            continue;
        }
        let stats = engine
            .store
            .pool_stats(&pool.name, engine.config.soft_fail_counts)
            .await?;
        if stats.streak >= pool.max_failures {
            streak_stop(engine, &pool, stats.streak, &stats.last_reasons).await?;
            continue;
        }
        if pool.count_total.is_some_and(|t| pool.launched >= t) {
            if stats.running == 0 {
                let done = engine
                    .store
                    .set_pool_state(&pool.name, PoolState::Done, Some("count reached"), false)
                    .await?;
                super::trace::pool_ended(engine, &done);
                engine
                    .store
                    .pool_event(&pool.name, "state", json!({ "state": PoolState::Done }))
                    .await?;
            }
            continue;
        }
        if engine.host.refusal().is_none() {
            fill(engine, &pool).await?;
        }
    }
    Ok(())
}

async fn fill(engine: &Arc<Engine>, pool: &PoolRecord) -> Result<(), StoreError> {
    let session_id_up_front =
        drover_agents::adapter(&pool.agent).is_ok_and(|a| a.capabilities().session_id_up_front);
    // The team's per-task cap holds for its pool's tasks too (docs/design.md §7).
    let team_cap = match pool.team.as_deref() {
        Some(t) => crate::teams::policy::team(engine.store.as_ref(), t)
            .await?
            .and_then(|t| t.max_usd_per_task),
        None => None,
    };
    let mut n = pool.launched;
    loop {
        n += 1;
        let resolved = match engine.sandboxes.resolve(&pool.repo, &pool.base_ref).await {
            Ok(r) => r,
            Err(e) => {
                engine
                    .store
                    .pool_event(&pool.name, "error", json!({ "message": e.to_string() }))
                    .await?;
                return Ok(());
            }
        };
        // A key's pool (one of a team) re-resolves its ref at each task: never to another
        // team's work.
        if let Some(team) = pool.team.as_deref() {
            let seen = crate::teams::policy::base_visible(
                engine.store.as_ref(),
                team,
                &resolved.repo_dir,
                &resolved.commit,
            )
            .await;
            if !matches!(seen, Ok(true)) {
                let message = format!("{}: no such ref in {}", pool.base_ref, pool.repo);
                engine
                    .store
                    .pool_event(&pool.name, "error", json!({ "message": message }))
                    .await?;
                return Ok(());
            }
        }
        let id = new_task_id();
        let task = NewTask {
            id: id.clone(),
            name: Some(format!("{}-{n}", pool.name)),
            agent: pool.agent.clone(),
            model: pool
                .model
                .clone()
                .or_else(|| engine.config.worker_model.clone()),
            repo: pool.repo.clone(),
            repo_dir: Some(resolved.repo_dir.display().to_string()),
            base_ref: pool.base_ref.clone(),
            base_commit: Some(resolved.commit),
            prompt: pool.prompt.replace("{n}", &n.to_string()),
            cmd: pool.cmd.clone(),
            verify: pool.verify.clone(),
            permissions: pool.permissions,
            // The pool's --max-usd is the whole pool's budget (enforced by the gateway); a
            // task's own is its team's per-task cap.
            budget: Budget {
                max_usd: team_cap,
                max_tokens: None,
            },
            session_id: session_id_up_front.then(|| uuid::Uuid::new_v4().to_string()),
            pool: Some(pool.name.clone()),
            team: pool.team.clone(),
            created_by: Some(format!("pool:{}", pool.name)),
            tags: Default::default(),
            verify_rounds: pool.verify_rounds,
            judge_model: pool.judge_model.clone(),
            timeout_secs: pool.timeout_secs,
            stall_timeout_secs: pool.stall_timeout_secs,
            runs_on: engine.runs_on(&pool.repo),
            protect: engine.config.protect_for(&pool.protect),
            limits: pool.limits,
            repos: vec![],
            pr: pool.pr.clone(),
            batch: None,
        };
        match engine.store.launch_pool_task(&pool.name, task).await? {
            Some(_) => engine.wake.notify_one(),
            None => return Ok(()),
        }
    }
}

/// K consecutive failures: stop dispatching, notify once.
async fn streak_stop(
    engine: &Arc<Engine>,
    pool: &PoolRecord,
    streak: i64,
    reasons: &[String],
) -> Result<(), StoreError> {
    let why = format!("{streak} consecutive failures");
    let failed = engine
        .store
        .set_pool_state(&pool.name, PoolState::Failed, Some(&why), false)
        .await?;
    super::trace::pool_ended(engine, &failed);
    engine
        .store
        .pool_event(
            &pool.name,
            "state",
            json!({ "state": PoolState::Failed, "reason": why, "reasons": reasons }),
        )
        .await?;
    engine.notify_changed();
    if pool.failure_policy == FailurePolicy::Hard {
        let engine = engine.clone();
        let name = pool.name.clone();
        let tracker = engine.tasks.clone();
        tracker.spawn(async move {
            if let Err(e) = stop_tasks(&engine, &name).await {
                tracing::warn!(pool = name.as_str(), "stopping the pool's tasks: {e}");
            }
        });
    }
    if !engine.store.mark_pool_notified(&pool.name).await? {
        return Ok(());
    }
    let Some(cmd) = pool.notify.clone() else {
        return Ok(());
    };
    let engine = engine.clone();
    let name = pool.name.clone();
    let reason = reasons.join("\n");
    let tracker = engine.tasks.clone();
    let env = notify_env(&engine);
    tracker.spawn(async move {
        let data = run_notify(&cmd, &env, &name, streak, &reason).await;
        if let Err(e) = engine.store.pool_event(&name, "notify", data).await {
            tracing::warn!(pool = name.as_str(), "recording the notify result: {e}");
        }
    });
    Ok(())
}

/// The notify command's environment, built like a gate's from the allow-list
/// (`crate::child_env`): the daemon's secrets (provider keys, cloud credentials, tokens) never
/// reach it — its output is stored in the pool's event, which anyone with the socket reads.
/// With drover's `PATH`, `DROVER_HOME` and `DROVER_BIN`, so it can call `drover`.
fn notify_env(engine: &Engine) -> Vec<(String, String)> {
    let mut env = engine.config.inherited.for_gate();
    env.extend(super::agent_env::host_env(engine));
    env
}

async fn run_notify(
    cmd: &str,
    env: &[(String, String)],
    pool: &str,
    streak: i64,
    reason: &str,
) -> serde_json::Value {
    let child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("DROVER_POOL", pool)
        .env("DROVER_STREAK", streak.to_string())
        .env("DROVER_REASON", reason)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => return json!({ "command": cmd, "exit_code": null, "error": e.to_string() }),
    };
    match tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            let start = text.len().saturating_sub(2000);
            let start = (start..text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(text.len());
            json!({ "command": cmd, "exit_code": out.status.code(), "output_tail": &text[start..] })
        }
        Ok(Err(e)) => json!({ "command": cmd, "exit_code": null, "error": e.to_string() }),
        Err(_) => json!({ "command": cmd, "exit_code": null, "error": "timed out after 60 s" }),
    }
}

/// Stops every task of the pool that has not ended: queued ones first (so nothing new starts),
/// then the running ones, all at once. Their work is committed as for any stop.
pub async fn stop_tasks(engine: &Arc<Engine>, pool: &str) -> Result<(), StoreError> {
    let tasks = engine
        .store
        .list_tasks(drover_store::ListFilter::All, "")
        .await?;
    let (queued, running): (Vec<_>, Vec<_>) = tasks
        .into_iter()
        .filter(|t| t.pool.as_deref() == Some(pool) && !t.state.is_terminal())
        .partition(|t| t.state == drover_types::TaskState::Queued);
    for t in &queued {
        if let Err(e) = super::control::stop(engine, &t.id).await {
            tracing::warn!(task = t.id.as_str(), "pool stop: {e}");
        }
    }
    // All at once: each stop escalates over seconds.
    let mut stops = tokio::task::JoinSet::new();
    for t in running {
        let engine = engine.clone();
        stops.spawn(async move { super::control::stop(&engine, &t.id).await });
    }
    while let Some(stopped) = stops.join_next().await {
        match stopped {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(pool, "pool stop: {e}"),
            Err(e) => tracing::warn!(pool, "pool stop: {e}"),
        }
    }
    Ok(())
}
