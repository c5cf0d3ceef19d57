#!/usr/bin/env bash
# scripts/stack.sh start|stop|restart|status|env — the local services Gantry's
# tests talk to, all on loopback, all state under .stack/ (gitignored):
#
#   moto (AWS: S3, ECR, ECS, CloudFront, EventBridge, ...)  http://127.0.0.1:5055
#       run by tests/support/moto_launcher.py (moto's own server, with Gantry's
#       patches for moto gaps applied in-process; see its docstring) with the
#       venv's python, log .stack/moto.log (one line per request, like
#       moto_server), pid .stack/moto.pid; answers GET /gantry-launcher/health
#   docker-registry (distribution 2.8) standing in for ECR    127.0.0.1:5056 (HTTP)
#       storage .stack/registry/data, basic auth (htpasswd, bcrypt) as user AWS /
#       password 123456789012-auth-token — exactly what moto's ECR
#       GetAuthorizationToken hands out — log .stack/registry.log,
#       pid .stack/registry.pid; its log has an access-log line per request, e.g.
#       127.0.0.1 - - [01/Dec/2026:19:27:00 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"
#   base images in that registry, made by scripts/base-image.sh (skipped when present):
#       127.0.0.1:5056/base/busybox:1 (scratch + static busybox; /bin/sh works)
#
#   start    idempotent: a service that is already running and healthy is left
#            alone; otherwise it is (re)started and waited for (30 s deadline).
#            A plain moto_server started by an older version of this script
#            (pid file) is replaced by the launcher; a moto on the port that is
#            not the launcher and not ours is reported, not killed.
#            Then pushes the base images (scripts/base-image.sh) and writes the
#            test environment to .stack/env.
#   stop     kills the services named in the pid files (only those).
#   restart  stop, then start.
#   status   prints whether each service is up.
#   env      prints the `export` lines the tests need (does not start anything).
#
# Needs scripts/setup.sh to have run first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="$ROOT/.stack"

MOTO_HOST=127.0.0.1
MOTO_PORT=5055
MOTO_URL="http://$MOTO_HOST:$MOTO_PORT"
MOTO_PID="$STACK/moto.pid"
MOTO_LOG="$STACK/moto.log"
MOTO_PYTHON="$STACK/venv/bin/python"
MOTO_LAUNCHER="$ROOT/tests/support/moto_launcher.py"
# live_pid patterns (grep BRE on the command line): our launcher, and either it
# or a plain moto_server (what this script used to start).
MOTO_PATTERN='moto_launcher\.py'
MOTO_ANY_PATTERN='moto_launcher\.py\|moto_server'

REG_ADDR=127.0.0.1:5056
REG_DIR="$STACK/registry"
REG_PID="$STACK/registry.pid"
REG_LOG="$STACK/registry.log"
REG_USER=AWS
REG_PASS=123456789012-auth-token
# Pushed by scripts/base-image.sh (run by `start`).
BASE_IMAGE=$REG_ADDR/base/busybox:1

WEBHOOK_EXAMPLES="$STACK/node/node_modules/@octokit/webhooks-examples/api.github.com/index.json"
DEADLINE_SECS=30

log() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# HTTP status code of a GET (000 when nothing answers).
http_code() {
  curl -s -o /dev/null -m 2 -w '%{http_code}' "$@" 2>/dev/null || true
}

