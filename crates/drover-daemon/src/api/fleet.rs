//! `GET /v1/fleet` and `GET /v1/fleet/events`: the dashboard's fleet view
//! ([`drover_types::web::FleetSnapshot`]; docs/design.md §10), from the one shared state of
//! [`crate::engine::fleet`]. A key sees its team's cards only (as `GET /v1/tasks`); a task's own
//! socket may not read the fleet ([`super::scoped`]).

use super::auth::Principal;
use super::ApiErr;
use crate::engine::fleet::{FleetFeed, FleetState};
use crate::engine::Engine;
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Heartbeat comments on an idle stream (as the task events stream).
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How often an open stream of an API key re-checks that the key is still valid.
const KEY_RECHECK: Duration = Duration::from_secs(5);

/// `GET /v1/fleet`: the fleet now, as the caller may see it.
pub async fn snapshot(
    State(engine): State<Arc<Engine>>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiErr> {
    let state = FleetFeed::current(&engine).await?;
    let body = state.json(principal.team());
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}

/// `GET /v1/fleet/events`: Server-Sent Events, `event: snapshot`, `id:` the version, `data:`
/// the caller's [`drover_types::web::FleetSnapshot`]: one at once, then one after each change
/// (at most a few a second; a slow reader skips to the newest). Heartbeat comments every 15 s;
/// the stream ends when the daemon stops (or the key stops being valid, or the dashboard's
/// session it was opened with ends: logout, its 12 hours).
pub async fn events(
    State(engine): State<Arc<Engine>>,
    Extension(principal): Extension<Principal>,
    cookie: Option<Extension<crate::web::ViaCookie>>,
) -> Response {
    let rx = FleetFeed::follow(&engine);
    let follower = Follower {
        // `drover_sse_followers{stream="fleet"}` counts this stream until it is dropped.
        _counted: engine
            .telemetry
            .metrics
            .sse_follower(crate::telemetry::labels::SseStream::Fleet),
        rx,
        engine,
        team: principal.team().map(str::to_string),
        key: principal.key_id().map(str::to_string),
        session: cookie.map(|Extension(c)| c),
        sent: None,
    };
    let stream = futures::stream::unfold(follower, |mut f| async move {
        let ev = f.next().await?;
        Some((Ok::<_, Infallible>(ev), f))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT))
        .into_response()
}

/// One follower: its receiver of the shared state and what it last sent.
struct Follower {
    _counted: crate::telemetry::metrics::Follower,
    rx: watch::Receiver<Option<Arc<FleetState>>>,
    engine: Arc<Engine>,
    team: Option<String>,
    key: Option<String>,
    /// The dashboard's session the stream was opened with (it ends with it).
    session: Option<crate::web::ViaCookie>,
    sent: Option<u64>,
}

impl Follower {
    /// The next snapshot to send, or `None`: the stream ends.
    async fn next(&mut self) -> Option<SseEvent> {
        let stopping = self.engine.stopping();
        loop {
            if self.engine.is_stopping() {
                return None;
            }
            let current = self.rx.borrow_and_update().clone();
            if let Some(state) = current.filter(|s| Some(s.version) != self.sent) {
                self.sent = Some(state.version);
                let data = state.json(self.team.as_deref());
                return Some(
                    SseEvent::default()
                        .event("snapshot")
                        .id(state.version.to_string())
                        .data(&*data),
                );
            }
            tokio::select! {
                r = self.rx.changed() => if r.is_err() { return None },
                _ = stopping.cancelled() => return None,
                _ = tokio::time::sleep(KEY_RECHECK), if self.key.is_some() || self.session.is_some() => {
                    if !crate::web::session_alive(&self.engine.web, self.session.as_ref())
                        || !self.key_usable().await
                    {
                        return None;
                    }
                }
            }
        }
    }

    async fn key_usable(&self) -> bool {
        let Some(k) = &self.key else {
            return true;
        };
        matches!(
            self.engine.store.key(k).await,
            Ok(Some(info)) if super::access::key_usable(&info, &drover_store::now())
        )
    }
}
