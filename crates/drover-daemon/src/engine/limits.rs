//! A task's cgroup (docs/design.md §11, limits): made with its limits before the shim starts
//! (the shim moves the agent's first process in), ended whole at a stop's KILL step and when
//! the agent is gone, read (peak memory, CPU time, OOM kills) and removed when the task ends;
//! groups of tasks that ended while no daemon ran are swept by the garbage collector. A leaf: it
//! uses nothing else of the engine but [`Engine`].

use super::Engine;
use drover_cgroup::Stats;
use drover_store::TaskRecord;
use drover_types::text::bytes;
use drover_types::{ErrorKind, Limits, Outcome};
use std::path::PathBuf;
use std::time::Duration;

/// How long ending a group may take before the engine goes on (and says so in its log).
const KILL_WAIT: Duration = Duration::from_secs(5);

/// A task's limits: what it asked for, else the config's `[sandbox]` defaults, field by field.
pub fn effective(defaults: &Limits, asked: &Limits) -> Limits {
    Limits {
        memory_bytes: asked.memory_bytes.or(defaults.memory_bytes),
        cpus: asked.cpus.or(defaults.cpus),
        pids: asked.pids.or(defaults.pids),
    }
}

/// Makes the task's group with its limits, before its shim is spawned: the `cgroup.procs`
/// files for `LaunchFile::cgroup_procs` (none where the host has no cgroups for the daemon and
/// the task asked for no limit). `Err`: one line saying why the task's limits cannot be
/// enforced — the task must not run without them.
///
/// An unconfined agent that starts a service shared with other tasks (`claude-bg`'s Claude
/// supervisor, `Adapter::starts_shared_service`) gets no group: ending its group would end the
/// service. Confined, the service is the task's own (it ends with the jail) and is limited.
pub async fn prepare(
    engine: &Engine,
    task: &TaskRecord,
    shared_service: bool,
) -> Result<Vec<PathBuf>, String> {
    if shared_service {
        return match drover_cgroup::Controller::ALL
            .into_iter()
            .find(|c| asked(&task.limits, *c))
        {
            Some(c) => Err(format!(
                "{} cannot be enforced for the {} agent: it starts a service shared with other \
                 tasks; run it without limits, or use the claude agent",
                c.flag(),
                task.agent
            )),
            None => Ok(vec![]),
        };
    }
    let (cgroups, id, limits) = (engine.cgroups.clone(), task.id.clone(), task.limits);
    let made = tokio::task::spawn_blocking(move || cgroups.create(&id, &limits))
        .await
        .map_err(|e| format!("making the task's cgroup: {e}"))?;
    match made {
        Ok(Some(group)) => Ok(group.procs_files()),
        Ok(None) => Ok(vec![]),
        Err(e) => Err(e.to_string()),
    }
}

fn asked(l: &Limits, c: drover_cgroup::Controller) -> bool {
    match c {
        drover_cgroup::Controller::Memory => l.memory_bytes.is_some(),
        drover_cgroup::Controller::Pids => l.pids.is_some(),
        drover_cgroup::Controller::Cpu => l.cpus.is_some(),
    }
}

/// Ends every process in the task's group (a stop's KILL step): also what left the agent's
/// session (`setsid`), ignores TERM, or forks as it dies.
pub async fn kill(engine: &Engine, id: &str) {
    let Some(group) = engine.cgroups.group(id) else {
        return;
    };
    let id = id.to_string();
    let ended = tokio::task::spawn_blocking(move || {
        let done = !group.exists() || group.kill(KILL_WAIT);
        (done, group.pids())
    })
    .await;
    if let Ok((false, left)) = ended {
        tracing::warn!(task = id.as_str(), "still alive after KILL: {left:?}");
    }
}

/// On every supervisor step: notes the group's memory where the host keeps no peak of its own
/// (v2 before Linux 5.19). One small file read.
pub fn sample(engine: &Engine, id: &str) {
    engine.cgroups.sample(id);
}

