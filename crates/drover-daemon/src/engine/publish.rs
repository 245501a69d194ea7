//! Publishing a succeeded task: its pull (merge) requests (docs/design.md §9).
//!
//! Once the task's branch is pushed ([`super::finish`]), [`open_prs`] walks
//! [`TaskRecord::repo_list`] and, for each repository on a configured forge, finds or opens the PR
//! of `drover/<id>` through [`drover_forge::Forge::ensure_pr`] (so a second try — a lost answer,
//! a restart between the push and the record — finds the PR instead of opening another one).
//! Each PR is recorded on the task (`prs`, a `pr` event) as soon as it exists; a repository
//! whose PR is already recorded is not asked again. A multi-repo task's PRs then get one comment
//! each listing the others.
//!
//! - base: `--base`, else the task's `base_ref` when it names a branch of the mirror, else the
//!   mirror's default branch (its `HEAD`);
//! - title: `--pr-title`, else the task's name, else the prompt's first line (72 chars);
//! - a change to CI configuration ([`drover_forge::is_ci_config`]) opens a draft whose body
//!   starts with a `needs-approval` note, unless `--allow-ci-changes`.
//!
//! Nothing here holds a token: the forge's REST client adds it per request.

use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_forge::{Forge, ForgeError, PrRequest, PullRequest, RepoRef};
use drover_store::{StoreError, TaskPatch, TaskRecord};
use drover_types::text::{excerpt, Limit};
use drover_types::{EventKind, NewEvent, PrInfo, PrOptions, TaskRepo};
use serde_json::json;

use super::terminal::active;
use super::Engine;

/// How many times a PR is asked for when the forge answers 5xx or cannot be reached.
const ATTEMPTS: u32 = 3;
/// The longest title drover makes up (a given `--pr-title` is sent as is).
const TITLE_CHARS: usize = 72;
/// How much of the prompt the PR's body quotes.
const PROMPT_EXCERPT_BYTES: usize = 1500;
/// How long a forge's error may be in the task's reason.
const REASON_BYTES: usize = 300;

