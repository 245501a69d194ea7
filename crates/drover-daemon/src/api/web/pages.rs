//! The pages both doors serve: `/` (the dashboard's shell), `/ui/*` (its files), `/login`
//! (a one-time token, or — on the team listener — an API key typed into a form) and `/logout`.
//!
//! Every answer carries the security headers ([`headers`]): a Content-Security-Policy allowing
//! only this origin's scripts, styles and connections (no inline script, no framing),
//! `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`; `/login` adds
//! `Cache-Control: no-store`. `GET /login?token=…` answers a redirect to `/`, so the token leaves
//! the address bar (and the history's newest entry); nothing logs `/login`'s query string.

use crate::engine::Engine;
use crate::web::sessions::Who;
use crate::web::{clear_cookie, csrf_ok, set_cookie};
use axum::body::Bytes;
use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// The Content-Security-Policy of every page.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' \
                       data:; connect-src 'self'; frame-ancestors 'none'";

/// Which listener serves the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `web_listen`: the host owner's, with one-time URLs from `drover web`.
    Loopback { port: u16 },
    /// `listen`: API keys' sessions.
    Team { port: u16, tls: bool },
}

impl Kind {
    fn port(self) -> u16 {
        match self {
            Kind::Loopback { port } | Kind::Team { port, .. } => port,
        }
    }

    fn secure(self) -> bool {
        matches!(self, Kind::Team { tls: true, .. })
    }
}

/// The pages' state.
#[derive(Clone)]
pub struct Door {
    pub engine: Arc<Engine>,
    pub kind: Kind,
}

/// The page routes of one door (the API is its fallback, added by the caller).
pub fn router(door: Door) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/ui/{*file}", get(asset))
        .route("/login", get(login_page).post(login_with_key))
        .route("/logout", post(logout))
        .layer(axum::extract::DefaultBodyLimit::max(16 << 10))
        .with_state(door)
        .layer(axum::middleware::from_fn(headers))
}

/// The security headers of every page (see the module's doc).
pub async fn headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

async fn index() -> Response {
    asset_answer("index.html")
}

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    asset_answer(&file)
}

fn asset_answer(file: &str) -> Response {
    match crate::web::assets::file(file) {
        Some((ty, body)) => ([(header::CONTENT_TYPE, ty)], body).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "not found\n",
        )
            .into_response(),
    }
}

/// A small page: static text only (nothing a caller sent is ever written into it).
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>drover — {title}</title><link rel=\"stylesheet\" href=\"/ui/style.css\"></head>\
         <body><header><a class=\"brand\" href=\"/\">drover</a></header>\
         <main class=\"login\"><h1>{title}</h1>{body}</main></body></html>\n"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

const KEY_FORM: &str = "<form method=\"post\" action=\"/login\">\
     <label for=\"key\">API key</label> \
     <input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"off\" placeholder=\"drv_…\" required> \
     <button type=\"submit\">Log in</button></form>\
     <p>Or run <code>drover web</code> with <code>DROVER_URL</code> and <code>DROVER_API_KEY</code> \
     set: it prints a one-time login URL.</p>";

fn login_form(kind: Kind, status: StatusCode, problem: Option<&str>) -> Response {
    let problem = problem
        .map(|p| format!("<p class=\"error\" role=\"alert\">{p}</p>"))
        .unwrap_or_default();
    match kind {
        Kind::Loopback { .. } => page(
            status,
            "Log in",
            &format!(
                "{problem}<p>Run <code>drover web</code> on this host: it prints a one-time \
                 login URL (it works once, for two minutes).</p>"
            ),
        ),
        Kind::Team { .. } => page(status, "Log in", &format!("{problem}{KEY_FORM}")),
    }
}

/// The answer to a good login: the cookie, and a redirect to the dashboard.
fn logged_in(kind: Kind, engine: &Engine, id: &str) -> Response {
    let cookie = set_cookie(
        kind.port(),
        id,
        engine.web.sessions.session_ttl(),
        kind.secure(),
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_string()),
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
    )
        .into_response()
}

/// `GET /login[?token=…]`: redeems a one-time token (then a redirect to `/`), or shows how to
/// log in.
async fn login_page(State(door): State<Door>, RawQuery(query): RawQuery) -> Response {
    let token = query.as_deref().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    let Some(token) = token else {
        return login_form(door.kind, StatusCode::OK, None);
    };
    let bad = || {
        login_form(
            door.kind,
            StatusCode::UNAUTHORIZED,
            Some("This login link is unknown, already used or expired: links work once, for two minutes. Ask for a new one (drover web)."),
        )
    };
    let Some((id, who)) = door.engine.web.sessions.redeem(&token) else {
        return bad();
    };
    let fits = match (door.kind, &who) {
        (Kind::Loopback { .. }, Who::Owner) => true,
        (Kind::Team { .. }, Who::Key { key_id }) => key_still_valid(&door.engine, key_id).await,
        _ => false,
    };
    if !fits {
        door.engine.web.sessions.end(&id);
        return bad();
    }
    logged_in(door.kind, &door.engine, &id)
}

async fn key_still_valid(engine: &Engine, key_id: &str) -> bool {
    match engine.store.key(key_id).await {
        Ok(Some(info)) => crate::api::access::key_usable(&info, &drover_store::now()),
        _ => false,
    }
}

/// Whether a form post comes from this origin: without an `Origin` header (older clients,
/// curl) it passes; with one it must name the `Host` the request was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let bare = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    bare.is_some_and(|b| !host.is_empty() && b.eq_ignore_ascii_case(host))
}

/// `POST /login` (form `key=drv_…`, the team listener): a session of that key. A bad key is
/// the form again with one message for unknown, expired and revoked alike (401).
async fn login_with_key(State(door): State<Door>, headers: HeaderMap, body: Bytes) -> Response {
    if matches!(door.kind, Kind::Loopback { .. }) {
        return login_form(door.kind, StatusCode::NOT_FOUND, None);
    }
    if !same_origin(&headers) {
        return login_form(
            door.kind,
            StatusCode::FORBIDDEN,
            Some("This form was sent from another site."),
        );
    }
    let key = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "key")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    match crate::api::access::valid_key(&door.engine, &key).await {
        Ok(k) => {
            let id = door.engine.web.sessions.open(Who::Key { key_id: k.key_id });
            logged_in(door.kind, &door.engine, &id)
        }
        Err(_) => login_form(
            door.kind,
            StatusCode::UNAUTHORIZED,
            Some("Unknown, expired or revoked key."),
        ),
    }
}

/// `POST /logout` (with `x-drover-csrf: 1`): ends the session and removes the cookie.
async fn logout(State(door): State<Door>, req: Request) -> Response {
    if !csrf_ok(req.method(), req.headers()) {
        return crate::api::ApiErr::csrf_refused().into_response();
    }
    if let Some(id) = crate::web::session_cookie(req.headers(), door.kind.port()) {
        door.engine.web.sessions.end(&id);
    }
    (
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            clear_cookie(door.kind.port(), door.kind.secure()),
        )],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_form_from_another_origin_is_refused() {
        let h = |origin: Option<&str>, host: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_str(host).unwrap());
            if let Some(o) = origin {
                m.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
            }
            m
        };
        assert!(same_origin(&h(None, "srv:7420")));
        assert!(same_origin(&h(Some("https://srv:7420"), "srv:7420")));
        assert!(!same_origin(&h(Some("https://evil.example"), "srv:7420")));
        assert!(!same_origin(&h(Some("null"), "srv:7420")));
    }
}
