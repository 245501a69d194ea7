//! A multi-repo task's `repos` in `POST /v1/tasks` (docs/design.md §9): a list of repository
//! strings, each taken exactly like `repo` (forge resolution through `Engine::repo_source`, the
//! key's and the team's repository checks, resolution of `ref` at creation); `repo`, when given
//! too, must be `repos[0]`. At most [`MAX_REPOS`]; each checkout gets a distinct directory name.

use super::auth::Principal;
use super::ApiErr;
use crate::engine::Engine;
use drover_sandbox::MAX_REPOS;
use drover_store::NewTask;
use drover_types::{ApiErrorKind, RunRequest, TaskRepo};
use std::collections::HashSet;

/// Makes `repo` and `repos` agree (400 when they cannot): `repo` defaults to `repos[0]`; a
/// single-entry `repos` is an ordinary one-repository task (`repos` cleared).
pub fn normalize(req: &mut RunRequest) -> Result<(), ApiErr> {
    if req.repos.is_empty() {
        if req.repo.trim().is_empty() {
            return Err(ApiErr::new(
                ApiErrorKind::Invalid,
                "missing field `repo`",
                Some("send {\"repo\": …, \"task\": …}, or {\"repos\": [A, B], \"task\": …} (docs/design.md §7, §9)"),
            ));
        }
        return Ok(());
    }
    if req.repos.len() > MAX_REPOS {
        return Err(ApiErr::new(
            ApiErrorKind::Invalid,
            format!(
                "repos: {} repositories; a task holds at most {MAX_REPOS}",
                req.repos.len()
            ),
            Some("split the work into several tasks (or a batch: one task per repository)"),
        ));
    }
    if let Some((i, _)) = req
        .repos
        .iter()
        .enumerate()
        .find(|(_, r)| r.trim().is_empty())
    {
        return Err(ApiErr::invalid(format!("repos[{i}] is empty")));
    }
    if req.repo.is_empty() {
        req.repo = req.repos[0].clone();
    } else if req.repo != req.repos[0] {
        return Err(ApiErr::new(
            ApiErrorKind::Invalid,
            format!("repo {:?} is not repos[0] {:?}", req.repo, req.repos[0]),
            Some("leave `repo` out, or make it the first of `repos`"),
        ));
    }
    if req.repos.len() == 1 {
        req.repos.clear();
    }
    Ok(())
}

/// What the task stores for `repos[1..]` (forge repositories as their clone URL), each checked
/// for the caller (a key: no URL of this host or a private network) and the team (its
/// `allowed_repos`) before anything is cloned or fetched. Refusals name the entry.
pub async fn sources(
    engine: &Engine,
    principal: &Principal,
    req: &RunRequest,
) -> Result<Vec<String>, ApiErr> {
    let mut out = Vec::new();
    for (i, spec) in req.repos.iter().enumerate().skip(1) {
        let named = |e: ApiErr| name(e, i, spec);
        let src = engine
            .repo_source(spec)
            .map_err(|e| named(ApiErr::invalid(e.to_string())))?;
        super::access::check_repo_on(engine, principal, &src).map_err(named)?;
        super::access::check_team_repo(engine, req.team.as_deref(), &src)
            .await
            .map_err(named)?;
        out.push(src);
    }
    Ok(out)
}

