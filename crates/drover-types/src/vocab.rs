//! drover's closed sets of words (docs/design.md §3, §5, §11): each is an enum here, written on
//! the wire, in the database and on the command line as the same string.
//!
//! Every enum comes from one macro, [`vocab!`], so each has the same surface: serde as its
//! string, `as_str`, `Display`, `FromStr` (error: [`UnknownValue`], which lists the valid
//! values), `ALL` and `NAMES`, and with the `clap` feature a `clap::ValueEnum` (so a bad flag
//! value is refused by clap with the list of valid ones). The sets that belong to a module are
//! declared there with the same macro: `TaskState`, `ErrorKind` ([`crate::task`]), `EventKind`
//! ([`crate::event`]), `StopStep` ([`crate::clock`]). `Verdict` still has its own impls.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A string that is not one of a closed set's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    /// What the set is, e.g. `permission policy`.
    pub what: &'static str,
    pub value: String,
    pub expected: &'static [&'static str],
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} {:?}: use {}",
            self.what,
            self.value,
            or_list(self.expected)
        )
    }
}

impl std::error::Error for UnknownValue {}

impl From<UnknownValue> for String {
    fn from(e: UnknownValue) -> String {
        e.to_string()
    }
}

/// `a`, `a or b`, `a, b or c`.
pub fn or_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Declares a closed set: `Variant = "wire string"` for each value.
///
/// The string is the serde name (per-variant `rename`, so the JSON is exactly the string given),
/// `as_str`, `Display`, `FromStr` and the clap value name.
macro_rules! vocab {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $var:ident = $s:tt ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize, ::utoipa::ToSchema)]
        #[cfg_attr(feature = "clap", derive(::clap::ValueEnum))]
        $vis enum $name {
            $(
                $(#[$vmeta])*
                #[serde(rename = $s)]
                #[cfg_attr(feature = "clap", value(name = $s))]
                $var,
            )+
        }

        impl $name {
            /// Every value's string, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($s),+];
            /// Every value, in declaration order.
            pub const ALL: [$name; Self::NAMES.len()] = [$($name::$var),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$var => $s,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = crate::vocab::UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($name::$var),)+
                    _ => Err(crate::vocab::UnknownValue {
                        what: $what,
                        value: s.to_string(),
                        expected: Self::NAMES,
                    }),
                }
            }
        }
    };
}

vocab! {
    /// How a task's agent is confined (config `sandbox.isolation`; the task's `isolation`).
    #[derive(Default)]
    pub enum Isolation ("isolation") {
        /// Its own user, mount, PID and network namespaces, a cgroup, no new privileges: it
        /// sees its checkout and what the config exposes, and reaches only drover's sockets.
        #[default]
        Full = "full",
        /// None of that, on purpose (`sandbox.isolation = "none"`): the agent runs as the
        /// daemon's user with its view of the machine and its network.
        None = "none",
    }
}

vocab! {
    /// What happens to a permission request (`--permissions`, config `permissions`).
    #[derive(Default)]
    pub enum PermissionPolicy ("permission policy") {
        /// The task goes `needs_input` and waits for `drover send --allow/--deny`.
        #[default]
        Ask = "ask",
        Allow = "allow",
        Deny = "deny",
    }
}

vocab! {
    /// Who answered a permission request (`by` of the `input` event).
    pub enum AnsweredBy ("answerer") {
        /// `drover send --allow/--deny`.
        User = "user",
        /// The task's permission policy (`allow` or `deny`).
        Policy = "policy",
        /// Nobody within `needs_input_timeout`: denied.
        NeedsInputTimeout = "needs_input_timeout",
    }
}

vocab! {
    /// What happens to a task whose agent died with its shim (config `on_interrupt`).
    pub enum OnInterrupt ("on_interrupt policy") {
        /// Requeue it (a resumable agent continues its session).
        Resume = "resume",
        Fail = "fail",
    }
}

vocab! {
    /// The gates' result for the current turn (`None` until they ran).
    pub enum GateStatus ("gate status") {
        Passed = "passed",
        Failed = "failed",
    }
}

vocab! {
    /// Why a stop of a task was asked for; the outcome follows from it.
    pub enum StopReason ("stop reason") {
        /// `drover stop`, a pool's hard stop, or the daemon stopping its tasks.
        User = "user",
        /// The gateway refused a request on what was spent.
        BudgetExceeded = "budget_exceeded",
        /// The wall clock (`--timeout`) ran out.
        Timeout = "timeout",
        /// The stall clock (`--stall-timeout`) ran out.
        StallTimeout = "stall_timeout",
    }
}

vocab! {
    /// A pool's state.
    pub enum PoolState ("pool state") {
        Running = "running",
        Stopping = "stopping",
        /// Stopped by a person.
        Stopped = "stopped",
        /// Stopped by its failure streak.
        Failed = "failed",
        /// Reached its `--count`.
        Done = "done",
    }
}

vocab! {
    /// What a pool's failure streak does to its running tasks (`--on-failures`).
    #[derive(Default)]
    pub enum FailurePolicy ("failure policy") {
        /// Let them finish.
        #[default]
        Finish = "finish",
        /// Stop them.
        Hard = "hard",
    }
}

vocab! {
    /// Where a task's `usage` and `cost_usd` come from (`metered_by`).
    pub enum MeteredBy ("metering source") {
        /// Metered from the wire by drover's gateway.
        Gateway = "gateway",
        /// The agent's own figures (e.g. no provider key configured for the gateway).
        Agent = "agent",
    }
}

