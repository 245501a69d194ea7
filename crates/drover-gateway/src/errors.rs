//! Errors the gateway itself answers, in the provider's own error format.
//!
//! Anthropic: `{"type":"error","error":{"type":…,"message":…}}`; OpenAI:
//! `{"error":{"message":…,"type":…,"param":null,"code":…}}`. Answers that must not be retried
//! carry `x-should-retry: false`, which the Anthropic and OpenAI SDKs honour.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use crate::ledger::Api;

/// The error-format family of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Anthropic,
    OpenAi,
}

impl Api {
    pub fn flavor(self) -> Flavor {
        match self {
            Api::Messages | Api::CountTokens => Flavor::Anthropic,
            Api::ChatCompletions | Api::Responses => Flavor::OpenAi,
        }
    }
}

/// A refusal or failure produced by the gateway (not relayed from upstream).
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("invalid or revoked drover task token")]
    Unauthorized,
    #[error("drover budget exhausted: {0}")]
    Budget(String),
    #[error("drover budget: no price for model {0:?}, and a dollar budget applies to this task; price it in DROVER_HOME/config.toml as gateway.prices.\"{0}\" = {{ input = …, output = …, cache_read = …, cache_write = … }} (USD per million tokens)")]
    NoPrice(String),
    #[error("drover budget busy: {0}")]
    Busy(String),
    #[error("drover gateway refuses {0}")]
    Unmeterable(String),
    #[error("drover cannot check this task's budget right now: {0}")]
    Ledger(String),
    #[error("model {0:?} is not allowed for this drover task")]
    ModelNotAllowed(String),
    #[error("request body is not valid JSON: {0}")]
    BadJson(#[from] serde_json::Error),
    #[error("drover gateway has no {0} API key configured")]
    NoKey(&'static str),
    #[error("upstream did not answer within the time-to-first-byte timeout ({0} s)")]
    Timeout(u64),
    #[error("upstream connection failed: {0}")]
    Upstream(String),
    #[error("not found")]
    NotFound,
}

impl GatewayError {
    /// HTTP status, provider error type (Anthropic / OpenAI), and whether the agent may retry.
    fn parts(&self) -> (StatusCode, &'static str, &'static str, bool) {
        match self {
            GatewayError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid_api_key",
                false,
            ),
            // Anthropic: 402 billing_error. Claude Code 2.1.328 stops after one such answer,
            // whereas a 400 invalid_request_error makes it re-send the request 5 more times
            // with other tool sets. OpenAI: 429 insufficient_quota (its spend-limit answer).
            // Both carry `x-should-retry: false`.
            GatewayError::Budget(_) | GatewayError::NoPrice(_) => (
                StatusCode::PAYMENT_REQUIRED,
                "billing_error",
                "insufficient_quota",
                false,
            ),
            // Other requests in flight hold the budget: retry once they settle.
            GatewayError::Busy(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limit_exceeded",
                true,
            ),
            GatewayError::Unmeterable(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request_error",
                false,
            ),
            GatewayError::ModelNotAllowed(_) => (
                StatusCode::FORBIDDEN,
                "permission_error",
                "model_not_allowed",
                false,
            ),
            GatewayError::BadJson(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request_error",
                false,
            ),
            GatewayError::NoKey(_) => (
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid_api_key",
                false,
            ),
            GatewayError::Timeout(_) => (
                StatusCode::GATEWAY_TIMEOUT,
                "timeout_error",
                "timeout",
                true,
            ),
            GatewayError::Ledger(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "server_error",
                true,
            ),
            GatewayError::Upstream(_) => {
                (StatusCode::BAD_GATEWAY, "api_error", "server_error", true)
            }
            GatewayError::NotFound => {
                (StatusCode::NOT_FOUND, "not_found_error", "not_found", false)
            }
        }
    }

    /// The answer to the agent, in `flavor`'s format.
    pub fn response(&self, flavor: Flavor) -> Response {
        let (mut status, anthropic_type, openai_code, retry) = self.parts();
        let message = self.to_string();
        let body = match flavor {
            Flavor::Anthropic => {
                json!({"type": "error", "error": {"type": anthropic_type, "message": message}})
            }
            Flavor::OpenAi => {
                if matches!(self, GatewayError::Budget(_) | GatewayError::NoPrice(_)) {
                    status = StatusCode::TOO_MANY_REQUESTS;
                }
                let kind = match openai_code {
                    "insufficient_quota" => "insufficient_quota",
                    "rate_limit_exceeded" => "requests",
                    "invalid_api_key" => "invalid_request_error",
                    "server_error" | "timeout" => "server_error",
                    _ => "invalid_request_error",
                };
                json!({"error": {"message": message, "type": kind, "param": null, "code": openai_code}})
            }
        };
        let mut resp = (status, Bytes::from(body.to_string())).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if !retry {
            h.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        if matches!(self, GatewayError::Busy(_)) {
            h.insert("x-should-retry", HeaderValue::from_static("true"));
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// The SSE event injected when a stream breaks after bytes reached the agent.
pub fn interrupted_event(api: Api, message: &str, response_id: Option<&str>) -> Bytes {
    let text = match api {
        Api::Messages | Api::CountTokens => format!(
            "event: error\ndata: {}\n\n",
            json!({"type": "error", "error": {"type": "api_error", "message": message}})
        ),
        Api::ChatCompletions => format!(
            "data: {}\n\n",
            json!({"error": {"message": message, "type": "server_error", "param": null,
                             "code": "stream_interrupted"}})
        ),
        Api::Responses => format!(
            "event: response.failed\ndata: {}\n\n",
            json!({"type": "response.failed", "response": {
                "id": response_id.unwrap_or("resp_drover_interrupted"), "object": "response",
                "status": "failed", "output": [], "usage": null,
                "error": {"code": "server_error", "message": message}}})
        ),
    };
    Bytes::from(text)
}
