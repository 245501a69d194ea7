//! `GET /v1/tasks/{id}/diff` and `GET /v1/tasks/{id}/diff/file?path=&repo_dir=`: what a task
//! changed against its base commit (docs/design.md §10), read by [`drover_sandbox`]'s diff
//! (`Sandboxes::diff_files` / `diff_patch`: allow-listed git, no hooks, no drivers, a timeout).
//!
//! - While the task is active, its live sandbox (untracked files included); once it is over,
//!   the delivered `commit` in the repository (or mirror) it went to; a finished task whose
//!   work was never committed, but whose sandbox is kept, its sandbox. A multi-repo task: per
//!   checkout, each file naming its `repo_dir`.
//! - `path` must be relative and without `..` (else 400) and one of the changed files of that
//!   checkout (else 404, the same as a file that is not there). The patch is cut at 256 KiB.
//! - Team visibility is the task's (`api::access`); a task's own socket may read its own diff.
//! - Each read runs git over a whole checkout the agent fills (untracked files are hashed), on
//!   the daemon's CPU, outside the task's cgroup: at most [`DIFFS_AT_ONCE`] run daemon-wide (more
//!   wait) and at most [`DIFFS_PER_TASK`] per task (one more is 503 `busy`), so an agent calling
//!   its own diff in a loop cannot take the host's CPU.

use super::body::ApiQuery;
use super::ApiErr;
use crate::engine::Engine;
use axum::extract::{Path, State};
use axum::Json;
use drover_sandbox::{DiffOf, Sandbox};
use drover_store::TaskRecord;
use drover_types::web::{DiffPatch, TaskDiff};
use drover_types::ApiErrorKind;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

type ApiResult<T> = Result<T, ApiErr>;

/// Diffs read at once, daemon-wide; more wait for a turn.
pub const DIFFS_AT_ONCE: usize = 2;
/// Diffs of one task read or waiting at once (the dashboard's list and one file); one more is
/// refused (503 `busy`).
pub const DIFFS_PER_TASK: usize = 2;

static TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(DIFFS_AT_ONCE);
static PER_TASK: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

/// One of a task's [`DIFFS_PER_TASK`] places, given back on drop.
struct Place(String);

impl Drop for Place {
    fn drop(&mut self) {
        let mut m = PER_TASK.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.0) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.0);
            }
        }
    }
}

/// A diff's turn: its task's place and a daemon-wide permit.
struct Turn {
    _place: Place,
    _permit: tokio::sync::SemaphorePermit<'static>,
}

/// Waits for a turn to read `task`'s diff, or the 503 when that task already has
/// [`DIFFS_PER_TASK`] reads running or waiting.
async fn turn(task: &str) -> ApiResult<Turn> {
    let place = {
        let mut m = PER_TASK.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(task.to_string()).or_insert(0);
        if *n >= DIFFS_PER_TASK {
            return Err(ApiErr::new(
                ApiErrorKind::Busy,
                format!("busy: task {task}'s changes are already being read"),
                Some("try again when the running read has answered"),
            ));
        }
        *n += 1;
        Place(task.to_string())
    };
    let permit = TURNS
        .acquire()
        .await
        .map_err(|_| ApiErr::internal("the diff semaphore is closed"))?;
    Ok(Turn {
        _place: place,
        _permit: permit,
    })
}

/// One checkout to compare: its `repo_dir` label (`None`: the only one) and what to read.
enum Source {
    Live(Sandbox),
    Commits {
        repo_dir: PathBuf,
        base: String,
        commit: String,
    },
}

impl Source {
    fn of(&self) -> DiffOf<'_> {
        match self {
            Source::Live(sb) => DiffOf::Live(sb),
            Source::Commits {
                repo_dir,
                base,
                commit,
            } => DiffOf::Commits {
                repo_dir,
                base,
                commit,
            },
        }
    }
}

