//! What can go wrong talking to a forge.

use crate::kind::ForgeKind;

#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// The token was refused (401) even after a refresh.
    #[error("{forge}: the token was refused (401): {hint}")]
    Unauthorized { forge: String, hint: String },
    /// The token lacks a permission (403, or a push refused for scope).
    #[error("{forge}: permission denied: {hint}")]
    Forbidden { forge: String, hint: String },
    #[error("{forge}: {what} not found (404)")]
    NotFound { forge: String, what: String },
    /// Rate limited longer than drover waits.
    #[error("{forge}: rate limited; try again after {retry_after_secs} s")]
    RateLimited {
        forge: String,
        retry_after_secs: u64,
    },
    /// Any other answer drover cannot use.
    #[error("{forge}: {status} from {method} {path}: {message}")]
    Api {
        forge: String,
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error("{forge}: cannot reach {url}: {reason}")]
    Unreachable {
        forge: String,
        url: String,
        reason: String,
    },
    /// The credential could not be obtained (token_cmd failed, app key unreadable, …).
    #[error("{forge}: no token: {reason}")]
    Credential { forge: String, reason: String },
    #[error("{repo}: {reason}")]
    BadRepo { repo: String, reason: String },
    #[error("{kind}: {what} is not supported")]
    Unsupported { kind: ForgeKind, what: String },
}
