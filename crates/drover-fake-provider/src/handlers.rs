//! The HTTP routes: `/v1/messages`, `/v1/messages/count_tokens`, `/_fake/*`.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::hold::{Holds, DEFAULT_HOLD_TIMEOUT_MS};
use crate::openai::{self, Api};
use crate::record::{AbortGuard, AnswerKind, Log, RequestRecord};
use crate::request::estimate_tokens;
use crate::response::{new_id, side_turn, Rendered};
use crate::scenario::{DropKind, Failure, ScenarioSet, Turn};

/// Pause before a scripted mid-stream cut, so the partial answer reaches the client.
const FLUSH_BEFORE_CUT: Duration = Duration::from_millis(50);

/// Marker extension: the connection layer closes the connection instead of answering.
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

/// Shared state of one fake provider.
#[derive(Debug, Clone)]
pub struct AppState {
    pub set: Arc<ScenarioSet>,
    pub log: Log,
    /// When set, every request (headers and body) is written there as JSON.
    pub dump_dir: Option<PathBuf>,
    pub dump_seq: Arc<AtomicU64>,
    /// Held turns and their releases.
    pub holds: Holds,
}

/// The axum router of the fake provider.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/v1/messages",
            post(|st, uri, h, b| handle(st, uri, h, b, Api::Anthropic)),
        )
        .route(
            "/v1/chat/completions",
            post(|st, uri, h, b| handle(st, uri, h, b, Api::Chat)),
        )
        .route(
            "/v1/responses",
            post(|st, uri, h, b| handle(st, uri, h, b, Api::Responses)),
        )
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/_fake/log", get(fake_log).delete(fake_log_clear))
        .route("/_fake/health", get(|| async { Json(json!({"ok": true})) }))
        .route("/_fake/holds", get(fake_holds))
        .route("/_fake/release/{name}", post(fake_release))
        .fallback(not_found)
        .with_state(state)
}

async fn fake_log(State(st): State<AppState>) -> Json<Value> {
    Json(json!(st.log.records()))
}

async fn fake_holds(State(st): State<AppState>) -> Json<Value> {
    Json(json!(st.holds.state()))
}

async fn fake_release(
    State(st): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Json<Value> {
    st.holds.release(&name);
    Json(json!({ "released": name }))
}

async fn fake_log_clear(State(st): State<AppState>) -> StatusCode {
    st.log.clear();
    StatusCode::NO_CONTENT
}

fn path_of(uri: &Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string())
}

async fn not_found(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let rec = RequestRecord::new(method.as_str(), &path_of(&uri));
    st.dump(&rec, &headers, &Bytes::new());
    error_response(
        &st,
        Api::Anthropic,
        rec,
        404,
        "not_found_error",
        "Not found",
        None,
    )
}

fn has_api_key(headers: &HeaderMap) -> bool {
    api_key(headers).is_some()
}

/// The request's key: `x-api-key`, else the `Authorization: Bearer` token (non-empty).
fn api_key(headers: &HeaderMap) -> Option<String> {
    let non_empty = |s: &str| !s.trim().is_empty();
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .filter(|s| non_empty(s))
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .filter(|s| non_empty(s))
        })
        .map(|s| s.trim().to_string())
}

/// Logs `rec` with an error status and builds the Anthropic-shaped error answer.
fn error_response(
    st: &AppState,
    api: Api,
    mut rec: RequestRecord,
    status: u16,
    error_type: &str,
    message: &str,
    retry_after: Option<u64>,
) -> Response {
    rec.status = status;
    rec.outcome = AnswerKind::Error;
    st.log.push(rec);
    let request_id = new_id("req");
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (
        code,
        Json(openai::error_body(api, error_type, message, &request_id)),
    )
        .into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("request-id", v);
    }
    if let Some(secs) = retry_after {
        h.insert("retry-after", HeaderValue::from(secs));
    }
    resp
}

