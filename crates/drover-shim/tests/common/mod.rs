//! What the shim's integration tests share.

use drover_shim::files::decode;
use drover_shim::{ShimReady, TaskFiles};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Starts the shim binary on `files` and returns it with its ready line (checked to carry the
/// protocol version).
pub fn start(files: &TaskFiles) -> (Child, ShimReady) {
    let mut shim = Command::new(env!("CARGO_BIN_EXE_drover-shim"))
        .arg(&files.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(shim.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: ShimReady = decode("ready line", line.trim().as_bytes()).unwrap();
    assert!(line.contains("\"v\":1"), "{line}");
    (shim, ready)
}
