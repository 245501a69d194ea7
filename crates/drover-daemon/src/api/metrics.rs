//! `GET /metrics`: the Prometheus metrics ([`crate::telemetry::metrics`]) as OpenMetrics text.
//!
//! Who sees what (docs/design.md §10):
//! - the admin socket (the host owner), and over TCP the scrape token (`Authorization: Bearer
//!   <token>` of `metrics_token_env`, compared in constant time, valid for this route only):
//!   every family, the whole store;
//! - over TCP a key with `usage:read`: its own team's `drover_tasks`, `drover_tokens_total`
//!   and `drover_cost_usd_total` (and `drover_build_info`) only — never the fleet's queue,
//!   slots, gateway or follower figures;
//! - a task's own socket: 403 (the scoped filter).

use super::auth::Principal;
use super::ApiErr;
use crate::engine::Engine;
use crate::telemetry::metrics::{Fleet, Snapshot, CONTENT_TYPE};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use drover_types::{ApiErrorKind, TaskState};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Put in a request that presented the configured scrape token ([`scrape_token`]).
#[derive(Debug, Clone, Copy)]
pub struct Scraper;

/// Whether `headers` carry exactly one `Authorization: Bearer <token>` equal to `expected`
/// (compared in constant time, on SHA-256 digests so the length leaks nothing either).
pub fn scrape_token(headers: &HeaderMap, expected: &drover_types::Secret) -> bool {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (all.next(), all.next()) else {
        return false;
    };
    let Some((scheme, given)) = value.to_str().ok().and_then(|v| v.split_once(' ')) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.expose().as_bytes());
    a.ct_eq(&b).into()
}

pub async fn metrics(
    State(engine): State<Arc<Engine>>,
    principal: Option<Extension<Principal>>,
    scraper: Option<Extension<Scraper>>,
) -> Result<Response, ApiErr> {
    let team = match (scraper, principal) {
        (Some(_), _) | (None, Some(Extension(Principal::Owner))) => None,
        (None, Some(Extension(Principal::Key(k)))) => Some(k.team),
        (None, None) => {
            return Err(ApiErr::new(
                ApiErrorKind::Unauthorized,
                "unauthorized: /metrics needs a key with usage:read or the scrape token",
                None,
            ))
        }
    };
    let tasks = engine.store.task_counts(team.as_deref()).await?;
    let usage = engine.store.usage_totals(team.as_deref()).await?;
    let fleet = match team {
        Some(_) => None,
        None => Some(Fleet {
            queue_length: tasks
                .iter()
                .filter(|(s, _)| *s == TaskState::Queued)
                .map(|(_, n)| *n)
                .sum(),
            slots: i64::try_from(engine.config.slots).unwrap_or(i64::MAX),
            slots_used: i64::try_from(engine.used_slots()).unwrap_or(i64::MAX),
        }),
    };
    let text = engine.telemetry.metrics.render(&Snapshot {
        tasks,
        usage,
        fleet,
    });
    let mut resp = text.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(resp)
}
