//! What a forge's token must be allowed, per kind: the one place these texts live. The REST
//! clients put them in [`ForgeError::Forbidden`](crate::ForgeError::Forbidden); the git proxy
//! puts [`push_permission_hint`] in a refused push's `git_error`.

use crate::kind::ForgeKind;

/// The permission a token needs to push a branch.
pub fn push_permission_hint(kind: ForgeKind) -> &'static str {
    match kind {
        ForgeKind::Github => {
            "the token needs \"Contents: write\" on the repository (fine-grained token or GitHub \
             App) or the `repo` scope (classic token)"
        }
        ForgeKind::Gitlab => {
            "the token needs the `write_repository` (or `api`) scope and at least the Developer \
             role on the project"
        }
        ForgeKind::BitbucketCloud => "the token needs the `repository:write` scope",
        ForgeKind::BitbucketDc => "the token needs the REPO_WRITE permission on the repository",
        ForgeKind::Gitea => {
            "the token needs the `write:repository` scope and write access to the repository"
        }
    }
}

/// The permission a token needs to open and comment on pull (merge) requests.
pub fn pr_permission_hint(kind: ForgeKind) -> &'static str {
    match kind {
        ForgeKind::Github => {
            "the token needs \"Pull requests: write\" on the repository (fine-grained token or \
             GitHub App) or the `repo` scope (classic token)"
        }
        ForgeKind::Gitlab => {
            "the token needs the `api` scope and at least the Developer role on the project"
        }
        ForgeKind::BitbucketCloud => "the token needs the `pullrequest:write` scope",
        ForgeKind::BitbucketDc => "the token needs the REPO_WRITE permission on the repository",
        ForgeKind::Gitea => "the token needs the `write:repository` scope",
    }
}

/// The message of a forge's error body, whichever kind's shape it has: GitHub `message` (+
/// `errors[].message`), GitLab `message` (string, list or map) or `error_description`,
/// Bitbucket Cloud `error.message`, Bitbucket DC `errors[].message`, Gitea `message`. At most
/// 300 characters; the body itself when it is not JSON.
pub fn error_message(body: &str) -> String {
    use serde_json::Value;
    let text = match serde_json::from_str::<Value>(body) {
        Ok(v) => {
            let mut parts: Vec<String> = Vec::new();
            let mut push = |m: &Value| match m {
                Value::String(s) if !s.is_empty() => parts.push(s.clone()),
                Value::Array(a) => parts.extend(a.iter().filter_map(|x| match x {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(_) => x["message"].as_str().map(str::to_string),
                    _ => None,
                })),
                Value::Object(o) => parts.extend(o.iter().map(|(k, v)| match v {
                    Value::Array(a) => format!(
                        "{k} {}",
                        a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
                    ),
                    other => format!("{k} {other}"),
                })),
                _ => {}
            };
            push(&v["message"]);
            push(&v["errors"]);
            push(&v["error"]["message"]);
            push(&v["error_description"]);
            if parts.is_empty() {
                if let Value::String(s) = &v["error"] {
                    parts.push(s.clone());
                }
            }
            parts.join(": ")
        }
        Err(_) => body.trim().to_string(),
    };
    drover_types::text::excerpt(&text, drover_types::text::Limit::Chars(300))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_kind_names_its_permissions() {
        assert!(pr_permission_hint(ForgeKind::Github).contains("Pull requests: write"));
        assert!(pr_permission_hint(ForgeKind::Gitlab).contains("`api`"));
        assert!(pr_permission_hint(ForgeKind::BitbucketCloud).contains("pullrequest:write"));
        assert!(pr_permission_hint(ForgeKind::BitbucketDc).contains("REPO_WRITE"));
        assert!(pr_permission_hint(ForgeKind::Gitea).contains("write:repository"));
        assert!(push_permission_hint(ForgeKind::Github).contains("Contents: write"));
    }

    #[test]
    fn reads_each_kinds_error_body() {
        assert_eq!(
            error_message(
                r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"A pull request already exists for o:b."}]}"#
            ),
            "Validation Failed: A pull request already exists for o:b."
        );
        assert_eq!(
            error_message(
                r#"{"message":["Another open merge request already exists for this source branch: !3"]}"#
            ),
            "Another open merge request already exists for this source branch: !3"
        );
        assert_eq!(
            error_message(r#"{"type":"error","error":{"message":"Unauthorized"}}"#),
            "Unauthorized"
        );
        assert_eq!(
            error_message(
                r#"{"errors":[{"context":null,"message":"Only one","exceptionName":"x"}]}"#
            ),
            "Only one"
        );
        assert_eq!(
            error_message(
                r#"{"error":"insufficient_scope","error_description":"higher privileges"}"#
            ),
            "higher privileges"
        );
        assert_eq!(
            error_message("<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }
}
