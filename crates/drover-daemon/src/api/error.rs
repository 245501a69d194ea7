//! API errors: one JSON shape ([`drover_types::ApiError`]), status codes by kind.

use crate::engine::control::ControlError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use drover_store::StoreError;
use drover_types::ApiError;

#[derive(Debug)]
pub struct ApiErr {
    pub status: StatusCode,
    pub body: ApiError,
}

impl ApiErr {
    pub fn new(
        status: StatusCode,
        kind: &str,
        error: impl Into<String>,
        hint: Option<&str>,
    ) -> Self {
        ApiErr {
            status,
            body: ApiError {
                kind: kind.into(),
                error: error.into(),
                hint: hint.map(String::from),
            },
        }
    }
    pub fn invalid(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", error, None)
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

impl From<StoreError> for ApiErr {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound(_) => ApiErr::new(
                StatusCode::NOT_FOUND,
                "not_found",
                e.to_string(),
                Some("`drover ls --all` lists tasks"),
            ),
            StoreError::PoolNotFound(_) => ApiErr::new(
                StatusCode::NOT_FOUND,
                "not_found",
                e.to_string(),
                Some("`drover pool ls` lists pools"),
            ),
            StoreError::Ambiguous(..) => ApiErr::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                e.to_string(),
                Some("give more of the id"),
            ),
            StoreError::EmptyId => ApiErr::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                e.to_string(),
                Some("give a task id (or a unique prefix); `drover ls` lists them"),
            ),
            StoreError::WrongState { .. } => {
                ApiErr::new(StatusCode::CONFLICT, "conflict", e.to_string(), None)
            }
            _ => ApiErr::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                e.to_string(),
                None,
            ),
        }
    }
}

impl From<ControlError> for ApiErr {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Store(s) => s.into(),
            ControlError::Conflict(m) => ApiErr::new(StatusCode::CONFLICT, "conflict", m, None),
            ControlError::Invalid(m) => ApiErr::invalid(m),
            ControlError::Agent(m) => ApiErr::new(
                StatusCode::CONFLICT,
                "conflict",
                m,
                Some("the agent may have just exited; `drover show` tells"),
            ),
        }
    }
}
