//! The forge kinds drover speaks.

use serde::{Deserialize, Serialize};

/// `kind` of a `[forges.NAME]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForgeKind {
    Github,
    Gitlab,
    BitbucketCloud,
    BitbucketDc,
    /// Gitea and Forgejo (one API).
    Gitea,
}

impl ForgeKind {
    pub const ALL: [ForgeKind; 5] = [
        ForgeKind::Github,
        ForgeKind::Gitlab,
        ForgeKind::BitbucketCloud,
        ForgeKind::BitbucketDc,
        ForgeKind::Gitea,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Github => "github",
            ForgeKind::Gitlab => "gitlab",
            ForgeKind::BitbucketCloud => "bitbucket-cloud",
            ForgeKind::BitbucketDc => "bitbucket-dc",
            ForgeKind::Gitea => "gitea",
        }
    }

    /// What a pull request is called there (messages, hints).
    pub fn pr_noun(self) -> &'static str {
        match self {
            ForgeKind::Gitlab => "merge request",
            _ => "pull request",
        }
    }
}

impl std::fmt::Display for ForgeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ForgeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "forgejo" => Ok(ForgeKind::Gitea),
            _ => ForgeKind::ALL
                .into_iter()
                .find(|k| k.as_str() == s)
                .ok_or_else(|| {
                    format!(
                        "unknown forge kind {s:?}; use github, gitlab, bitbucket-cloud, \
                         bitbucket-dc or gitea (also for Forgejo)"
                    )
                }),
        }
    }
}
