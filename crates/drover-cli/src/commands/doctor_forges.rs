//! `drover doctor`'s forge lines (docs/design.md §9): one per `[forges.NAME]`, saying where it
//! is and whether its token can be had (`token_env` set, `token_cmd` runs, a GitHub App's
//! installation answers). The token itself is never shown; a failure does not change doctor's
//! exit code (tasks on other repositories still run).

use super::doctor_check::Check;
use drover_forge::{Credential, CredentialSpec, ForgeSettings};
use std::time::Duration;

pub(super) async fn forge_checks(cfg: Option<&drover_daemon::Config>) -> Vec<Check> {
    let Some(cfg) = cfg else { return vec![] };
    let env = cfg.inherited.for_gate();
    let mut out = vec![];
    for forge in &cfg.forges {
        out.push(check(forge, env.clone()).await);
    }
    out
}

async fn check(forge: &ForgeSettings, env: Vec<(String, String)>) -> Check {
    let place = format!(
        "{}: {} at {} (git {}){}",
        forge.name,
        forge.kind,
        forge.api,
        forge.git,
        if forge.default { ", default" } else { "" }
    );
    let source = match &forge.credential {
        CredentialSpec::Env { var, .. } => format!("token from ${var}"),
        CredentialSpec::Cmd { .. } => "token from token_cmd".to_string(),
        CredentialSpec::GithubApp {
            app_id,
            installation_id: None,
            ..
        } => {
            return Check {
                name: "forge",
                ok: true,
                detail: format!(
                    "{place}; GitHub App {app_id}: its installation is looked up per repository \
                     (not checked here)"
                ),
                hint: None,
            }
        }
        CredentialSpec::GithubApp { app_id, .. } => format!("GitHub App {app_id}"),
    };
    let credential = Credential::new(forge, env);
    let got = tokio::time::timeout(Duration::from_secs(40), credential.token()).await;
    let (ok, detail) = match got {
        Ok(Ok(_)) => (true, format!("{place}; {source}: ok")),
        Ok(Err(e)) => (false, format!("{place}; {source}: {e}")),
        Err(_) => (false, format!("{place}; {source}: no token within 40 s")),
    };
    Check {
        name: "forge",
        ok,
        detail,
        hint: Some(format!(
            "fix [forges.{}] in config.toml (token_env, token_cmd or app_id/app_key)",
            forge.name
        )),
    }
}
