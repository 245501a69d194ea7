//! The loopback listener's two checks: the `Host` header ([`host`], against DNS rebinding: a
//! page of another site whose name was made to resolve to 127.0.0.1 sends its own name), and
//! the host owner's session cookie on `/v1/…` ([`owner`]).

use crate::api::auth::Principal;
use crate::api::ApiErr;
use crate::engine::Engine;
use crate::web::{csrf_ok, session_cookie, sessions::Who, ViaCookie};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use drover_types::ApiErrorKind;
use std::sync::Arc;

/// Whether `host` (a `Host` header) names this loopback listener on `port`.
pub fn host_allowed(host: &str, port: u16) -> bool {
    [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ]
    .iter()
    .any(|ok| ok.eq_ignore_ascii_case(host))
}

/// Refuses a request whose `Host` is not this listener's loopback name (421, one line).
pub async fn host(State(port): State<u16>, req: Request, next: Next) -> Response {
    let ok = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| host_allowed(h, port));
    if !ok {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!(
                "misdirected request: this dashboard answers only to Host 127.0.0.1:{port}, \
                 localhost:{port} or [::1]:{port}\n"
            ),
        )
            .into_response();
    }
    next.run(req).await
}

/// Routes of the loopback listener that need no login.
fn public(method: &Method, path: &str) -> bool {
    *method == Method::GET && matches!(path, "/v1/health" | "/v1/openapi.json" | "/metrics")
}

/// The state of [`owner`].
#[derive(Clone)]
pub struct Loopback {
    pub engine: Arc<Engine>,
    pub port: u16,
}

/// The API behind the loopback listener: public routes pass; every other needs the host
/// owner's session cookie (401 without), and `x-drover-csrf: 1` when it changes something
/// (403); then it runs as [`Principal::Owner`].
pub async fn owner(State(gate): State<Loopback>, mut req: Request, next: Next) -> Response {
    if public(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let id = session_cookie(req.headers(), gate.port);
    let who = id
        .as_deref()
        .and_then(|id| gate.engine.web.sessions.session(id));
    let (Some(Who::Owner), Some(id)) = (who, id) else {
        return ApiErr::new(
            ApiErrorKind::Unauthorized,
            "unauthorized: the dashboard needs a login",
            Some("run `drover web` on this host and open the URL it prints"),
        )
        .into_response();
    };
    if !csrf_ok(req.method(), req.headers()) {
        return crate::api::ApiErr::csrf_refused().into_response();
    }
    req.extensions_mut().insert(Principal::Owner);
    req.extensions_mut().insert(ViaCookie(id));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_of_the_port() {
        for ok in [
            "127.0.0.1:7421",
            "localhost:7421",
            "LOCALHOST:7421",
            "[::1]:7421",
        ] {
            assert!(host_allowed(ok, 7421), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            "localhost",
            "127.0.0.1:7422",
            "evil.example:7421",
            "127.0.0.1.evil.example:7421",
            "0.0.0.0:7421",
            "",
        ] {
            assert!(!host_allowed(bad, 7421), "{bad}");
        }
    }
}
