#!/usr/bin/env bash
# scripts/test.sh — the one command that runs Gantry's whole test suite:
#   1. scripts/setup.sh        install/check apt packages, the Python venv (moto,
#                              awscli) and npm fixtures (fast when already done)
#   2. scripts/stack.sh start  start moto + the local registry (idempotent)
#   3. source .stack/env       the GANTRY_TEST_* / AWS_* / buildah variables
#   4. cargo test --all-targets "$@"   (extra arguments are passed through; the fuzz
#      targets run GANTRY_FUZZ_SECONDS=30 each)
# The stack is left running afterwards (stop it with `scripts/stack.sh stop`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

phase() { printf '\n==> [test.sh] %s\n' "$*"; }

phase "setup: scripts/setup.sh"
scripts/setup.sh

phase "stack: scripts/stack.sh start"
scripts/stack.sh start

phase "env: source .stack/env"
# shellcheck source=/dev/null
source .stack/env
sed 's/^/    /' .stack/env

# The fuzz targets (tests/it/fuzz.rs) run 30 s each here (3 s in a bare `cargo test`).
export GANTRY_FUZZ_SECONDS="${GANTRY_FUZZ_SECONDS:-30}"

phase "tests: cargo test --all-targets $*"
exec cargo test --all-targets "$@"