/// Why a task's PRs could not all be opened: the task ends `failed` with `git_error` and this
/// one line (its pushed branch stays).
#[derive(Debug, thiserror::Error)]
pub(crate) enum PublishError {
    /// The forge refused or failed; the text is [`ForgeError`]'s (forge name and hint).
    #[error("{repo}: cannot open the pull request: {}", one_line(&error.to_string()))]
    Forge { repo: String, error: ForgeError },
    #[error("{repo}: cannot comment on pull request #{number}: {}", one_line(&error.to_string()))]
    Comment {
        repo: String,
        number: u64,
        error: ForgeError,
    },
    #[error("{repo}: cannot open a pull request: {reason}")]
    Repo { repo: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The line refusing `--pr` for `repo` (a stored `repo`: a forge's clone URL or what the user
/// gave) when it is on no configured forge; `None` when it is on one.
pub(crate) fn pr_needs_forge(engine: &Engine, repo: &str) -> Option<String> {
    match engine.forges.resolve(repo) {
        Ok(Some(_)) => None,
        Ok(None) => Some(format!(
            "--pr needs a repository on a configured forge ([forges.NAME] in config.toml); {repo} is not on one"
        )),
        Err(e) => Some(format!("--pr: {e}")),
    }
}

/// Finds or opens the PR of every repository of `task` (whose `commit`/`repos[].commit` are the
/// pushed commits) and records each on the task. Returns every PR of the task. Nothing to do
/// without `pr` options; a repository without a commit (no change) gets no PR.
pub(crate) async fn open_prs(
    engine: &Engine,
    task: &TaskRecord,
) -> Result<Vec<PrInfo>, PublishError> {
    let Some(opts) = task.pr.clone() else {
        return Ok(task.prs.clone());
    };
    let repos = task.repo_list();
    let mut prs = task.prs.clone();
    let mut recorded_now = false;
    for r in &repos {
        if prs.iter().any(|p| p.repo == r.repo) {
            continue;
        }
        let Some(commit) = r.commit.as_deref() else {
            continue;
        };
        let bad = |reason: String| PublishError::Repo {
            repo: r.repo.clone(),
            reason,
        };
        let on_forge = engine
            .forges
            .resolve(&r.repo)
            .map_err(|e| bad(one_line(&e.to_string())))?
            .ok_or_else(|| bad("it is not on a configured forge ([forges.NAME])".into()))?;
        let entry = engine
            .forges
            .get(&on_forge.forge)
            .ok_or_else(|| bad(format!("forge {} is not configured", on_forge.forge)))?;
        let mirror = mirror_dir(engine, task, r).await.map_err(bad)?;
        let base = base_branch(&mirror, &opts, &r.base_ref)
            .await
            .map_err(bad)?;
        let since = r.base_commit.clone().unwrap_or_else(|| base.clone());
        let ci = ci_paths(&mirror, &since, commit).await.map_err(bad)?;
        let needs_approval = !ci.is_empty() && !opts.allow_ci_changes;
        let req = PrRequest {
            head: r.branch.clone(),
            base,
            title: title(&opts, task),
            body: body(task, if needs_approval { &ci } else { &[] }),
            draft: opts.draft || needs_approval,
        };
        let (pr, opened) = ensure(entry.api.as_ref(), &on_forge, &req)
            .await
            .map_err(|error| PublishError::Forge {
                repo: r.repo.clone(),
                error,
            })?;
        let info = PrInfo {
            repo: r.repo.clone(),
            url: pr.url.clone(),
            number: pr.number,
            state: pr.state,
        };
        prs.push(info.clone());
        record(engine, task, &prs, &info, &on_forge.forge, opened).await?;
        recorded_now = true;
    }
    if recorded_now && prs.len() > 1 {
        cross_link(engine, &prs).await?;
    }
    Ok(prs)
}

/// [`Forge::ensure_pr`], again after a 5xx or an unreachable forge (the PR may have been made:
/// the next try finds it).
async fn ensure(
    api: &dyn Forge,
    repo: &RepoRef,
    req: &PrRequest,
) -> Result<(PullRequest, bool), ForgeError> {
    let mut attempt = 1;
    loop {
        match api.ensure_pr(repo, req).await {
            Err(e) if attempt < ATTEMPTS && transient(&e) => {
                tracing::warn!(repo = %repo.path, error = %e, "asking for the pull request again");
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                attempt += 1;
            }
            done => return done,
        }
    }
}

fn transient(e: &ForgeError) -> bool {
    match e {
        ForgeError::Api { status, .. } => *status >= 500,
        ForgeError::Unreachable { .. } => true,
        _ => false,
    }
}

/// Records `prs` on the task (fenced: only while it is still active) with a `pr` event.
async fn record(
    engine: &Engine,
    task: &TaskRecord,
    prs: &[PrInfo],
    info: &PrInfo,
    forge: &str,
    opened: bool,
) -> Result<(), StoreError> {
    let event = NewEvent::new(
        EventKind::Pr,
        json!({
            "repo": info.repo,
            "forge": forge,
            "url": info.url,
            "number": info.number,
            "state": info.state,
            "opened": opened,
        }),
    );
    engine
        .update(
            &task.id,
            Some(&active()),
            TaskPatch::new().prs(prs.to_vec()),
            vec![event],
        )
        .await?;
    Ok(())
}

/// One comment on each PR of a multi-repo task listing the others.
async fn cross_link(engine: &Engine, prs: &[PrInfo]) -> Result<(), PublishError> {
    for pr in prs {
        let others: Vec<String> = prs
            .iter()
            .filter(|o| o.url != pr.url)
            .map(|o| format!("- {}", o.url))
            .collect();
        let text = format!(
            "Part of a drover change across {} repositories; the others:\n\n{}\n",
            prs.len(),
            others.join("\n")
        );
        let Ok(Some(on_forge)) = engine.forges.resolve(&pr.repo) else {
            continue;
        };
        let Some(entry) = engine.forges.get(&on_forge.forge) else {
            continue;
        };
        entry
            .api
            .comment(&on_forge, pr.number, &text)
            .await
            .map_err(|error| PublishError::Comment {
                repo: pr.repo.clone(),
                number: pr.number,
                error,
            })?;
    }
    Ok(())
}

/// The git directory holding the task's commit for `r`: the task's own (its mirror) for its
/// first repository, else the mirror of `r`.
async fn mirror_dir(engine: &Engine, task: &TaskRecord, r: &TaskRepo) -> Result<PathBuf, String> {
    if r.repo == task.repo {
        if let Some(dir) = &task.repo_dir {
            return Ok(PathBuf::from(dir));
        }
    }
    engine
        .sandboxes
        .resolve(&r.repo, &r.base_ref)
        .await
        .map(|res| res.repo_dir)
        .map_err(|e| one_line(&e.to_string()))
}

/// `--base`, else `base_ref` when it is a branch of `mirror`, else `mirror`'s default branch.
async fn base_branch(mirror: &Path, opts: &PrOptions, base_ref: &str) -> Result<String, String> {
    if let Some(b) = opts.base.as_deref().filter(|b| !b.trim().is_empty()) {
        return Ok(b.to_string());
    }
    let name = base_ref.strip_prefix("refs/heads/").unwrap_or(base_ref);
    if name != "HEAD" && !name.starts_with('-') {
        let full = format!("refs/heads/{name}");
        let (ok, _) = git(mirror, &["show-ref", "--verify", "--quiet", &full]).await?;
        if ok {
            return Ok(name.to_string());
        }
    }
    let (ok, out) = git(mirror, &["symbolic-ref", "--quiet", "HEAD"]).await?;
    match out.trim().strip_prefix("refs/heads/") {
        Some(b) if ok && !b.is_empty() => Ok(b.to_string()),
        _ => Err("cannot tell the repository's default branch; give --base BRANCH".into()),
    }
}

/// The CI configuration files the task's change touches (added, changed, deleted or renamed).
async fn ci_paths(mirror: &Path, since: &str, commit: &str) -> Result<Vec<String>, String> {
    let range = format!("{since}...{commit}");
    let (ok, out) = git(
        mirror,
        &["diff", "--name-only", "--no-renames", "-z", &range, "--"],
    )
    .await?;
    if !ok {
        return Err(format!(
            "cannot list the files the change touches ({range})"
        ));
    }
    Ok(ci_config_of(out.split('\0')))
}

/// The CI configuration among `paths`: [`drover_forge::is_ci_config`], and a file (a symlink)
/// standing where a CI directory's parent would be (`.github` → a directory of workflows the
/// agent wrote elsewhere).
fn ci_config_of<'a>(paths: impl Iterator<Item = &'a str>) -> Vec<String> {
    paths
        .filter(|p| {
            !p.is_empty()
                && (drover_forge::is_ci_config(p)
                    || drover_forge::CI_CONFIG_PATHS
                        .iter()
                        .any(|ci| ci.starts_with(&format!("{p}/"))))
        })
        .map(str::to_string)
        .collect()
}

async fn git(dir: &Path, args: &[&str]) -> Result<(bool, String), String> {
    let out = drover_sandbox::git_command()
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .await
        .map_err(|e| format!("cannot run git: {e}"))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// `--pr-title`, else the task's name, else the prompt's first line (at most 72 chars).
fn title(opts: &PrOptions, task: &TaskRecord) -> String {
    if let Some(t) = opts.title.as_deref().filter(|t| !t.trim().is_empty()) {
        return t.to_string();
    }
    let made = task
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| task.prompt.lines().next().unwrap_or_default().to_string());
    let made = made.trim();
    if made.is_empty() {
        return format!("drover task {}", task.id);
    }
    if made.chars().count() <= TITLE_CHARS {
        made.to_string()
    } else {
        let cut: String = made.chars().take(TITLE_CHARS - 1).collect();
        format!("{}…", cut.trim_end())
    }
}

/// The PR's description: the `needs-approval` note (when `ci` is not empty), the prompt, and
/// the task's id, agent, model and cost.
fn body(task: &TaskRecord, ci: &[String]) -> String {
    let mut out = String::new();
    if !ci.is_empty() {
        let list: Vec<String> = ci.iter().map(|p| format!("`{p}`")).collect();
        out.push_str(&format!(
            "> **needs-approval**: This change touches CI configuration ({}); review before running it.\n\n",
            list.join(", ")
        ));
    }
    let prompt = excerpt(task.prompt.trim(), Limit::Bytes(PROMPT_EXCERPT_BYTES));
    for line in prompt.lines() {
        out.push_str("> ");
        out.push_str(line);
        out.push('\n');
    }
    let mut facts = vec![
        format!("task `{}`", task.id),
        format!("agent `{}`", task.agent),
    ];
    if let Some(m) = &task.model {
        facts.push(format!("model `{m}`"));
    }
    if let Some(c) = task.cost_usd {
        facts.push(format!("cost ${c:.4}"));
    }
    out.push_str(&format!(
        "\n---\n{} · opened by drover\n",
        facts.join(" · ")
    ));
    out
}

/// The first line of `s`, cut: a forge's error never brings a body or a trace into a reason.
fn one_line(s: &str) -> String {
    excerpt(
        s.lines().next().unwrap_or_default().trim(),
        Limit::Bytes(REASON_BYTES),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use async_trait::async_trait;
    use drover_forge::{ForgeKind, PrState};
    use drover_types::TaskState;
    use std::sync::Mutex;

    fn task() -> TaskRecord {
        let mut t = super::super::fixtures::task(TaskState::Running);
        t.id = "abc123".into();
        t.prompt = "Bump serde to 1.0.200 everywhere\n\nand run the tests".into();
        t
    }

    #[test]
    fn the_title_is_the_flag_then_the_name_then_the_prompt_cut() {
        let mut t = task();
        let mut opts = PrOptions::default();
        assert_eq!(title(&opts, &t), "Bump serde to 1.0.200 everywhere");
        t.prompt = "x".repeat(200);
        let cut = title(&opts, &t);
        assert_eq!(cut.chars().count(), TITLE_CHARS);
        assert!(cut.ends_with('…'));
        t.name = Some("serde bump".into());
        assert_eq!(title(&opts, &t), "serde bump");
        opts.title = Some("Given".into());
        assert_eq!(title(&opts, &t), "Given");
        t.name = None;
        t.prompt = "\n".into();
        opts.title = None;
        assert_eq!(title(&opts, &t), "drover task abc123");
    }

    #[test]
    fn the_body_quotes_the_prompt_and_notes_ci_changes_first() {
        let mut t = task();
        t.cost_usd = Some(0.5);
        t.model = Some("m1".into());
        let plain = body(&t, &[]);
        assert!(plain.starts_with("> Bump serde"), "{plain}");
        assert!(!plain.contains("needs-approval"));
        for fact in [
            "task `abc123`",
            "agent `command`",
            "model `m1`",
            "cost $0.5000",
            "opened by drover",
        ] {
            assert!(plain.contains(fact), "{fact} in {plain}");
        }
        let ci = body(&t, &[".github/workflows/x.yml".to_string()]);
        assert!(ci.starts_with("> **needs-approval**"), "{ci}");
        assert!(ci.contains("`.github/workflows/x.yml`"));
    }

    #[test]
    fn ci_paths_are_the_forges_ci_configuration() {
        let got = ci_config_of(
            [
                "src/a.rs",
                ".github/workflows/x.yml",
                ".gitlab-ci.yml",
                "docs/.gitlab-ci.yml",
                "",
                ".github",
                ".githubx",
                ".github/CODEOWNERS",
            ]
            .into_iter(),
        );
        assert_eq!(
            got,
            [".github/workflows/x.yml", ".gitlab-ci.yml", ".github"]
        );
    }

    #[test]
    fn a_reason_is_one_short_line() {
        let long = format!(
            "gh: 500 from POST /x: {{\"message\":\"{}\"}}\n  at trace",
            "a".repeat(1000)
        );
        let line = one_line(&long);
        assert!(!line.contains('\n') && !line.contains("trace"));
        assert!(line.len() <= REASON_BYTES + '…'.len_utf8());
    }

    async fn git_ok(dir: &Path, args: &[&str]) -> String {
        let (ok, out) = git(dir, args).await.unwrap();
        assert!(ok, "git {args:?}");
        out.trim().to_string()
    }

    #[tokio::test]
    async fn the_base_is_the_flag_then_the_ref_when_a_branch_then_head() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        git_ok(d, &["init", "-q", "-b", "trunk"]).await;
        git_ok(
            d,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "one",
            ],
        )
        .await;
        git_ok(d, &["branch", "release"]).await;
        let opts = PrOptions::default();
        assert_eq!(base_branch(d, &opts, "release").await.unwrap(), "release");
        assert_eq!(
            base_branch(d, &opts, "refs/heads/release").await.unwrap(),
            "release"
        );
        assert_eq!(base_branch(d, &opts, "HEAD").await.unwrap(), "trunk");
        let sha = git_ok(d, &["rev-parse", "HEAD"]).await;
        assert_eq!(base_branch(d, &opts, &sha).await.unwrap(), "trunk");
        let given = PrOptions {
            base: Some("dev".into()),
            ..Default::default()
        };
        assert_eq!(base_branch(d, &given, "release").await.unwrap(), "dev");
        // The change's CI files, between the base and the task's commit.
        std::fs::create_dir_all(d.join(".github/workflows")).unwrap();
        std::fs::write(d.join(".github/workflows/x.yml"), "on: push\n").unwrap();
        std::fs::write(d.join("README"), "hi\n").unwrap();
        git_ok(d, &["add", "-A"]).await;
        git_ok(
            d,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "-m",
                "two",
            ],
        )
        .await;
        let head = git_ok(d, &["rev-parse", "HEAD"]).await;
        assert_eq!(
            ci_paths(d, &sha, &head).await.unwrap(),
            [".github/workflows/x.yml"]
        );
        assert!(ci_paths(d, &sha, &sha).await.unwrap().is_empty());
    }

