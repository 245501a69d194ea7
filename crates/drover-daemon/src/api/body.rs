//! Request bodies: read whole, bounded in size ([`super::MAX_BODY_BYTES`]) and in time
//! ([`BODY_TIMEOUT`]) before any handler runs (a client that announces a body and then sends it
//! slowly, or never, gets a 408); and extractors whose rejections are `{kind, error, hint}` API
//! errors with a 4xx (axum's own answer plain text).

use super::{ApiErr, MAX_BODY_BYTES};
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
    if announced.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large().into_response();
    }
    let (parts, body) = req.into_parts();
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY_BYTES))
        .await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return too_large().into_response(),
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

fn too_large() -> ApiErr {
    ApiErr::new(
        drover_types::ApiErrorKind::TooLarge,
        format!(
            "the request body is over the {} MiB limit",
            MAX_BODY_BYTES >> 20
        ),
        Some("a prompt may be at most 1 MiB; put longer material in a file in the repository"),
    )
}

// Extractors.

/// A JSON body (`axum::Json`) with JSON errors.
pub struct ApiJson<T>(pub T);

/// A query string (`axum::extract::Query`) with JSON errors.
pub struct ApiQuery<T>(pub T);

fn json_rejection(r: JsonRejection) -> ApiErr {
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
    ApiErr::new(
        drover_types::ApiErrorKind::Invalid,
        one_line(&r.body_text()),
        Some(hint),
    )
    .with_status(status)
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
