//! Task clocks (docs/design.md §11): `--timeout DUR` (wall clock from the start), `--stall-timeout DUR`
//! (no agent output and no event for DUR) and the daemon's `needs_input_timeout`. Durations are
//! whole seconds, written the human way (`3s`, `10m`, `1h30m`).

use std::time::Duration;

/// The longest clock drover accepts (a year): anything longer is a typo, and it keeps every
/// deadline representable.
pub const MAX_SECS: u64 = 366 * 24 * 3600;

/// Parses `3s`, `10m`, `1h30m`, `1h 30m` into whole seconds (at least 1, at most a year).
/// The error is one line that says what to write instead.
pub fn parse_secs(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let d = humantime::parse_duration(t).map_err(|e| format!("{t:?} is not a duration ({e})"))?;
    if d.is_zero() {
        return Err(format!("{t:?} is zero; a clock needs at least 1s"));
    }
    if d.subsec_nanos() != 0 {
        return Err(format!("{t:?} is not whole seconds"));
    }
    check_secs(d.as_secs()).map_err(|e| format!("{t:?}: {e}"))
}

/// The same bounds for a number of seconds given directly (the API's `timeout_secs`).
pub fn check_secs(secs: u64) -> Result<u64, String> {
    if secs == 0 {
        return Err("must be at least 1 second".into());
    }
    if secs > MAX_SECS {
        return Err("must be at most 366 days".into());
    }
    Ok(secs)
}

/// Serde: a clock as a number of seconds or a duration string (`"30m"`). A string that is no
/// duration, or not whole seconds, is a malformed body; the bounds are checked later (so `0`
/// is a well-formed but invalid value).
pub fn de_secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Secs {
        Number(u64),
        Text(String),
    }
    match <Option<Secs> as serde::Deserialize>::deserialize(d)? {
        None => Ok(None),
        Some(Secs::Number(n)) => Ok(Some(n)),
        Some(Secs::Text(t)) => {
            let t = t.trim();
            let dur = humantime::parse_duration(t).map_err(|e| {
                serde::de::Error::custom(format!("timeout {t:?} is not a duration ({e})"))
            })?;
            if dur.subsec_nanos() != 0 {
                return Err(serde::de::Error::custom(format!(
                    "timeout {t:?} is not whole seconds"
                )));
            }
            Ok(Some(dur.as_secs()))
        }
    }
}

/// `90` → `1m 30s`.
pub fn format_secs(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

vocab! {
    /// The steps of a stop's escalation, in order; each follows the previous one after
    /// `stop_grace_secs` if the agent is still there. Stored as its number (1–4) on the task
    /// row, shown as its name (`stop_step`).
    #[derive(PartialOrd, Ord)]
    pub enum StopStep ("stop step") {
        /// The agent's own interrupt (if it has one) and its stdin closed.
        Polite = "polite",
        Int = "INT",
        Term = "TERM",
        Kill = "KILL",
    }
}

impl StopStep {
    pub fn from_index(i: i64) -> Option<StopStep> {
        match i {
            1 => Some(StopStep::Polite),
            2 => Some(StopStep::Int),
            3 => Some(StopStep::Term),
            4 => Some(StopStep::Kill),
            _ => None,
        }
    }
    pub fn index(self) -> i64 {
        match self {
            StopStep::Polite => 1,
            StopStep::Int => 2,
            StopStep::Term => 3,
            StopStep::Kill => 4,
        }
    }
    /// The step after this one; `Kill` is the last (it is repeated).
    pub fn next(current: Option<StopStep>) -> StopStep {
        match current {
            None => StopStep::Polite,
            Some(StopStep::Polite) => StopStep::Int,
            Some(StopStep::Int) => StopStep::Term,
            Some(StopStep::Term | StopStep::Kill) => StopStep::Kill,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn human_durations_parse_to_seconds() {
        assert_eq!(parse_secs("3s").unwrap(), 3);
        assert_eq!(parse_secs("10m").unwrap(), 600);
        assert_eq!(parse_secs("1h30m").unwrap(), 5400);
        assert_eq!(parse_secs(" 1h 30m ").unwrap(), 5400);
        assert_eq!(format_secs(5400), "1h 30m");
    }

    #[test]
    fn zero_garbage_fractions_and_huge_values_are_refused() {
        for bad in [
            "0",
            "0s",
            "banana",
            "",
            "3",
            "1500ms",
            "-3s",
            "400days",
            "3 parsecs",
        ] {
            let e = parse_secs(bad).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
        }
        assert!(check_secs(0).is_err());
        assert!(check_secs(MAX_SECS + 1).is_err());
    }

    #[test]
    fn stop_steps_round_trip_through_serde_and_from_str() {
        crate::vocab::testing::round_trips(
            &StopStep::ALL,
            &["polite", "INT", "TERM", "KILL"],
            |v| v.as_str(),
        );
    }
}