async fn count_tokens(
    State(st): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut rec = RequestRecord::new("POST", &path_of(&uri));
    rec.api_key = api_key(&headers);
    st.dump(&rec, &headers, &body);
    if !has_api_key(&headers) {
        return error_response(
            &st,
            Api::Anthropic,
            rec,
            401,
            "authentication_error",
            "x-api-key header is required",
            None,
        );
    }
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return error_response(
            &st,
            Api::Anthropic,
            rec,
            400,
            "invalid_request_error",
            "body is not JSON",
            None,
        );
    };
    rec.model = value
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string);
    rec.side = true;
    st.log.push(rec);
    Json(json!({"input_tokens": estimate_tokens(&value)})).into_response()
}

async fn handle(
    State(st): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    api: Api,
) -> Response {
    let mut rec = RequestRecord::new("POST", &path_of(&uri));
    rec.api_key = api_key(&headers);
    st.dump(&rec, &headers, &body);
    if !has_api_key(&headers) {
        let t = "authentication_error";
        return error_response(&st, api, rec, 401, t, "an API key is required", None);
    }
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        let t = "invalid_request_error";
        return error_response(&st, api, rec, 400, t, "body is not JSON", None);
    };
    let info = openai::parse_request(api, &value);
    rec.model = info.model.clone();
    rec.stream = info.stream;
    rec.tools = info.tools;
    rec.max_tokens = info.max_tokens;
    rec.thinking_budget = info.thinking_budget;
    rec.turn = Some(info.assistant_messages);
    let plan = st.set.plan(&info);
    rec.scenario = plan.scenario.map(|s| s.name.clone());

    let (turn, failure): (Turn, Option<Failure>) = if !info.has_tools {
        rec.side = true;
        (side_turn(st.set.side_text()), None)
    } else if let (Some(scenario), Some(turn)) = (plan.scenario, plan.turn) {
        let attempt =
            st.log
                .next_attempt(&scenario.name, plan.turn_index, info.conversation_hash());
        rec.attempt = Some(attempt);
        let failure = turn
            .fail_first
            .get(attempt as usize - 1)
            .and_then(|f| f.to_failure().ok());
        (turn.into_owned(), failure)
    } else {
        (
            Turn::text("fake provider: no scenario matches and none is named default"),
            None,
        )
    };

    if let Some(name) = &turn.hold {
        let guard = AbortGuard::new(&st.log, &rec);
        let timeout =
            Duration::from_millis(turn.hold_timeout_ms.unwrap_or(DEFAULT_HOLD_TIMEOUT_MS));
        st.holds.wait(name, timeout).await;
        guard.disarm();
    }
    if turn.delay_ms > 0 {
        let guard = AbortGuard::new(&st.log, &rec);
        tokio::time::sleep(Duration::from_millis(turn.delay_ms)).await;
        guard.disarm();
    }
    let model = info.model.clone().unwrap_or_else(|| "claude-fake".into());
    let include_usage = api != Api::Chat || openai::include_usage(&value);
    let how = How {
        api,
        stream: info.stream,
        include_usage,
    };
    respond(&st, rec, &turn, failure, &model, how)
}

/// The wire format and mode of an answer.
#[derive(Debug, Clone, Copy)]
struct How {
    api: Api,
    stream: bool,
    /// Chat streams: send the final usage chunk.
    include_usage: bool,
}

/// How a scripted failure ends a 200 answer.
enum Cut {
    Drop,
    StreamError(String),
}

