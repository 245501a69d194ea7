//! A sandbox's `origin` through drover's git proxy ([`crate::git_proxy`]): confined, the jail's
//! forwarder `127.0.0.1:`[`GIT_PORT`]; with `isolation = none`, the task's own loopback port.

use std::path::Path;

use drover_store::TaskRecord;
use drover_types::SandboxKind;

use super::Engine;
use crate::git_proxy::{GitProxy, GIT_PORT};

/// The URL the sandbox of `id` reaches `clone_url` at through the proxy.
pub fn origin_url(engine: &Engine, proxy: &GitProxy, id: &str, clone_url: &str) -> Option<String> {
    let port = match crate::engine::confine::confined(engine) {
        true => GIT_PORT,
        false => proxy.task_port(id)?,
    };
    Some(format!(
        "http://127.0.0.1:{port}/{}",
        crate::git_proxy::url_path(clone_url)?
    ))
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
