#!/usr/bin/env bash
# scripts/setup.sh — install everything Gantry's tests and demo need on a Debian
# (bookworm) machine, as root. Idempotent: every step checks first and skips what
# is already present, so a second run takes a second or two.
#
#   1. Debian packages (apt): git buildah skopeo docker-registry busybox-static
#      apache2-utils wrk curl ca-certificates (+ python3/python3-venv/npm only
#      when those tools are missing). `apt-get update` runs only if something
#      has to be installed.
#   2. A Python venv at .stack/venv (system python3) with moto[server]==5.2.5,
#      awscli and cfn-lint (the bootstrap template's linter) from PyPI.
#   3. npm packages under .stack/node: @octokit/webhooks-examples@7 (real
#      GitHub webhook payloads, used by the tests).
#
# Nothing is downloaded except through apt, pip and npm.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="$ROOT/.stack"
mkdir -p "$STACK"

log() { printf '[setup] %s\n' "$*"; }

# ---------------------------------------------------------------- apt packages
APT_PACKAGES=(git buildah skopeo docker-registry busybox-static apache2-utils wrk curl ca-certificates openssl sqlite3 bubblewrap util-linux)
# Tools the later steps need; installed from Debian only if the machine lacks them.
command -v python3 >/dev/null 2>&1 || APT_PACKAGES+=(python3 python3-venv)
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(npm)

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi
fi

pkg_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

missing=()
for p in "${APT_PACKAGES[@]}"; do
  pkg_installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  log "apt: all packages present (${APT_PACKAGES[*]})"
else
  log "apt: missing: ${missing[*]} -> apt-get update && apt-get install"
  export DEBIAN_FRONTEND=noninteractive
  # dpkg's progress goes to a log; only a failure prints it.
  APT_LOG="$STACK/apt.log"
  mkdir -p "$STACK"
  had_registry=0; pkg_installed docker-registry && had_registry=1
  if ! { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$APT_LOG" 2>&1; then
    cat "$APT_LOG" >&2
    exit 1
  fi
  log "apt: installed ${missing[*]} (output in $APT_LOG)"
  # Debian's docker-registry enables a system service on :5000 at every boot; the tests run
  # their own instance (scripts/stack.sh), so a registry this script installed is not left
  # serving on a real host.
  if [ "$had_registry" = 0 ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    "${SUDO[@]}" systemctl disable --now docker-registry >/dev/null 2>&1 || true
    log "apt: disabled the docker-registry system service (scripts/stack.sh runs its own)"
  fi
fi

# ---------------------------------------------------------------- python venv
# Use the distribution's python3 (not a pyenv/asdf shim) when there is one.
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY="$(command -v python3)"; fi
VENV="$STACK/venv"
PIP_SPEC=("moto[server]==5.2.5" "awscli" "cfn-lint")
PIP_STAMP="$VENV/.gantry-requirements"
want_stamp="$PY ${PIP_SPEC[*]}"

if [ -x "$VENV/bin/moto_server" ] && [ -x "$VENV/bin/aws" ] \
   && [ -f "$PIP_STAMP" ] && [ "$(cat "$PIP_STAMP")" = "$want_stamp" ]; then
  log "venv: $VENV up to date (${PIP_SPEC[*]})"
else
  if [ ! -x "$VENV/bin/python" ]; then
    log "venv: creating $VENV with $PY"
    "$PY" -m venv "$VENV"
  fi
  log "venv: pip install ${PIP_SPEC[*]}"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PIP_SPEC[@]}"
  printf '%s' "$want_stamp" > "$PIP_STAMP"
fi

# ---------------------------------------------------------------- npm packages
NODE_DIR="$STACK/node"
NPM_SPEC="@octokit/webhooks-examples@7"
EXAMPLES="$NODE_DIR/node_modules/@octokit/webhooks-examples/api.github.com/index.json"
EXAMPLES_PKG="$NODE_DIR/node_modules/@octokit/webhooks-examples/package.json"

if [ -f "$EXAMPLES" ] && grep -Eq '"version": *"7\.' "$EXAMPLES_PKG" 2>/dev/null; then
  log "npm: $NPM_SPEC present"
else
  log "npm: npm install --prefix $NODE_DIR $NPM_SPEC"
  mkdir -p "$NODE_DIR"
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error "$NPM_SPEC"
  [ -f "$EXAMPLES" ] || { echo "setup: $EXAMPLES missing after npm install" >&2; exit 1; }
fi

log "done"
