//! What a confined task's agent (and its gates) may see and reach: its [`JailSpec`], and the
//! few variables of its environment that change inside (docs/design.md §11). A leaf of the
//! engine; the jail itself is `drover_shim::jail`.
//!
//! Visible besides the system (read-only) and the checkout (writable): the private HOME
//! (`tasks/<id>/home` at the daemon user's HOME path), the task's run dir at `/run/drover`,
//! read-only: drover's binary, the agent CLI's package (its `node_modules`, symlinks
//! resolved), the `PATH` directories, the toolchain homes the environment names (and
//! `~/.cargo`, `~/.rustup`, `~/.nvm`, `~/.pyenv`, … and the user's git config when those
//! exist), the config's
//! `sandbox.ro_paths`; writable: `sandbox.rw_paths` and, for a git worktree sandbox, what git
//! needs to commit (the repository's objects, refs, logs and the worktree's own git dir — never
//! its `config` or `hooks/`, which stay read-only). `DROVER_HOME` itself is hidden.

use super::Engine;
use drover_shim::{Forward, JailSpec, EGRESS_PORT, SANDBOX_RUN_DIR};
use drover_types::Isolation;
use std::path::{Path, PathBuf};

/// Variables naming toolchains and tool homes: what they name is visible read-only.
const TOOL_HOMES: &[&str] = &[
    "CARGO_HOME",
    "RUSTUP_HOME",
    "GOPATH",
    "GOROOT",
    "GOMODCACHE",
    "JAVA_HOME",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "NVM_DIR",
    "PNPM_HOME",
    "DENO_DIR",
    "GEM_HOME",
    "NODE_PATH",
    "PYENV_ROOT",
    "RBENV_ROOT",
    "VOLTA_HOME",
    "BUN_INSTALL",
];
/// Under the user's home: visible read-only when they exist (toolchains and git's identity).
const HOME_TOOLS: &[&str] = &[
    ".cargo",
    ".rustup",
    ".nvm",
    ".pyenv",
    ".rbenv",
    ".volta",
    ".bun",
    ".gitconfig",
    ".config/git",
];
/// Files a visible tool home may store credentials in (Cargo's registry tokens in
/// `$CARGO_HOME/credentials{,.toml}`, git's credential store in `~/.config/git/credentials`):
/// masked in every read-only path that has them.
const CREDENTIALS: &[&str] = &["credentials", "credentials.toml"];
/// The private home's path when the daemon has no `HOME`.
const FALLBACK_HOME: &str = "/home/drover";

/// Whether this daemon confines its tasks.
pub(crate) fn confined(engine: &Engine) -> bool {
    engine.config.confinement.isolation == Isolation::Full
}

fn get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn set(env: &mut Vec<(String, String)>, key: &str, value: String) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_string(), value));
}

