#!/usr/bin/env bash
# The whole test suite: every Rust test in the workspace (unit, property, end-to-end
# through lapin/amqprs/raw sockets), then the interop clients (Python, Node, Go, Java,
# C, Ruby and PHP libraries; see interop/README.md) against a freshly started warren.
# Installs what the interop clients need by itself (apt, pip, npm).
#
# Usage: bash tests/run-all.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

status=0
echo "== cargo test --workspace"
cargo build --workspace --bins --quiet || exit 1
cargo test --workspace --no-fail-fast || status=1

echo "== interop clients against a fresh warren"
WARREN_BIN="$PWD/target/debug/warren" bash interop/run.sh || status=1

if [ "$status" -eq 0 ]; then
  echo "== all tests passed"
else
  echo "== SOME TESTS FAILED"
fi
exit "$status"
