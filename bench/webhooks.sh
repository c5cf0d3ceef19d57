#!/usr/bin/env bash
# bench/webhooks.sh — webhook intake benchmark of `gantry serve`, end to end over loopback.
#
# What is measured, against one daemon started here from the environment alone (its own temp
# dir: a local git repo with one commit, one App manifest tracking it, a fresh SQLite store):
#
#   1. idle RSS       VmRSS of the daemon after it has been ready and idle for BENCH_SETTLE s.
#   2. intake load    wrk (bench/webhooks.lua) POSTs signed `push` deliveries to /hooks/github
#                     for BENCH_DURATION: BENCH_BODIES distinct pre-signed bodies (distinct
#                     `after` shas), a unique X-GitHub-Delivery per request. Every accepted one
#                     is a durable group commit (WAL, synchronous=FULL) of the delivery and the
#                     deployment it queues, answered 202. Reported: deliveries/s (2xx per second),
#                     p50/p90/p99 latency, status counts, RSS right after the load.
#   3. durability     the deliveries of this run found in $DATA_DIR/gantry.db (sqlite3 CLI) must
#                     be >= the 2xx answers wrk counted (a few more is fine: requests in flight
#                     when wrk stopped were committed but not counted); and after the daemon is
#                     SIGKILLed at the end, the same rows must still be there.
#   4. push -> first step started: with the daemon idle again, BENCH_PUSHES single pushes, one
#                     at a time (bench/first_step_latency.py); p50 and max of the first step's
#                     started_at minus the time the request was sent.
#
# Targets (PASS/FAIL in the summary; exit status 1 if any fails):
#   >= 2000 deliveries/s, p99 < 50 ms, idle RSS <= 30 MB; plus no errors and durability holds.
#   Meant for the release binary; a debug build runs the same steps with lower numbers.
#
# Usage: bench/webhooks.sh [--build] [--keep]
#   --build            rebuild the release binary (cargo build --release --bin gantry) first;
#                      without it the build only runs when target/release/gantry is missing.
#   --keep             keep the temp dir (daemon log, wrk output, database) and print its path.
# Environment (defaults in brackets):
#   GANTRY_BIN         daemon binary to run instead of target/release/gantry (never built)
#   BENCH_DURATION     wrk duration [15s]        BENCH_THREADS      wrk threads [2]
#   BENCH_CONNECTIONS  wrk connections [48]      BENCH_WRK_TIMEOUT  wrk request timeout [10s]
#   BENCH_BODIES       distinct signed bodies [2000]
#   BENCH_PUSHES       sequential pushes for the first-step latency [20]
#   BENCH_SETTLE       idle seconds before the idle RSS reading [2]
#   BENCH_TARGET_RPS [2000]  BENCH_TARGET_P99_MS [50]  BENCH_TARGET_IDLE_RSS_MB [30]
#   GANTRY_LOG / RUST_LOG  passed to the daemon (default: its own, `info`)
# Needs: git, python3 (stdlib only), curl, wrk and sqlite3 (Debian packages `wrk`, `sqlite3`;
# scripts/setup.sh installs wrk, curl and git).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"

log() { printf '[webhooks] %s\n' "$*"; }
die() { printf '[webhooks] ERROR: %s\n' "$*" >&2; exit 2; }

