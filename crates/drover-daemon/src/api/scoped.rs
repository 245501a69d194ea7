//! The task-scoped control endpoint's filter (docs/design.md §11; issue "Isolation", point 4).
//!
//! Every task's `run/<id>/daemon.sock` (see [`crate::task_sockets`]) serves the same routes as
//! the admin socket, behind [`filter`]: the socket a request came in on is its identity (it is
//! mounted only in that task's sandbox), so what it may do is decided from the route alone:
//!
//! | allowed | why |
//! | --- | --- |
//! | `GET /v1/status` | the CLI's first call (is a daemon there?) |
//! | `POST /v1/locks/{name}` | `drover lock`; the holder is this task, whatever the query says |
//! | `GET /v1/tasks/{own id}` and its `/events`, `/wait`, `/raw`, `/diff`, `/diff/file` | reading itself (the exact id) |
//!
//! Everything else that is a route is `403 {kind: "forbidden"}`: other tasks (by id, prefix or
//! name: the answer never tells whether one exists), `ls`, `run`, the fleet view, pools, usage, the lock list,
//! `POST /v1/daemon/stop`, and `stop`/`send`/`rm` of the task itself too — a self-`stop` would
//! end it `cancelled` (a person's decision, which a pool's failure streak does not count) where
//! simply exiting ends it as what it is; `send` would let an agent answer its own permission
//! requests; `rm` would erase its own record. Unknown routes stay 404 (the fallback runs outside
//! this filter).

use super::ApiErr;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use drover_types::ApiErrorKind;
use std::sync::Arc;

/// The task a scoped endpoint belongs to; also put in each request's extensions, where
/// `locks::acquire` takes the holder from.
#[derive(Debug, Clone)]
pub struct TaskScope(pub Arc<str>);

/// What the scoped endpoint does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Forbid,
}

/// Decides a matched route for the task `own`: `segments` are the raw path's (after `/v1/`).
/// A task is read only by its exact id as sent (a percent-encoded form is refused, never
/// decoded into a match).
pub fn decide(method: &Method, segments: &[&str], own: &str) -> Decision {
    let allowed = match (method, segments) {
        (&Method::GET, ["status"]) => true,
        (&Method::POST, ["locks", _]) => true,
        (&Method::GET, ["tasks", id]) => *id == own,
        (&Method::GET, ["tasks", id, "events" | "wait" | "raw" | "diff"]) => *id == own,
        (&Method::GET, ["tasks", id, "diff", "file"]) => *id == own,
        _ => false,
    };
    if allowed {
        Decision::Allow
    } else {
        Decision::Forbid
    }
}

/// The refusal every forbidden request gets.
pub fn forbidden(own: &str) -> ApiErr {
    ApiErr::new(
        ApiErrorKind::Forbidden,
        format!(
            "forbidden: from inside a task's sandbox drover only allows `drover lock` and reading \
             this task ({own})"
        ),
        Some("`drover lock NAME -- CMD`, `drover show $DROVER_TASK_ID`; anything else is for the person running drover, outside the sandbox"),
    )
}

/// The scoped endpoint's middleware (a route layer: it sees matched routes only).
pub async fn filter(State(scope): State<TaskScope>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path
        .strip_prefix("/v1/")
        .unwrap_or_default()
        .split('/')
        .collect();
    match decide(req.method(), &segments, &scope.0) {
        Decision::Allow => {
            req.extensions_mut().insert(scope);
            next.run(req).await
        }
        Decision::Forbid => forbidden(&scope.0).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(method: Method, path: &str, _id: Option<&str>) -> Decision {
        let segs: Vec<&str> = path.split('/').collect();
        decide(&method, &segs, "aaaa1111")
    }

    #[test]
    fn only_locks_and_reading_itself_are_allowed() {
        use Decision::*;
        let own = Some("aaaa1111");
        let other = Some("bbbb2222");
        assert_eq!(d(Method::GET, "status", None), Allow);
        assert_eq!(d(Method::POST, "locks/build", None), Allow);
        assert_eq!(d(Method::GET, "tasks/aaaa1111", own), Allow);
        for sub in ["events", "wait", "raw", "diff", "diff/file"] {
            assert_eq!(d(Method::GET, &format!("tasks/aaaa1111/{sub}"), own), Allow);
            assert_eq!(
                d(Method::GET, &format!("tasks/bbbb2222/{sub}"), other),
                Forbid
            );
        }
        // Another task, a prefix of its own id, its name: refused alike.
        assert_eq!(d(Method::GET, "tasks/bbbb2222", other), Forbid);
        assert_eq!(d(Method::GET, "tasks/aaaa", Some("aaaa")), Forbid);
        assert_eq!(d(Method::GET, "tasks/%61aaa1111", own), Forbid);
        assert_eq!(d(Method::GET, "tasks/aaaa1111/events/x", own), Forbid);
        // Writes, its own task included.
        for (m, p) in [
            (Method::POST, "tasks/aaaa1111/stop"),
            (Method::POST, "tasks/aaaa1111/send"),
            (Method::DELETE, "tasks/aaaa1111"),
        ] {
            assert_eq!(d(m, p, own), Forbid, "{p}");
        }
        for (m, p) in [
            (Method::POST, "tasks"),
            (Method::GET, "tasks"),
            (Method::POST, "daemon/stop"),
            (Method::POST, "pools"),
            (Method::GET, "pools"),
            (Method::POST, "pools/p/stop"),
            (Method::GET, "usage"),
            (Method::GET, "locks"),
            (Method::GET, "fleet"),
            (Method::GET, "fleet/events"),
        ] {
            assert_eq!(d(m, p, None), Forbid, "{p}");
        }
    }

    #[test]
    fn the_refusal_is_one_line_with_a_hint() {
        let e = forbidden("aaaa1111");
        assert_eq!(e.status, axum::http::StatusCode::FORBIDDEN);
        assert_eq!(e.body.kind, ApiErrorKind::Forbidden);
        assert!(!e.body.error.contains('\n'));
        assert!(e.body.error.contains("drover lock"), "{}", e.body.error);
        assert!(e.body.hint.is_some());
    }
}
