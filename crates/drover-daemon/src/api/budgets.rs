//! `GET /v1/budgets` → [`Budgets`]: the dashboard's burn-down of every budget — each team's
//! daily budget (what it spent today, UTC, as the gateway's ledger counts it) and each active
//! task's `--max-usd`. A key sees its own team's only (scope `usage:read`). A team's hours are
//! the store's own sums from each hour's start ([`drover_store::UsageStore::spent`]), one query
//! per hour so far: a handful of teams, a page that asks every few seconds at most.

use super::auth::Principal;
use super::ApiErr;
use crate::engine::Engine;
use axum::extract::{Extension, State};
use axum::Json;
use drover_types::{Budgets, TaskBudget, TeamBudget};
use std::sync::Arc;

pub async fn budgets(
    State(engine): State<Arc<Engine>>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Budgets>, ApiErr> {
    let now = chrono::Utc::now();
    let day = now.date_naive().to_string();
    let hour = chrono::Timelike::hour(&now);
    let day_start = format!("{day}T00:00:00");
    let up_to = engine.store.usage_last_id().await?;
    let mut teams = vec![];
    for t in engine.store.teams().await? {
        if !who.sees(Some(&t.name)) {
            continue;
        }
        let spent = engine
            .store
            .spent("", None, Some(&t.name), &day_start, up_to)
            .await?;
        // Spent since each hour's start, then the differences.
        let mut since = Vec::with_capacity(hour as usize + 1);
        for h in 0..=hour {
            let start = format!("{day}T{h:02}:00:00");
            let s = engine
                .store
                .spent("", None, Some(&t.name), &start, up_to)
                .await?;
            since.push(s.team_usd_today);
        }
        let hourly_usd = (0..since.len())
            .map(|h| (since[h] - since.get(h + 1).copied().unwrap_or(0.0)).max(0.0))
            .collect();
        teams.push(TeamBudget {
            team: t.name,
            max_usd_per_day: t.max_usd_per_day,
            spent_today_usd: spent.team_usd_today,
            hourly_usd,
        });
    }
    let mut tasks = vec![];
    for t in engine.store.active().await? {
        let Some(max_usd) = t.budget.max_usd else {
            continue;
        };
        if !who.sees(t.team.as_deref()) {
            continue;
        }
        tasks.push(TaskBudget {
            id: t.id,
            name: t.name,
            team: t.team,
            state: t.state,
            max_usd,
            spent_usd: t.cost_usd.unwrap_or(0.0),
        });
    }
    Ok(Json(Budgets { day, teams, tasks }))
}
