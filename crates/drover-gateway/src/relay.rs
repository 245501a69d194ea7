//! Relaying a successful upstream body to the agent while metering it.
//!
//! Bytes go out as they arrive; SSE is forwarded in whole events (a partial event waits for its
//! end, so an injected error event always starts on an event boundary). The usage record is
//! written *before* the response's final event is relayed, so an agent's next request sees it
//! in the budget check. If upstream breaks after bytes reached the agent, a well-formed error
//! event ends the stream and `StreamInterrupted` is sent; if the agent goes away, the usage
//! seen so far is recorded.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};

use crate::budget::{Reservation, WorstCase};
use crate::errors::interrupted_event;
use crate::grant::TaskGrant;
use crate::inner::Inner;
use crate::ledger::{Api, GatewayEvent, ResponseOutcome, UsageRecord};
use crate::meter::{complete_prefix, events, Meter};
use crate::upstream::Upstream;
use crate::watch::Watch;

/// Largest non-streaming body kept for metering (bigger ones are relayed but not parsed).
const MAX_JSON_COPY: usize = 64 * 1024 * 1024;

/// Everything a relay needs to record a response.
pub struct Ctx {
    pub inner: Arc<Inner>,
    pub grant: Arc<TaskGrant>,
    pub api: Api,
    /// The model sent upstream (used when the response names none).
    pub model: String,
    /// The gateway added `include_usage`: drop the usage chunk before it reaches the agent.
    pub strip_usage: bool,
}

/// The state of one relayed body.
pub struct Relay {
    ctx: Ctx,
    upstream: Upstream,
    first: Option<Bytes>,
    sse: bool,
    buf: BytesMut,
    json: Vec<u8>,
    meter: Meter,
    idle: Duration,
    recorded: bool,
    done: bool,
    /// The request's budget reservation: released once its usage is recorded.
    hold: Option<Reservation>,
    /// The request's report to the observer: sent when the relay is dropped (after the last
    /// byte, or when the agent went away).
    watch: Option<Watch>,
}

impl Relay {
    pub fn new(
        ctx: Ctx,
        upstream: Upstream,
        first: Bytes,
        sse: bool,
        hold: Option<Reservation>,
        watch: Option<Watch>,
    ) -> Self {
        let idle = ctx.inner.cfg.idle_timeout;
        Relay {
            ctx,
            upstream,
            first: Some(first),
            sse,
            buf: BytesMut::new(),
            json: Vec::new(),
            meter: Meter::default(),
            idle,
            recorded: false,
            done: false,
            hold,
            watch,
        }
    }

    /// The body stream handed to axum.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
        futures::stream::unfold(self, |mut r| async move {
            r.next_piece().await.map(|item| (item, r))
        })
    }

    async fn next_piece(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if self.done {
            return None;
        }
        loop {
            let chunk = match self.first.take() {
                Some(b) => Some(Ok(b)),
                None => match tokio::time::timeout(self.idle, self.upstream.next()).await {
                    Ok(c) => c,
                    Err(_) => {
                        return self
                            .interrupt("upstream stream stalled (idle timeout)")
                            .await
                    }
                },
            };
            match chunk {
                Some(Ok(bytes)) => {
                    if let Some(out) = self.on_bytes(bytes).await {
                        return Some(Ok(out));
                    }
                }
                Some(Err(e)) => {
                    let msg = format!("upstream stream broke: {e}");
                    return self.interrupt(&msg).await;
                }
                None => return self.on_end().await,
            }
        }
    }

    /// Meters a chunk; returns what to send now (None: nothing complete yet).
    async fn on_bytes(&mut self, bytes: Bytes) -> Option<Bytes> {
        if !self.sse {
            if self.json.len() + bytes.len() <= MAX_JSON_COPY {
                self.json.extend_from_slice(&bytes);
            }
            return Some(bytes);
        }
        self.buf.extend_from_slice(&bytes);
        let n = complete_prefix(&self.buf);
        if n == 0 {
            return None;
        }
        let block = self.buf.split_to(n).freeze();
        let out = self.meter_events(block);
        if self.meter.complete && !self.recorded {
            self.finish(ResponseOutcome::Complete, None).await;
        }
        (!out.is_empty()).then_some(out)
    }

    /// Feeds complete events to the meter; returns the bytes to relay.
    fn meter_events(&mut self, block: Bytes) -> Bytes {
        let Ok(text) = std::str::from_utf8(&block) else {
            return block;
        };
        let (api, strip) = (self.ctx.api, self.ctx.strip_usage);
        let mut dropped = Vec::new();
        for (event, data, range) in events(text) {
            if !self.meter.on_event(api, event, &data, strip) {
                dropped.push(range);
            }
        }
        if dropped.is_empty() {
            return block;
        }
        let mut out = BytesMut::with_capacity(block.len());
        let mut at = 0;
        for r in dropped {
            out.extend_from_slice(&block[at..r.start]);
            at = r.end;
        }
        out.extend_from_slice(&block[at..]);
        out.freeze()
    }

    async fn on_end(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if !self.sse {
            let json = std::mem::take(&mut self.json);
            self.meter.on_body(self.ctx.api, &json);
        }
        // A Chat stream without `[DONE]` but with its finish reason ended cleanly enough.
        let chat_done = self.ctx.api == Api::ChatCompletions && self.meter.stop_reason.is_some();
        // After an upstream error event the agent already holds a well-formed error.
        let errored = self.meter.upstream_error.is_some();
        if self.sse && !self.meter.complete && !chat_done && !errored {
            return self
                .interrupt("upstream closed the stream before its end")
                .await;
        }
        if !self.recorded {
            self.finish(ResponseOutcome::Complete, None).await;
        }
        self.done = true;
        None
    }

    /// Ends the stream after a break: error event for SSE, a cut connection otherwise.
    async fn interrupt(&mut self, msg: &str) -> Option<Result<Bytes, std::io::Error>> {
        self.done = true;
        let message = format!("drover gateway: {msg}");
        if !self.recorded {
            self.finish(ResponseOutcome::Interrupted, Some(message.clone()))
                .await;
        }
        if self.sse {
            let id = self.meter.response_id.as_deref();
            Some(Ok(interrupted_event(self.ctx.api, &message, id)))
        } else {
            Some(Err(std::io::Error::other(message)))
        }
    }

    /// Writes the usage record and the events it implies (once).
    async fn finish(&mut self, mut outcome: ResponseOutcome, interrupted: Option<String>) {
        self.recorded = true;
        let error = interrupted.or_else(|| self.meter.upstream_error.clone());
        if error.is_some() {
            outcome = ResponseOutcome::Interrupted;
        }
        let hold = self.hold.take();
        let worst = hold.as_ref().map(Reservation::worst_case);
        let interrupted = error.is_some();
        let (rec, events) = build_record(&self.ctx, &self.meter, outcome, error, worst);
        if let Some(w) = self.watch.as_mut() {
            w.metered(rec.as_ref());
            w.ex.interrupted = interrupted;
        }
        write(&self.ctx, rec, events).await;
        // Settled: the record now counts in what was spent.
        if let Some(h) = hold {
            h.settle();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if self.recorded {
            return;
        }
        // The agent went away mid-response: record what was seen (at least the worst case
        // when the final usage was not), in the background.
        let worst = self.hold.as_ref().map(Reservation::worst_case);
        let (rec, events) = build_record(
            &self.ctx,
            &self.meter,
            ResponseOutcome::ClientClosed,
            None,
            worst,
        );
        if let Some(w) = self.watch.as_mut() {
            w.metered(rec.as_ref());
        }
        let ctx = Ctx {
            inner: self.ctx.inner.clone(),
            grant: self.ctx.grant.clone(),
            api: self.ctx.api,
            model: String::new(),
            strip_usage: false,
        };
        let hold = self.hold.take();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                write(&ctx, rec, events).await;
                if let Some(h) = hold {
                    h.settle();
                }
            });
        }
        // Without a runtime the hold's own drop charges the worst case (or releases it).
    }
}