/// The task's jail for an agent or gate working in `checkout`, with environment `env` (as the
/// daemon built it); adjusts `env` for inside: `DROVER_HOME=/run/drover`, Claude Code's and
/// Codex's config dirs in the private home, `TMPDIR=/tmp`. `agent_binary`: the agent CLI
/// (config `claude_bin`/`codex_bin`). `gateway_forward`: false for gates (they get no
/// provider access).
pub(crate) fn jail_spec(
    engine: &Engine,
    id: &str,
    checkout: &Path,
    env: &mut Vec<(String, String)>,
    agent_binary: Option<&str>,
    gateway_forward: bool,
) -> std::io::Result<JailSpec> {
    let home = engine.home.agent_home(id);
    std::fs::create_dir_all(&home)?;
    let run_dir = engine.home.run_dir(id);
    std::fs::create_dir_all(&run_dir)?;
    // The daemon user's HOME path, unless it is no usable place for a private home.
    let home_at = get(env, "HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute() && h.parent().is_some())
        .unwrap_or_else(|| PathBuf::from(FALLBACK_HOME));
    let mut ro: Vec<PathBuf> = vec![engine.config.exe.clone()];
    if let Some(bin) = agent_binary {
        ro.extend(package_of(bin, get(env, "PATH")));
    }
    for dir in get(env, "PATH").unwrap_or_default().split(':') {
        let dir = Path::new(dir);
        if dir.is_absolute() && dir != Path::new("/") && dir != home_at {
            ro.push(dir.to_path_buf());
            // A version manager's shims (pyenv, rbenv) run what its root holds.
            if let (true, Some(root)) = (dir.ends_with("shims"), dir.parent()) {
                ro.push(root.to_path_buf());
            }
        }
    }
    for key in TOOL_HOMES {
        if let Some(v) = get(env, key) {
            ro.extend(
                v.split(':')
                    .filter(|p| p.starts_with('/'))
                    .map(PathBuf::from),
            );
        }
    }
    if let Some(real_home) = get(env, "HOME") {
        ro.extend(HOME_TOOLS.iter().map(|t| Path::new(real_home).join(t)));
    }
    ro.extend(engine.config.confinement.ro_paths.iter().cloned());
    let mut rw: Vec<PathBuf> = engine.config.confinement.rw_paths.clone();
    // A workspace's checkouts (from drover's own sandbox.json, never the work tree), else the
    // one checkout.
    let members = engine.sandboxes.member_paths(id);
    let checkouts = match members.is_empty() {
        true => vec![checkout.to_path_buf()],
        false => members,
    };
    for c in &checkouts {
        let (git_ro, git_rw) = worktree_git(c);
        ro.extend(git_ro);
        rw.extend(git_rw);
    }
    let drover_home = &engine.home.root;
    // Nothing of DROVER_HOME but what the spec binds on purpose (checkout, run dir, home).
    let keep = |p: &PathBuf| !p.starts_with(drover_home) && p.exists();
    let mut ro = resolved(ro.into_iter().filter(keep));
    // The objects an overlay checkout borrows (`git clone --shared`: its repository's, or a
    // URL's mirror under DROVER_HOME): read-only, so git inside can read (and push) the
    // history; read from drover's base checkouts, never from the agent's files.
    ro.extend(engine.sandboxes.borrowed_objects(id));
    let rw = resolved(rw.into_iter().filter(keep));
    let hidden = std::iter::once(drover_home.clone())
        .chain(credentials_in(&ro))
        .collect();
    let mut spec = JailSpec {
        checkout: checkout.to_path_buf(),
        home,
        home_at: home_at.clone(),
        run_dir,
        ro_paths: ro,
        rw_paths: rw,
        hidden,
        forwards: vec![],
    };
    let gateway = engine.gateway.as_ref().and_then(|g| gateway_port(&g.base));
    if let (true, Some(port)) = (gateway_forward, gateway) {
        spec.forwards.push(Forward {
            port,
            socket: Path::new(SANDBOX_RUN_DIR).join("gateway.sock"),
        });
    }
    if engine.git_proxy.is_some() {
        // The task's git proxy: the sandbox's `origin` (crate::git_proxy::task).
        spec.forwards.push(Forward {
            port: crate::git_proxy::GIT_PORT,
            socket: Path::new(SANDBOX_RUN_DIR).join(crate::git_proxy::GIT_SOCK),
        });
    }
    if !engine.config.confinement.egress.is_empty() {
        // Agent and gates alike (a gate's build may fetch what the list allows); its
        // HTTPS_PROXY/HTTP_PROXY/NO_PROXY come from agent_env::egress_env.
        spec.forwards.push(Forward {
            port: EGRESS_PORT,
            socket: Path::new(SANDBOX_RUN_DIR).join("egress.sock"),
        });
    }
    set(env, "HOME", home_at.display().to_string());
    set(env, "DROVER_HOME", SANDBOX_RUN_DIR.to_string());
    set(env, "TMPDIR", "/tmp".to_string());
    env.retain(|(k, _)| k != "XDG_RUNTIME_DIR");
    // The agent's own config dirs, in its private home: never the user's real ones.
    if get(env, "CLAUDE_CONFIG_DIR").is_some() {
        set(
            env,
            "CLAUDE_CONFIG_DIR",
            home_at.join(".claude").display().to_string(),
        );
    }
    if get(env, "CODEX_HOME").is_some() {
        set(
            env,
            "CODEX_HOME",
            home_at.join(".codex").display().to_string(),
        );
    }
    Ok(spec)
}

/// The stored credentials ([`CREDENTIALS`]) directly in the directories of `paths`.
fn credentials_in(paths: &[PathBuf]) -> Vec<PathBuf> {
    paths
        .iter()
        .flat_map(|p| CREDENTIALS.iter().map(move |c| p.join(c)))
        .filter(|c| c.symlink_metadata().is_ok())
        .collect()
}

/// The port of the gateway's `http://127.0.0.1:PORT`.
fn gateway_port(base: &str) -> Option<u16> {
    base.trim_end_matches('/').rsplit(':').next()?.parse().ok()
}

/// Claude Code's config dir of a confined task, as the daemon sees it (its resume check).
pub(crate) fn claude_config_dir(engine: &Engine, id: &str) -> PathBuf {
    engine.home.agent_home(id).join(".claude")
}

/// Each path with its symlinks resolved too (both the given path and where it leads are
/// bound), deduplicated.
fn resolved(paths: impl Iterator<Item = PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = vec![];
    for p in paths {
        let real = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
        for q in [p, real] {
            if !out.contains(&q) {
                out.push(q);
            }
        }
    }
    out
}

/// What of an agent CLI must be visible: its file and, if it lies in a `node_modules`, the
/// whole outermost `node_modules` (of the path as given and of where its symlinks lead).
fn package_of(bin: &str, path: Option<&str>) -> Vec<PathBuf> {
    let file = if bin.contains('/') {
        PathBuf::from(bin)
    } else {
        match path
            .unwrap_or_default()
            .split(':')
            .map(|d| Path::new(d).join(bin))
            .find(|p| p.is_file())
        {
            Some(p) => p,
            None => return vec![],
        }
    };
    let real = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
    let mut out = vec![];
    for f in [&file, &real] {
        let top = f
            .ancestors()
            .filter(|a| a.file_name().is_some_and(|n| n == "node_modules"))
            .last();
        out.push(top.map_or_else(|| f.to_path_buf(), Path::to_path_buf));
    }
    out
}

/// A git worktree checkout's `.git` file points into the user's repository: to commit on its
/// task branch git needs the objects, the logs, the task branches' ref directory
/// (`refs/heads/drover/`) and the worktree's own git dir writable; the rest of the common dir
/// (`config`, `hooks/`, `HEAD`, every other ref — the user's branches and tags — and
/// `packed-refs`) is read-only. `(ro, rw)`.
fn worktree_git(checkout: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let Ok(body) = std::fs::read_to_string(checkout.join(".git")) else {
        return (vec![], vec![]);
    };
    let Some(gitdir) = body
        .trim()
        .strip_prefix("gitdir:")
        .map(|s| PathBuf::from(s.trim()))
    else {
        return (vec![], vec![]);
    };
    let common = std::fs::read_to_string(gitdir.join("commondir"))
        .map(|c| gitdir.join(c.trim()))
        .ok()
        .and_then(|c| std::fs::canonicalize(c).ok())
        .unwrap_or_else(|| gitdir.join("../.."));
    let rw = ["objects", "logs", "refs/heads/drover"]
        .iter()
        .map(|d| common.join(d))
        .filter(|d| d.is_dir())
        .chain([gitdir])
        .collect();
    (vec![common], rw)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_cli_in_node_modules_brings_its_package() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("cc/node_modules/@a/cli");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::create_dir_all(dir.path().join("cc/node_modules/.bin")).unwrap();
        std::fs::write(pkg.join("cli.js"), "").unwrap();
        let bin = dir.path().join("cc/node_modules/.bin/claude");
        std::os::unix::fs::symlink(pkg.join("cli.js"), &bin).unwrap();
        let got = package_of(bin.to_str().unwrap(), None);
        let nm = std::fs::canonicalize(dir.path())
            .unwrap()
            .join("cc/node_modules");
        assert!(got.contains(&dir.path().join("cc/node_modules")), "{got:?}");
        assert!(got.contains(&nm), "{got:?}");
    }

    #[test]
    fn a_worktree_exposes_objects_logs_and_task_branches_writable_never_other_refs_config_or_hooks()
    {
        let dir = tempfile::tempdir().unwrap();
        let common = dir.path().join("repo/.git");
        let gitdir = common.join("worktrees/t1");
        std::fs::create_dir_all(&gitdir).unwrap();
        for d in ["objects", "logs", "refs/heads/drover", "refs/tags"] {
            std::fs::create_dir_all(common.join(d)).unwrap();
        }
        std::fs::write(gitdir.join("commondir"), "../..\n").unwrap();
        let co = dir.path().join("co");
        std::fs::create_dir_all(&co).unwrap();
        std::fs::write(co.join(".git"), format!("gitdir: {}\n", gitdir.display())).unwrap();
        let (ro, rw) = worktree_git(&co);
        let common = std::fs::canonicalize(&common).unwrap();
        assert_eq!(ro, vec![common.clone()]);
        assert!(rw.contains(&common.join("objects")));
        assert!(rw.contains(&common.join("refs/heads/drover")));
        assert!(rw.contains(&gitdir));
        assert!(!rw
            .iter()
            .any(|p| p.ends_with("refs") || p.ends_with("refs/tags")));
        assert!(!rw
            .iter()
            .any(|p| p.ends_with("config") || p.ends_with("hooks")));
    }

    #[test]
    fn stored_credentials_in_a_visible_tool_home_stay_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let cargo = dir.path().join(".cargo");
        let git = dir.path().join(".config/git");
        std::fs::create_dir_all(cargo.join("bin")).unwrap();
        std::fs::create_dir_all(&git).unwrap();
        std::fs::write(cargo.join("credentials.toml"), "token = \"x\"").unwrap();
        std::fs::write(cargo.join("credentials"), "token = \"x\"").unwrap();
        std::fs::write(git.join("credentials"), "https://u:p@host").unwrap();
        std::fs::write(git.join("ignore"), "*.log").unwrap();
        let hidden = credentials_in(&[cargo.clone(), git.clone(), dir.path().join("nope")]);
        for p in [
            cargo.join("credentials.toml"),
            cargo.join("credentials"),
            git.join("credentials"),
        ] {
            assert!(
                hidden.contains(&p),
                "{} not hidden: {hidden:?}",
                p.display()
            );
        }
        assert!(!hidden.contains(&git.join("ignore")));
        assert!(!hidden.contains(&cargo.join("bin")));
    }
}
