#!/usr/bin/env bash
# drover's main job on a fresh machine: a small fleet of Claude Code sessions on a generated demo
# repository, with live progress and a closing table. Offline by default (drover's fake model
# provider); with ANTHROPIC_API_KEY set, the sessions use the real API.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
install_claude
export DROVER_CLAUDE_BIN
echo "== building drover (release; the first build takes several minutes, cargo prints each crate)" >&2
cargo build --release --locked -p drover-cli -p drover-shim
echo "== starting the demo" >&2
exec "${CARGO_TARGET_DIR:-target}/release/drover" demo "$@"
