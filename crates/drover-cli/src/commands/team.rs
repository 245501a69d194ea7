//! `drover team create | ls | update | webhook-secret` (docs/design.md §7).

use crate::cli::{TeamAction, TeamSetting, TeamSettings};
use crate::client::{segment, Client};
use crate::error::{CliError, Result};
use crate::format;
use drover_types::{validate, CreateTeamRequest, TeamInfo, UpdateTeamRequest, WebhookSecret};

fn check(s: &TeamSettings) -> Result<()> {
    validate::dollars("--max-usd-per-day", s.max_usd_per_day).map_err(CliError::input)?;
    validate::dollars("--max-usd-per-task", s.max_usd_per_task).map_err(CliError::input)?;
    Ok(())
}

pub async fn team(action: TeamAction) -> Result<i32> {
    match action {
        TeamAction::Create { name, settings } => {
            check(&settings)?;
            let req = CreateTeamRequest {
                name,
                max_usd_per_day: settings.max_usd_per_day,
                max_usd_per_task: settings.max_usd_per_task,
                allowed_models: (!settings.allowed_models.is_empty())
                    .then_some(settings.allowed_models),
                allowed_repos: (!settings.allowed_repos.is_empty())
                    .then_some(settings.allowed_repos),
                webhook_url: settings.webhook_url,
            };
            let client = Client::connect().await?;
            let t: TeamInfo = client.post("/v1/teams", &req).await?;
            println!("{}", format::clean(&t.name));
            Ok(0)
        }
        TeamAction::Ls { json } => {
            let client = Client::connect().await?;
            let teams: Vec<TeamInfo> = client.get("/v1/teams").await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&teams).unwrap_or_default()
                );
            } else {
                print!("{}", format::teams_table(&teams));
            }
            Ok(0)
        }
        TeamAction::Update {
            name,
            settings,
            unset,
        } => {
            check(&settings)?;
            let mut req = UpdateTeamRequest {
                max_usd_per_day: settings.max_usd_per_day.map(Some),
                max_usd_per_task: settings.max_usd_per_task.map(Some),
                allowed_models: (!settings.allowed_models.is_empty())
                    .then_some(Some(settings.allowed_models)),
                allowed_repos: (!settings.allowed_repos.is_empty())
                    .then_some(Some(settings.allowed_repos)),
                webhook_url: settings.webhook_url.map(Some),
            };
            for u in unset {
                let given = match u {
                    TeamSetting::MaxUsdPerDay => req.max_usd_per_day.replace(None).is_some(),
                    TeamSetting::MaxUsdPerTask => req.max_usd_per_task.replace(None).is_some(),
                    TeamSetting::AllowedModels => req.allowed_models.replace(None).is_some(),
                    TeamSetting::AllowedRepos => req.allowed_repos.replace(None).is_some(),
                    TeamSetting::WebhookUrl => req.webhook_url.replace(None).is_some(),
                };
                if given {
                    return Err(CliError::input(format!(
                        "--unset {u:?} and a value for the same setting: give one"
                    )));
                }
            }
            if req == UpdateTeamRequest::default() {
                return Err(CliError::input("nothing to update").hint(
                    "give --max-usd-per-day, --max-usd-per-task, --allow-model, --allow-repo, --webhook-url or --unset",
                ));
            }
            let client = Client::connect().await?;
            let t: TeamInfo = client
                .patch(&format!("/v1/teams/{}", segment(&name)), &req)
                .await?;
            print!("{}", format::teams_table(&[t]));
            Ok(0)
        }
        TeamAction::WebhookSecret { name } => {
            let client = Client::connect().await?;
            let s: WebhookSecret = client
                .get(&format!("/v1/teams/{}/webhook-secret", segment(&name)))
                .await?;
            println!("{}", s.secret);
            Ok(0)
        }
    }
}
