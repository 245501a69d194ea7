//! The request path: task token → model policy → budget → upstream (with retries) → relay.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Uri};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;

use crate::budget::{Ask, Reservation};
use crate::config::Secret;
use crate::errors::{Flavor, GatewayError};
use crate::grant::TaskGrant;
use crate::inner::Inner;
use crate::ledger::{Api, GatewayEvent};
use crate::relay::{Ctx, Relay};
use crate::upstream::{send_with_retries, RetryOutcome};
use crate::watch::Watch;

/// Request headers not passed upstream: hop-by-hop, length (recomputed), the agent's task
/// token, and `accept-encoding` (the relay reads the body, so it must arrive uncompressed).
const DROP_REQUEST: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "x-api-key",
    "authorization",
    "accept-encoding",
];

/// Response headers not passed back (the body may change length: injected or stripped events).
const DROP_RESPONSE: &[&str] = &[
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "trailer",
    "upgrade",
];

/// The fields of a request body the gateway looks at.
#[derive(Debug, Deserialize)]
struct Peek {
    model: Option<String>,
    stream: Option<bool>,
    stream_options: Option<Value>,
    /// Output caps: Anthropic / Chat (old), Chat, Responses.
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    max_output_tokens: Option<u64>,
    /// Chat: choices per request (each up to the output cap).
    n: Option<u64>,
    /// Responses: run in the background (answered `queued`; usage never on this connection).
    background: Option<bool>,
    /// Responses: server-side context not in the body.
    previous_response_id: Option<Value>,
    conversation: Option<Value>,
}

impl Peek {
    fn output_cap(&self) -> Option<u64> {
        self.max_tokens
            .or(self.max_completion_tokens)
            .or(self.max_output_tokens)
    }

    /// Choices per request (Chat `n`), at least 1.
    fn choices(&self) -> u64 {
        self.n.unwrap_or(1).max(1)
    }
}

/// What the request's body is, as far as budgets go.
struct Prepared {
    body: Bytes,
    model: String,
    strip_usage: bool,
    /// The output cap per choice.
    cap: Option<u64>,
    /// Chat `n`: the output is up to `cap × choices`.
    choices: u64,
}

/// Refuses what a budget cannot bound: output the gateway never sees (`background`), context
/// it cannot estimate (`previous_response_id`, `conversation`, URL sources).
fn unmeterable(
    api: Api,
    grant: &TaskGrant,
    peek: &Peek,
    body: &[u8],
) -> Option<(&'static str, &'static str)> {
    let refuse = |field: &'static str, why: &'static str| Some((field, why));
    if !grant.limits.any() {
        return None;
    }
    if api == Api::Responses && peek.background == Some(true) {
        return refuse(
            "background: true",
            "a background response's usage never reaches the gateway, so its cost cannot be metered",
        );
    }
    // The rest only matters to a dollar budget.
    grant.limits.dollar_budget()?;
    let set = |v: &Option<Value>| v.as_ref().is_some_and(|v| !v.is_null());
    if api == Api::Responses && set(&peek.previous_response_id) {
        return refuse(
            "previous_response_id",
            "the context it adds is stored at the provider, so the request's cost cannot be bounded; send the conversation in `input`",
        );
    }
    if api == Api::Responses && set(&peek.conversation) {
        return refuse(
            "conversation",
            "the context it adds is stored at the provider, so the request's cost cannot be bounded; send the conversation in `input`",
        );
    }
    if api == Api::Messages && has_url_source(body) {
        return refuse(
            "source.type: \"url\"",
            "a document or image fetched by URL is not in the body, so the request's cost cannot be bounded; send it as base64",
        );
    }
    None
}

