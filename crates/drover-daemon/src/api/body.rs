//! Extractors whose rejections are API errors: bad JSON, a wrong content type, an oversized body
//! or a bad query string answer `{kind, error, hint}` with a 4xx, like every other refusal
//! (axum's own extractors answer plain text).

use super::ApiErr;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

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
    ApiErr::new(status, "invalid", one_line(&r.body_text()), Some(hint))
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
        StatusCode::BAD_REQUEST,
        "invalid",
        one_line(&r.body_text()),
        Some("check the query string's parameters"),
    )
}

/// Unknown routes and methods: JSON errors too.
pub async fn not_found() -> ApiErr {
    ApiErr::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such API route",
        Some("the routes are listed in drover-daemon's api/mod.rs"),
    )
}

pub async fn method_not_allowed() -> ApiErr {
    ApiErr::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid",
        "this route does not take that method",
        Some("the routes are listed in drover-daemon's api/mod.rs"),
    )
}
