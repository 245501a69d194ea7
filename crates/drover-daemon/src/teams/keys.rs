//! Whether an API key may be used now, from its stored times (docs/design.md §7). The TCP
//! listener's authentication calls [`key_state`] for the key a bearer secret hashes to.

use drover_types::KeyInfo;

/// A key's validity at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Valid,
    /// Past its `expires_at` (its own expiry, or the end of a rotation's overlap).
    Expired,
    /// Revoked (`drover key revoke`): refused at once, whatever its expiry.
    Revoked,
}

/// The state of `key` at `now` (RFC 3339 as `drover_store::now` writes it; the store's times
/// have the same form, so they compare as strings). A key expires at its `expires_at` instant.
pub fn key_state(key: &KeyInfo, now: &str) -> KeyState {
    if key.revoked_at.is_some() {
        KeyState::Revoked
    } else if key.expires_at.as_deref().is_some_and(|e| e <= now) {
        KeyState::Expired
    } else {
        KeyState::Valid
    }
}

/// `secs` from now (at most a century: times stay four-digit years and compare as strings), in
/// the store's time format.
pub fn after_secs(secs: u64) -> String {
    const CENTURY: i64 = 100 * 366 * 24 * 3600;
    let secs = i64::try_from(secs).unwrap_or(CENTURY).min(CENTURY);
    (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_types::Scope;

    fn key(expires_at: Option<&str>, revoked_at: Option<&str>) -> KeyInfo {
        KeyInfo {
            id: "key_000000000001".into(),
            team: "a".into(),
            name: None,
            scopes: vec![Scope::TasksRead],
            created_at: "2026-01-01T00:00:00.000Z".into(),
            last_used_at: None,
            expires_at: expires_at.map(String::from),
            revoked_at: revoked_at.map(String::from),
            rotated_to: None,
        }
    }

    #[test]
    fn a_key_without_expiry_or_revocation_is_valid() {
        assert_eq!(
            key_state(&key(None, None), "2099-01-01T00:00:00.000Z"),
            KeyState::Valid
        );
    }

    #[test]
    fn a_key_is_valid_before_its_expiry_and_expired_from_it_on() {
        let k = key(Some("2026-06-01T12:00:00.000Z"), None);
        assert_eq!(key_state(&k, "2026-06-01T11:59:59.999Z"), KeyState::Valid);
        assert_eq!(key_state(&k, "2026-06-01T12:00:00.000Z"), KeyState::Expired);
        assert_eq!(key_state(&k, "2027-01-01T00:00:00.000Z"), KeyState::Expired);
    }

    #[test]
    fn revoked_wins_over_valid_and_expired() {
        let now = "2026-06-01T00:00:00.000Z";
        let revoked = Some("2026-05-01T00:00:00.000Z");
        assert_eq!(key_state(&key(None, revoked), now), KeyState::Revoked);
        assert_eq!(
            key_state(&key(Some("2099-01-01T00:00:00.000Z"), revoked), now),
            KeyState::Revoked
        );
        assert_eq!(
            key_state(&key(Some("2020-01-01T00:00:00.000Z"), revoked), now),
            KeyState::Revoked
        );
    }

    #[test]
    fn after_secs_is_in_the_stores_format_and_in_the_future() {
        let now = drover_store::now();
        let later = after_secs(60);
        assert_eq!(later.len(), now.len(), "{later} vs {now}");
        assert!(later > now);
        // Absurd spans saturate instead of panicking.
        assert!(after_secs(u64::MAX) > now);
    }
}
