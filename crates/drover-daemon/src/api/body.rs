//! Request bodies are read whole, bounded in size ([`super::MAX_BODY_BYTES`]) and in time
//! ([`BODY_TIMEOUT`]), before any handler runs: a client that announces a body and then sends it
//! slowly (or never) gets a 408 instead of holding a connection and a task forever.

use super::{ApiErr, MAX_BODY_BYTES};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
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
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "the request body is over the {} MiB limit",
            MAX_BODY_BYTES >> 20
        ),
        Some("a prompt may be at most 1 MiB; put longer material in a file in the repository"),
    )
}
