//! `drover key create | ls | rotate | revoke` (docs/design.md §7). A key is printed alone on
//! stdout (for `$(drover key create …)`), once; a note on stderr says to store it.

use crate::cli::KeyAction;
use crate::client::{segment, Client};
use crate::error::{CliError, Result};
use crate::format;
use drover_types::{CreateKeyRequest, KeyInfo, NewKey, RotateKeyRequest};

/// `--expires`/`--overlap`: a duration (`30s`, `24h`, `30d`); `zero_ok` also takes `0`.
fn secs(flag: &str, text: &str, zero_ok: bool) -> Result<u64> {
    if zero_ok && matches!(text.trim(), "0" | "0s") {
        return Ok(0);
    }
    drover_types::clock::parse_secs(text)
        .map_err(|e| CliError::input(format!("{flag}: {e}")).hint("e.g. 12h, 30d or 1h30m"))
}

fn print_new(k: &NewKey, what: &str) {
    println!("{}", k.key);
    eprintln!(
        "drover: {what} {} for team {} — shown once, store it now (only its hash is kept)",
        k.info.id,
        format::clean(&k.info.team)
    );
}

pub async fn key(action: KeyAction) -> Result<i32> {
    match action {
        KeyAction::Create {
            team,
            scopes,
            name,
            expires,
        } => {
            let expires_secs = expires
                .as_deref()
                .map(|e| secs("--expires", e, false))
                .transpose()?;
            let req = CreateKeyRequest {
                team,
                scopes,
                name,
                expires_secs,
            };
            let client = Client::connect().await?;
            let k: NewKey = client.post("/v1/keys", &req).await?;
            print_new(&k, "key");
            Ok(0)
        }
        KeyAction::Ls { team, json } => {
            let client = Client::connect().await?;
            let path = match &team {
                Some(t) => format!("/v1/keys?team={}", segment(t)),
                None => "/v1/keys".to_string(),
            };
            let keys: Vec<KeyInfo> = client.get(&path).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&keys).unwrap_or_default()
                );
            } else {
                print!("{}", format::keys_table(&keys, &drover_store_now()));
            }
            Ok(0)
        }
        KeyAction::Rotate { id, overlap } => {
            let overlap_secs = overlap
                .as_deref()
                .map(|o| secs("--overlap", o, true))
                .transpose()?;
            let client = Client::connect().await?;
            let k: NewKey = client
                .post(
                    &format!("/v1/keys/{}/rotate", segment(&id)),
                    &RotateKeyRequest { overlap_secs },
                )
                .await?;
            print_new(&k, "new key");
            Ok(0)
        }
        KeyAction::Revoke { id } => {
            let client = Client::connect().await?;
            let k: KeyInfo = client
                .post(
                    &format!("/v1/keys/{}/revoke", segment(&id)),
                    &serde_json::json!({}),
                )
                .await?;
            println!("{} revoked", k.id);
            Ok(0)
        }
    }
}

/// Now, in the store's time format (what key times compare against).
fn drover_store_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
