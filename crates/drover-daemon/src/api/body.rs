//! Request bodies: read whole, bounded in size ([`super::MAX_BODY_BYTES`]) and in time
//! ([`BODY_TIMEOUT`]) before any handler runs (a client that announces a body and then sends it
//! slowly, or never, gets a 408); and extractors whose rejections are `{kind, error, hint}` API
//! errors with a 4xx (axum's own answer plain text).

use super::{ApiErr, MAX_BODY_BYTES, MAX_SMALL_BODY_BYTES};
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// The time a client has to send its whole request body once the head is in.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn bounded(req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    if announced.unwrap_or(0) == 0 && !chunked {
        return next.run(req).await;
    }
    let max = body_limit(req.method(), req.uri().path());
    if announced.is_some_and(|n| n > max as u64) {
        return too_large(max).into_response();
    }
    let (parts, body) = req.into_parts();
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, max)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return too_large(max).into_response(),
        Err(_) => {
            return ApiErr::new(
                drover_types::ApiErrorKind::Timeout,
                format!(
                    "the request body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
                Some("send the whole body at once"),
            )
            .into_response()
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// 4 MiB for the routes that carry a prompt (the prompt itself is at most 1 MiB, checked by
/// the handler), 1 MiB for every other one.
fn body_limit(method: &axum::http::Method, path: &str) -> usize {
    let prompt_route = method == axum::http::Method::POST
        && matches!(
            path.trim_end_matches('/'),
            "/v1/tasks" | "/v1/pools" | "/v1/batches"
        );
    if prompt_route {
        MAX_BODY_BYTES
    } else {
        MAX_SMALL_BODY_BYTES
    }
}

fn too_large(max: usize) -> ApiErr {
    ApiErr::new(
        drover_types::ApiErrorKind::TooLarge,
        format!("the request body is over the {} MiB limit", max >> 20),
        Some("a prompt may be at most 1 MiB and other bodies 1 MiB; put longer material in a file in the repository"),
    )
}

// Extractors.

/// A JSON body (`axum::Json`) with JSON errors.
pub struct ApiJson<T>(pub T);

/// A query string (`axum::extract::Query`) with JSON errors.
pub struct ApiQuery<T>(pub T);

fn json_rejection(r: JsonRejection) -> ApiErr {
    let text = one_line(&r.body_text());
    if matches!(r, JsonRejection::JsonDataError(_)) && outside_closed_set(&text) {
        // A word outside one of drover's closed sets (`"permissions": "banana"`): a bad value,
        // 400 as when these fields were checked by hand; serde's message lists the valid ones.
        return ApiErr::new(
            drover_types::ApiErrorKind::Invalid,
            text,
            Some("use one of the values the error lists"),
        );
    }
    let status = r.status();
    let hint = match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "send the body as JSON with `Content-Type: application/json`"
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is too large; send less (e.g. a shorter prompt)"
        }
        _ => "send a JSON object with the fields of this endpoint (see drover-types' api.rs)",
    };
    ApiErr::new(drover_types::ApiErrorKind::Invalid, text, Some(hint)).with_status(status)
}

/// Whether serde refused a value because it is not one of an enum's variants (the typed
/// vocabulary of `drover_types::vocab`): serde's `unknown variant `x`, expected …` message.
fn outside_closed_set(text: &str) -> bool {
    text.contains("unknown variant `")
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiErr;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiErr> {
        match <axum::Json<T> as FromRequest<S>>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(r) => Err(json_rejection(r)),
        }
    }
}

impl<T, S> OptionalFromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiErr;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiErr> {
        match <axum::Json<T> as OptionalFromRequest<S>>::from_request(req, state).await {
            Ok(v) => Ok(v.map(|axum::Json(v)| ApiJson(v))),
            Err(r) => Err(json_rejection(r)),
        }
    }
}

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiErr;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiErr> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(r) => Err(query_rejection(r)),
        }
    }
}

fn query_rejection(r: QueryRejection) -> ApiErr {
    ApiErr::new(
        drover_types::ApiErrorKind::Invalid,
        one_line(&r.body_text()),
        Some("check the query string's parameters"),
    )
}

/// Unknown routes and methods: JSON errors too.
pub async fn not_found() -> ApiErr {
    ApiErr::new(
        drover_types::ApiErrorKind::NotFound,
        "no such API route",
        Some("the routes are listed in drover-daemon's api/mod.rs"),
    )
}

pub async fn method_not_allowed() -> ApiErr {
    ApiErr::new(
        drover_types::ApiErrorKind::Invalid,
        "this route does not take that method",
        Some("the routes are listed in drover-daemon's api/mod.rs"),
    )
    .with_status(StatusCode::METHOD_NOT_ALLOWED)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::outside_closed_set;
    use drover_types::{PoolRequest, RunRequest};

    #[test]
    fn a_word_outside_a_closed_set_is_told_from_other_bad_fields() {
        let bad = |body: &str| {
            serde_json::from_str::<RunRequest>(body)
                .unwrap_err()
                .to_string()
        };
        let e = bad(r#"{"repo": "r", "prompt": "p", "permissions": "banana"}"#);
        assert!(outside_closed_set(&e), "{e}");
        assert!(e.contains("`ask`, `allow`, `deny`"), "{e}");
        let e = serde_json::from_str::<PoolRequest>(
            r#"{"name": "p", "slots": 1, "prompt": "p", "repo": "r", "on_failures": "often"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(outside_closed_set(&e), "{e}");
        // A wrong type is not a closed set's word (it stays a 422).
        assert!(!outside_closed_set(&bad(r#"{"repo": "r", "prompt": 5}"#)));
        assert!(!outside_closed_set(&bad(
            r#"{"repo": "r", "prompt": "p", "permissions": 1}"#
        )));
    }
}
