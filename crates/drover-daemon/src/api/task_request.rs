//! The request side of `POST /v1/tasks` (docs/design.md §7): the body parsed into a
//! [`RunRequest`] (unknown fields and wrong types are a 400 naming the field), its identity for
//! `Idempotency-Key` (SHA-256 of the JSON with sorted keys), the `Idempotency-Key` and
//! `X-Provider-Key` headers, and tags. (A key's team and `created_by`: `api::access::bind_task`.)

use super::auth::Principal;
use super::ApiErr;
use drover_types::{ApiErrorKind, Redacted, RunRequest, Tags};
use serde_json::Value;

/// The longest `Idempotency-Key` (printable ASCII).
pub const MAX_IDEMPOTENCY_KEY: usize = 200;
/// How long a key names its task; after that it may be used again.
pub const IDEMPOTENCY_HOURS: i64 = 24;
/// Tags: at most this many, names and values at most this many bytes.
pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_NAME: usize = 100;
pub const MAX_TAG_VALUE: usize = 500;

/// The body as a [`RunRequest`]; serde's message names the field (one line).
pub fn parse(body: Value) -> Result<RunRequest, ApiErr> {
    if !body.is_object() {
        return Err(ApiErr::new(
            ApiErrorKind::Invalid,
            "the body must be a JSON object",
            Some("send {\"repo\": …, \"task\": …} (docs/design.md §7)"),
        ));
    }
    // Through axum's `Json`: its message names the field's path (`budget.maxUsd: invalid
    // type …`), which serde_json alone does not.
    let bytes = serde_json::to_vec(&body).map_err(|e| ApiErr::invalid(e.to_string()))?;
    axum::Json::<RunRequest>::from_bytes(&bytes).map(|axum::Json(r)| r).map_err(|e| {
        let text = e.body_text();
        let text = text
            .strip_prefix("Failed to deserialize the JSON body into the target type: ")
            .unwrap_or(&text);
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        ApiErr::new(
            ApiErrorKind::Invalid,
            text,
            Some("the fields are repo, task, model, team, agent, ref, verify, protect, timeout, budget {maxUsd, maxTokens}, tags, name, and drover's own (docs/design.md §7)"),
        )
    })
}

/// The 1 MiB body limit of every route, applied to a task request without its prompt (the
/// route takes up to 4 MiB so that a prompt of up to 1 MiB fits, escaped): a 413.
pub fn check_size(body: &Value) -> Result<(), ApiErr> {
    let Some(obj) = body.as_object() else {
        return Ok(());
    };
    let rest: serde_json::Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| k.as_str() != "task" && k.as_str() != "prompt")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let len = serde_json::to_vec(&rest)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if len > super::MAX_SMALL_BODY_BYTES {
        return Err(ApiErr::new(
            ApiErrorKind::TooLarge,
            format!(
                "the request without its prompt is {len} bytes; the limit is {} MiB",
                super::MAX_SMALL_BODY_BYTES >> 20
            ),
            Some("send shorter fields; put long material in a file in the repository"),
        ));
    }
    Ok(())
}

/// SHA-256 (hex) of `body` serialised with every object's keys sorted: the same request
/// written in another key order or spacing is the same request.
pub fn body_hash(body: &Value) -> String {
    use sha2::Digest;
    let mut out = String::new();
    canonical(body, &mut out);
    hex::encode(sha2::Sha256::digest(out.as_bytes()))
}

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(v) = m.get(k) {
                    canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The `Idempotency-Key` header: 1 to 200 printable ASCII characters, else a 400.
pub fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiErr> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || {
        ApiErr::new(
            ApiErrorKind::Invalid,
            format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"
            ),
            Some("use a UUID or another unique string per logical request"),
        )
    };
    let bytes = v.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_IDEMPOTENCY_KEY
        || !bytes.iter().all(|b| (0x20..=0x7e).contains(b))
    {
        return Err(bad());
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// The `X-Provider-Key` header: this task's own provider key (BYOK). Kept in memory only; an
/// error never repeats it.
pub fn provider_key(headers: &axum::http::HeaderMap) -> Result<Option<Redacted>, ApiErr> {
    let Some(v) = headers.get("x-provider-key") else {
        return Ok(None);
    };
    match v.to_str().map(str::trim) {
        Ok(k) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(Redacted(k.to_string())))
        }
        _ => Err(ApiErr::new(
            ApiErrorKind::Invalid,
            "X-Provider-Key must be a non-empty key of printable ASCII characters",
            Some("send the provider's API key as it is, or leave the header out"),
        )),
    }
}

/// The idempotency scope of a caller: its team, or the host owner's own scope.
pub fn idempotency_scope(principal: &Principal) -> String {
    match principal.team() {
        Some(team) => format!("team:{team}"),
        None => "owner".into(),
    }
}

/// Tags: names non-empty, bounded sizes and count (a 422 naming the tag).
pub fn check_tags(tags: &Tags) -> Result<(), String> {
    if tags.len() > MAX_TAGS {
        return Err(format!(
            "{} tags: a task may have at most {MAX_TAGS}",
            tags.len()
        ));
    }
    for (k, v) in tags {
        if k.trim().is_empty() || k.len() > MAX_TAG_NAME {
            return Err(format!(
                "tag name {:?}: give 1 to {MAX_TAG_NAME} bytes",
                drover_types::text::excerpt(k, drover_types::text::Limit::Chars(40))
            ));
        }
        if v.len() > MAX_TAG_VALUE {
            return Err(format!(
                "tag {k:?}: the value is over {MAX_TAG_VALUE} bytes"
            ));
        }
    }
    Ok(())
}

