//! The CLI's one error (jj-style): a [`Kind`] that decides the exit code, a one-line message,
//! a hint, and the source error kept for the chain. Library errors become a `CliError` through
//! `From` impls that choose the kind, so commands use `?`, adding context with
//! [`Context::context`] where the library's own message does not say what was being done.
//!
//! Exit codes (README.md, docs/design.md §4): 0 ok, 1 the task(s) failed, 2 usage, input or
//! configuration error, 3 daemon unreachable or internal error.

use drover_types::{ApiError, ApiErrorKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad input: unknown id, not a repo, a finished task, a bad flag… (exit 2)
    Input,
    /// A bad `config.toml` or `DROVER_*` setting (exit 2)
    Config,
    /// The daemon could not be reached, started, or stopped answering (exit 3)
    Unreachable,
    /// Something broke inside drover: an I/O failure, a runtime, an answer it cannot read (exit 3)
    Internal,
    /// The task(s) ran and failed (exit 1)
    TaskFailed,
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::TaskFailed => 1,
            Kind::Input | Kind::Config => 2,
            Kind::Unreachable | Kind::Internal => 3,
        }
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug)]
pub struct CliError {
    pub kind: Kind,
    /// What the user reads after `drover:` (already includes the source's text).
    pub message: String,
    pub hint: Option<String>,
    /// The error this one came from, kept for the chain (`std::error::Error::source`).
    source: Option<Source>,
}

pub type Result<T> = std::result::Result<T, CliError>;

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl CliError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        CliError {
            kind,
            message: message.into(),
            hint: None,
            source: None,
        }
    }
    pub fn input(message: impl Into<String>) -> Self {
        Self::new(Kind::Input, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Kind::Internal, message)
    }
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self::new(Kind::Unreachable, message)
    }
    /// `kind`, with `source`'s text as the message and `source` kept.
    pub fn from_source(kind: Kind, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        CliError {
            kind,
            message: source.to_string(),
            hint: None,
            source: Some(Box::new(source)),
        }
    }
    /// An I/O error on a path the user named (`--prompt-file`, `--repo`): a path that is missing,
    /// forbidden or the wrong kind of file is their input (exit 2); anything else (a disk error,
    /// no file descriptors left) is not (exit 3). The message is kept.
    pub fn on_user_path(e: &std::io::Error, message: impl Into<String>) -> Self {
        use std::io::ErrorKind as E;
        let kind = match e.kind() {
            E::NotFound
            | E::PermissionDenied
            | E::IsADirectory
            | E::NotADirectory
            | E::InvalidInput
            | E::InvalidFilename => Kind::Input,
            _ => Kind::Internal,
        };
        Self::new(kind, message)
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// A non-2xx answer of the daemon: its typed kind decides ours. A body that is not an
    /// [`ApiError`] (a proxy, a crash) is the daemon's failure.
    pub fn from_api(status: u16, body: &[u8]) -> Self {
        match serde_json::from_slice::<ApiError>(body) {
            Ok(e) => {
                let kind = match e.kind {
                    ApiErrorKind::Invalid
                    | ApiErrorKind::NotFound
                    | ApiErrorKind::Conflict
                    | ApiErrorKind::TooLarge
                    | ApiErrorKind::Timeout
                    | ApiErrorKind::Forbidden
                    | ApiErrorKind::Unauthorized
                    | ApiErrorKind::InvalidField
                    | ApiErrorKind::RateLimited => Kind::Input,
                    ApiErrorKind::Busy => Kind::Unreachable,
                    ApiErrorKind::IsolationUnavailable => Kind::Config,
                    ApiErrorKind::Internal => Kind::Internal,
                    // A newer daemon's kind: the status tells whose fault it is.
                    ApiErrorKind::Unknown if status >= 500 => Kind::Internal,
                    ApiErrorKind::Unknown => Kind::Input,
                };
                CliError {
                    kind,
                    message: e.error,
                    hint: e.hint,
                    source: None,
                }
            }
            Err(_) => CliError::internal(format!(
                "the daemon answered {status}: {}",
                String::from_utf8_lossy(body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )),
        }
    }
    pub fn exit_code(&self) -> i32 {
        self.kind.exit_code()
    }
    pub fn print(&self) {
        // Messages can quote what a user or an agent wrote: no control sequences to the terminal.
        eprintln!("drover: {}", crate::format::clean(&self.message));
        if let Some(h) = &self.hint {
            eprintln!("  hint: {}", crate::format::clean(h));
        }
    }
}

/// Context for a failure whose own message does not say what drover was doing:
/// `std::fs::create_dir_all(&dir).context(format!("creating {}", dir.display()))?` keeps the
/// kind the `From` impl chose and reads "creating DIR: <the error>".
pub trait Context<T> {
    fn context(self, what: impl std::fmt::Display) -> Result<T>;
    /// The error (converted by its `From` impl) with a hint.
    fn with_hint(self, hint: impl Into<String>) -> Result<T>;
}

impl<T, E: Into<CliError>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl std::fmt::Display) -> Result<T> {
        self.map_err(|e| {
            let mut e = e.into();
            e.message = format!("{what}: {}", e.message);
            e
        })
    }
    fn with_hint(self, hint: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.into().hint(hint))
    }
}

