//! The shim: one small process per task (`drover shim DIR`), in the spirit of containerd's shim.
//!
//! Layout:
//! - [`files`]: the task directory's files, shared by shim and daemon (launch.json, exit.json, logs).
//! - [`run`]: the shim process itself (synchronous, threads only, to stay small).
//! - [`jail`]: a confined agent's namespaces, filesystem, network and privileges (the hidden
//!   `jail` entry the shim starts instead of the agent when `launch.jail` is set).
//! - [`client`]: what the daemon uses: spawn a shim, talk to its socket, check processes.
//! - [`probe`]: can this host confine an agent (namespaces, `no_new_privs`)? For `drover doctor`
//!   and the daemon's refusal to start tasks unconfined.
//! - [`proc`]: process identity (pid + start time), process-group signalling, descendants
//!   (`/proc` through `procfs`).
//!
//! Why a shim: the agent must outlive the daemon. The shim starts the agent in its own process
//! group with stdout and stderr going straight to append-only files in the task directory, so
//! output is on disk whether or not anyone is reading. It keeps the agent's stdin open and serves
//! `shim.sock` for writes, stdin close and signals. It is a sub-reaper, so what the agent starts
//! stays its descendant even outside the agent's group; when the agent exits it ends and reaps
//! all of it (no orphans), writes `exit.json` and exits. A restarted daemon finds the same files.
//! The files shim and daemon exchange carry a protocol version (see [`files`]).

pub mod client;
pub mod files;
pub mod jail;
pub mod probe;
pub mod proc;
pub mod run;

pub use client::{spawn_shim, ShimClient, ShimError};
pub use files::{
    ExitInfo, Forward, JailSpec, LaunchFile, ProtocolError, ShimCommand, ShimReady, ShimReply,
    TaskFiles, EGRESS_PORT, PROTOCOL, SANDBOX_RUN_DIR,
};
