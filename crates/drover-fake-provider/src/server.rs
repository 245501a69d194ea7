//! Serving: the accept loop (hyper HTTP/1 per connection), the running handle, the CLI entry.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

use crate::handlers::{infallible, router, AppState, DropConnection};
use crate::hold::Holds;
use crate::record::{Log, RequestRecord};
use crate::scenario::ScenarioSet;
use crate::Error;

/// Env var naming a directory where every request (headers without keys, body) is dumped as JSON.
pub const DUMP_DIR_ENV: &str = "DROVER_FAKE_PROVIDER_DUMP_DIR";

/// The error a connection's service returns to make hyper close it without answering.
#[derive(Debug, thiserror::Error)]
#[error("scripted connection drop")]
struct ScriptedDrop;

/// Namespace for starting a fake provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct FakeProvider;

impl FakeProvider {
    /// Binds `addr` (port 0 picks a free port) and serves `set` in a background task.
    pub async fn start(set: ScenarioSet, addr: SocketAddr) -> Result<RunningProvider, Error> {
        let listener = TcpListener::bind(addr).await.map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
        let log = Log::default();
        let holds = Holds::default();
        let (tx, rx) = oneshot::channel::<()>();
        let state = state(set, log.clone(), holds.clone());
        let task = tokio::spawn(serve_state(listener, state, async move {
            let _ = rx.await;
        }));
        Ok(RunningProvider {
            addr,
            log,
            holds,
            stop: Some(tx),
            task: Some(task),
        })
    }

    /// Serves `set` on `listener` until `shutdown` resolves. See [`serve`].
    pub async fn serve(
        listener: TcpListener,
        set: ScenarioSet,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        serve(listener, set, shutdown).await
    }
}

/// Serves `set` on `listener` until `shutdown` resolves; open connections are then cut.
pub async fn serve(
    listener: TcpListener,
    set: ScenarioSet,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    serve_state(
        listener,
        state(set, Log::default(), Holds::default()),
        shutdown,
    )
    .await
}

fn state(set: ScenarioSet, log: Log, holds: Holds) -> AppState {
    AppState {
        set: Arc::new(set),
        log,
        dump_dir: std::env::var_os(DUMP_DIR_ENV).map(PathBuf::from),
        dump_seq: Arc::new(AtomicU64::new(0)),
        holds,
    }
}

async fn serve_state(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let app = router(state);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve_connection(stream, app.clone()));
                }
                Err(e) => {
                    tracing::warn!("fake provider: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
    Ok(())
}

async fn serve_connection(stream: tokio::net::TcpStream, app: Router) {
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let app = app.clone();
        async move {
            let resp = infallible(app.oneshot(req).await);
            if resp.extensions().get::<DropConnection>().is_some() {
                Err(ScriptedDrop)
            } else {
                Ok(resp)
            }
        }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    if let Err(e) = conn.await {
        tracing::debug!("fake provider: connection ended: {e}");
    }
}

/// A fake provider serving in the background. Dropping it stops the server.
#[derive(Debug)]
pub struct RunningProvider {
    addr: SocketAddr,
    log: Log,
    holds: Holds,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), Error>>>,
}

impl RunningProvider {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, for `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request served so far, in order of arrival.
    pub fn log(&self) -> Vec<RequestRecord> {
        self.log.records()
    }

    /// Releases the held turns named `name` (see [`crate::hold`]).
    pub fn release(&self, name: &str) {
        self.holds.release(name);
    }

    /// The holds: which names are released, how many requests wait on each.
    pub fn holds(&self) -> &Holds {
        &self.holds
    }

    /// Forgets the log and the attempt counters.
    pub fn clear_log(&self) {
        self.log.clear();
    }

    /// Stops accepting, cuts open connections and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningProvider {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The `drover fake-provider` entry: loads the file, binds, prints `listening on ADDR` as the
/// first stdout line, and serves until Ctrl-C (or the process is killed).
pub async fn run_cli(scenarios_path: &Path, addr: SocketAddr) -> Result<(), Error> {
    use std::io::Write;
    let set = ScenarioSet::load(scenarios_path)?;
    let listener = TcpListener::bind(addr).await.map_err(Error::Bind)?;
    let local = listener.local_addr().map_err(Error::Bind)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {local}").map_err(Error::Io)?;
    out.flush().map_err(Error::Io)?;
    drop(out);
    serve(listener, set, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