BUILD=${BENCH_BUILD:-0}
KEEP=${BENCH_KEEP:-0}
for arg in "$@"; do
  case "$arg" in
    --build) BUILD=1 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument \`$arg\` (try --help)" ;;
  esac
done

DURATION=${BENCH_DURATION:-15s}
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-48}
WRK_TIMEOUT=${BENCH_WRK_TIMEOUT:-10s}
BODIES=${BENCH_BODIES:-2000}
PUSHES=${BENCH_PUSHES:-20}
SETTLE=${BENCH_SETTLE:-2}
TARGET_RPS=${BENCH_TARGET_RPS:-2000}
TARGET_P99_MS=${BENCH_TARGET_P99_MS:-50}
TARGET_IDLE_RSS_MB=${BENCH_TARGET_IDLE_RSS_MB:-30}

# ---------------------------------------------------------------- tools
need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is missing: $2"
}
need git "apt-get install -y git (scripts/setup.sh installs it)"
need python3 "apt-get install -y python3"
need curl "apt-get install -y curl (scripts/setup.sh installs it)"
need wrk "apt-get install -y wrk (scripts/setup.sh installs it)"
need sqlite3 "apt-get install -y sqlite3 (the durability check reads the store with it)"

# ---------------------------------------------------------------- binary
if [ -n "${GANTRY_BIN:-}" ]; then
  BIN=$GANTRY_BIN
  [ "$BUILD" = 1 ] && log "GANTRY_BIN is set: not building, using $BIN"
else
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/gantry"
  if [ "$BUILD" = 1 ] || [ ! -x "$BIN" ]; then
    need cargo "install a Rust toolchain, or point GANTRY_BIN at a built gantry"
    log "building: cargo build --release --bin gantry"
    (cd "$ROOT" && cargo build --release --bin gantry)
  fi
fi
[ -x "$BIN" ] || die "$BIN is not an executable (set GANTRY_BIN or run with --build)"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
case "$BIN" in */debug/*) log "NOTE: $BIN looks like a debug build; expect lower numbers" ;; esac

# ---------------------------------------------------------------- temp dir, cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gantry-bench.XXXXXX")
PID=
cleanup() {
  local rc=$?
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$PID" 2>/dev/null; then kill -KILL "$PID" 2>/dev/null || true; fi
    wait "$PID" 2>/dev/null || true
  fi
  if [ "$rc" = 2 ] && [ -f "$WORK/gantry.log" ]; then
    echo "---- last lines of the daemon log ----" >&2
    tail -n 20 "$WORK/gantry.log" >&2 || true
  fi
  if [ "$KEEP" = 1 ]; then
    log "kept $WORK (gantry.log, wrk.out, data/gantry.db)"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SECRET="bench-webhook-secret-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
TOKEN="bench-api-token-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
RUN_PREFIX="bench-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
REPO_NAME=bench/app
APP=bench
BRANCH=main

# ---------------------------------------------------------------- git repo + manifest
REPO="$WORK/repo"
mkdir -p "$REPO" "$WORK/manifests" "$WORK/data"
git init -q "$REPO"
git -C "$REPO" symbolic-ref HEAD "refs/heads/$BRANCH"
echo "gantry webhook bench" > "$REPO/README"
git -C "$REPO" add README
git -C "$REPO" -c user.name=bench -c user.email=bench@example.invalid \
  -c commit.gpgsign=false commit -q -m "bench: initial commit"
HEAD_SHA=$(git -C "$REPO" rev-parse HEAD)

cat > "$WORK/manifests/$APP.yaml" <<YAML
apiVersion: gantry/v1
kind: App
metadata:
  name: $APP
spec:
  source:
    repo: $REPO_NAME
    url: $REPO
    branch: $BRANCH
  build:
    commands: ["true"]
YAML

# ---------------------------------------------------------------- signed bodies for wrk
DATA_LUA="$WORK/bodies.lua"
python3 - "$DATA_LUA" "$SECRET" "$BODIES" "$REPO_NAME" "$BRANCH" "$RUN_PREFIX" <<'PY'
import hashlib, hmac, json, sys
out, secret, n, repo, branch, run = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), *sys.argv[4:]
with open(out, "w") as f:
    f.write("return {\n")
    for i in range(n):
        body = json.dumps({
            "ref": f"refs/heads/{branch}",
            "after": hashlib.sha1(f"{run}-{i}".encode()).hexdigest(),
            "deleted": False,
            "repository": {"full_name": repo},
            "commits": [],
            "pusher": {"name": "bench"},
        }, separators=(",", ":"))
        assert "]==]" not in body
        sig = "sha256=" + hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
        f.write(f'{{body=[==[{body}]==],sig="{sig}"}},\n')
    f.write("}\n")
PY

# ---------------------------------------------------------------- start the daemon
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
log "binary    $BIN"
log "work dir  $WORK"
log "starting  gantry serve on $URL"
env -u GANTRY_CONFIG \
  GANTRY_LISTEN="127.0.0.1:$PORT" \
  GANTRY_DATA_DIR="$WORK/data" \
  GANTRY_MANIFESTS="$WORK/manifests" \
  GANTRY_POLL_INTERVAL=off \
  GANTRY_GITHUB_WEBHOOK_SECRET="$SECRET" \
  GANTRY_API_TOKEN="$TOKEN" \
  "$BIN" serve </dev/null >"$WORK/gantry.log" 2>&1 &
PID=$!

deadline=$((SECONDS + 30))
until [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$URL/readyz" || true)" = 200 ]; do
  kill -0 "$PID" 2>/dev/null || die "gantry exited during start-up (log: $WORK/gantry.log)"
  [ "$SECONDS" -lt "$deadline" ] || die "gantry not ready within 30 s"
  sleep 0.05
done
log "ready     (pid $PID)"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$PID/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$PID/status"; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# ---------------------------------------------------------------- 1. idle RSS
sleep "$SETTLE"
IDLE_RSS_KB=$(rss_kb)
log "idle RSS  $(mb "$IDLE_RSS_KB") MB after ${SETTLE}s idle"

# ---------------------------------------------------------------- 2. load
DB="$WORK/data/gantry.db"
count_run() {
  sqlite3 -batch -noheader -cmd ".timeout 10000" "$DB" \
    "SELECT COUNT(*) FROM deliveries WHERE id LIKE '$RUN_PREFIX-%';"
}
BEFORE=$(count_run)
[ "$BEFORE" = 0 ] || die "found $BEFORE deliveries of this run before the load started"

log "load      wrk -t$THREADS -c$CONNECTIONS -d$DURATION --timeout $WRK_TIMEOUT --latency, $BODIES distinct signed bodies"
echo
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout "$WRK_TIMEOUT" --latency \
  -s "$BENCH/webhooks.lua" "$URL/hooks/github" -- "$DATA_LUA" "$RUN_PREFIX" | tee "$WORK/wrk.out" \
  || die "wrk failed (output above)"
echo
LOAD_RSS_KB=$(rss_kb)
LOAD_HWM_KB=$(hwm_kb)
kill -0 "$PID" 2>/dev/null || die "gantry died under load"

BENCH_LINE=$(grep '^BENCH ' "$WORK/wrk.out" | tail -n 1) || die "wrk printed no BENCH line (see above)"
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<" $BENCH_LINE"; }
REQUESTS=$(field requests); OK2XX=$(field ok2xx); DUP200=$(field dup200)
NON2XX=$(field non2xx); SOCKET_ERRORS=$(field socket_errors)
RPS=$(field deliveries_per_s); P50=$(field p50_ms); P90=$(field p90_ms); P99=$(field p99_ms)

# ---------------------------------------------------------------- 3. durability
# Requests in flight when wrk stopped may still be committing: wait until the count settles.
STORED=$(count_run)
for _ in $(seq 50); do
  sleep 0.2
  now=$(count_run)
  [ "$now" = "$STORED" ] && break
  STORED=$now
done
DURABLE=PASS
[ "$STORED" -ge "$OK2XX" ] || DURABLE=FAIL
log "durability: store holds $STORED deliveries of this run; wrk counted $OK2XX 2xx answers ($((STORED - OK2XX)) more in the store: in flight at wrk's stop)"

# ---------------------------------------------------------------- 4. push -> first step
log "latency   $PUSHES sequential pushes, polling every 5 ms (waiting for the queue to drain first)"
python3 "$BENCH/first_step_latency.py" --url "$URL" --secret "$SECRET" --token "$TOKEN" \
  --repo "$REPO_NAME" --branch "$BRANCH" --sha "$HEAD_SHA" --app "$APP" --pushes "$PUSHES" \
  --timeout 120 | tee "$WORK/latency.out" || die "first_step_latency.py failed (output above)"
LAT_LINE=$(grep '^LATENCY ' "$WORK/latency.out" | tail -n 1) || die "first_step_latency.py printed no LATENCY line"
lat() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<" $LAT_LINE"; }
FS_P50=$(lat p50_ms); FS_MAX=$(lat max_ms); FS_OK=$(lat succeeded)

# ---------------------------------------------------------------- crash check
# SIGKILL: no shutdown path runs; what was acknowledged must already be in the database.
kill -KILL "$PID"
wait "$PID" 2>/dev/null || true
PID=
AFTER_KILL=$(count_run)
[ "$AFTER_KILL" -ge "$OK2XX" ] && [ "$AFTER_KILL" = "$STORED" ] || DURABLE=FAIL
log "after SIGKILL the store holds $AFTER_KILL deliveries of this run"

# ---------------------------------------------------------------- summary
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
  ok = (op == ">=") ? (v + 0 >= t + 0) : (op == "<") ? (v + 0 < t + 0) : (v + 0 <= t + 0);
  print ok ? "PASS" : "FAIL" }'; }
V_RPS=$(verdict "$RPS" ">=" "$TARGET_RPS")
V_P99=$(verdict "$P99" "<" "$TARGET_P99_MS")
V_RSS=$(verdict "$(mb "$IDLE_RSS_KB")" "<=" "$TARGET_IDLE_RSS_MB")
V_ERR=PASS
[ "$NON2XX" = 0 ] && [ "$SOCKET_ERRORS" = 0 ] && [ "$DUP200" = 0 ] || V_ERR=FAIL

cat <<SUMMARY

================ gantry webhook intake: summary ================
binary                  $BIN
load                    wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $BODIES signed bodies, $(nproc) CPUs
requests                $REQUESTS answered, $OK2XX 2xx, $NON2XX non-2xx, $SOCKET_ERRORS socket errors, $DUP200 duplicates
deliveries/s            $RPS          (target >= $TARGET_RPS)           $V_RPS
latency p50             $P50 ms
latency p90             $P90 ms
latency p99             $P99 ms       (target < $TARGET_P99_MS ms)         $V_P99
idle RSS                $(mb "$IDLE_RSS_KB") MB        (target <= $TARGET_IDLE_RSS_MB MB)        $V_RSS
RSS after load          $(mb "$LOAD_RSS_KB") MB (peak $(mb "$LOAD_HWM_KB") MB)
durability              store $STORED >= 2xx $OK2XX; $AFTER_KILL after SIGKILL   $DURABLE
errors                  non-2xx $NON2XX, socket $SOCKET_ERRORS, duplicates $DUP200   $V_ERR
push -> first step      p50 $FS_P50 ms, max $FS_MAX ms ($PUSHES pushes, $FS_OK succeeded)
================================================================
SUMMARY

for v in "$V_RPS" "$V_P99" "$V_RSS" "$DURABLE" "$V_ERR"; do
  [ "$v" = PASS ] || { echo "RESULT: FAIL"; exit 1; }
done
echo "RESULT: PASS"
