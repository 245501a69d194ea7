//! `/v1/keys…` (docs/design.md §7): create, list, rotate and revoke API keys. The secret is in
//! the create and rotate answers only; the store keeps its SHA-256 ([`super::auth::hash_key`]).
//! The host owner manages every team's keys; an `admin` key only its own team's: naming another
//! team is 403, another team's key id is 404 (as an unknown one). Each handler checks the
//! caller itself (the listener's scope table is the first check, this the second).

use super::auth::{hash_key, new_key_id, new_key_secret, Principal};
use super::body::{ApiJson, ApiQuery};
use super::teams::{invalid_field, need_admin};
use super::ApiErr;
use crate::engine::Engine;
use crate::teams::keys::{after_secs, key_state, KeyState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use drover_store::{NewKeyRecord, StoreError};
use drover_types::{
    ApiErrorKind, CreateKeyRequest, KeyInfo, NewKey, RotateKeyRequest, Scope,
    DEFAULT_ROTATE_OVERLAP_SECS,
};
use serde::Deserialize;
use std::sync::Arc;

type ApiResult<T> = Result<T, ApiErr>;

/// The longest key label.
const NAME_MAX: usize = 100;
/// The longest rotation overlap (a year, as any clock).
const OVERLAP_MAX: u64 = drover_types::clock::MAX_SECS;

/// 403: an admin key names a team other than its own.
fn other_team(p: &Principal) -> ApiErr {
    ApiErr::new(
        ApiErrorKind::Forbidden,
        format!(
            "this key acts only for its own team ({})",
            p.team().unwrap_or_default()
        ),
        Some("manage another team's keys with that team's admin key, or on the host"),
    )
}

/// 404, the same body as a key id that does not exist.
fn no_key(id: &str) -> ApiErr {
    StoreError::KeyNotFound(id.to_string()).into()
}

/// The key `id` if the caller may manage it (404 otherwise, whether or not it exists).
async fn managed(engine: &Engine, p: &Principal, id: &str) -> ApiResult<KeyInfo> {
    need_admin(p)?;
    match engine.store.key(id).await? {
        Some(k) if p.sees(Some(&k.team)) => Ok(k),
        _ => Err(no_key(id)),
    }
}

fn check_name(name: Option<&str>) -> ApiResult<()> {
    match name {
        Some(n) if n.trim().is_empty() || n.len() > NAME_MAX || n.chars().any(char::is_control) => {
            Err(invalid_field(
                format!("key name {n:?}: give a label of 1 to {NAME_MAX} printable characters"),
                Some("e.g. --name ci"),
            ))
        }
        _ => Ok(()),
    }
}

/// A new secret and what the store keeps of it.
fn new_record(
    team: &str,
    name: Option<String>,
    scopes: Vec<Scope>,
    expires_at: Option<String>,
) -> (String, NewKeyRecord) {
    let secret = new_key_secret();
    let rec = NewKeyRecord {
        id: new_key_id(),
        team: team.to_string(),
        name,
        scopes,
        hash: hash_key(&secret),
        expires_at,
    };
    (secret, rec)
}

pub async fn create(
    State(engine): State<Arc<Engine>>,
    Extension(p): Extension<Principal>,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<NewKey>)> {
    need_admin(&p)?;
    if !p.sees(Some(&req.team)) {
        return Err(other_team(&p));
    }
    check_name(req.name.as_deref())?;
    let expires_at = match req.expires_secs {
        Some(s) => Some(after_secs(drover_types::clock::check_secs(s).map_err(
            |e| invalid_field(format!("expires_secs {s}: {e}"), Some("e.g. --expires 30d")),
        )?)),
        None => None,
    };
    let mut scopes = if req.scopes.is_empty() {
        vec![Scope::TasksRead, Scope::TasksWrite]
    } else {
        req.scopes
    };
    scopes.sort_by_key(|s| s.as_str());
    scopes.dedup();
    if engine.store.team(&req.team).await?.is_none() {
        return Err(invalid_field(
            format!("no team named {}", req.team),
            Some(&format!(
                "`drover team create {}` makes it; `drover team ls` lists teams",
                req.team
            )),
        ));
    }
    let (secret, rec) = new_record(&req.team, req.name, scopes, expires_at);
    let info = engine.store.create_key(rec).await?;
    tracing::info!("key {} created for team {}", info.id, info.team);
    Ok((StatusCode::CREATED, Json(NewKey { key: secret, info })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    team: Option<String>,
}

pub async fn list(
    State(engine): State<Arc<Engine>>,
    Extension(p): Extension<Principal>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<KeyInfo>>> {
    need_admin(&p)?;
    let team = match (q.team.as_deref().filter(|t| !t.is_empty()), p.team()) {
        (Some(t), Some(own)) if t != own => return Err(other_team(&p)),
        (asked, own) => asked.or(own),
    };
    Ok(Json(engine.store.keys(team).await?))
}

pub async fn rotate(
    State(engine): State<Arc<Engine>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<NewKey>)> {
    let old = managed(&engine, &p, &id).await?;
    let overlap = rotate_request(&body)?
        .overlap_secs
        .unwrap_or(DEFAULT_ROTATE_OVERLAP_SECS);
    if overlap > OVERLAP_MAX {
        return Err(invalid_field(
            format!("overlap_secs {overlap}: at most 366 days"),
            Some("e.g. --overlap 24h"),
        ));
    }
    match key_state(&old, &drover_store::now()) {
        KeyState::Valid => {}
        KeyState::Revoked => {
            return Err(ApiErr::new(
                ApiErrorKind::Conflict,
                format!("key {id} is revoked; a revoked key cannot be rotated"),
                Some("`drover key create` makes a new one"),
            ))
        }
        KeyState::Expired => {
            return Err(ApiErr::new(
                ApiErrorKind::Conflict,
                format!("key {id} has expired; an expired key cannot be rotated"),
                Some("`drover key create` makes a new one"),
            ))
        }
    }
    if let Some(next) = &old.rotated_to {
        return Err(ApiErr::new(
            ApiErrorKind::Conflict,
            format!("key {id} was already rotated to {next}"),
            Some("rotate the new key instead"),
        ));
    }
    let (secret, rec) = new_record(
        &old.team,
        old.name.clone(),
        old.scopes.clone(),
        same_lifetime(&old),
    );
    let info = engine
        .store
        .rotate_key(&old.id, rec, &after_secs(overlap))
        .await?;
    tracing::info!("key {} rotated to {}", old.id, info.id);
    Ok((StatusCode::CREATED, Json(NewKey { key: secret, info })))
}

/// The rotate body: optional (none or blank is the defaults); malformed JSON is 400, a wrong
/// or unknown field 422.
fn rotate_request(body: &[u8]) -> ApiResult<RotateKeyRequest> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(RotateKeyRequest::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        let kind = if e.is_data() {
            ApiErrorKind::InvalidField
        } else {
            ApiErrorKind::Invalid
        };
        ApiErr::new(
            kind,
            format!("the rotate body: {e}"),
            Some("send {\"overlap_secs\": N} or nothing"),
        )
    })
}

/// A rotated key's successor expires as long after its creation as the old key did after its
/// own (a key made with `--expires 30d` is replaced by one good for 30 days); none if the old
/// one had no expiry.
fn same_lifetime(old: &KeyInfo) -> Option<String> {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    let expires = old.expires_at.as_deref()?;
    match (parse(&old.created_at), parse(expires)) {
        (Some(c), Some(e)) => Some(after_secs(
            u64::try_from((e - c).num_seconds()).unwrap_or(0).max(1),
        )),
        _ => Some(expires.to_string()),
    }
}

pub async fn revoke(
    State(engine): State<Arc<Engine>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyInfo>> {
    let key = managed(&engine, &p, &id).await?;
    let info = engine
        .store
        .revoke_key(&key.id, &drover_store::now())
        .await?;
    tracing::info!("key {} revoked", info.id);
    Ok(Json(info))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(created_at: &str, expires_at: Option<&str>) -> KeyInfo {
        KeyInfo {
            id: "key_000000000001".into(),
            team: "a".into(),
            name: None,
            scopes: vec![Scope::TasksRead],
            created_at: created_at.into(),
            last_used_at: None,
            expires_at: expires_at.map(String::from),
            revoked_at: None,
            rotated_to: None,
        }
    }

    #[test]
    fn a_successor_lives_as_long_as_its_predecessor_was_made_to() {
        assert_eq!(same_lifetime(&key("2026-01-01T00:00:00.000Z", None)), None);
        let k = key("2026-01-01T00:00:00.000Z", Some("2026-01-31T00:00:00.000Z"));
        let next = same_lifetime(&k).unwrap_or_default();
        let at = chrono::DateTime::parse_from_rfc3339(&next).map(|t| t.with_timezone(&chrono::Utc));
        let days = at
            .map(|t| (t - chrono::Utc::now()).num_hours())
            .unwrap_or(0);
        assert!((719..=720).contains(&days), "{next}: {days} h");
    }

    #[test]
    fn the_rotate_body_is_optional_and_checked() {
        assert_eq!(rotate_request(b"").ok(), Some(RotateKeyRequest::default()));
        assert_eq!(
            rotate_request(b" \n").ok(),
            Some(RotateKeyRequest::default())
        );
        assert_eq!(
            rotate_request(br#"{"overlap_secs": 60}"#)
                .ok()
                .and_then(|r| r.overlap_secs),
            Some(60)
        );
        let status = |b: &[u8]| rotate_request(b).err().map(|e| e.status.as_u16());
        assert_eq!(status(b"{"), Some(400));
        assert_eq!(status(br#"{"overlap_secs": -1}"#), Some(422));
        assert_eq!(status(br#"{"overlap": 1}"#), Some(422));
    }
}
