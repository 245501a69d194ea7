//! Conformance: teams and API keys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::{NewKeyRecord, Store, StoreError};
use drover_types::{Scope, TeamInfo};
use std::sync::Arc;

fn key(id: &str, team: &str, hash: &str) -> NewKeyRecord {
    NewKeyRecord {
        id: id.into(),
        team: team.into(),
        name: Some(format!("{id} label")),
        scopes: vec![Scope::TasksRead, Scope::TasksWrite],
        hash: hash.into(),
        expires_at: None,
    }
}

/// Teams are unique by name and round-trip; keys need a team, are found by hash and id whatever
/// their state, list per team, rotate in one step (never extending the old key's life) and
/// revoke once.
pub async fn teams_and_keys_round_trip(store: Arc<dyn Store>) {
    let a = TeamInfo {
        name: "a".into(),
        max_usd_per_day: Some(5.0),
        max_usd_per_task: Some(1.5),
        allowed_models: Some(vec!["m1".into()]),
        webhook_url: Some("http://127.0.0.1:9/hook".into()),
        allowed_repos: Some(vec!["/srv/repos/a".into()]),
        created_at: String::new(),
    };
    let stored = store.create_team(&a).await.unwrap();
    assert!(!stored.created_at.is_empty());
    assert!(matches!(
        store.create_team(&a).await,
        Err(StoreError::Exists(_))
    ));
    store
        .create_team(&TeamInfo {
            name: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(store.team("a").await.unwrap(), Some(stored.clone()));
    assert_eq!(store.team("zz").await.unwrap(), None);
    assert_eq!(
        store
            .teams()
            .await
            .unwrap()
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    let updated = store
        .update_team(&TeamInfo {
            allowed_models: None,
            ..stored.clone()
        })
        .await
        .unwrap();
    assert_eq!(updated.allowed_models, None);
    assert_eq!(updated.created_at, stored.created_at);
    assert!(matches!(
        store
            .update_team(&TeamInfo {
                name: "zz".into(),
                ..Default::default()
            })
            .await,
        Err(StoreError::TeamNotFound(_))
    ));

    assert!(matches!(
        store.create_key(key("key_x", "zz", "h0")).await,
        Err(StoreError::TeamNotFound(_))
    ));
    let k1 = store.create_key(key("key_1", "a", "h1")).await.unwrap();
    assert_eq!(k1.team, "a");
    assert_eq!(k1.scopes, vec![Scope::TasksRead, Scope::TasksWrite]);
    assert!(k1.last_used_at.is_none() && k1.revoked_at.is_none());
    store.create_key(key("key_2", "b", "h2")).await.unwrap();
    assert!(matches!(
        store.create_key(key("key_3", "a", "h1")).await,
        Err(StoreError::Exists(_))
    ));
    assert_eq!(store.key_by_hash("h1").await.unwrap(), Some(k1.clone()));
    assert_eq!(store.key_by_hash("nope").await.unwrap(), None);
    assert_eq!(store.keys(Some("a")).await.unwrap().len(), 1);
    assert_eq!(store.keys(None).await.unwrap().len(), 2);

    store
        .touch_key("key_1", "2026-01-01T00:00:00.000Z")
        .await
        .unwrap();
    assert_eq!(
        store
            .key("key_1")
            .await
            .unwrap()
            .unwrap()
            .last_used_at
            .as_deref(),
        Some("2026-01-01T00:00:00.000Z")
    );

    let new = store
        .rotate_key(
            "key_1",
            key("key_1b", "a", "h1b"),
            "2030-01-01T00:00:00.000Z",
        )
        .await
        .unwrap();
    assert_eq!(new.id, "key_1b");
    let old = store.key("key_1").await.unwrap().unwrap();
    assert_eq!(old.rotated_to.as_deref(), Some("key_1b"));
    assert_eq!(old.expires_at.as_deref(), Some("2030-01-01T00:00:00.000Z"));
    // A key already rotated is not rotated again (two racing rotations make one successor),
    // and its end stays.
    assert!(matches!(
        store
            .rotate_key(
                "key_1",
                key("key_1c", "a", "h1c"),
                "2031-01-01T00:00:00.000Z",
            )
            .await,
        Err(StoreError::Exists(_))
    ));
    assert_eq!(store.key("key_1c").await.unwrap(), None, "nothing stored");
    assert_eq!(
        store
            .key("key_1")
            .await
            .unwrap()
            .unwrap()
            .expires_at
            .as_deref(),
        Some("2030-01-01T00:00:00.000Z")
    );
    // Rotation cannot push a key's end later.
    let mut short = key("key_4", "a", "h4");
    short.expires_at = Some("2029-01-01T00:00:00.000Z".into());
    store.create_key(short).await.unwrap();
    store
        .rotate_key(
            "key_4",
            key("key_4b", "a", "h4b"),
            "2031-01-01T00:00:00.000Z",
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .key("key_4")
            .await
            .unwrap()
            .unwrap()
            .expires_at
            .as_deref(),
        Some("2029-01-01T00:00:00.000Z")
    );
    assert!(matches!(
        store
            .rotate_key("nope", key("key_9", "a", "h9"), "2030-01-01T00:00:00.000Z")
            .await,
        Err(StoreError::KeyNotFound(_))
    ));
    assert_eq!(store.key("key_9").await.unwrap(), None, "nothing stored");

    let revoked = store
        .revoke_key("key_2", "2026-02-01T00:00:00.000Z")
        .await
        .unwrap();
    assert_eq!(
        revoked.revoked_at.as_deref(),
        Some("2026-02-01T00:00:00.000Z")
    );
    let again = store
        .revoke_key("key_2", "2027-02-01T00:00:00.000Z")
        .await
        .unwrap();
    assert_eq!(
        again.revoked_at, revoked.revoked_at,
        "the first revocation stays"
    );
    assert!(matches!(
        store.revoke_key("nope", "2026-02-01T00:00:00.000Z").await,
        Err(StoreError::KeyNotFound(_))
    ));
    // A revoked key is not rotated (a revocation racing a rotation wins).
    assert!(matches!(
        store
            .rotate_key(
                "key_2",
                key("key_2b", "b", "h2b"),
                "2030-01-01T00:00:00.000Z"
            )
            .await,
        Err(StoreError::Exists(_))
    ));
    assert_eq!(store.key("key_2b").await.unwrap(), None, "nothing stored");
}
