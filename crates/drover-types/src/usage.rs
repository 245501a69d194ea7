//! How `drover usage --by` / `GET /v1/usage?by=` groups metered usage (docs/design.md §7): one
//! of the fixed groupings ([`UsageGroup`]) or a task tag's value (`tag:NAME`).

use crate::vocab::{or_list, UsageGroup};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The longest tag name `tag:NAME` takes (bytes).
pub const MAX_TAG_NAME_BYTES: usize = 128;

/// A usage report's grouping: `task`, `pool`, `model`, `day`, `team` or `tag:NAME` (the value
/// of the task's tag `NAME`; `-` for usage of tasks without it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageBy {
    Group(UsageGroup),
    Tag(String),
}

impl Default for UsageBy {
    fn default() -> Self {
        UsageBy::Group(UsageGroup::default())
    }
}

impl From<UsageGroup> for UsageBy {
    fn from(g: UsageGroup) -> Self {
        UsageBy::Group(g)
    }
}

/// A `--by` value that is none of the valid forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadUsageBy(pub String);

/// The valid forms, for messages: `task, pool, model, day, team or tag:NAME`.
pub fn valid_forms() -> String {
    let mut forms: Vec<&str> = UsageGroup::NAMES.to_vec();
    forms.push("tag:NAME");
    or_list(&forms)
}

impl fmt::Display for BadUsageBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown grouping {:?}: use {}", self.0, valid_forms())
    }
}

impl std::error::Error for BadUsageBy {}

impl FromStr for UsageBy {
    type Err = BadUsageBy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(name) = s.strip_prefix("tag:") {
            let ok = !name.is_empty()
                && name.len() <= MAX_TAG_NAME_BYTES
                && !name.chars().any(char::is_control);
            return if ok {
                Ok(UsageBy::Tag(name.to_string()))
            } else {
                Err(BadUsageBy(s.to_string()))
            };
        }
        s.parse::<UsageGroup>()
            .map(UsageBy::Group)
            .map_err(|_| BadUsageBy(s.to_string()))
    }
}

impl fmt::Display for UsageBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageBy::Group(g) => f.write_str(g.as_str()),
            UsageBy::Tag(name) => write!(f, "tag:{name}"),
        }
    }
}

impl Serialize for UsageBy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UsageBy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groupings_and_tags_parse_and_print_as_given() {
        for g in UsageGroup::ALL {
            let by: UsageBy = g.as_str().parse().unwrap_or_default();
            assert_eq!(by, UsageBy::Group(g));
            assert_eq!(by.to_string(), g.as_str());
        }
        let by: Result<UsageBy, _> = "tag:customer".parse();
        assert_eq!(by, Ok(UsageBy::Tag("customer".into())));
        assert_eq!(UsageBy::Tag("customer".into()).to_string(), "tag:customer");
        // A tag name may hold what a tag key may (quotes, colons, dots): it is bound, not spliced.
        assert_eq!(
            "tag:a\"b:c.d".parse::<UsageBy>(),
            Ok(UsageBy::Tag("a\"b:c.d".into()))
        );
    }

    #[test]
    fn a_bad_grouping_lists_the_valid_forms() {
        let long = format!("tag:{}", "x".repeat(MAX_TAG_NAME_BYTES + 1));
        for bad in [
            "",
            "Team",
            "tag:",
            "tag",
            "tags:x",
            "tag:a\nb",
            long.as_str(),
        ] {
            let e = bad.parse::<UsageBy>();
            assert!(e.is_err(), "{bad:?}");
            if let Err(e) = e {
                let msg = e.to_string();
                assert!(
                    msg.contains("task, pool, model, day, team or tag:NAME"),
                    "{msg}"
                );
            }
        }
    }

    #[test]
    fn serde_is_the_string() {
        let by = UsageBy::Tag("customer".into());
        let json = serde_json::to_string(&by).unwrap_or_default();
        assert_eq!(json, "\"tag:customer\"");
        assert_eq!(serde_json::from_str::<UsageBy>(&json).ok(), Some(by));
        assert!(serde_json::from_str::<UsageBy>("\"nope\"").is_err());
    }
}
