//! The tables of `drover team ls` and `drover key ls` (never a key itself: the API does not
//! have it). Pure functions of their data (`key ls` takes `now` for each key's state).

use super::clean;
use super::tables::plain;
use drover_daemon::teams::keys::{key_state, KeyState};
use drover_types::{KeyInfo, TeamInfo};

fn usd(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("${x}"))
}

fn time(t: Option<&str>) -> String {
    t.map_or_else(
        || "-".into(),
        |t| clean(t.get(..19).unwrap_or(t)).replace('T', " "),
    )
}

/// `drover team ls`.
pub fn teams_table(teams: &[TeamInfo]) -> String {
    let rows = teams
        .iter()
        .map(|t| {
            [
                clean(&t.name),
                usd(t.max_usd_per_day),
                usd(t.max_usd_per_task),
                t.allowed_models
                    .as_ref()
                    .map_or_else(|| "any".into(), |m| clean(&m.join(","))),
                t.webhook_url.as_deref().map_or_else(|| "-".into(), clean),
            ]
        })
        .collect();
    plain(["NAME", "$/DAY", "$/TASK", "MODELS", "WEBHOOK"], rows, 5)
}

/// A key's state for people at `now`: `active`, `expired`, `revoked`, or `rotated → ID`
/// (still working until its `expires_at`).
pub fn key_state_label(k: &KeyInfo, now: &str) -> String {
    match (key_state(k, now), &k.rotated_to) {
        (KeyState::Revoked, _) => "revoked".into(),
        (KeyState::Expired, _) => "expired".into(),
        (KeyState::Valid, Some(next)) => format!("rotated → {}", clean(next)),
        (KeyState::Valid, None) => "active".into(),
    }
}

/// `drover key ls`.
pub fn keys_table(keys: &[KeyInfo], now: &str) -> String {
    let rows = keys
        .iter()
        .map(|k| {
            [
                clean(&k.id),
                clean(&k.team),
                k.name.as_deref().map_or_else(|| "-".into(), clean),
                k.scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                time(Some(&k.created_at)),
                time(k.last_used_at.as_deref()),
                time(k.expires_at.as_deref()),
                key_state_label(k, now),
            ]
        })
        .collect();
    let header = [
        "ID",
        "TEAM",
        "NAME",
        "SCOPES",
        "CREATED",
        "LAST USED",
        "EXPIRES",
        "STATE",
    ];
    plain(header, rows, header.len())
}

#[cfg(test)]
mod snapshots {
    use drover_types::{KeyInfo, Scope, TeamInfo};

    fn key(id: &str, f: impl FnOnce(&mut KeyInfo)) -> KeyInfo {
        let mut k = KeyInfo {
            id: id.into(),
            team: "platform".into(),
            name: Some("ci".into()),
            scopes: vec![Scope::TasksRead, Scope::TasksWrite],
            created_at: "2026-03-01T10:00:00.000Z".into(),
            last_used_at: None,
            expires_at: None,
            revoked_at: None,
            rotated_to: None,
        };
        f(&mut k);
        k
    }

    #[test]
    fn team_ls() {
        let teams = [
            TeamInfo {
                name: "platform".into(),
                max_usd_per_day: Some(50.0),
                max_usd_per_task: Some(2.5),
                allowed_models: Some(vec!["claude-sonnet-4-6".into(), "claude-haiku-4-5".into()]),
                webhook_url: Some("https://hooks.example.com/drover".into()),
                allowed_repos: Some(vec!["/srv/repos/platform".into()]),
                created_at: "2026-03-01T10:00:00.000Z".into(),
            },
            TeamInfo {
                name: "research".into(),
                created_at: "2026-03-01T10:00:00.000Z".into(),
                ..TeamInfo::default()
            },
        ];
        insta::assert_snapshot!(super::teams_table(&teams));
    }

    #[test]
    fn key_ls_shows_each_state() {
        let now = "2026-03-02T12:00:00.000Z";
        let keys = [
            key("key_000000000001", |k| {
                k.last_used_at = Some("2026-03-02T11:59:00.000Z".into());
            }),
            key("key_000000000002", |k| {
                k.rotated_to = Some("key_000000000005".into());
                k.expires_at = Some("2026-03-03T12:00:00.000Z".into());
            }),
            key("key_000000000003", |k| {
                k.name = None;
                k.scopes = vec![Scope::Admin];
                k.expires_at = Some("2026-03-02T00:00:00.000Z".into());
            }),
            key("key_000000000004", |k| {
                k.team = "research".into();
                k.revoked_at = Some("2026-03-02T01:00:00.000Z".into());
            }),
        ];
        let out = super::keys_table(&keys, now);
        insta::assert_snapshot!(out);
    }
}
