#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the pinned Claude Code and Codex CLIs into a
# cache folder, then runs formatting, lints and every test (real git, real SQLite, real processes,
# real Claude Code and Codex against drover's fake provider). Needs: Rust toolchain, git, Node/npm. Run as root (overlay mounts).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

install_claude
export DROVER_CLAUDE_BIN
echo "== claude: $DROVER_CLAUDE_BIN ($("$DROVER_CLAUDE_BIN" --version))"
install_codex
export DROVER_CODEX_BIN
echo "== codex: $DROVER_CODEX_BIN ($("$DROVER_CODEX_BIN" --version))"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked -- "$@"