fn respond(
    st: &AppState,
    mut rec: RequestRecord,
    turn: &Turn,
    failure: Option<Failure>,
    model: &str,
    how: How,
) -> Response {
    let How {
        api,
        stream,
        include_usage,
    } = how;
    let mut cut_with: Option<Cut> = None;
    match failure {
        Some(Failure::Status {
            status,
            retry_after,
            error_type,
            message,
        }) => {
            return error_response(st, api, rec, status, &error_type, &message, retry_after);
        }
        Some(Failure::Drop(DropKind::BeforeHeaders)) => {
            rec.status = 0;
            rec.outcome = AnswerKind::DropBeforeHeaders;
            st.log.push(rec);
            let mut resp = Response::new(Body::empty());
            resp.extensions_mut().insert(DropConnection);
            return resp;
        }
        Some(Failure::Drop(DropKind::MidStream)) => cut_with = Some(Cut::Drop),
        Some(Failure::StreamError { error_type }) => {
            if !stream {
                let status = if error_type == "overloaded_error" {
                    529
                } else {
                    500
                };
                let msg = "stream error (fake provider)";
                return error_response(st, api, rec, status, &error_type, msg, None);
            }
            cut_with = Some(Cut::StreamError(error_type));
        }
        None => {}
    }
    let rendered = Rendered::new(turn, model);
    rec.stop_reason = Some(rendered.stop_reason.clone());
    rec.tool_uses = rendered.tool_names();
    rec.outcome = match cut_with {
        None => AnswerKind::Ok,
        Some(Cut::Drop) => AnswerKind::DropMidStream,
        Some(Cut::StreamError(_)) => AnswerKind::StreamError,
    };
    if rec.outcome == AnswerKind::Ok {
        rec.usage = rendered.usage;
        if api != Api::Anthropic {
            // OpenAI has no cache-write count: it is not sent.
            rec.usage.cache_creation_input_tokens = 0;
            if stream && !include_usage {
                // Not asked for: no usage was sent.
                rec.usage = crate::scenario::Usage::default();
            }
        }
    }
    st.log.push(rec);

    let delay = Duration::from_millis(turn.chunk_delay_ms);
    let (pieces, content_type): (Vec<Bytes>, &str) = if stream {
        let (mut pieces, cut) = openai::stream_pieces(api, &rendered, include_usage);
        if cut_with.is_some() {
            pieces.truncate(cut);
        }
        if let Some(Cut::StreamError(t)) = &cut_with {
            pieces.push(openai::stream_error_piece(api, &rendered, t));
        }
        (pieces, "text/event-stream")
    } else {
        let full = openai::json_body(api, &rendered);
        let body = if cut_with.is_some() {
            full[..full.len() / 2].to_string()
        } else {
            full
        };
        (vec![Bytes::from(body)], "application/json")
    };
    let abort = matches!(cut_with, Some(Cut::Drop));
    let items = pieces
        .into_iter()
        .map(Ok::<Bytes, std::io::Error>)
        .enumerate();
    let body_stream = futures::stream::iter(items)
        .then(move |(i, item)| async move {
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            item
        })
        .chain(futures::stream::iter(abort.then_some(())).then(|()| async {
            // Let hyper flush the headers and the partial stream before the cut.
            tokio::time::sleep(FLUSH_BEFORE_CUT).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "scripted mid-stream drop",
            ))
        }));
    let mut resp = Response::new(Body::from_stream(body_stream));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&new_id("req")) {
        h.insert("request-id", v);
    }
    resp
}

impl AppState {
    /// Writes the request to the dump directory, if any (best effort).
    fn dump(&self, rec: &RequestRecord, headers: &HeaderMap, body: &Bytes) {
        let Some(dir) = &self.dump_dir else { return };
        let n = self.dump_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let hdrs: serde_json::Map<String, Value> = headers
            .iter()
            .filter(|(k, _)| *k != "x-api-key" && *k != header::AUTHORIZATION)
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("<binary>"))))
            .collect();
        let body: Value =
            serde_json::from_slice(body).unwrap_or_else(|_| json!(String::from_utf8_lossy(body)));
        let doc = json!({"method": rec.method, "path": rec.path, "headers": hdrs, "body": body});
        let file = dir.join(format!("{n:04}.json"));
        if let Err(e) = std::fs::write(&file, doc.to_string()) {
            tracing::warn!(
                "fake provider: cannot dump request to {}: {e}",
                file.display()
            );
        }
    }
}

/// Converts an infallible result (axum routers never fail).
pub fn infallible<T>(r: Result<T, Infallible>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => match e {},
    }
}
