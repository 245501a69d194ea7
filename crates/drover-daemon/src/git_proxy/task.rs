//! A task's way to the proxy: `run/<id>/git.sock` (the socket identifies the task — no token),
//! reached from inside a confined sandbox through the jail's loopback forwarder
//! `127.0.0.1:`[`GIT_PORT`]. With `isolation = none` there is no network namespace to put a
//! forwarder in: the task gets its own loopback TCP port instead — any local process of the
//! host could use it while the task runs (as it could reach the unconfined agent itself).
//! The task's scope is read from the store on each request: its repo(s) on a configured forge,
//! push only `drover/<id>` (and below).

use std::path::Path;
use std::sync::Arc;

use drover_store::TaskRecord;
use drover_types::SandboxKind;
use tokio_util::sync::CancellationToken;

use super::{relay, GitProxy, Scope, GIT_PORT, GIT_SOCK};
use crate::engine::Engine;

/// The scope of task `task`: its repos on a configured forge (None: none is).
pub fn scope(proxy: &GitProxy, task: &TaskRecord) -> Option<Scope> {
    let repos: Vec<_> = task
        .repo_list()
        .iter()
        .filter_map(|r| proxy.repo(&r.repo))
        .collect();
    (!repos.is_empty()).then(|| Scope {
        repos,
        push_task: Some(task.id.clone()),
    })
}

/// Serves `id`'s git socket in `dir` (and, unconfined, its loopback port) until `stop`.
pub fn open(
    engine: &Arc<Engine>,
    proxy: &Arc<GitProxy>,
    id: &str,
    dir: &Path,
    stop: &CancellationToken,
) -> std::io::Result<()> {
    let path = dir.join(GIT_SOCK);
    let _ = std::fs::remove_file(&path);
    let unix = tokio::net::UnixListener::bind(&path)?;
    let tcp = match crate::engine::confine::confined(engine) {
        true => None,
        false => {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.set_nonblocking(true)?;
            proxy.set_task_port(id, Some(l.local_addr()?.port()));
            Some(tokio::net::TcpListener::from_std(l)?)
        }
    };
    let ctx = relay::Ctx::Task(proxy.clone(), engine.clone(), id.to_string());
    let tasks = engine.tasks.clone();
    let (app, s) = (relay::router(ctx.clone()), stop.clone());
    engine.tasks.spawn(async move {
        crate::api::listen::serve_capped(
            unix,
            app,
            s.cancelled_owned(),
            &tasks,
            crate::task_sockets::CONNECTIONS,
        )
        .await;
    });
    if let Some(tcp) = tcp {
        let tasks = engine.tasks.clone();
        let (app, s) = (relay::router(ctx), stop.clone());
        engine.tasks.spawn(async move {
            crate::api::listen::serve_capped(
                tcp,
                app,
                s.cancelled_owned(),
                &tasks,
                crate::task_sockets::CONNECTIONS,
            )
            .await;
        });
    }
    Ok(())
}

/// The object directories `checkout`'s git borrows from (`.git/objects/info/alternates`),
/// as they exist on disk.
pub fn alternates(checkout: &Path) -> Vec<std::path::PathBuf> {
    let file = checkout.join(".git/objects/info/alternates");
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('/'))
        .filter_map(|l| std::fs::canonicalize(l).ok())
        .collect()
}

/// The URL the sandbox of `id` reaches `clone_url` at through the proxy.
pub fn origin_url(engine: &Engine, proxy: &GitProxy, id: &str, clone_url: &str) -> Option<String> {
    let port = match crate::engine::confine::confined(engine) {
        true => GIT_PORT,
        false => proxy.task_port(id)?,
    };
    Some(format!(
        "http://127.0.0.1:{port}/{}",
        super::url_path(clone_url)?
    ))
}

/// After a daemon restart re-opened `id`'s sockets: an unconfined task's loopback port is a new
/// one, so its sandbox's `origin` is pointed at it again (a confined task's stays
/// `127.0.0.1:GIT_PORT`).
pub async fn reopened(engine: Arc<Engine>, id: String) {
    if engine.git_proxy.is_none() || crate::engine::confine::confined(&engine) {
        return;
    }
    let (Ok(task), Ok(Some(sb))) = (
        engine.store.get_task(&id).await,
        engine.sandboxes.load(&id).await,
    ) else {
        return;
    };
    crate::engine::workspace::set_origins(&engine, &task, &sb).await;
}

/// Points the sandbox's `origin` at the proxy (task `task`, repo `clone_url`, checkout
/// `checkout`): `git fetch`, `git pull`, `git push origin HEAD:drover/<id>` work from inside and
/// `.git/config` holds no credential. Overlay sandboxes only: a worktree's config is the
/// mirror's own (shared), left alone.
pub async fn set_origin(
    engine: &Engine,
    task: &TaskRecord,
    checkout: &Path,
    kind: SandboxKind,
    clone_url: &str,
) {
    let Some(proxy) = engine.git_proxy.as_ref() else {
        return;
    };
    if kind != SandboxKind::Overlay {
        return;
    }
    let Some(repo) = proxy.repo(clone_url) else {
        return;
    };
    let Some(url) = origin_url(engine, proxy, &task.id, &repo.clone_url) else {
        return;
    };
    for args in [
        vec!["config", "remote.origin.url", url.as_str()],
        vec![
            "config",
            "--replace-all",
            "remote.origin.fetch",
            "+refs/heads/*:refs/remotes/origin/*",
        ],
    ] {
        let out = drover_sandbox::git_command()
            .arg("-C")
            .arg(checkout)
            .args(&args)
            .output()
            .await;
        if !out.as_ref().is_ok_and(|o| o.status.success()) {
            tracing::warn!(task = %task.id, "setting the sandbox's origin failed");
            return;
        }
    }
}
