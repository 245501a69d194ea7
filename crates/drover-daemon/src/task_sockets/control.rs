//! `daemon.sock`: the task-scoped control endpoint. The admin API's routes behind
//! `api::scoped::filter` (only `drover lock` and reading this task), served like the admin
//! socket (`listen`: header timeout, bounded bodies) with at most
//! [`super::CONNECTIONS`] connections.

use crate::engine::Engine;
use std::sync::Arc;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

/// Serves `id`'s control endpoint on `listener` until `stop` is cancelled.
pub async fn serve(
    engine: Arc<Engine>,
    id: String,
    listener: UnixListener,
    stop: CancellationToken,
) {
    let app = crate::api::scoped_router(engine.clone(), &id);
    let tasks = engine.tasks.clone();
    crate::listen::serve_capped(
        listener,
        app,
        stop.cancelled_owned(),
        &tasks,
        super::CONNECTIONS,
    )
    .await;
}