/// Resolves `others` (from [`sources`]) at the task's `base_ref` and fills `task.repos`: the
/// task's own repository first, then each other, with its base commit and checkout directory.
/// Refused (422, naming the entry): a repository that does not resolve, a ref it lacks (or a key
/// may not see), the same repository twice, protected globs (they are not applied per checkout).
pub async fn fill(
    engine: &Engine,
    principal: &Principal,
    task: &mut NewTask,
    others: &[String],
) -> Result<(), ApiErr> {
    if others.is_empty() {
        return Ok(());
    }
    if !task.protect.is_empty() {
        return Err(ApiErr::new(
            ApiErrorKind::InvalidField,
            format!(
                "protected paths ({}) apply to one repository; a task of {} repositories cannot hold them",
                task.protect.join(", "),
                others.len() + 1
            ),
            Some("leave --protect out (and the daemon's `protect` list empty), or run one task per repository"),
        ));
    }
    let first_dir = task.repo_dir.clone().unwrap_or_default();
    let mut seen: HashSet<String> = HashSet::from([canonical(&first_dir)]);
    let mut taken = HashSet::new();
    let first = drover_sandbox::checkout_name(&task.repo, first_dir.as_ref(), &taken);
    taken.insert(first.clone());
    let mut repos = vec![TaskRepo {
        repo: task.repo.clone(),
        base_ref: task.base_ref.clone(),
        branch: format!("drover/{}", task.id),
        commit: None,
        base_commit: task.base_commit.clone(),
        dir: Some(first),
    }];
    for (k, src) in others.iter().enumerate() {
        let i = k + 1;
        let named = |e: ApiErr| super::task_request::as_field_error(name(e, i, src));
        let resolved = engine
            .sandboxes
            .resolve(src, &task.base_ref)
            .await
            .map_err(|e| named(e.into()))?;
        super::access::check_base(
            engine,
            principal,
            src,
            &task.base_ref,
            &resolved.repo_dir,
            &resolved.commit,
        )
        .await
        .map_err(named)?;
        if !seen.insert(canonical(&resolved.repo_dir.display().to_string())) {
            return Err(named(ApiErr::invalid(
                "this repository is already one of the task's; give each repository once",
            )));
        }
        let dir = drover_sandbox::checkout_name(src, &resolved.repo_dir, &taken);
        taken.insert(dir.clone());
        repos.push(TaskRepo {
            repo: src.clone(),
            base_ref: task.base_ref.clone(),
            branch: format!("drover/{}", task.id),
            commit: None,
            base_commit: Some(resolved.commit.clone()),
            dir: Some(dir),
        });
    }
    task.repos = repos;
    Ok(())
}

/// After an id change (a retried insert), the branches follow the id.
pub fn rename(task: &mut NewTask) {
    let branch = format!("drover/{}", task.id);
    for r in &mut task.repos {
        r.branch = branch.clone();
    }
}

fn canonical(dir: &str) -> String {
    std::fs::canonicalize(dir)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| dir.to_string())
}

/// The refusal of one entry, naming it.
fn name(mut e: ApiErr, i: usize, spec: &str) -> ApiErr {
    e.body.error = format!("repos[{i}] {spec:?}: {}", e.body.error);
    e
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn req(repo: &str, repos: &[&str]) -> RunRequest {
        RunRequest {
            repo: repo.into(),
            repos: repos.iter().map(|r| r.to_string()).collect(),
            prompt: "p".into(),
            ..Default::default()
        }
    }

    #[test]
    fn repo_and_repos_must_agree() {
        let mut r = req("", &["/a", "/b"]);
        normalize(&mut r).unwrap();
        assert_eq!(r.repo, "/a");
        assert_eq!(r.repos, ["/a", "/b"]);
        let mut r = req("/a", &["/a", "/b"]);
        normalize(&mut r).unwrap();
        let e = normalize(&mut req("/b", &["/a", "/b"])).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert!(e.body.error.contains("repos[0]"), "{}", e.body.error);
        let mut r = req("", &["/a"]);
        normalize(&mut r).unwrap();
        assert!(r.repos.is_empty());
        assert_eq!(r.repo, "/a");
        let many: Vec<String> = (0..17).map(|i| format!("/r{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let e = normalize(&mut req("", &many)).unwrap_err();
        assert!(e.body.error.contains("at most 16"), "{}", e.body.error);
        assert!(normalize(&mut req("", &[])).is_err());
        assert!(normalize(&mut req("", &["/a", " "])).is_err());
    }
}
