//! API errors: one JSON shape ([`drover_types::ApiError`]), the HTTP status derived from its
//! [`ApiErrorKind`] here ([`status_of`]) and nowhere else.

use crate::engine::control::ControlError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use drover_sandbox::SandboxError;
use drover_store::StoreError;
use drover_types::{ApiError, ApiErrorKind};

/// The HTTP status of each kind.
pub fn status_of(kind: ApiErrorKind) -> StatusCode {
    match kind {
        ApiErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ApiErrorKind::NotFound => StatusCode::NOT_FOUND,
        ApiErrorKind::Conflict => StatusCode::CONFLICT,
        ApiErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ApiErrorKind::Timeout => StatusCode::REQUEST_TIMEOUT,
        ApiErrorKind::Busy | ApiErrorKind::IsolationUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ApiErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ApiErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ApiErrorKind::InvalidField => StatusCode::UNPROCESSABLE_ENTITY,
        ApiErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ApiErrorKind::Internal | ApiErrorKind::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[derive(Debug)]
pub struct ApiErr {
    pub status: StatusCode,
    pub body: ApiError,
}

impl ApiErr {
    /// The 403 of a cookie-authenticated mutating request without the CSRF header
    /// ([`crate::web::CSRF_HEADER`]).
    pub fn csrf_refused() -> Self {
        ApiErr::new(
            ApiErrorKind::Forbidden,
            "forbidden: a request with the dashboard's session cookie that changes something needs \
             the header x-drover-csrf: 1",
            Some("the dashboard's pages send it; scripts use an API key (Authorization: Bearer)"),
        )
    }

    pub fn new(kind: ApiErrorKind, error: impl Into<String>, hint: Option<&str>) -> Self {
        ApiErr {
            status: status_of(kind),
            body: ApiError {
                kind,
                error: error.into(),
                hint: hint.map(String::from),
            },
        }
    }
    pub fn invalid(error: impl Into<String>) -> Self {
        Self::new(ApiErrorKind::Invalid, error, None)
    }
    /// `Err` when the host cannot confine agents (see [`crate::isolation`]).
    pub fn confinable(engine: &crate::engine::Engine) -> Result<(), Self> {
        match engine.host.refusal() {
            None => Ok(()),
            Some(why) => Err(Self::new(
                ApiErrorKind::IsolationUnavailable,
                why,
                Some(crate::isolation::REFUSAL_HINT),
            )),
        }
    }
    pub fn internal(error: impl Into<String>) -> Self {
        Self::new(ApiErrorKind::Internal, error, None)
    }
    /// A more precise status than the kind's own, where HTTP has one the client should see
    /// (axum's rejections: 415 wrong content type, 422 wrong fields, 405 wrong method). The
    /// kind, and so the CLI's exit code, stays.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

/// A sandbox error at task creation: the user's repo or ref is wrong (invalid), or something
/// broke on the daemon's side — git missing, a mount, I/O under DROVER_HOME (internal).
impl From<SandboxError> for ApiErr {
    fn from(e: SandboxError) -> Self {
        match &e {
            SandboxError::NotAGitRepo { .. }
            | SandboxError::UnknownRef { .. }
            | SandboxError::Git { .. }
            | SandboxError::BadPath { .. }
            | SandboxError::InvalidTaskId(_) => ApiErr::invalid(e.to_string()),
            _ => ApiErr::internal(e.to_string()),
        }
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
                ApiErrorKind::NotFound,
                e.to_string(),
                Some("`drover ls --all` lists tasks"),
            ),
            StoreError::PoolNotFound(_) => ApiErr::new(
                ApiErrorKind::NotFound,
                e.to_string(),
                Some("`drover pool ls` lists pools"),
            ),
            StoreError::BatchNotFound(_) => ApiErr::new(
                ApiErrorKind::NotFound,
                e.to_string(),
                Some("`drover batch ls` lists batches"),
            ),
            StoreError::TeamNotFound(_) => ApiErr::new(
                ApiErrorKind::NotFound,
                e.to_string(),
                Some("`drover team ls` lists teams"),
            ),
            StoreError::KeyNotFound(_) => ApiErr::new(
                ApiErrorKind::NotFound,
                e.to_string(),
                Some("`drover key ls` lists keys"),
            ),
            StoreError::Exists(_) => ApiErr::new(ApiErrorKind::Conflict, e.to_string(), None),
            StoreError::Ambiguous(..) => ApiErr::new(
                ApiErrorKind::Invalid,
                e.to_string(),
                Some("give more of the id"),
            ),
            StoreError::EmptyId => ApiErr::new(
                ApiErrorKind::Invalid,
                e.to_string(),
                Some("give a task id (or a unique prefix); `drover ls` lists them"),
            ),
            StoreError::WrongState { .. } => {
                ApiErr::new(ApiErrorKind::Conflict, e.to_string(), None)
            }
            _ => ApiErr::new(ApiErrorKind::Internal, e.to_string(), None),
        }
    }
}

impl From<ControlError> for ApiErr {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Store(s) => s.into(),
            ControlError::Conflict(m) => ApiErr::new(ApiErrorKind::Conflict, m, None),
            ControlError::Invalid(m) => ApiErr::invalid(m),
            ControlError::Agent(m) => ApiErr::new(
                ApiErrorKind::Conflict,
                m,
                Some("the agent may have just exited; `drover show` tells"),
            ),
        }
    }
}