/// I/O inside drover (a file it needs, a socket, a child process): not the user's input.
impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::from_source(Kind::Internal, e)
    }
}

/// JSON drover wrote or read itself (an answer of the daemon it cannot read).
impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        CliError::from_source(Kind::Internal, e)
    }
}

/// A request drover could not even build.
impl From<hyper::http::Error> for CliError {
    fn from(e: hyper::http::Error) -> Self {
        CliError::from_source(Kind::Internal, e)
    }
}

/// The connection to the daemon broke while reading its answer.
impl From<hyper::Error> for CliError {
    fn from(e: hyper::Error) -> Self {
        CliError::from_source(Kind::Unreachable, e)
    }
}

/// The daemon's event stream broke.
impl From<eventsource_stream::EventStreamError<std::io::Error>> for CliError {
    fn from(e: eventsource_stream::EventStreamError<std::io::Error>) -> Self {
        CliError::from_source(Kind::Unreachable, e)
    }
}

/// The daemon did not answer within the caller's deadline.
impl From<tokio::time::error::Elapsed> for CliError {
    fn from(_: tokio::time::error::Elapsed) -> Self {
        CliError::unreachable("the daemon did not answer in time")
    }
}

/// A bad `config.toml`, `DROVER_*` variable or daemon flag: the loader's message names it and
/// its hint says what to do.
impl From<drover_daemon::ConfigError> for CliError {
    fn from(e: drover_daemon::ConfigError) -> Self {
        let hint = e.hint();
        CliError::from_source(Kind::Config, e).hint(hint)
    }
}

/// The daemon run in this process (`drover daemon --foreground`) stopped with an error.
impl From<drover_daemon::DaemonError> for CliError {
    fn from(e: drover_daemon::DaemonError) -> Self {
        use drover_daemon::DaemonError;
        match e {
            DaemonError::Config(c) => c.into(),
            // Another daemon owns this home: the user's to resolve (as before: exit 2).
            e @ DaemonError::AlreadyRunning(_) => CliError::from_source(Kind::Input, e),
            e => CliError::from_source(Kind::Internal, e),
        }
    }
}

/// The fake provider: a scenario file the user named that cannot be read or is wrong is their
/// input; a port it cannot bind is not.
impl From<drover_fake_provider::Error> for CliError {
    fn from(e: drover_fake_provider::Error) -> Self {
        use drover_fake_provider::Error as E;
        let kind = match &e {
            E::Read { .. } | E::Json(_) | E::Invalid(_) => Kind::Input,
            E::Bind(_) | E::Io(_) => Kind::Internal,
        };
        CliError::from_source(kind, e)
    }
}

/// A `--protect` glob the user gave.
impl From<drover_sandbox::InvalidGlob> for CliError {
    fn from(e: drover_sandbox::InvalidGlob) -> Self {
        CliError::from_source(Kind::Input, e).hint(drover_sandbox::InvalidGlob::HINT)
    }
}

