//! What a gateway event says in the task's event list.

use drover_gateway::{BudgetKind, GatewayEvent};

/// The config key behind a budget, for messages.
fn budget_name(budget: BudgetKind) -> &'static str {
    match budget {
        BudgetKind::TaskUsd => "the task's --max-usd",
        BudgetKind::TaskTokens => "the task's --max-tokens",
        BudgetKind::PoolUsd => "the pool's --max-usd",
        BudgetKind::TeamUsdPerDay => "the team's max_usd_per_day",
    }
}

/// One line for the event's `message`.
pub fn message(ev: &GatewayEvent) -> String {
    match &ev {
        GatewayEvent::Retry {
            attempt,
            status,
            error,
            delay_ms,
        } => {
            format!(
                "provider: retry {attempt} in {delay_ms} ms after {} ({error})",
                status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "no answer".into())
            )
        }
        GatewayEvent::UpstreamFailed {
            attempts, error, ..
        } => format!("provider failed after {attempts} attempts: {error}"),
        GatewayEvent::BudgetRefused {
            budget,
            limit,
            spent,
            reserved,
            request,
        } => {
            let refusal = drover_gateway::Refusal {
                budget: *budget,
                limit: *limit,
                spent: *spent,
                reserved: *reserved,
                request: *request,
                in_flight_only: false,
            };
            format!(
                "budget exceeded: {}; the gateway refused the request",
                refusal.describe()
            )
        }
        GatewayEvent::BudgetBusy {
            budget,
            limit,
            spent,
            reserved,
            request,
        } => {
            let refusal = drover_gateway::Refusal {
                budget: *budget,
                limit: *limit,
                spent: *spent,
                reserved: *reserved,
                request: *request,
                in_flight_only: true,
            };
            format!(
                "budget_busy: {}; the agent was told to retry",
                refusal.describe()
            )
        }
        GatewayEvent::Unsettled {
            model,
            cost_usd,
            tokens,
        } => format!(
            "unsettled: a {model} request ended without a usage figure; charged its worst case ({}, {tokens} tokens)",
            cost_usd
                .map(|c| format!("${c:.4}"))
                .unwrap_or_else(|| "no price".into())
        ),
        GatewayEvent::Unmeterable { field, reason } => {
            format!("refused: {field}: {reason}")
        }
        GatewayEvent::NoPrice { model, budget } => {
            let which = budget_name(*budget);
            format!(
                "budget exceeded: no price for {model}, so {which} cannot be enforced; the gateway refused the request (price it with gateway.prices.\"{model}\" in config.toml)"
            )
        }
        GatewayEvent::OutputCapped {
            model,
            requested,
            granted,
            budget,
        } => format!(
            "output_capped: {model} asked for up to {requested} output tokens; {} affords {granted}, so the gateway lowered max_tokens to that",
            budget_name(*budget)
        ),
        GatewayEvent::ModelRefused { model } => {
            format!("model {model} is not allowed for this task")
        }
        GatewayEvent::StreamInterrupted { error, .. } => format!("stream_interrupted: {error}"),
        GatewayEvent::Truncated { stop_reason, .. } => format!("truncated: {stop_reason}"),
        GatewayEvent::UnknownModelPrice { model } => {
            format!("no price for model {model}: its cost is recorded as null")
        }
    }
}
