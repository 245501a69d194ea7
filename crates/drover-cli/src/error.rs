//! The CLI's one error: a kind (which decides the exit code), a message, and a hint.
//! Exit codes: 0 ok, 1 the task(s) failed, 2 usage or input error, 3 daemon unreachable or
//! internal error.

use drover_types::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad input: unknown id, not a repo, a finished task… (exit 2)
    Input,
    /// Daemon unreachable or something broke inside drover (exit 3)
    Daemon,
}

#[derive(Debug)]
pub struct CliError {
    pub kind: Kind,
    pub message: String,
    pub hint: Option<String>,
}

pub type Result<T> = std::result::Result<T, CliError>;

impl CliError {
    pub fn input(message: impl Into<String>) -> Self {
        CliError {
            kind: Kind::Input,
            message: message.into(),
            hint: None,
        }
    }
    pub fn daemon(message: impl Into<String>) -> Self {
        CliError {
            kind: Kind::Daemon,
            message: message.into(),
            hint: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn from_api(status: u16, body: &[u8]) -> Self {
        match serde_json::from_slice::<ApiError>(body) {
            Ok(e) => {
                let kind = if e.kind == "internal" || status >= 500 {
                    Kind::Daemon
                } else {
                    Kind::Input
                };
                CliError {
                    kind,
                    message: e.error,
                    hint: e.hint,
                }
            }
            Err(_) => CliError::daemon(format!(
                "the daemon answered {status}: {}",
                String::from_utf8_lossy(body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )),
        }
    }
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            Kind::Input => 2,
            Kind::Daemon => 3,
        }
    }
    pub fn print(&self) {
        // Messages can quote what a user or an agent wrote: no control sequences to the terminal.
        eprintln!("drover: {}", crate::format::clean(&self.message));
        if let Some(h) = &self.hint {
            eprintln!("  hint: {}", crate::format::clean(h));
        }
    }
}