/// Sandbox work the CLI does itself (`drover bench`).
impl From<drover_sandbox::SandboxError> for CliError {
    fn from(e: drover_sandbox::SandboxError) -> Self {
        CliError::from_source(Kind::Internal, e)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn api(status: u16, kind: &str) -> CliError {
        CliError::from_api(
            status,
            format!(r#"{{"kind":"{kind}","error":"e","hint":"h"}}"#).as_bytes(),
        )
    }

    #[test]
    fn a_path_the_user_named_is_their_input_only_when_the_path_is_at_fault() {
        use std::io::{Error, ErrorKind as E};
        for k in [E::NotFound, E::PermissionDenied, E::IsADirectory] {
            assert_eq!(
                CliError::on_user_path(&Error::from(k), "m").exit_code(),
                2,
                "{k:?}"
            );
        }
        let disk = Error::from_raw_os_error(libc::EIO);
        assert_eq!(CliError::on_user_path(&disk, "m").exit_code(), 3);
    }

    #[test]
    fn kinds_have_the_documented_exit_codes() {
        assert_eq!(Kind::TaskFailed.exit_code(), 1);
        assert_eq!(Kind::Input.exit_code(), 2);
        assert_eq!(Kind::Config.exit_code(), 2);
        assert_eq!(Kind::Unreachable.exit_code(), 3);
        assert_eq!(Kind::Internal.exit_code(), 3);
    }

    #[test]
    fn api_kinds_become_exit_codes() {
        for (status, kind, code) in [
            (400, "invalid", 2),
            (404, "not_found", 2),
            (409, "conflict", 2),
            (413, "too_large", 2),
            (408, "timeout", 2),
            (503, "busy", 3),
            (403, "forbidden", 2),
            (500, "internal", 3),
            // A newer daemon's kind: by status, not a panic.
            (429, "rate_limited", 2),
            (502, "upstream_down", 3),
        ] {
            let e = api(status, kind);
            assert_eq!(e.exit_code(), code, "{kind}");
            assert_eq!(e.message, "e");
            assert_eq!(e.hint.as_deref(), Some("h"));
        }
        let garbage = CliError::from_api(502, b"<html>bad gateway</html>");
        assert_eq!(garbage.exit_code(), 3);
        assert!(
            garbage.message.contains("answered 502"),
            "{}",
            garbage.message
        );
    }

    #[test]
    fn io_failures_are_not_the_users_input() {
        let e: CliError = std::io::Error::from(std::io::ErrorKind::PermissionDenied).into();
        assert_eq!(e.exit_code(), 3);
        let e = std::fs::read("/nonexistent/drover/x")
            .context("reading /nonexistent/drover/x")
            .unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(
            e.message.starts_with("reading /nonexistent/drover/x: "),
            "{}",
            e.message
        );
        assert!(
            std::error::Error::source(&e).is_some(),
            "the io error is kept"
        );
    }

    #[test]
    fn config_errors_exit_2_with_the_loaders_hint() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), "slots = \"many\"\n").unwrap();
        let e: CliError = drover_daemon::Config::load_with(
            dir.path(),
            &drover_daemon::Environment::default(),
            &drover_daemon::Flags::default(),
        )
        .unwrap_err()
        .into();
        assert_eq!(e.kind, Kind::Config);
        assert_eq!(e.exit_code(), 2);
        assert!(e.message.contains("config.toml: slots: "), "{}", e.message);
        assert!(e.hint.unwrap_or_default().starts_with("fix "));
    }

    #[test]
    fn another_daemon_is_input_and_a_socket_failure_is_internal() {
        let e: CliError = drover_daemon::DaemonError::AlreadyRunning("/h".into()).into();
        assert_eq!(e.exit_code(), 2);
        let e: CliError =
            drover_daemon::DaemonError::Socket(std::io::Error::from(std::io::ErrorKind::AddrInUse))
                .into();
        assert_eq!(e.exit_code(), 3);
    }
}
