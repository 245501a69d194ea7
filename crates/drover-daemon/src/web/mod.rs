//! The web dashboard (docs/design.md §10): a page shell and a few small ES modules of drover's
//! own, embedded in the binary ([`assets`]), that read the JSON API (`/v1/…`) and follow its SSE
//! streams. No build step, no Node, no CDN: what the browser loads is the files in `assets/`.
//!
//! Two doors serve it:
//!
//! - The **loopback listener** ([`crate::api::web::listener`]; `web_listen`, default `127.0.0.1:0`, bound address
//!   in `DROVER_HOME/web.addr`, `off` disables it; loopback addresses only): the host owner's.
//!   `drover web` asks the admin socket (`POST /v1/web/login`) for a one-time URL
//!   `http://127.0.0.1:PORT/login?token=…`; opening it sets a session cookie and redirects to
//!   `/`. Every `/v1/…` route but `health`, `openapi.json` (and `/metrics`) needs that cookie and
//!   runs as [`crate::api::auth::Principal::Owner`] (audited, the peer as `remote_addr`). A
//!   `Host` other than `127.0.0.1:PORT`, `localhost:PORT` or `[::1]:PORT` is refused (421: DNS
//!   rebinding).
//! - The **team listener** (`listen`, [`crate::api::tcp`]): the same pages; `/login` takes an
//!   API key (form `key=drv_…`) or a one-time URL made over TCP with a key; the session is that
//!   key's (its scopes, its team), re-validated against the store on every request
//!   ([`crate::api::access::authenticate`] takes the cookie as an alternative to the bearer).
//!
//! Both: a cookie-authenticated request other than `GET`/`HEAD` needs `x-drover-csrf: 1`
//! (403 otherwise; a cross-site form cannot set a header). Cookies are `HttpOnly`,
//! `SameSite=Strict`, `Path=/`, `Secure` when the listener has TLS, named
//! `drover_session_PORT` (browsers do not separate cookies by port; the name keeps two
//! daemons' sessions apart). Logins live in memory ([`sessions`]).

pub mod assets;
pub mod sessions;

use axum::http::{header, HeaderMap, Method};
use sessions::Sessions;
use std::net::SocketAddr;
use std::sync::OnceLock;

/// The header a cookie-authenticated mutating request must carry (value `1`).
pub const CSRF_HEADER: &str = "x-drover-csrf";

/// The engine's web state: the logins, and the doors' bound addresses (set once at start).
#[derive(Debug, Default)]
pub struct WebState {
    pub sessions: Sessions,
    loopback: OnceLock<SocketAddr>,
    team: OnceLock<TeamDoor>,
}

/// The team listener as bound.
#[derive(Debug, Clone, Copy)]
pub struct TeamDoor {
    pub addr: SocketAddr,
    pub tls: bool,
}

impl WebState {
    /// `token_ttl`: how long a one-time login token works (config `web_token_ttl`).
    pub fn new(token_ttl: std::time::Duration) -> WebState {
        WebState {
            sessions: Sessions::new(token_ttl, sessions::SESSION_TTL, sessions::MAX_SESSIONS),
            ..WebState::default()
        }
    }

    /// The loopback listener's bound address (none: `web_listen = "off"`, or not bound yet).
    pub fn loopback(&self) -> Option<SocketAddr> {
        self.loopback.get().copied()
    }

    pub fn set_loopback(&self, addr: SocketAddr) {
        let _ = self.loopback.set(addr);
    }

    /// The team listener as bound (none without `listen`).
    pub fn team(&self) -> Option<TeamDoor> {
        self.team.get().copied()
    }

    pub fn set_team(&self, door: TeamDoor) {
        let _ = self.team.set(door);
    }
}

/// Marks a request authenticated by a session cookie (not by the admin socket or a bearer key):
/// the session's id, so a long answer (an SSE stream) can end with its session (logout, the
/// 12 hours, its key revoked) — [`session_alive`].
#[derive(Debug, Clone)]
pub struct ViaCookie(pub String);

/// Whether the session a request came with is still live (`None`: not a cookie request).
pub fn session_alive(web: &WebState, cookie: Option<&ViaCookie>) -> bool {
    cookie.is_none_or(|c| web.sessions.session(&c.0).is_some())
}

/// The session cookie's name on the listener bound to `port`.
pub fn cookie_name(port: u16) -> String {
    format!("drover_session_{port}")
}

/// The session id in the request's `Cookie` headers, if any.
pub fn session_cookie(headers: &HeaderMap, port: u16) -> Option<String> {
    let name = cookie_name(port);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// The `Set-Cookie` value of a new session.
pub fn set_cookie(port: u16, id: &str, max_age: std::time::Duration, secure: bool) -> String {
    cookie::Cookie::build((cookie_name(port), id.to_string()))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(cookie::SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(max_age.as_secs() as i64))
        .build()
        .to_string()
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(port: u16, secure: bool) -> String {
    cookie::Cookie::build((cookie_name(port), ""))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(cookie::SameSite::Strict)
        .max_age(cookie::time::Duration::ZERO)
        .build()
        .to_string()
}

/// A cookie-authenticated request may change something only with `x-drover-csrf: 1`.
pub fn csrf_ok(method: &Method, headers: &HeaderMap) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
        || headers
            .get(CSRF_HEADER)
            .is_some_and(|v| v.as_bytes() == b"1")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_cookie_and_its_flags() {
        let c = set_cookie(7421, "abc", sessions::SESSION_TTL, false);
        assert!(c.starts_with("drover_session_7421=abc"), "{c}");
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
            assert!(c.contains(flag), "{flag}: {c}");
        }
        assert!(!c.contains("Secure"), "{c}");
        assert!(set_cookie(1, "x", sessions::SESSION_TTL, true).contains("Secure"));
        assert!(clear_cookie(7421, false).contains("Max-Age=0"));
    }

    #[test]
    fn the_session_cookie_is_found_by_its_port() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; drover_session_1=one; drover_session_2=two"),
        );
        assert_eq!(session_cookie(&h, 2).as_deref(), Some("two"));
        assert_eq!(session_cookie(&h, 1).as_deref(), Some("one"));
        assert_eq!(session_cookie(&h, 3), None);
    }

    #[test]
    fn csrf_rule() {
        let mut h = HeaderMap::new();
        assert!(csrf_ok(&Method::GET, &h));
        assert!(!csrf_ok(&Method::POST, &h));
        h.insert(CSRF_HEADER, HeaderValue::from_static("0"));
        assert!(!csrf_ok(&Method::DELETE, &h));
        h.insert(CSRF_HEADER, HeaderValue::from_static("1"));
        assert!(csrf_ok(&Method::POST, &h));
    }
}
