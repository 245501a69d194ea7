//! `POST /v1/web/login` → [`WebLogin`]: a one-time dashboard URL (it works once, for two
//! minutes), and `GET /v1/web/session` → [`WebSession`]: who the caller is.
//!
//! - On the admin socket (the host owner): a URL on the loopback listener, logging in as the
//!   host owner; with `web_listen = "off"` a 409 saying how to turn it on.
//! - Over TCP with an API key (any valid key, whatever its scopes): a URL on the team listener
//!   (the `Host` the request was sent to, with its scheme), logging in as that key.
//! - From a task's sandbox (its scoped socket): 403 (the agent never gets a login; also
//!   refused by [`crate::api::scoped`]). With a session cookie: 403 (a session cannot extend
//!   itself past its 12 hours by minting logins).

use crate::api::auth::Principal;
use crate::api::scoped::TaskScope;
use crate::api::ApiErr;
use crate::engine::Engine;
use crate::web::sessions::Who;
use crate::web::ViaCookie;
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use drover_types::{ApiErrorKind, WebLogin, WebSession};
use std::sync::Arc;

fn rfc3339(t: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A `Host` header that is a plain `name[:port]` or `[v6]:port` (else the bound address is used).
fn plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

pub async fn login(
    State(engine): State<Arc<Engine>>,
    Extension(who): Extension<Principal>,
    scope: Option<Extension<TaskScope>>,
    cookie: Option<Extension<ViaCookie>>,
    headers: HeaderMap,
) -> Result<Json<WebLogin>, ApiErr> {
    if let Some(Extension(scope)) = scope {
        return Err(crate::api::scoped::forbidden(&scope.0));
    }
    if cookie.is_some() {
        return Err(ApiErr::new(
            ApiErrorKind::Forbidden,
            "forbidden: a dashboard session cannot make login URLs",
            Some("run `drover web` (the host owner, or with DROVER_URL and DROVER_API_KEY)"),
        ));
    }
    let web = &engine.web;
    let (base, who) = match who {
        Principal::Owner => {
            let Some(addr) = web.loopback() else {
                return Err(ApiErr::new(
                    ApiErrorKind::Conflict,
                    "the web dashboard is off (web_listen = \"off\")",
                    Some(
                        "set web_listen = \"127.0.0.1:0\" in DROVER_HOME/config.toml (or unset it: \
                         that is the default; DROVER_WEB_LISTEN, drover daemon --web-listen) and \
                         restart the daemon",
                    ),
                ));
            };
            (format!("http://{addr}"), Who::Owner)
        }
        Principal::Key(k) => {
            let Some(door) = web.team() else {
                return Err(ApiErr::internal("the team listener has no address"));
            };
            let scheme = if door.tls { "https" } else { "http" };
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| plain_host(h))
                .map(str::to_string)
                .unwrap_or_else(|| door.addr.to_string());
            (format!("{scheme}://{host}"), Who::Key { key_id: k.key_id })
        }
    };
    let (token, expires) = web.sessions.issue(who);
    Ok(Json(WebLogin {
        url: format!("{base}/login?token={token}"),
        expires_at: rfc3339(expires),
    }))
}

pub async fn session(Extension(who): Extension<Principal>) -> Json<WebSession> {
    Json(match who {
        Principal::Owner => WebSession {
            owner: true,
            key_id: None,
            team: None,
            scopes: drover_types::Scope::ALL.to_vec(),
        },
        Principal::Key(k) => WebSession {
            owner: false,
            key_id: Some(k.key_id),
            team: Some(k.team),
            scopes: k.scopes,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_hosts_are_not_echoed() {
        assert!(plain_host("srv.example:7420"));
        assert!(plain_host("[::1]:7420"));
        for bad in ["", "a/b", "a b", "evil.example/@x", "x\"y", "a?b"] {
            assert!(!plain_host(bad), "{bad}");
        }
    }
}
