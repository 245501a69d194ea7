//! A task's way to drover's git proxy ([`crate::git_proxy`]): `run/<id>/git.sock` (the socket identifies the task — no token),
//! reached from inside a confined sandbox through the jail's loopback forwarder
//! `127.0.0.1:`[`GIT_PORT`]. With `isolation = none` there is no network namespace to put a
//! forwarder in: the task gets its own loopback TCP port instead — any local process of the
//! host could use it while the task runs (as it could reach the unconfined agent itself).
//! The task's scope is read from the store on each request: its repo(s) on a configured forge,
//! push only `drover/<id>` (and below).

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::git_proxy::{relay, GitProxy, GIT_SOCK};

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
    let ctx = relay::Ctx::Task(proxy.clone(), engine.store.clone(), id.to_string());
    let tasks = engine.tasks.clone();
    let (app, s) = (relay::router(ctx.clone()), stop.clone());
    engine.tasks.spawn(async move {
        crate::listen::serve_capped(unix, app, s.cancelled_owned(), &tasks, super::CONNECTIONS)
            .await;
    });
    if let Some(tcp) = tcp {
        let tasks = engine.tasks.clone();
        let (app, s) = (relay::router(ctx), stop.clone());
        engine.tasks.spawn(async move {
            crate::listen::serve_capped(tcp, app, s.cancelled_owned(), &tasks, super::CONNECTIONS)
                .await;
        });
    }
    Ok(())
}