    /// A forge whose creates answer 502 `fail_creates` times (having made the PR, as a lost
    /// answer does).
    struct Flaky {
        prs: Mutex<Vec<PullRequest>>,
        fail_creates: Mutex<u32>,
        creates: Mutex<u32>,
    }

    #[async_trait]
    impl Forge for Flaky {
        fn kind(&self) -> ForgeKind {
            ForgeKind::Github
        }
        async fn find_pr(&self, _: &RepoRef, _: &str) -> Result<Option<PullRequest>, ForgeError> {
            Ok(self.prs.lock().unwrap().first().cloned())
        }
        async fn create_pr(&self, r: &RepoRef, _: &PrRequest) -> Result<PullRequest, ForgeError> {
            *self.creates.lock().unwrap() += 1;
            let pr = PullRequest {
                number: 7,
                url: "https://forge/pr/7".into(),
                state: PrState::Open,
            };
            self.prs.lock().unwrap().push(pr.clone());
            let mut fail = self.fail_creates.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return Err(ForgeError::Api {
                    forge: r.forge.clone(),
                    method: "POST".into(),
                    path: "/pulls".into(),
                    status: 502,
                    message: "bad gateway".into(),
                });
            }
            Ok(pr)
        }
        async fn comment(&self, _: &RepoRef, _: u64, _: &str) -> Result<(), ForgeError> {
            Ok(())
        }
    }

    fn repo() -> RepoRef {
        RepoRef {
            forge: "gh".into(),
            kind: ForgeKind::Github,
            path: "o/r".into(),
            clone_url: "https://forge/o/r.git".into(),
        }
    }

    fn req() -> PrRequest {
        PrRequest {
            head: "drover/abc".into(),
            base: "main".into(),
            title: "t".into(),
            body: "b".into(),
            draft: false,
        }
    }

    #[tokio::test]
    async fn a_lost_create_answer_finds_the_pr_instead_of_opening_another() {
        let forge = Flaky {
            prs: Mutex::new(vec![]),
            fail_creates: Mutex::new(1),
            creates: Mutex::new(0),
        };
        let (pr, opened) = ensure(&forge, &repo(), &req()).await.unwrap();
        // This call made it (its answer was lost): opened, once.
        assert_eq!((pr.number, opened), (7, true));
        assert_eq!(*forge.creates.lock().unwrap(), 1);
        assert_eq!(forge.prs.lock().unwrap().len(), 1);
        // Asked again (a restart before the record): found, not opened.
        let (again, opened) = ensure(&forge, &repo(), &req()).await.unwrap();
        assert_eq!((again.number, opened), (7, false));
        assert_eq!(*forge.creates.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn a_refusal_is_not_asked_again() {
        struct Refusing(Mutex<u32>);
        #[async_trait]
        impl Forge for Refusing {
            fn kind(&self) -> ForgeKind {
                ForgeKind::Gitea
            }
            async fn find_pr(
                &self,
                r: &RepoRef,
                _: &str,
            ) -> Result<Option<PullRequest>, ForgeError> {
                *self.0.lock().unwrap() += 1;
                Err(ForgeError::Forbidden {
                    forge: r.forge.clone(),
                    hint: "the token needs the write:repository scope".into(),
                })
            }
            async fn create_pr(
                &self,
                _: &RepoRef,
                _: &PrRequest,
            ) -> Result<PullRequest, ForgeError> {
                unreachable!()
            }
            async fn comment(&self, _: &RepoRef, _: u64, _: &str) -> Result<(), ForgeError> {
                unreachable!()
            }
        }
        let forge = Refusing(Mutex::new(0));
        let err = ensure(&forge, &repo(), &req()).await.unwrap_err();
        assert_eq!(*forge.0.lock().unwrap(), 1);
        let line = PublishError::Forge {
            repo: "https://forge/o/r.git".into(),
            error: err,
        }
        .to_string();
        assert_eq!(
            line,
            "https://forge/o/r.git: cannot open the pull request: gh: permission denied: the token needs the write:repository scope"
        );
    }
}