# pid from a pid file if that process is alive and its command line contains $2.
live_pid() {
  local file=$1 pattern=$2 pid
  [ -f "$file" ] || return 1
  pid=$(cat "$file" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || return 1
  echo "$pid"
}

# Something that speaks moto answers on the port (launcher or plain moto).
moto_answers() {
  [ "$(http_code "$MOTO_URL/moto-api/")" = 200 ]
}

# The launcher answers: moto plus its own health endpoint (a plain moto_server
# would treat /gantry-launcher/health as an S3 bucket and not answer 200).
moto_healthy() {
  moto_answers && [ "$(http_code "$MOTO_URL/gantry-launcher/health")" = 200 ]
}

# wait until nothing answers on the moto port (after stopping a process).
wait_port_free() {
  local end=$((SECONDS + DEADLINE_SECS))
  while [ "$SECONDS" -lt "$end" ]; do
    [ "$(http_code "$MOTO_URL/")" = 000 ] && return 0
    sleep 0.2
  done
  die "port $MOTO_PORT still answers ${DEADLINE_SECS}s after stopping moto"
}

registry_healthy() {
  [ "$(http_code "http://$REG_ADDR/v2/")" = 401 ] &&
  [ "$(http_code -u "$REG_USER:$REG_PASS" "http://$REG_ADDR/v2/")" = 200 ]
}

# wait_healthy NAME CHECK_FN PID LOG
wait_healthy() {
  local name=$1 check=$2 pid=$3 logfile=$4 end=$((SECONDS + DEADLINE_SECS))
  while [ "$SECONDS" -lt "$end" ]; do
    if "$check"; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "---- last lines of $logfile ----" >&2; tail -n 30 "$logfile" >&2 || true
      die "$name (pid $pid) exited during start-up"
    fi
    sleep 0.2
  done
  echo "---- last lines of $logfile ----" >&2; tail -n 30 "$logfile" >&2 || true
  die "$name did not become healthy within ${DEADLINE_SECS}s"
}

# Start a detached daemon: own session, no terminal, stdio to its log (so it
# never holds the caller's stdout open), pid recorded.
spawn() {
  local pidfile=$1 logfile=$2; shift 2
  setsid "$@" </dev/null >>"$logfile" 2>&1 &
  echo $! > "$pidfile"
}

stop_one() {
  local name=$1 file=$2 pattern=$3 pid
  if pid=$(live_pid "$file" "$pattern"); then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    log "$name stopped (pid $pid)"
  else
    log "$name not running (no live pid in $file)"
  fi
  rm -f "$file"
}

start_moto() {
  local pid
  [ -x "$MOTO_PYTHON" ] || die "$MOTO_PYTHON missing: run scripts/setup.sh"
  [ -f "$MOTO_LAUNCHER" ] || die "$MOTO_LAUNCHER missing"
  if pid=$(live_pid "$MOTO_PID" "$MOTO_PATTERN"); then
    if moto_healthy; then log "moto launcher already running (pid $pid) at $MOTO_URL"; return 0; fi
    # Alive but not answering: maybe still starting; give it the deadline.
    log "moto launcher (pid $pid) not answering yet; waiting"
    wait_healthy moto moto_healthy "$pid" "$MOTO_LOG"
    log "moto ready at $MOTO_URL"; return 0
  fi
  if pid=$(live_pid "$MOTO_PID" moto_server); then
    # Started by an older stack.sh: a plain moto without Gantry's patches.
    log "moto (pid $pid) is a plain moto_server, not the launcher; restarting it"
    stop_one moto "$MOTO_PID" moto_server
    wait_port_free
  fi
  rm -f "$MOTO_PID"
  if [ "$(http_code "$MOTO_URL/")" != 000 ]; then
    if moto_healthy; then
      log "moto: a Gantry moto launcher already serves $MOTO_URL (not started by this checkout); using it"
      return 0
    fi
    if moto_answers; then
      die "a moto that is not Gantry's launcher (no $MOTO_URL/gantry-launcher/health) serves port $MOTO_PORT and was not started by this checkout (no live pid in $MOTO_PID); stop it and run $0 start again"
    fi
    die "port $MOTO_PORT is taken by something that is not moto"
  fi
  log "starting moto launcher on $MOTO_URL (log $MOTO_LOG)"
  spawn "$MOTO_PID" "$MOTO_LOG" "$MOTO_PYTHON" "$MOTO_LAUNCHER" -H "$MOTO_HOST" -p "$MOTO_PORT"
  wait_healthy moto moto_healthy "$(cat "$MOTO_PID")" "$MOTO_LOG"
  log "moto ready at $MOTO_URL (pid $(cat "$MOTO_PID"))"
}

write_registry_config() {
  mkdir -p "$REG_DIR/data"
  # htpasswd: (re)write only when missing or not matching the expected password.
  if ! htpasswd -vb "$REG_DIR/htpasswd" "$REG_USER" "$REG_PASS" >/dev/null 2>&1; then
    htpasswd -Bbn "$REG_USER" "$REG_PASS" > "$REG_DIR/htpasswd.tmp"
    mv "$REG_DIR/htpasswd.tmp" "$REG_DIR/htpasswd"
  fi
  cat > "$REG_DIR/config.yml.tmp" <<YAML
# Generated by scripts/stack.sh — local stand-in for ECR.
version: 0.1
log:
  level: info
  formatter: text
  # One combined-log-format line per request (method, path and query, status, size).
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $REG_DIR/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $REG_ADDR
  secret: gantry-local-registry-not-a-secret
auth:
  htpasswd:
    realm: gantry-local-registry
    path: $REG_DIR/htpasswd
YAML
  mv "$REG_DIR/config.yml.tmp" "$REG_DIR/config.yml"
}

start_registry() {
  local pid
  command -v docker-registry >/dev/null 2>&1 || die "docker-registry missing: run scripts/setup.sh"
  command -v htpasswd >/dev/null 2>&1 || die "htpasswd missing: run scripts/setup.sh"
  if pid=$(live_pid "$REG_PID" docker-registry); then
    if registry_healthy; then log "registry already running (pid $pid) at $REG_ADDR"; return 0; fi
    log "registry (pid $pid) not answering yet; waiting"
    wait_healthy registry registry_healthy "$pid" "$REG_LOG"
    log "registry ready at $REG_ADDR"; return 0
  fi
  rm -f "$REG_PID"
  if [ "$(http_code "http://$REG_ADDR/v2/")" != 000 ]; then
    if registry_healthy; then
      log "registry: something already serves $REG_ADDR with the expected credentials (not started by this checkout); using it"
      return 0
    fi
    die "$REG_ADDR is taken by something that is not our registry"
  fi
  write_registry_config
  log "starting docker-registry on $REG_ADDR (log $REG_LOG)"
  spawn "$REG_PID" "$REG_LOG" docker-registry serve "$REG_DIR/config.yml"
  wait_healthy registry registry_healthy "$(cat "$REG_PID")" "$REG_LOG"
  log "registry ready at $REG_ADDR (pid $(cat "$REG_PID"))"
}

# The registry's log: ours, or that of a registry started by another checkout that we reuse.
registry_log() {
  local pid
  if live_pid "$REG_PID" docker-registry >/dev/null; then echo "$REG_LOG"; return; fi
  pid=$(pgrep -f 'docker-registry serve' | head -n1 || true)
  if [ -n "$pid" ] && [ -e "/proc/$pid/fd/2" ]; then readlink "/proc/$pid/fd/2"; else echo "$REG_LOG"; fi
}

print_env() {
  local k v
  while IFS='=' read -r k v; do
    printf 'export %s=%q\n' "$k" "$v"
  done <<VARS
GANTRY_TEST_MOTO_URL=$MOTO_URL
GANTRY_TEST_REGISTRY=$REG_ADDR
GANTRY_TEST_BASE_IMAGE=$BASE_IMAGE
GANTRY_TEST_REGISTRY_LOG=$(registry_log)
GANTRY_TEST_WEBHOOK_EXAMPLES=$WEBHOOK_EXAMPLES
AWS_ACCESS_KEY_ID=testing
AWS_SECRET_ACCESS_KEY=c4n4ry-aws-secret
AWS_REGION=us-east-1
AWS_DEFAULT_REGION=us-east-1
STORAGE_DRIVER=vfs
BUILDAH_ISOLATION=chroot
VARS
}

status() {
  local pid
  if pid=$(live_pid "$MOTO_PID" "$MOTO_PATTERN") && moto_healthy; then
    log "moto: up (launcher, pid $pid) $MOTO_URL"
  elif moto_healthy; then log "moto: up (launcher, foreign, no pid file) $MOTO_URL"
  elif pid=$(live_pid "$MOTO_PID" moto_server) && moto_answers; then
    log "moto: up but plain moto_server, not the launcher (pid $pid); '$0 start' replaces it"
  elif moto_answers; then log "moto: up but not the launcher (foreign, no pid file) $MOTO_URL"
  else log "moto: down"; fi
  if pid=$(live_pid "$REG_PID" docker-registry) && registry_healthy; then
    log "registry: up (pid $pid) $REG_ADDR"
  elif registry_healthy; then log "registry: up (foreign, no pid file) $REG_ADDR"
  else log "registry: down"; fi
}

cmd=${1:-}
case "$cmd" in
  start)
    mkdir -p "$STACK"
    [ -f "$WEBHOOK_EXAMPLES" ] || die "$WEBHOOK_EXAMPLES missing: run scripts/setup.sh"
    start_moto
    start_registry
    "$ROOT/scripts/base-image.sh"
    print_env > "$STACK/env.tmp"
    mv "$STACK/env.tmp" "$STACK/env"
    log "environment written to $STACK/env (source it)"
    ;;
  stop)
    stop_one moto "$MOTO_PID" "$MOTO_ANY_PATTERN"
    stop_one registry "$REG_PID" docker-registry
    ;;
  restart)
    "$0" stop
    exec "$0" start
    ;;
  status) status ;;
  env) print_env ;;
  *)
    echo "usage: $0 start|stop|restart|status|env" >&2
    exit 2
    ;;
esac
