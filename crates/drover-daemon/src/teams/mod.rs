//! Teams and their API keys above the store (docs/design.md §7): the name rule, a key's validity
//! ([`keys::key_state`], what the TCP listener checks), a team's policy for its tasks ([`policy`]:
//! budgets and model list, read from the store), the import of `[teams.NAME]` from config at
//! start, and webhooks ([`webhooks`]: the secret, the signed payload, the delivery worker).
//!
//! The store is the source of team settings. At start, each config team not in the store yet
//! is imported; one that is there already keeps its stored settings (the store wins, and a
//! difference is logged): `drover team update` changes a team from then on.
//!
//! A leaf under the engine and the API: it uses the store and the config, never `engine` or
//! `api` (they call it).

pub mod keys;
pub mod policy;
pub mod webhooks;

use crate::config::Team;
use drover_store::{Store, StoreError};
use drover_types::TeamInfo;
use std::collections::HashMap;

/// The longest team name.
pub const NAME_MAX: usize = 63;

/// Whether `name` is a team name: `[a-z0-9][a-z0-9_-]{0,62}`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= NAME_MAX
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Imports the config's `[teams.NAME]` tables that the store does not have yet; a stored team
/// keeps its settings (a difference is logged: the store wins).
pub async fn import_config(
    store: &dyn Store,
    teams: &HashMap<String, Team>,
) -> Result<(), StoreError> {
    let mut names: Vec<&String> = teams.keys().collect();
    names.sort();
    for name in names {
        let t = &teams[name];
        match store.team(name).await? {
            None => {
                let info = TeamInfo {
                    name: name.clone(),
                    max_usd_per_day: t.max_usd_per_day,
                    allowed_models: t.allowed_models.clone(),
                    ..TeamInfo::default()
                };
                match store.create_team(&info).await {
                    Ok(_) => tracing::info!("team {name}: imported from config"),
                    // Another daemon start raced us to it: the stored one stands.
                    Err(StoreError::Exists(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Some(stored) => {
                if stored.max_usd_per_day != t.max_usd_per_day
                    || stored.allowed_models != t.allowed_models
                {
                    tracing::warn!(
                        "team {name}: config.toml differs from the stored team; the stored one \
                         applies (`drover team update {name} …` changes it)"
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn team_names() {
        for ok in ["a", "platform", "team-1", "a_b", "0", &"a".repeat(63)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "A",
            "Platform",
            "a b",
            "a/b",
            "a.b",
            "é",
            &"a".repeat(64),
            "a\n",
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