vocab! {
    /// The kind of a task's sandbox (`sandbox_kind`): the sandbox mode once resolved.
    pub enum SandboxKind ("sandbox kind") {
        Overlay = "overlay",
        Worktree = "worktree",
    }
}

vocab! {
    /// How `drover usage` (`GET /v1/usage?by=`) groups the gateway's records.
    #[derive(Default)]
    pub enum UsageGroup ("grouping") {
        #[default]
        Task = "task",
        /// `-` for usage outside a pool.
        Pool = "pool",
        Model = "model",
        /// The UTC day (`YYYY-MM-DD`) of the response.
        Day = "day",
        /// The task's team (`-` for none).
        Team = "team",
    }
}

vocab! {
    /// Whether a worker still renews its heartbeat (`drover workers`).
    pub enum WorkerState ("worker state") {
        /// Its last heartbeat is within its lease.
        Live = "live",
        /// Its lease lapsed: its tasks are (or are being) re-leased to live workers.
        Lapsed = "lapsed",
    }
}

/// One worker of the fleet (`GET /v1/workers`, `drover workers`; docs/design.md §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerInfo {
    pub name: String,
    /// The address it serves the API on (`listen`), if any.
    pub addr: Option<String>,
    pub started_at: String,
    pub last_heartbeat: String,
    /// Its slots (config `slots`).
    pub slots: u32,
    /// Tasks it holds now (not terminal).
    pub running: u32,
    pub state: WorkerState,
}

/// The build locks (`drover lock`) a task holds or waits for: the task JSON's `locks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskLocks {
    pub holding: Vec<String>,
    pub waiting: Vec<String>,
}

/// The round-trip check every closed set's tests use (each next to its type).
#[cfg(test)]
pub(crate) mod testing {
    #![allow(clippy::unwrap_used)]
    use super::UnknownValue;
    use serde::{Deserialize, Serialize};
    use std::fmt;
    use std::str::FromStr;

    /// Every value goes through serde and `FromStr` as its string, and back.
    pub(crate) fn round_trips<T>(all: &[T], names: &[&str], as_str: impl Fn(T) -> &'static str)
    where
        T: Copy
            + PartialEq
            + fmt::Debug
            + fmt::Display
            + FromStr<Err = UnknownValue>
            + Serialize
            + for<'de> Deserialize<'de>,
    {
        assert_eq!(all.len(), names.len());
        for (v, name) in all.iter().zip(names) {
            assert_eq!(as_str(*v), *name);
            assert_eq!(v.to_string(), *name);
            assert_eq!(serde_json::to_value(v).unwrap(), serde_json::json!(name));
            assert_eq!(
                serde_json::from_value::<T>(serde_json::json!(name)).unwrap(),
                *v
            );
            assert_eq!(name.parse::<T>().unwrap(), *v);
        }
        let e = "banana".parse::<T>().unwrap_err();
        assert_eq!(e.value, "banana");
        let text = e.to_string();
        for name in names {
            assert!(text.contains(name), "{text}");
        }
        assert!(serde_json::from_value::<T>(serde_json::json!("banana")).is_err());
        // Case matters: the wire strings are exact.
        let upper = names[0].to_uppercase();
        if upper != names[0] {
            assert!(upper.parse::<T>().is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::testing::round_trips;
    use super::*;

    #[test]
    fn every_value_round_trips_through_serde_and_from_str() {
        round_trips(&PermissionPolicy::ALL, &["ask", "allow", "deny"], |v| {
            v.as_str()
        });
        round_trips(
            &AnsweredBy::ALL,
            &["user", "policy", "needs_input_timeout"],
            |v| v.as_str(),
        );
        round_trips(&OnInterrupt::ALL, &["resume", "fail"], |v| v.as_str());
        round_trips(&GateStatus::ALL, &["passed", "failed"], |v| v.as_str());
        round_trips(
            &StopReason::ALL,
            &["user", "budget_exceeded", "timeout", "stall_timeout"],
            |v| v.as_str(),
        );
        round_trips(
            &PoolState::ALL,
            &["running", "stopping", "stopped", "failed", "done"],
            |v| v.as_str(),
        );
        round_trips(&FailurePolicy::ALL, &["finish", "hard"], |v| v.as_str());
        round_trips(&MeteredBy::ALL, &["gateway", "agent"], |v| v.as_str());
        round_trips(&SandboxKind::ALL, &["overlay", "worktree"], |v| v.as_str());
        round_trips(
            &UsageGroup::ALL,
            &["task", "pool", "model", "day", "team"],
            |v| v.as_str(),
        );
    }

    #[test]
    fn an_unknown_value_names_the_set_and_lists_the_valid_ones() {
        let e = "banana".parse::<PermissionPolicy>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown permission policy \"banana\": use ask, allow or deny"
        );
        assert_eq!(or_list(&["a"]), "a");
        assert_eq!(or_list(&["a", "b"]), "a or b");
    }

    #[test]
    fn defaults_are_todays_defaults() {
        assert_eq!(PermissionPolicy::default(), PermissionPolicy::Ask);
        assert_eq!(FailurePolicy::default(), FailurePolicy::Finish);
        assert_eq!(UsageGroup::default(), UsageGroup::Task);
    }

    #[test]
    fn task_locks_keep_their_json_shape() {
        let l = TaskLocks {
            holding: vec!["build".into()],
            waiting: vec![],
        };
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"holding":["build"],"waiting":[]}"#
        );
    }
}
