//! The loader's one error: which layer (the file, a variable, a flag) held what, and what to do.

use std::fmt;
use std::path::PathBuf;

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `DROVER_HOME/config.toml`.
    File(PathBuf),
    /// A variable of the daemon's environment, e.g. `DROVER_SLOTS`.
    Env(String),
    /// A flag of `drover daemon`, e.g. `--slots`.
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Env(v) => write!(f, "environment variable {v}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// Why the configuration could not be loaded. A missing `config.toml` is not an error.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read (permissions, a directory, an I/O error).
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not UTF-8 text.
    #[error("{}: not UTF-8 text (TOML must be UTF-8)", path.display())]
    NotUtf8 { path: PathBuf },
    /// The file is not TOML.
    #[error("{}: invalid TOML at line {line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A key holds something it cannot (wrong type, unknown key, unknown value, out of range).
    #[error("{origin}: {message}")]
    Invalid { origin: Origin, message: String },
    /// The daemon's own executable (it runs shims with it) cannot be found.
    #[error("cannot find drover's own executable: {0}")]
    Exe(#[source] std::io::Error),
}

impl ConfigError {
    /// What to do about it, for the CLI's `hint:` line.
    pub fn hint(&self) -> String {
        match self {
            ConfigError::Unreadable { path, .. } => format!(
                "make {} a file this user can read, or remove it (every setting is optional)",
                path.display()
            ),
            ConfigError::NotUtf8 { path } => format!("save {} as UTF-8", path.display()),
            ConfigError::Syntax { path, .. } => {
                format!("fix {} and run the command again", path.display())
            }
            ConfigError::Invalid { origin, .. } => match origin {
                Origin::File(p) => format!(
                    "fix {} and run the command again (README.md, Configuration, lists the keys)",
                    p.display()
                ),
                Origin::Env(v) => format!("fix or unset {v}"),
                Origin::Flag(f) => format!("fix {f}; `drover daemon --help` lists the flags"),
            },
            ConfigError::Exe(_) => "run drover from a path that still exists".into(),
        }
    }

    pub(crate) fn invalid(origin: Origin, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            origin,
            message: message.into(),
        }
    }
}
