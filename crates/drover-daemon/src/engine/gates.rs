//! Quality gates (`--verify CMD`): commands run in the sandbox after the agent's turn. A failing
//! gate's output tail goes back to the same session as a new message, up to `verify_rounds`
//! times; then the task fails with `gate_failed`. Tests passing is a fact; nothing here reads
//! the agent's prose.

use super::Engine;
use drover_agents::Adapter;
use drover_shim::{proc, ShimClient};
use drover_store::{StoreError, TaskPatch, TaskRecord};
use drover_types::{EventKind, GateStatus, NewEvent, TaskState};
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Bytes of a gate's output kept in its event and sent back to the agent.
const TAIL: usize = 4000;

pub struct GateRun {
    pub command: String,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    pub tail: String,
    /// Protected paths the task had changed, which this run saw at their base version.
    pub restored: Vec<String>,
}

impl GateRun {
    pub fn passed(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Runs every gate (stopping at the first failure) and records one `gate` event each.
pub async fn run_all(engine: &Engine, task: &TaskRecord) -> Result<Vec<GateRun>, StoreError> {
    let Some(dir) = task.sandbox.clone() else {
        return Ok(vec![GateRun {
            command: task.verify.first().cloned().unwrap_or_default(),
            exit_code: None,
            duration_ms: 0,
            tail: "the task has no sandbox to run gates in".into(),
            restored: vec![],
        }]);
    };
    let view = match super::protect::gate_view(engine, task).await {
        Ok(view) => view,
        Err(reason) => {
            let run = GateRun {
                command: task.verify.first().cloned().unwrap_or_default(),
                exit_code: None,
                duration_ms: 0,
                tail: reason.clone(),
                restored: vec![],
            };
            let ev = NewEvent::new(
                EventKind::Gate,
                json!({
                    "command": run.command, "exit_code": null, "duration_ms": 0, "passed": false,
                    "output_tail": run.tail, "round": task.gate_rounds + 1,
                    "protect": { "error": reason },
                }),
            );
            engine
                .update(&task.id, None, TaskPatch::new(), vec![ev])
                .await?;
            return Ok(vec![run]);
        }
    };
    let dir = view.as_ref().map_or_else(|| dir.into(), |v| v.path.clone());
    let protect = view.as_ref().map(super::protect::describe);
    let restored = view
        .as_ref()
        .map(|v| v.restored.iter().map(|c| c.to_string()).collect())
        .unwrap_or_default();
    let runs = run_in(engine, task, &dir, protect, restored).await;
    if let Some(view) = &view {
        super::protect::drop_view(engine, &task.id, view).await;
    }
    runs
}

async fn run_in(
    engine: &Engine,
    task: &TaskRecord,
    dir: &Path,
    protect: Option<serde_json::Value>,
    restored: Vec<String>,
) -> Result<Vec<GateRun>, StoreError> {
    let mut runs = vec![];
    for (i, command) in task.verify.iter().enumerate() {
        let log = engine
            .home
            .task(&task.id)
            .dir
            .join(format!("gate-{}.log", i + 1));
        let mut env = engine.config.inherited.for_gate();
        env.extend(super::agent_env::drover_env(engine, &task.id));
        env.push(super::trace::traceparent_env(engine, task).await);
        let gate_started = std::time::SystemTime::now();
        // Confined like the agent (the gates run its code): `drover jail --spec FILE -- sh`.
        let jail = match super::confine::confined(engine) {
            true => match gate_jail(engine, &task.id, dir, &mut env) {
                Ok(j) => Some(j),
                Err(e) => {
                    let tail = format!("the gates did not run: their jail: {e}");
                    runs.push(GateRun {
                        command: command.clone(),
                        exit_code: None,
                        duration_ms: 0,
                        tail,
                        restored: restored.clone(),
                    });
                    break;
                }
            },
            false => None,
        };
        let mut run = run_one(
            command,
            jail.as_ref(),
            dir,
            &log,
            &env,
            super::clocks::gate_budget(engine, task),
            stopped(engine, &task.id),
        )
        .await;
        run.restored = restored.clone();
        let mut data = json!({
            "command": run.command, "exit_code": run.exit_code, "duration_ms": run.duration_ms,
            "passed": run.passed(), "output_tail": run.tail, "round": task.gate_rounds + 1,
        });
        if let (Some(obj), Some(p)) = (data.as_object_mut(), &protect) {
            obj.insert("protect".into(), p.clone());
        }
        let mut attrs = vec![
            opentelemetry::KeyValue::new("drover.gate.command", run.command.clone()),
            opentelemetry::KeyValue::new("drover.gate.duration_ms", run.duration_ms as i64),
            opentelemetry::KeyValue::new("drover.gate.passed", run.passed()),
        ];
        if let Some(code) = run.exit_code {
            attrs.push(opentelemetry::KeyValue::new(
                "drover.gate.exit_code",
                i64::from(code),
            ));
        }
        let failed = (!run.passed()).then(|| match run.exit_code {
            Some(c) => format!("exit {c}"),
            None => "did not finish".to_string(),
        });
        super::trace::child_span(engine, task, "gate", gate_started, attrs, failed).await;
        let ev = NewEvent::new(EventKind::Gate, data);
        engine
            .update(&task.id, None, TaskPatch::new(), vec![ev])
            .await?;
        let passed = run.passed();
        runs.push(run);
        if !passed {
            break;
        }
    }
    Ok(runs)
}

/// Writes the gate's jail spec (no forwards) next to the task's files; `(drover, spec file)`.
fn gate_jail(
    engine: &Engine,
    id: &str,
    dir: &Path,
    env: &mut Vec<(String, String)>,
) -> std::io::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let spec = super::confine::jail_spec(engine, id, dir, env, None, false)?;
    let file = engine.home.task(id).dir.join("gate-jail.json");
    std::fs::write(
        &file,
        serde_json::to_vec(&spec).map_err(std::io::Error::other)?,
    )?;
    Ok((engine.config.exe.clone(), file))
}

async fn run_one(
    command: &str,
    jail: Option<&(std::path::PathBuf, std::path::PathBuf)>,
    dir: &Path,
    log: &Path,
    env: &[(String, String)],
    timeout: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> GateRun {
    let started = Instant::now();
    let done = |exit_code, tail: String| GateRun {
        command: command.to_string(),
        exit_code,
        duration_ms: started.elapsed().as_millis() as u64,
        tail,
        restored: vec![],
    };
    // Creating one empty file: small and bounded, fine on the async worker.
    let file = match std::fs::File::create(log) {
        Ok(f) => f,
        Err(e) => return done(None, format!("could not create {}: {e}", log.display())),
    };
    let Ok(file2) = file.try_clone() else {
        return done(None, "could not open the gate log".into());
    };
    let mut cmd = match jail {
        Some((exe, spec)) => {
            let mut c = tokio::process::Command::new(exe);
            c.arg("jail")
                .arg("--spec")
                .arg(spec)
                .arg("--")
                .arg("/bin/sh");
            c
        }
        None => tokio::process::Command::new("/bin/sh"),
    };
    // From an allow-list (see crate::child_env): a gate runs the agent's code and never sees
    // the daemon's secrets.
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(file2)
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return done(None, format!("could not start /bin/sh: {e}")),
    };
    let pgid = child.id().map(|p| p as i64);
    let waited = tokio::select! {
        w = tokio::time::timeout(timeout, child.wait()) => Some(w),
        _ = stop => None,
    };
    let Some(waited) = waited else {
        kill_group(pgid);
        // Reaps the killed shell; its status says nothing (the gate was stopped).
        let _ = child.wait().await;
        return done(
            None,
            format!("{}\n[drover: gate stopped with its task]", tail_of(log)),
        );
    };
    let status = match waited {
        Ok(Ok(st)) => st.code(),
        Ok(Err(e)) => return done(None, format!("waiting for the gate: {e}")),
        Err(_) => {
            kill_group(pgid);
            // Reaps the killed shell; its status says nothing (the gate timed out).
            let _ = child.wait().await;
            let tail = format!(
                "{}\n[drover: gate timed out after {} s]",
                tail_of(log),
                timeout.as_secs()
            );
            return done(None, tail);
        }
    };
    // Whatever the gate left running in its group goes too.
    kill_group(pgid);
    done(status, tail_of(log))
}

/// SIGKILL to a gate's process group (a group already gone is no error, see
/// `proc::signal_group`).
fn kill_group(pgid: Option<i64>) {
    if let Some(g) = pgid {
        if let Err(e) = proc::signal_group(g, nix::sys::signal::Signal::SIGKILL) {
            tracing::warn!("ending gate process group {g}: {e}");
        }
    }
}

/// Resolves when the task is asked to stop (or the daemon shuts down): a running gate must not
/// hold up `drover stop`, a budget stop or a shutdown.
async fn stopped(engine: &Engine, id: &str) {
    let poke = engine.poke(id);
    let stopping = engine.stopping();
    loop {
        if engine.is_stopping() {
            return;
        }
        if engine
            .store
            .get_task(id)
            .await
            .map(|t| t.stop_requested)
            .unwrap_or(true)
        {
            return;
        }
        tokio::select! {
            _ = poke.notified() => {}
            _ = stopping.cancelled() => {}
        }
    }
}

/// The last [`TAIL`] bytes of a gate's log. Reads only those (a seek, then at most 4 KB), so a
/// gate that printed gigabytes costs the async worker no more than a small read.
fn tail_of(path: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = size.saturating_sub(TAIL as u64);
    let mut bytes = Vec::with_capacity(TAIL);
    if f.seek(SeekFrom::Start(start)).is_err()
        || f.take(TAIL as u64).read_to_end(&mut bytes).is_err()
    {
        return String::new();
    }
    let mut s = String::from_utf8_lossy(&bytes).into_owned();
    if start > 0 {
        s.insert(0, '…');
    }
    s
}

/// One verification round for a multi-turn agent whose turn just ended: `verifying`, run the
/// gates, then either mark them passed, send the failure back (a new turn), or mark them failed.
pub async fn verify_turn(
    engine: &Engine,
    task: &TaskRecord,
    adapter: &dyn Adapter,
) -> Result<(), StoreError> {
    if task.state == TaskState::Running {
        engine
            .update(
                &task.id,
                Some(&[TaskState::Running]),
                TaskPatch::new().state(TaskState::Verifying, json!({})),
                vec![],
            )
            .await?;
    }
    let runs = run_all(engine, task).await?;
    if engine.store.get_task(&task.id).await?.stop_requested {
        // Stopped while verifying: no feedback round; the stop decides the outcome.
        let back = TaskPatch::new()
            .state(TaskState::Running, json!({}))
            .gate_status(Some(GateStatus::Failed));
        engine
            .update(&task.id, Some(&[TaskState::Verifying]), back, vec![])
            .await?;
        return Ok(());
    }
    let back = TaskPatch::new().state(TaskState::Running, json!({}));
    // Gates that pass only because protected paths were put back are a failed round too: the
    // agent is told which paths to restore.
    let Some(failed) = runs
        .iter()
        .find(|r| !r.passed())
        .or_else(|| runs.iter().find(|r| !r.restored.is_empty()))
    else {
        engine
            .update(
                &task.id,
                Some(&[TaskState::Verifying]),
                back.gate_status(Some(GateStatus::Passed)),
                vec![],
            )
            .await?;
        return Ok(());
    };
    let line = (task.gate_rounds < task.verify_rounds)
        .then(|| adapter.user_message(&feedback(failed)))
        .flatten();
    let lock = engine.stdin_lock(&task.id);
    let st = lock.lock().await;
    if let (Some(line), false) = (line, st.closed) {
        let client = ShimClient::new(engine.home.task(&task.id));
        if client.write_line(line).await.is_ok() {
            let ev = NewEvent::new(
                EventKind::Input,
                json!({ "message": feedback(failed), "by": "gate" }),
            );
            let patch = back.inc_gate_rounds().inc_turns_sent();
            engine
                .update(&task.id, Some(&[TaskState::Verifying]), patch, vec![ev])
                .await?;
            return Ok(());
        }
    }
    engine
        .update(
            &task.id,
            Some(&[TaskState::Verifying]),
            back.gate_status(Some(GateStatus::Failed)),
            vec![],
        )
        .await?;
    Ok(())
}

pub fn feedback(run: &GateRun) -> String {
    let code = run
        .exit_code
        .map(|c| c.to_string())
        .unwrap_or_else(|| "none".into());
    let mut msg = if run.passed() {
        "The quality gates passed, but only with the protected paths below put back.".to_string()
    } else {
        format!(
            "The quality gate `{}` failed (exit code {code}). Fix the problem so that it passes. \
             The end of its output:\n\n{}",
            run.command, run.tail
        )
    };
    if !run.restored.is_empty() {
        msg.push_str(&format!(
            "\n\nYou changed protected paths: {}. The gates always see them as they were at the \
             start, and a task that changes them fails. Restore them to their original content \
             and delete the files you added there.",
            run.restored.join(", ")
        ));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_the_last_bytes_of_the_log_only() {
        #![allow(clippy::unwrap_used)]
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("gate.log");
        assert_eq!(tail_of(&log), "", "no log yet");
        std::fs::write(&log, "short\n").unwrap();
        assert_eq!(tail_of(&log), "short\n");
        let long: String = (0..3000).map(|i| format!("{i:04}")).collect();
        std::fs::write(&log, &long).unwrap();
        let tail = tail_of(&log);
        assert_eq!(tail, format!("…{}", &long[long.len() - TAIL..]));
    }

    fn run(exit_code: Option<i32>, restored: &[&str]) -> GateRun {
        GateRun {
            command: "sh check.sh".into(),
            exit_code,
            duration_ms: 1,
            tail: "assertion failed".into(),
            restored: restored.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn feedback_names_the_protected_paths_to_restore() {
        let plain = feedback(&run(Some(1), &[]));
        assert!(
            plain.contains("`sh check.sh` failed (exit code 1)"),
            "{plain}"
        );
        assert!(!plain.contains("protected"), "{plain}");
        let tampered = feedback(&run(Some(0), &["check.sh (modified)"]));
        assert!(tampered.contains("passed, but only with"), "{tampered}");
        assert!(tampered.contains("check.sh (modified)"), "{tampered}");
        let both = feedback(&run(Some(1), &["tests/a.py (deleted)"]));
        assert!(both.contains("failed (exit code 1)") && both.contains("tests/a.py (deleted)"));
    }
}