/// Whether an Anthropic body has a content block with `source.type == "url"`.
fn has_url_source(body: &[u8]) -> bool {
    // Cheap pre-check: no `"url"` string anywhere, no URL source.
    if !body.windows(5).any(|w| w == b"\"url\"") {
        return false;
    }
    fn walk(v: &Value) -> bool {
        match v {
            Value::Object(o) => {
                let url_source = o
                    .get("source")
                    .and_then(|s| s.get("type"))
                    .and_then(Value::as_str)
                    == Some("url");
                url_source || o.values().any(walk)
            }
            Value::Array(a) => a.iter().any(walk),
            _ => false,
        }
    }
    serde_json::from_slice::<Value>(body).is_ok_and(|v| walk(&v))
}

/// Serves one agent request. A task's request is reported to the observer once (see
/// [`crate::watch`]): when its relayed body ends, or when it is refused or fails.
pub async fn handle(
    inner: Arc<Inner>,
    api: Api,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(grant) = agent_token(&headers).and_then(|t| inner.grants.get(t)) else {
        return GatewayError::Unauthorized.response(api.flavor());
    };
    let mut watch = Some(Watch::start(&inner, &grant.task_id, api));
    match proxy(inner, grant, api, uri, headers, body, &mut watch).await {
        Ok(r) => r,
        Err(e) => {
            if let Some(w) = watch.as_mut() {
                w.failed_with(&e);
            }
            e.response(api.flavor())
        }
    }
}

/// The agent's task token: `x-api-key` (Anthropic) or `Authorization: Bearer` (OpenAI).
fn agent_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        })
        .map(str::trim)
}

