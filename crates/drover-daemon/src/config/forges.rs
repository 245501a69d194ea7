//! `[forges.NAME]` (docs/design.md §9): validated into [`ForgeSettings`]. A token named by
//! `token_env` is read from the daemon's environment here, once, into a [`Secret`].

use std::collections::HashMap;
use std::path::PathBuf;

use drover_forge::{CredentialSpec, ForgeKind, ForgeSettings};

use super::error::{ConfigError, Origin};
use super::load::{Environment, ForgeFile};
use super::Secret;

/// The forges, sorted by name; at most one `default`.
pub(super) fn resolve(
    files: HashMap<String, ForgeFile>,
    env: &Environment,
    origin: &dyn Fn(&str) -> Origin,
) -> Result<Vec<ForgeSettings>, ConfigError> {
    let mut names: Vec<_> = files.keys().cloned().collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let f = &files[&name];
        let key = |k: &str| format!("forges.{name}.{k}");
        let bad = |k: &str, msg: String| ConfigError::invalid(origin(&key(k)), msg);
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            return Err(bad(
                "kind",
                format!("[forges.{name}]: a forge name uses letters, digits, '-' and '_'"),
            ));
        }
        let kind: ForgeKind = f
            .kind
            .as_deref()
            .ok_or_else(|| {
                bad(
                    "kind",
                    format!(
                        "[forges.{name}] needs kind = \"github\" | \"gitlab\" | \
                         \"bitbucket-cloud\" | \"bitbucket-dc\" | \"gitea\""
                    ),
                )
            })?
            .trim()
            .parse()
            .map_err(|e: String| bad("kind", format!("{}: {e}", key("kind"))))?;
        let url = |k: &str, v: &Option<String>| -> Result<String, ConfigError> {
            let v = v.as_deref().map(str::trim).unwrap_or_default();
            let parsed = url::Url::parse(v).ok();
            if parsed
                .as_ref()
                .is_some_and(|u| !u.username().is_empty() || u.password().is_some())
            {
                // A token in the URL would end up in every clone URL (the store, `drover show`,
                // the mirrors): refused, and never echoed.
                return Err(bad(
                    k,
                    format!(
                        "{}: the URL must not carry a user or token; give the credential with \
                         token_env, token_cmd or app_id + app_key",
                        key(k)
                    ),
                ));
            }
            let ok = parsed.filter(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none()
            });
            match ok {
                Some(_) => Ok(v.trim_end_matches('/').to_string()),
                None => Err(bad(
                    k,
                    format!(
                        "{} = {v:?}: give the forge's {} base as an http(s) URL",
                        key(k),
                        if k == "api" { "REST API" } else { "git" }
                    ),
                )),
            }
        };
        let api = url("api", &f.api)?;
        let git = url("git", &f.git)?;
        let given = [
            f.token_env.is_some(),
            f.token_cmd.is_some(),
            f.app_id.is_some() || f.app_key.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            return Err(bad(
                "token_env",
                format!(
                    "[forges.{name}] needs exactly one credential: token_env = \"VAR\", \
                     token_cmd = \"…\", or app_id + app_key (GitHub App)"
                ),
            ));
        }
        if f.token_ttl.is_some() && f.token_cmd.is_none() {
            return Err(bad(
                "token_ttl",
                format!("{}: token_ttl applies to token_cmd only", key("token_ttl")),
            ));
        }
        let credential = if let Some(var) = &f.token_env {
            let token = env.get(var).map(str::trim).filter(|t| !t.is_empty());
            let Some(token) = token else {
                return Err(bad(
                    "token_env",
                    format!(
                        "{} = {var:?}: the daemon's environment has no {var}; export it before \
                         starting the daemon",
                        key("token_env")
                    ),
                ));
            };
            CredentialSpec::Env {
                var: var.clone(),
                token: Secret::new(token),
            }
        } else if let Some(cmd) = &f.token_cmd {
            let ttl = match f.token_ttl.as_deref() {
                None => None,
                Some(v) => Some(std::time::Duration::from_secs(
                    drover_types::clock::parse_secs(v.trim()).map_err(|e| {
                        bad(
                            "token_ttl",
                            format!("{} = {v:?}: {e}; write e.g. \"50m\"", key("token_ttl")),
                        )
                    })?,
                )),
            };
            CredentialSpec::Cmd {
                cmd: cmd.clone(),
                ttl,
            }
        } else {
            if kind != ForgeKind::Github {
                return Err(bad(
                    "app_id",
                    format!("[forges.{name}]: app_id/app_key are for kind = \"github\" only"),
                ));
            }
            let (Some(app_id), Some(app_key)) = (&f.app_id, &f.app_key) else {
                return Err(bad(
                    "app_id",
                    format!("[forges.{name}]: a GitHub App needs both app_id and app_key"),
                ));
            };
            CredentialSpec::GithubApp {
                app_id: app_id.clone(),
                key_path: PathBuf::from(app_key),
                installation_id: f.installation_id,
            }
        };
        out.push(ForgeSettings {
            name: name.clone(),
            kind,
            api,
            git,
            credential,
            default: f.default.unwrap_or(false),
        });
    }
    let defaults: Vec<_> = out.iter().filter(|f| f.default).map(|f| &f.name).collect();
    if defaults.len() > 1 {
        return Err(ConfigError::invalid(
            origin(&format!("forges.{}.default", defaults[1])),
            format!(
                "more than one forge has default = true ({}); keep one",
                defaults
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn one(api: &str, git: &str) -> Result<Vec<ForgeSettings>, ConfigError> {
        let file = ForgeFile {
            kind: Some("github".into()),
            api: Some(api.into()),
            git: Some(git.into()),
            token_env: Some("T".into()),
            ..Default::default()
        };
        resolve(
            HashMap::from([("gh".to_string(), file)]),
            &Environment::from_pairs([("T", "tok")]),
            &|_| Origin::Env("test".into()),
        )
    }

    /// A token written into `git` (or `api`) would be in every clone URL drover stores and
    /// shows: one line refusing it, without the token.
    #[test]
    fn a_forge_url_with_a_token_is_refused_without_echo() {
        let ok = one("https://api.github.com", "https://github.com").unwrap();
        assert_eq!(ok[0].git, "https://github.com");
        for (api, git, key) in [
            (
                "https://api.github.com",
                "https://x-access-token:SECRET42@github.com",
                "forges.gh.git",
            ),
            (
                "https://SECRET42@api.github.com",
                "https://github.com",
                "forges.gh.api",
            ),
        ] {
            let e = one(api, git).unwrap_err().to_string();
            assert!(!e.contains("SECRET42"), "{e}");
            assert!(e.contains(key), "{e}");
            assert!(e.contains("must not carry a user or token"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let e = one("https://api.github.com", "https://github.com/?x=1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("forges.gh.git"), "{e}");
    }
}