/// A well-formed value that is wrong (a repo that does not resolve, an unknown agent, a bad
/// budget): 422 `invalid_field` instead of 400 `invalid`.
pub fn as_field_error(e: ApiErr) -> ApiErr {
    if e.body.kind == ApiErrorKind::Invalid {
        let hint = e
            .body
            .hint
            .as_deref()
            .unwrap_or("correct the value the error names and send again; nothing was created");
        ApiErr::new(ApiErrorKind::InvalidField, e.body.error, Some(hint))
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn the_identity_ignores_key_order_and_spacing() {
        let a: Value = serde_json::from_str(
            r#"{"repo": "r", "task": "t", "budget": {"maxUsd": 1, "maxTokens": 2}}"#,
        )
        .unwrap();
        let b: Value =
            serde_json::from_str(r#"{"budget":{"maxTokens":2,"maxUsd":1},"task":"t","repo":"r"}"#)
                .unwrap();
        assert_eq!(body_hash(&a), body_hash(&b));
        assert_ne!(body_hash(&a), body_hash(&json!({"repo": "r", "task": "u"})));
    }

    #[test]
    fn the_seed_shape_and_the_old_names_parse() {
        let r = parse(
            json!({"repo": "r", "task": "t", "ref": "main", "timeout": "30m",
            "budget": {"maxUsd": 2.0, "max_tokens": 9}, "tags": {"customer": "acme"}}),
        )
        .unwrap();
        assert_eq!(r.prompt, "t");
        assert_eq!(r.base_ref.as_deref(), Some("main"));
        assert_eq!(r.timeout_secs, Some(1800));
        assert_eq!(r.budget().unwrap().max_usd, Some(2.0));
        assert_eq!(r.budget().unwrap().max_tokens, Some(9));
        let r = parse(
            json!({"repo": "r", "prompt": "t", "base_ref": "x", "timeout_secs": 5,
            "max_usd": 1.0}),
        )
        .unwrap();
        assert_eq!((r.prompt.as_str(), r.timeout_secs), ("t", Some(5)));
        assert_eq!(r.budget().unwrap().max_usd, Some(1.0));
        let e = parse(json!({"repo": "r", "task": "t", "colour": "red"})).unwrap_err();
        assert!(e.body.error.contains("colour"), "{}", e.body.error);
        assert_eq!(e.status, 400);
        let e = parse(json!({"repo": "r", "task": "t", "budget": {"maxUSD": 1}})).unwrap_err();
        assert!(e.body.error.contains("maxUSD"), "{}", e.body.error);
        let e = parse(json!({"repo": "r", "task": 5})).unwrap_err();
        assert!(
            e.body.error.starts_with("task: invalid type"),
            "{}",
            e.body.error
        );
        let e = parse(json!({"repo": "r", "task": "t", "budget": {"maxUsd": "2"}})).unwrap_err();
        assert!(
            e.body.error.starts_with("budget.maxUsd"),
            "{}",
            e.body.error
        );
        assert!(parse(json!({"repo": "r", "task": "t", "timeout": "soon"})).is_err());
        assert!(parse(json!([1])).is_err());
        let both =
            parse(json!({"repo": "r", "task": "t", "max_usd": 1.0, "budget": {"maxUsd": 2.0}}))
                .unwrap();
        assert!(both.budget().is_err());
    }

    #[test]
    fn header_bounds() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(idempotency_key(&h).unwrap(), None);
        h.insert("idempotency-key", "abc-123".parse().unwrap());
        assert_eq!(idempotency_key(&h).unwrap().as_deref(), Some("abc-123"));
        h.insert("idempotency-key", "x".repeat(201).parse().unwrap());
        assert!(idempotency_key(&h).is_err());
        h.insert("idempotency-key", "x".repeat(200).parse().unwrap());
        assert!(idempotency_key(&h).is_ok());
        h.insert(
            "idempotency-key",
            axum::http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        );
        assert!(idempotency_key(&h).is_err());
        h.insert("x-provider-key", "sk-secret one".parse().unwrap());
        let e = provider_key(&h).unwrap_err();
        assert!(!e.body.error.contains("sk-secret"));
    }
}

#[cfg(test)]
mod principal_tests {
    use super::*;
    use crate::api::auth::KeyPrincipal;

    #[test]
    fn idempotency_keys_are_per_team_and_the_owner_has_its_own_scope() {
        let key = |team: &str| {
            Principal::Key(KeyPrincipal {
                key_id: "key_0123456789ab".into(),
                team: team.into(),
                scopes: vec![drover_types::Scope::TasksWrite],
            })
        };
        assert_eq!(idempotency_scope(&key("a")), "team:a");
        assert_ne!(idempotency_scope(&key("a")), idempotency_scope(&key("b")));
        assert_eq!(idempotency_scope(&Principal::Owner), "owner");
    }
}