/// The usage record (if any usage was seen, or the request held a reservation) and the events
/// of a finished response. Under a reservation (`worst`), a response that ended without its
/// final usage is charged the larger of what was metered and its worst case, as `unsettled`.
fn build_record(
    ctx: &Ctx,
    meter: &Meter,
    mut outcome: ResponseOutcome,
    error: Option<String>,
    worst: Option<WorstCase>,
) -> (Option<UsageRecord>, Vec<GatewayEvent>) {
    let model = meter.model.clone().unwrap_or_else(|| ctx.model.clone());
    let mut events = Vec::new();
    if let Some(error) = error {
        events.push(GatewayEvent::StreamInterrupted {
            model: model.clone(),
            error,
        });
    }
    if let Some(reason) = meter.truncated() {
        events.push(GatewayEvent::Truncated {
            model: model.clone(),
            stop_reason: reason.to_string(),
        });
    }
    let unsettled = worst.filter(|_| !meter.final_usage);
    if !meter.saw_usage && unsettled.is_none() {
        return (None, events);
    }
    let prices = &ctx.inner.cfg.prices;
    // Under a dollar budget a response naming an unpriced model (e.g. a new dated id) is
    // charged at the price of the model requested, which the budget check found.
    let mut cost = prices.cost(&model, &meter.tokens).or_else(|| {
        ctx.grant
            .limits
            .dollar_budget()
            .and_then(|_| prices.cost(&ctx.model, &meter.tokens))
    });
    let mut tokens = meter.tokens;
    if let Some(w) = unsettled {
        outcome = ResponseOutcome::Unsettled;
        cost = match (cost, w.usd) {
            (Some(c), Some(u)) => Some(c.max(u)),
            (c, u) => c.or(u),
        };
        if meter.saw_usage {
            tokens.output += w.tokens.total().saturating_sub(tokens.total());
        } else {
            tokens = w.tokens;
        }
        events.push(GatewayEvent::Unsettled {
            model: model.clone(),
            cost_usd: cost,
            tokens: tokens.total(),
        });
    }
    if cost.is_none() && ctx.inner.first_unknown(&model) {
        tracing::warn!("gateway: no price for model {model:?}; its cost is recorded as null");
        events.push(GatewayEvent::UnknownModelPrice {
            model: model.clone(),
        });
    }
    let rec = UsageRecord {
        api: ctx.api,
        model,
        pool: ctx.grant.pool.clone(),
        team: ctx.grant.team.clone(),
        tokens,
        cost_usd: cost,
        stop_reason: meter.stop_reason.clone(),
        outcome,
        at: chrono::Utc::now(),
    };
    (Some(rec), events)
}

async fn write(ctx: &Ctx, rec: Option<UsageRecord>, events: Vec<GatewayEvent>) {
    let task = &ctx.grant.task_id;
    if let Some(rec) = rec {
        ctx.inner.ledger.record(task, rec).await;
    }
    for ev in events {
        ctx.inner.ledger.event(task, ev).await;
    }
}