/// Once the agent is gone: ends whatever is left in its group, reads what the group used and
/// removes it. `None` when the task has no group.
pub async fn collect(engine: &Engine, id: &str) -> Option<Stats> {
    let group = engine.cgroups.group(id)?;
    let cgroups = engine.cgroups.clone();
    let task = id.to_string();
    tokio::task::spawn_blocking(move || {
        if !group.exists() {
            return None;
        }
        if !group.kill(KILL_WAIT) {
            tracing::warn!(
                task = task.as_str(),
                "still alive after KILL: {:?}",
                group.pids()
            );
        }
        let stats = cgroups.stats(&task, &group);
        if let Err(e) = group.remove() {
            tracing::warn!(task = task.as_str(), "cgroup kept: {e}");
        }
        Some(stats)
    })
    .await
    .ok()
    .flatten()
}

/// The OOM killer ended a process of the task's group and the agent failed: say so (a stop
/// asked for, a budget or a clock keep their own reason; an agent that got over a killed child
/// and succeeded keeps its success).
pub fn out_of_memory(task: &TaskRecord, stats: &Stats, outcome: &Outcome) -> Option<Outcome> {
    if stats.oom_kills == 0 || outcome.error_kind.is_none() || task.stop_requested {
        return None;
    }
    let limit = match task.limits.memory_bytes {
        Some(b) => format!("its limit is {} (--memory)", bytes(b)),
        None => "it hit the memory limit of the daemon's own cgroup".to_string(),
    };
    let peak = stats
        .peak_memory_bytes
        .map(|p| format!("; peak {}", bytes(p)))
        .unwrap_or_default();
    Some(Outcome::fail(
        ErrorKind::OutOfMemory,
        format!("the agent ran out of memory: {limit}{peak}"),
    ))
}

/// Removes the groups of tasks that are finished or unknown to the store: what a daemon that
/// died left behind (their processes are ended first). Each task is looked up when its group
/// is found, so a task started meanwhile keeps its group.
pub async fn sweep(engine: &Engine) {
    let cgroups = engine.cgroups.clone();
    let ids = tokio::task::spawn_blocking(move || cgroups.task_ids())
        .await
        .unwrap_or_default();
    for id in ids {
        if id.starts_with("probe-") {
            continue;
        }
        let stale = match engine.store.get_task(&id).await {
            Ok(t) => t.state.is_terminal(),
            Err(drover_store::StoreError::NotFound(_)) => true,
            Err(_) => false,
        };
        if stale {
            collect(engine, &id).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::task;
    use super::*;
    use drover_types::TaskState;

    #[test]
    fn a_tasks_flags_override_the_config_field_by_field() {
        let defaults = Limits {
            memory_bytes: Some(1 << 30),
            cpus: Some(2.0),
            pids: None,
        };
        let asked = Limits {
            cpus: Some(0.5),
            pids: Some(64),
            ..Limits::default()
        };
        assert_eq!(
            effective(&defaults, &asked),
            Limits {
                memory_bytes: Some(1 << 30),
                cpus: Some(0.5),
                pids: Some(64)
            }
        );
    }

    #[test]
    fn an_oom_kill_fails_the_agent_with_its_limit_and_peak() {
        let mut t = task(TaskState::Running);
        t.limits.memory_bytes = Some(256 << 20);
        let stats = Stats {
            peak_memory_bytes: Some(256 << 20),
            cpu_seconds: Some(1.0),
            oom_kills: 1,
        };
        let failed = Outcome::fail(ErrorKind::AgentExit, "exit 137");
        let o = out_of_memory(&t, &stats, &failed).map(|o| (o.error_kind, o.reason));
        assert_eq!(
            o,
            Some((
                Some(ErrorKind::OutOfMemory),
                "the agent ran out of memory: its limit is 256 MiB (--memory); peak 256 MiB"
                    .to_string()
            ))
        );
        // A success, a stop, no OOM: untouched.
        assert!(out_of_memory(&t, &stats, &Outcome::success("ok")).is_none());
        t.stop_requested = true;
        assert!(out_of_memory(&t, &stats, &failed).is_none());
        t.stop_requested = false;
        let calm = Stats {
            oom_kills: 0,
            ..stats
        };
        assert!(out_of_memory(&t, &calm, &failed).is_none());
    }
}
