//! The end-of-task push (docs/design.md §9): after a successful task's commit is delivered to
//! the mirror, `drover/<id>` goes to each of its repos that is on a configured forge, through
//! drover's git proxy with a capability for that repo and that branch only
//! (`git push --atomic <capability url> +drover/<id>:refs/heads/drover/<id>`: a force inside
//! drover's own branch). Atomic per repo: the commit is there, or the task fails with
//! `git_error` and a reason of one line saying why (the permission the token lacks, a token the
//! forge refused even after a refresh); the work stays on `drover/<id>` in the mirror. PR
//! opening runs after this succeeds.

use drover_store::TaskRecord;

use super::Engine;
use crate::git_proxy::{Refused, Scope};
use drover_forge::push_permission_hint;

/// Why a push failed: one line, with a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PushFailure {
    pub reason: String,
}

/// Pushes `drover/<id>` of every repo of `task` on a configured forge. Nothing to do (no forge
/// repo, no proxy): Ok.
pub(crate) async fn push_task(engine: &Engine, task: &TaskRecord) -> Result<(), PushFailure> {
    let Some(proxy) = engine.git_proxy.as_ref() else {
        return Ok(());
    };
    for entry in task.repo_list() {
        let Some(repo) = proxy.repo(&entry.repo) else {
            continue;
        };
        // The mirror on this host (where finishing delivered the branch), whichever worker
        // created the task.
        let dir = engine
            .sandboxes
            .mirror_dir(&entry.repo)
            .display()
            .to_string();
        let branch = entry.branch.clone();
        let kept = format!("the work stays on {branch} in drover's mirror {dir}");
        let Some(cap) = proxy.capability(Scope {
            repos: vec![repo.clone()],
            push_task: Some(task.id.clone()),
        }) else {
            return Err(PushFailure {
                reason: format!("pushing {branch} to {}: not a clone URL; {kept}", repo.path),
            });
        };
        let out = drover_sandbox::git_command()
            .arg("-C")
            .arg(&dir)
            .args(["push", "--atomic", "--porcelain", &cap.url])
            .arg(format!("+refs/heads/{branch}:refs/heads/{branch}"))
            .stdin(std::process::Stdio::null())
            .output()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                return Err(PushFailure {
                    reason: format!("pushing {branch} to {}: git: {e}; {kept}", repo.path),
                })
            }
        };
        if out.status.success() {
            tracing::info!(task = %task.id, repo = %repo.path, "pushed {branch}");
            continue;
        }
        let why = match cap.capability.refused() {
            Some(Refused::Forbidden) => format!(
                "the forge refused the push (403): {}",
                push_permission_hint(repo.kind)
            ),
            Some(Refused::Unauthorized) => format!(
                "the forge refused drover's token even after a refresh (check [forges.{}])",
                repo.forge
            ),
            Some(Refused::Credential(e)) => e,
            Some(Refused::Unreachable(e)) => format!("the forge could not be reached: {e}"),
            None => git_said(&out.stdout, &out.stderr),
        };
        return Err(PushFailure {
            reason: format!("pushing {branch} to {} failed: {why}; {kept}", repo.path),
        });
    }
    Ok(())
}

/// git's own word on a failed push: the rejected ref's line, else stderr's last line; never the
/// capability URL.
fn git_said(stdout: &[u8], stderr: &[u8]) -> String {
    let out = String::from_utf8_lossy(stdout);
    let err = String::from_utf8_lossy(stderr);
    let line = out
        .lines()
        .find(|l| l.starts_with('!'))
        .or_else(|| err.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("git push failed");
    let line = line.replace('\t', " ");
    match line.find("http://127.0.0.1:") {
        Some(i) => format!("{}<drover git proxy>", &line[..i]),
        None => line,
    }
}