/// Where a task's changes are now, per checkout.
async fn sources(engine: &Engine, t: &TaskRecord) -> ApiResult<Vec<(Option<String>, Source)>> {
    let sandbox = || async {
        let sb = engine.sandboxes.load(&t.id).await?;
        Ok::<_, ApiErr>(sb.map(|sb| {
            if sb.members.is_empty() {
                vec![(None, Source::Live(sb))]
            } else {
                sb.members
                    .iter()
                    .map(|m| (Some(m.dir_name()), Source::Live(m.clone())))
                    .collect()
            }
        }))
    };
    if !t.state.is_terminal() {
        return Ok(sandbox().await?.unwrap_or_default());
    }
    let delivered: Vec<(Option<String>, Source)> = if t.repos.is_empty() {
        match (&t.repo_dir, &t.base_commit, &t.commit) {
            (Some(dir), Some(base), Some(commit)) => vec![(
                None,
                Source::Commits {
                    repo_dir: dir.into(),
                    base: base.clone(),
                    commit: commit.clone(),
                },
            )],
            _ => vec![],
        }
    } else {
        t.repos
            .iter()
            .filter_map(|r| {
                let (base, commit) = (r.base_commit.clone()?, r.commit.clone()?);
                let repo_dir = if drover_sandbox::is_url(&r.repo) {
                    engine.sandboxes.mirror_dir(&r.repo)
                } else {
                    PathBuf::from(&r.repo)
                };
                Some((
                    r.dir.clone(),
                    Source::Commits {
                        repo_dir,
                        base,
                        commit,
                    },
                ))
            })
            .collect()
    };
    if !delivered.is_empty() {
        return Ok(delivered);
    }
    Ok(sandbox().await?.unwrap_or_default())
}

/// A diff that could not be read: the checkout's state is the reason (409).
fn unreadable(e: drover_sandbox::SandboxError) -> ApiErr {
    ApiErr::new(
        ApiErrorKind::Conflict,
        format!("the task's changes cannot be read now: {e}"),
        Some("try again; `drover show ID` tells where the task's work is"),
    )
}

/// `GET /v1/tasks/{id}/diff`.
pub async fn files(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskDiff>> {
    let t = engine.store.find_task(&id).await?;
    let _turn = turn(&t.id).await?;
    let mut files = vec![];
    for (label, src) in sources(&engine, &t).await? {
        let mut got = engine
            .sandboxes
            .diff_files(src.of())
            .await
            .map_err(unreadable)?;
        for f in &mut got {
            f.repo_dir = label.clone();
        }
        files.extend(got);
    }
    Ok(Json(TaskDiff {
        base_commit: t.base_commit.clone(),
        commit: t.commit.clone(),
        files,
    }))
}

#[derive(Deserialize)]
pub struct FileQuery {
    path: String,
    repo_dir: Option<String>,
}

/// A path as the API takes it: relative, no `..`, `.` or empty component, no NUL or backslash.
pub(crate) fn check_path(path: &str) -> ApiResult<()> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains(['\0', '\\'])
        || path
            .split('/')
            .any(|c| c.is_empty() || c == ".." || c == ".");
    if bad {
        return Err(ApiErr::new(
            ApiErrorKind::Invalid,
            format!(
                "path {:?} is not a file of the task's checkout",
                drover_types::text::excerpt(path, drover_types::text::Limit::Chars(80))
            ),
            Some("give a path relative to the checkout, as GET /v1/tasks/{id}/diff lists it (no `..`, not absolute)"),
        ));
    }
    Ok(())
}

fn not_changed(path: &str) -> ApiErr {
    ApiErr::new(
        ApiErrorKind::NotFound,
        format!(
            "the task did not change {:?}",
            drover_types::text::excerpt(path, drover_types::text::Limit::Chars(80))
        ),
        Some("list the changed files with GET /v1/tasks/{id}/diff"),
    )
}

/// `GET /v1/tasks/{id}/diff/file?path=P[&repo_dir=D]`.
pub async fn file(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<FileQuery>,
) -> ApiResult<Json<DiffPatch>> {
    check_path(&q.path)?;
    if let Some(d) = &q.repo_dir {
        check_path(d)?;
    }
    let t = engine.store.find_task(&id).await?;
    let _turn = turn(&t.id).await?;
    let all = sources(&engine, &t).await?;
    let Some((_, src)) = all.iter().find(|(label, _)| *label == q.repo_dir) else {
        return Err(not_changed(&q.path));
    };
    let patch = engine
        .sandboxes
        .diff_patch(src.of(), &q.path)
        .await
        .map_err(unreadable)?
        .ok_or_else(|| not_changed(&q.path))?;
    Ok(Json(DiffPatch {
        path: q.path,
        patch: patch.patch,
        truncated: patch.truncated,
        bytes: patch.bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_and_stay_inside() {
        for ok in ["a", "src/main.rs", "dir/.hidden", "a..b", "with space/x"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/..",
            "./a",
            "a//b",
            "a/",
            "a\\..\\b",
            "a\0b",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }
}