async fn proxy(
    inner: Arc<Inner>,
    grant: Arc<TaskGrant>,
    api: Api,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    watch: &mut Option<Watch>,
) -> Result<Response, GatewayError> {
    let Prepared {
        body,
        model,
        strip_usage,
        cap: output_cap,
        choices,
    } = prepare(&inner, &grant, api, body).await?;
    if let Some(w) = watch.as_mut() {
        w.ex.request_model = model.clone();
    }
    let hold = if api != Api::CountTokens && grant.limits.any() {
        let ask = Ask::new(body.len(), output_cap.map(|c| c.saturating_mul(choices)));
        let hold = check_budget(&inner, &grant, &model, ask).await?;
        Some(hold.charge_to(inner.ledger.clone(), &grant, api, &model))
    } else {
        None
    };
    let body = match (hold.as_ref().and_then(Reservation::lowered), output_cap) {
        (Some((granted, budget)), Some(requested)) => {
            // The budget's cap covers all `n` choices.
            let granted = (granted / choices).max(1);
            let body = crate::clamp::lower_output_cap(&body, granted)?;
            let ev = GatewayEvent::OutputCapped {
                model: model.clone(),
                requested,
                granted,
                budget,
            };
            inner.ledger.event(&grant.task_id, ev).await;
            body
        }
        _ => body,
    };
    let flavor = api.flavor();
    let key = grant
        .key_override
        .as_ref()
        .or(match flavor {
            Flavor::Anthropic => inner.cfg.anthropic_key.as_ref(),
            Flavor::OpenAi => inner.cfg.openai_key.as_ref(),
        })
        .ok_or(GatewayError::NoKey(match flavor {
            Flavor::Anthropic => "Anthropic",
            Flavor::OpenAi => "OpenAI",
        }))?;
    let url = upstream_url(&inner, api, &uri);
    let fwd = forward_headers(&headers, flavor, key)?;
    let make = || {
        inner
            .client
            .post(&url)
            .headers(fwd.clone())
            .body(body.clone())
    };
    let task = grant.task_id.clone();
    let ledger = inner.ledger.clone();
    let outcome = send_with_retries(&inner.cfg, make, |ev| {
        // An attempt the provider may have run (no headers or no first byte in time, or a
        // 2xx body that broke before its first byte) is charged its worst case before the retry.
        let ran = matches!(&ev, GatewayEvent::Retry { status, error, .. }
            if status.is_some_and(|s| (200..300).contains(&s)) || error.contains("TTFB timeout"));
        let charge = hold
            .as_ref()
            .filter(|_| ran)
            .and_then(Reservation::attempt_charge);
        let (ledger, task) = (ledger.clone(), task.clone());
        async move {
            if let Some((payee, to, rec, charged)) = charge {
                payee.record(&to, rec).await;
                payee.event(&to, charged).await;
            }
            ledger.event(&task, ev).await
        }
    })
    .await;
    let answer = match outcome {
        RetryOutcome::Answer(a) => a,
        RetryOutcome::Failed { failure, attempts } => {
            if let Some(w) = watch.as_mut() {
                // An answer relayed as is carries its status; else the agent gets the
                // gateway's own error (`status: None`).
                w.ex.status = failure.answer.as_ref().map(|(s, _, _)| s.as_u16());
                w.ex.retries = attempts.saturating_sub(1);
            }
            // An error status is not billed; a timeout or a broken connection may have been
            // (the provider may have run the request): the hold's drop charges its worst case.
            if failure.answer.is_some() {
                if let Some(h) = hold {
                    h.release();
                }
            }
            let ev = GatewayEvent::UpstreamFailed {
                attempts,
                status: failure.status,
                error: failure.error.clone(),
            };
            inner.ledger.event(&task, ev).await;
            if let Some((status, h, b)) = failure.answer {
                let mut resp = Response::new(Body::from(b));
                *resp.status_mut() = status;
                copy_response_headers(&h, resp.headers_mut());
                return Ok(resp);
            }
            if failure.timed_out {
                return Err(GatewayError::Timeout(inner.cfg.ttfb_timeout.as_secs()));
            }
            return Err(GatewayError::Upstream(failure.error));
        }
    };
    if let Some(w) = watch.as_mut() {
        w.ex.status = Some(answer.status.as_u16());
        w.ex.retries = answer.attempts.saturating_sub(1);
    }
    let watch = watch.take();
    let sse = answer
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let body = if api == Api::CountTokens {
        // The watch lives as long as the body: reported after its last byte.
        let rest = answer.body.map(move |r| {
            let _watch = &watch;
            r.map_err(std::io::Error::other)
        });
        Body::from_stream(futures::stream::once(async { Ok(answer.first) }).chain(rest))
    } else {
        let ctx = Ctx {
            inner: inner.clone(),
            grant,
            api,
            model,
            strip_usage,
        };
        Body::from_stream(
            Relay::new(ctx, answer.body, answer.first, sse, hold, watch).into_stream(),
        )
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = answer.status;
    copy_response_headers(&answer.headers, resp.headers_mut());
    Ok(resp)
}

/// Applies aliases and the model policy, and asks Chat streams for their usage chunk.
/// Returns the body to send, the model sent, whether the usage chunk must be stripped, and the
/// request's output cap.
async fn prepare(
    inner: &Inner,
    grant: &TaskGrant,
    api: Api,
    body: Bytes,
) -> Result<Prepared, GatewayError> {
    let peek: Peek = serde_json::from_slice(&body)?;
    let cap = peek.output_cap();
    let choices = peek.choices();
    if let Some((field, why)) = unmeterable(api, grant, &peek, &body) {
        let ev = GatewayEvent::Unmeterable {
            field: field.to_string(),
            reason: why.to_string(),
        };
        inner.ledger.event(&grant.task_id, ev).await;
        return Err(GatewayError::Unmeterable(format!(
            "`{field}` under a drover budget: {why}"
        )));
    }
    let requested = peek.model.unwrap_or_default();
    let resolved = grant
        .resolve_model(&requested, &inner.cfg.aliases)
        .to_string();
    if !grant.allows(&requested, &resolved) {
        let ev = GatewayEvent::ModelRefused {
            model: resolved.clone(),
        };
        inner.ledger.event(&grant.task_id, ev).await;
        return Err(GatewayError::ModelNotAllowed(resolved));
    }
    let wants_usage = peek
        .stream_options
        .as_ref()
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let add_usage = api == Api::ChatCompletions && peek.stream == Some(true) && !wants_usage;
    if resolved == requested && !add_usage {
        return Ok(Prepared {
            body,
            model: resolved,
            strip_usage: false,
            cap,
            choices,
        });
    }
    let mut v: Value = serde_json::from_slice(&body)?;
    if resolved != requested {
        v["model"] = Value::String(resolved.clone());
    }
    if add_usage {
        let opts = &mut v["stream_options"];
        if !opts.is_object() {
            *opts = Value::Object(serde_json::Map::new());
        }
        opts["include_usage"] = Value::Bool(true);
    }
    Ok(Prepared {
        body: Bytes::from(serde_json::to_vec(&v)?),
        model: resolved,
        strip_usage: add_usage,
        cap,
        choices,
    })
}

/// Reserves the request's worst-case cost, or refuses it (and tells the ledger) when it does not
/// fit a budget of the grant — or when a dollar budget applies and `model` has no price.
async fn check_budget(
    inner: &Inner,
    grant: &TaskGrant,
    model: &str,
    ask: Ask,
) -> Result<Reservation, GatewayError> {
    let price = inner.cfg.prices.get(model);
    if price.is_none() {
        if let Some(budget) = grant.limits.dollar_budget() {
            let ev = GatewayEvent::NoPrice {
                model: model.to_string(),
                budget,
            };
            inner.ledger.event(&grant.task_id, ev).await;
            return Err(GatewayError::NoPrice(model.to_string()));
        }
    }
    let ledger = &inner.ledger;
    let admitted = inner
        .budgets
        .admit_waiting(grant, price, ask, inner.cfg.busy_wait, || async move {
            ledger.spent(grant).await
        })
        .await
        .map_err(GatewayError::Ledger)?;
    match admitted {
        Ok(hold) => Ok(hold),
        Err(refusal) if refusal.in_flight_only => {
            let ev = GatewayEvent::BudgetBusy {
                budget: refusal.budget,
                limit: refusal.limit,
                spent: refusal.spent,
                reserved: refusal.reserved,
                request: refusal.request,
            };
            inner.ledger.event(&grant.task_id, ev).await;
            Err(GatewayError::Busy(refusal.describe()))
        }
        Err(refusal) => {
            let ev = GatewayEvent::BudgetRefused {
                budget: refusal.budget,
                limit: refusal.limit,
                spent: refusal.spent,
                reserved: refusal.reserved,
                request: refusal.request,
            };
            inner.ledger.event(&grant.task_id, ev).await;
            Err(GatewayError::Budget(refusal.describe()))
        }
    }
}

fn upstream_url(inner: &Inner, api: Api, uri: &Uri) -> String {
    let path = uri.path();
    let (base, path) = match api.flavor() {
        Flavor::Anthropic => (inner.cfg.anthropic_base.as_str(), path),
        Flavor::OpenAi => (
            inner.cfg.openai_base.as_str(),
            path.strip_prefix("/v1").unwrap_or(path),
        ),
    };
    let mut url = String::with_capacity(base.len() + path.len() + 32);
    url.push_str(base.trim_end_matches('/'));
    url.push_str(path);
    if let Some(q) = uri.query() {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// The agent's headers minus [`DROP_REQUEST`], plus the real key.
fn forward_headers(
    headers: &HeaderMap,
    flavor: Flavor,
    key: &Secret,
) -> Result<HeaderMap, GatewayError> {
    let mut out = HeaderMap::with_capacity(headers.len() + 1);
    for (k, v) in headers {
        if !DROP_REQUEST.contains(&k.as_str()) {
            out.append(k.clone(), v.clone());
        }
    }
    let bad_key = || GatewayError::NoKey("usable");
    let (name, value) = match flavor {
        Flavor::Anthropic => (
            HeaderName::from_static("x-api-key"),
            key.expose().to_string(),
        ),
        Flavor::OpenAi => (header::AUTHORIZATION, format!("Bearer {}", key.expose())),
    };
    let mut value = HeaderValue::from_str(&value).map_err(|_| bad_key())?;
    value.set_sensitive(true);
    out.insert(name, value);
    Ok(out)
}

fn copy_response_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (k, v) in from {
        if !DROP_RESPONSE.contains(&k.as_str()) {
            to.append(k.clone(), v.clone());
        }
    }
}
