#!/usr/bin/env bash
# bench/sites.sh — `gantry site sync` against `aws s3 sync` on a real Next.js static export.
#
# The site: a Next.js 15 app router project (bench/sites/next-site: ~420 posts and 50 tag pages
# through generateStaticParams, client components, CSS, public/ images) built with
# `output: 'export'`. Each route exports an .html and an RSC .txt payload, plus _next/static
# assets and public/ files: about 1,070 files, 14 MB. The project is generated under
# .stack/bench/next-site/ (gitignored); `npm install` and `next build` only run when the
# template, BENCH_SITE_PAGES/BENCH_SITE_TAGS or the node version changed (or out/ is gone), so
# later runs reuse out/. Fewer than BENCH_MIN_FILES files in out/ is an error.
#
# Against the local moto server (scripts/stack.sh start; 127.0.0.1:5055), with a fresh bucket
# per tool, each tool in turn (aws, then gantry) for each phase:
#   a. initial upload   of out/ into the empty bucket.
#   b. fresh copy       `cp -r out copy` (new mtimes, same bytes), then sync the copy:
#                       aws s3 sync re-uploads everything (newer mtimes); gantry compares
#                       content and should upload nothing.
#   c. one page changed in that copy (BENCH_CHANGED_PAGE's .html and .txt: its title is edited
#                       in both), then sync the copy again: objects uploaded.
# Requests per tool and phase come from moto's request log (BENCH_MOTO_LOG): the log's size is
# noted before a phase, and the lines written meanwhile that name the tool's bucket are counted
# by method (bench/sites/count_requests.awk). A server-side copy is a PUT in that log too; PUTs
# of Gantry's own `.gantry/` manifest are shown apart. moto serves only ~230 small PUTs/s here,
# so it caps upload speed: the initial upload is also timed against a fast S3-compatible server,
#   d. initial upload   into fresh buckets on s3s-fs (the `s3s-fs` crate's binary, installed
#                       into .stack/cargo by `cargo install` when missing) started on
#                       BENCH_S3S_HOST:BENCH_S3S_PORT (127.0.0.1:5057) with a temp root.
# After every phase the bucket is listed: it must hold every file of the tree (a wrong count is a
# FAIL); after phase c the changed objects are read back and compared with the local files.
#
# Targets (PASS/FAIL; exit status 1 if any fails):
#   initial upload on s3s-fs     aws time / gantry time >= 3
#   fresh-copy re-sync (moto)    gantry uploads 0 objects and aws time / gantry time >= 10
#   one page changed (moto)      gantry PUTs <= 3 (the .html, the .txt, its manifest)
#
# Usage: bench/sites.sh [--build] [--keep] [--aws-only] [--no-s3s] [--site-only] [--rebuild-site]
#   --build          rebuild the release binary (cargo build --release --bin gantry) first;
#                    without it the build only runs when target/release/gantry is missing.
#   --keep           keep the temp dir (tool outputs, s3s-fs root) and the moto buckets.
#   --aws-only       run only `aws s3 sync` (no gantry needed); no targets are evaluated.
#   --no-s3s         skip phase d (no s3s-fs install or start); its target is then SKIP.
#   --site-only      build (or reuse) the Next.js export, print its file count, and stop.
#   --rebuild-site   rebuild the export even if the cached out/ is current.
# Environment (defaults in brackets):
#   GANTRY_BIN           gantry binary to run instead of target/release/gantry (never built);
#                        it must have `site sync` (else exit 2)
#   BENCH_PRESET         gantry --preset [nextjs]
#   BENCH_PREFIX         key prefix in every bucket, s3://BUCKET/PREFIX [none]
#   BENCH_SITE_DIR       where the Next.js project is generated [.stack/bench/next-site]
#   BENCH_SITE_PAGES     posts [420]     BENCH_SITE_TAGS  tag pages [50]
#   BENCH_MIN_FILES      minimum files in out/ [1000]
#   BENCH_CHANGED_PAGE   route edited in phase c, without extension [posts/post-0042]
#   BENCH_MOTO_URL       moto endpoint [http://127.0.0.1:5055]; the default one is started with
#                        scripts/stack.sh start, any other must already run
#   BENCH_MOTO_LOG       moto's request log [.stack/moto.log]
#   BENCH_S3S_HOST [127.0.0.1]  BENCH_S3S_PORT [5057]
#   BENCH_S3S_BIN        s3s-fs binary [.stack/cargo/bin/s3s-fs, else s3s-fs on PATH, else
#                        `cargo install s3s-fs --version BENCH_S3S_VERSION --features binary
#                        --locked --root .stack/cargo`]
#   BENCH_S3S_VERSION    [0.14.1] (0.15+ need rustc 1.96)
#   BENCH_AWS            aws CLI [.stack/venv/bin/aws]
#   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION  [testing / testing / us-east-1];
#                        also the s3s-fs credentials
#   BENCH_TARGET_INITIAL_RATIO [3]  BENCH_TARGET_RESYNC_RATIO [10]  BENCH_TARGET_CHANGE_PUTS [3]
# Needs: node >= 18.18 and npm (Debian `npm`), python3, curl, the .stack/venv of
# scripts/setup.sh (awscli, moto); cargo only to install s3s-fs once.
set -euo pipefail
export LC_ALL=C # a decimal point in $EPOCHREALTIME, plain sort order

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
SITES="$BENCH/sites"
STACK="$ROOT/.stack"

log() { printf '[sites] %s\n' "$*"; }
die() { printf '[sites] ERROR: %s\n' "$*" >&2; exit 2; }

BUILD=${BENCH_BUILD:-0}
KEEP=${BENCH_KEEP:-0}
AWS_ONLY=0
WITH_S3S=1
SITE_ONLY=0
REBUILD_SITE=0
for arg in "$@"; do
  case "$arg" in
    --build) BUILD=1 ;;
    --keep) KEEP=1 ;;
    --aws-only) AWS_ONLY=1 ;;
    --no-s3s) WITH_S3S=0 ;;
    --site-only) SITE_ONLY=1 ;;
    --rebuild-site) REBUILD_SITE=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument \`$arg\` (try --help)" ;;
  esac
done

PRESET=${BENCH_PRESET:-nextjs}
PREFIX=${BENCH_PREFIX:-}
PREFIX=${PREFIX#/}; PREFIX=${PREFIX%/}
SITE_DIR=${BENCH_SITE_DIR:-$STACK/bench/next-site}
SITE_PAGES=${BENCH_SITE_PAGES:-420}
SITE_TAGS=${BENCH_SITE_TAGS:-50}
MIN_FILES=${BENCH_MIN_FILES:-1000}
CHANGED_PAGE=${BENCH_CHANGED_PAGE:-posts/post-0042}
MOTO_URL=${BENCH_MOTO_URL:-http://127.0.0.1:5055}
MOTO_URL=${MOTO_URL%/}
MOTO_LOG=${BENCH_MOTO_LOG:-$STACK/moto.log}
S3S_HOST=${BENCH_S3S_HOST:-127.0.0.1}
S3S_PORT=${BENCH_S3S_PORT:-5057}
S3S_URL="http://$S3S_HOST:$S3S_PORT"
S3S_VERSION=${BENCH_S3S_VERSION:-0.14.1}
AWS=${BENCH_AWS:-$STACK/venv/bin/aws}
TARGET_INITIAL_RATIO=${BENCH_TARGET_INITIAL_RATIO:-3}
TARGET_RESYNC_RATIO=${BENCH_TARGET_RESYNC_RATIO:-10}
TARGET_CHANGE_PUTS=${BENCH_TARGET_CHANGE_PUTS:-3}

export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
export AWS_REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}
export AWS_DEFAULT_REGION=$AWS_REGION
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3

# ---------------------------------------------------------------- tools
need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is missing: $2"
}
need node "apt-get install -y nodejs npm (scripts/setup.sh installs npm)"
need npm "apt-get install -y npm (scripts/setup.sh installs it)"
need python3 "apt-get install -y python3"
need curl "apt-get install -y curl (scripts/setup.sh installs it)"
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 18 || (a === 18 && b >= 18) ? 0 : 1)' \
  || die "node $(node --version) is too old for Next.js 15 (needs >= 18.18)"

now() { printf '%s' "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b - a}'; }
ratio() { awk -v a="$1" -v g="$2" 'BEGIN {if (g + 0 > 0) printf "%.1f", a / g; else print "-"}'; }

# ---------------------------------------------------------------- gantry binary
BIN=
if [ "$AWS_ONLY" = 0 ] && [ "$SITE_ONLY" = 0 ]; then
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
  if ! "$BIN" site sync --help >/dev/null 2>&1; then
    die "$BIN has no \`site sync\` command (\`$BIN site sync --help\` failed): build a gantry that has it, or run with --aws-only"
  fi
  case "$BIN" in */debug/*) log "NOTE: $BIN looks like a debug build; expect lower numbers" ;; esac
fi

# ---------------------------------------------------------------- the Next.js export (cached)
TEMPLATE="$SITES/next-site"
[ -f "$TEMPLATE/package.json" ] || die "$TEMPLATE/package.json missing"
site_stamp() {
  {
    (cd "$TEMPLATE" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    echo "pages=$SITE_PAGES tags=$SITE_TAGS node=$(node --version)"
  } | sha256sum | cut -d' ' -f1
}
count_files() { find "$1" -type f | wc -l | tr -d ' '; }

build_site() {
  local stamp pkg_sum s e
  stamp=$(site_stamp)
  if [ "$REBUILD_SITE" = 0 ] && [ -d "$SITE_DIR/out" ] && [ -f "$SITE_DIR/.bench-stamp" ] \
     && [ "$(cat "$SITE_DIR/.bench-stamp")" = "$stamp" ]; then
    log "site: reusing $SITE_DIR/out ($(count_files "$SITE_DIR/out") files; project unchanged)"
    return 0
  fi
  log "site: generating the Next.js project in $SITE_DIR"
  mkdir -p "$SITE_DIR"
  rm -f "$SITE_DIR/.bench-stamp"
  # Start from the template; keep node_modules (and its lock) so npm install can be skipped.
  find "$SITE_DIR" -mindepth 1 -maxdepth 1 ! -name node_modules ! -name package-lock.json \
    ! -name .npm-stamp -exec rm -rf {} +
  cp -a "$TEMPLATE/." "$SITE_DIR/"
  pkg_sum=$(sha256sum "$SITE_DIR/package.json" | cut -d' ' -f1)
  if [ -f "$SITE_DIR/node_modules/.package-lock.json" ] && [ -f "$SITE_DIR/.npm-stamp" ] \
     && [ "$(cat "$SITE_DIR/.npm-stamp")" = "$pkg_sum" ]; then
    log "site: node_modules up to date"
  else
    log "site: npm install ($(node -p 'const d = require(process.argv[1]).dependencies; Object.entries(d).map(([k, v]) => k + "@" + v).join(" ")' "$SITE_DIR/package.json"))"
    s=$(now)
    (cd "$SITE_DIR" && npm install --no-audit --no-fund --loglevel=error) || die "npm install failed in $SITE_DIR"
    e=$(now)
    printf '%s' "$pkg_sum" > "$SITE_DIR/.npm-stamp"
    log "site: npm install took $(elapsed "$s" "$e") s"
  fi
  log "site: next build (output: 'export', $SITE_PAGES posts, $SITE_TAGS tags)"
  s=$(now)
  (cd "$SITE_DIR" && NEXT_TELEMETRY_DISABLED=1 BENCH_SITE_PAGES="$SITE_PAGES" BENCH_SITE_TAGS="$SITE_TAGS" \
    npm run --silent build) > "$SITE_DIR/build.log" 2>&1 \
    || { tail -n 40 "$SITE_DIR/build.log" >&2; die "next build failed (log: $SITE_DIR/build.log)"; }
  e=$(now)
  [ -d "$SITE_DIR/out" ] || die "next build wrote no out/ (log: $SITE_DIR/build.log)"
  printf '%s' "$stamp" > "$SITE_DIR/.bench-stamp"
  log "site: next build took $(elapsed "$s" "$e") s; out/ has $(count_files "$SITE_DIR/out") files"
}
build_site
OUT="$SITE_DIR/out"
FILES=$(count_files "$OUT")
BYTES=$(du -sb "$OUT" | cut -f1)
[ "$FILES" -ge "$MIN_FILES" ] || die "$OUT has $FILES files, fewer than $MIN_FILES (BENCH_MIN_FILES)"
for ext in html txt; do
  [ -f "$OUT/$CHANGED_PAGE.$ext" ] || die "$OUT/$CHANGED_PAGE.$ext missing (BENCH_CHANGED_PAGE)"
done
log "site: $OUT: $FILES files, $(awk -v b="$BYTES" 'BEGIN {printf "%.1f", b / 1048576}') MB"
if [ "$SITE_ONLY" = 1 ]; then
  echo "SITE files=$FILES bytes=$BYTES dir=$OUT"
  exit 0
fi

[ -x "$AWS" ] || die "$AWS missing: run scripts/setup.sh (it installs awscli into .stack/venv)"

# ---------------------------------------------------------------- s3s-fs binary
S3S_BIN=
if [ "$WITH_S3S" = 1 ]; then
  if [ -n "${BENCH_S3S_BIN:-}" ]; then
    S3S_BIN=$BENCH_S3S_BIN
  elif [ -x "$STACK/cargo/bin/s3s-fs" ]; then
    S3S_BIN="$STACK/cargo/bin/s3s-fs"
  elif command -v s3s-fs >/dev/null 2>&1; then
    S3S_BIN=$(command -v s3s-fs)
  else
    need cargo "install a Rust toolchain, set BENCH_S3S_BIN, or run with --no-s3s"
    log "s3s-fs: cargo install s3s-fs --version $S3S_VERSION --features binary --locked --root $STACK/cargo (once; a few minutes)"
    cargo install s3s-fs --version "$S3S_VERSION" --features binary --locked --root "$STACK/cargo" \
      || die "cargo install s3s-fs failed (set BENCH_S3S_BIN, or run with --no-s3s)"
    S3S_BIN="$STACK/cargo/bin/s3s-fs"
  fi
  [ -x "$S3S_BIN" ] || die "$S3S_BIN is not an executable"
fi

# ---------------------------------------------------------------- temp dir, cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gantry-sites.XXXXXX")
S3S_PID=
MOTO_BUCKETS=()
cleanup() {
  local rc=$? b
  trap - INT TERM
  if [ "$KEEP" = 1 ]; then
    [ "${#MOTO_BUCKETS[@]}" -gt 0 ] && log "kept moto buckets: ${MOTO_BUCKETS[*]}"
  else
    # `s3 rb --force` deletes key by key (~5 s per bucket on moto): both buckets at once.
    local rb_pids=()
    for b in "${MOTO_BUCKETS[@]}"; do
      "$AWS" --endpoint-url "$MOTO_URL" s3 rb --force "s3://$b" >/dev/null 2>&1 &
      rb_pids+=($!)
    done
    for b in "${rb_pids[@]}"; do wait "$b" || true; done
  fi
  if [ -n "$S3S_PID" ] && kill -0 "$S3S_PID" 2>/dev/null; then
    kill -TERM "$S3S_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$S3S_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$S3S_PID" 2>/dev/null; then kill -KILL "$S3S_PID" 2>/dev/null || true; fi
    wait "$S3S_PID" 2>/dev/null || true
  fi
  if [ "$KEEP" = 1 ]; then
    log "kept $WORK (outputs of every run, s3s-fs root and log)"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The aws CLI's own config: path-style addressing, nothing from ~/.aws.
export AWS_CONFIG_FILE="$WORK/aws-config"
export AWS_SHARED_CREDENTIALS_FILE="$WORK/aws-credentials"
printf '[default]\nregion = %s\ns3 =\n    addressing_style = path\n' "$AWS_REGION" > "$AWS_CONFIG_FILE"
: > "$AWS_SHARED_CREDENTIALS_FILE"

RUN=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
TOOLS=(aws)
[ "$AWS_ONLY" = 1 ] || TOOLS+=(gantry)
dest() { printf 's3://%s%s' "$1" "${PREFIX:+/$PREFIX}"; }

# sync_cmd TOOL ENDPOINT DIR BUCKET OUTFILE: run one sync, its output to OUTFILE.
sync_cmd() {
  local tool=$1 endpoint=$2 dir=$3 bucket=$4 outfile=$5
  case "$tool" in
    aws) "$AWS" --endpoint-url "$endpoint" s3 sync "$dir" "$(dest "$bucket")" --delete --no-progress ;;
    # --json: the report on stdout (objects uploaded), logs on stderr.
    gantry) AWS_ENDPOINT_URL="$endpoint" AWS_ENDPOINT_URL_S3="$endpoint" \
      "$BIN" site sync "$dir" "$(dest "$bucket")" --preset "$PRESET" --json 2>"$outfile.log" ;;
  esac </dev/null >"$outfile" 2>&1
}

# Objects whose body gantry uploaded in a run: its pages plus the manifest object when it
# wrote one (server-side copies, e.g. retained content for rollback, upload no body).
gantry_uploads() {
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(len(r["uploads"]) + (1 if r["write_requests"] else 0))' "$1"
}

# timed_sync TOOL ENDPOINT DIR BUCKET LABEL: prints the seconds taken; dies on failure.
timed_sync() {
  local tool=$1 endpoint=$2 dir=$3 bucket=$4 label=$5 s e rc=0
  local outfile="$WORK/$label-$tool.out"
  s=$(now)
  sync_cmd "$tool" "$endpoint" "$dir" "$bucket" "$outfile" || rc=$?
  e=$(now)
  if [ "$rc" != 0 ]; then
    echo "---- $tool output ($label) ----" >&2; tail -n 30 "$outfile" >&2 || true
    die "$tool sync failed with status $rc in phase $label"
  fi
  elapsed "$s" "$e"
}

# What each tool says about the run: aws's count of upload lines; gantry's last two lines
# (its summary, then `release N in Xs; N write request(s)`), joined.
tool_note() {
  local tool=$1 outfile=$2
  case "$tool" in
    aws) printf '%s upload lines' "$(grep -c '^upload: ' "$outfile" || true)" ;;
    gantry) python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("uploaded %d, headers %d, unchanged %d, stale %d, release %d, %d write request(s)" % (len(r["uploads"]), len(r["header_updates"]), r["unchanged"], len(r["newly_stale"]), r["release"], r["write_requests"]))' "$outfile" ;;
  esac
}

# Objects under the bucket's prefix, Gantry's .gantry/ keys left out.
bucket_count() {
  local endpoint=$1 bucket=$2
  { "$AWS" --endpoint-url "$endpoint" s3 ls --recursive "$(dest "$bucket")/" || true; } \
    | awk '{print $4}' | { grep -v -E '(^|/)\.gantry/' || true; } | wc -l | tr -d ' '
}

log_size() { stat -c %s "$MOTO_LOG"; }
# requests BUCKET OFFSET: counts of the bucket's requests logged since OFFSET.
requests() {
  sleep 0.3 # let moto finish writing the last lines
  tail -c +"$(($2 + 1))" "$MOTO_LOG" | awk -v bucket="$1" -f "$SITES/count_requests.awk"
}
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<" $2"; }

# ---------------------------------------------------------------- moto
if [ "$MOTO_URL" = http://127.0.0.1:5055 ] && [ -z "${BENCH_MOTO_URL:-}" ]; then
  "$ROOT/scripts/stack.sh" start >/dev/null || die "scripts/stack.sh start failed (run scripts/setup.sh first?)"
fi
[ "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$MOTO_URL/moto-api/" || true)" = 200 ] \
  || die "moto does not answer at $MOTO_URL (scripts/stack.sh start, or set BENCH_MOTO_URL)"
[ -f "$MOTO_LOG" ] || die "moto's log $MOTO_LOG not found (set BENCH_MOTO_LOG)"

declare -A BUCKET SECS REQ NOTE
for tool in "${TOOLS[@]}"; do
  BUCKET[$tool]="bench-sites-$tool-$RUN"
  "$AWS" --endpoint-url "$MOTO_URL" s3 mb "s3://${BUCKET[$tool]}" >/dev/null || die "cannot create bucket ${BUCKET[$tool]} on moto"
  MOTO_BUCKETS+=("${BUCKET[$tool]}")
done
sleep 0.3
grep -q "\"PUT /${BUCKET[aws]} HTTP" "$MOTO_LOG" \
  || die "moto's log $MOTO_LOG does not show this run's requests (is it this moto's log? set BENCH_MOTO_LOG)"

log "moto      $MOTO_URL (log $MOTO_LOG), buckets: ${MOTO_BUCKETS[*]}"
[ -n "$BIN" ] && log "gantry    $BIN (--preset $PRESET)"
log "aws       $("$AWS" --version 2>&1 | head -n 1)"
log "site      $FILES files, $(awk -v b="$BYTES" 'BEGIN {printf "%.1f", b / 1048576}') MB${PREFIX:+, prefix $PREFIX/}"

CHECKS=PASS
check_count() {
  local endpoint=$1 bucket=$2 tool=$3 label=$4 n
  n=$(bucket_count "$endpoint" "$bucket")
  if [ "$n" != "$FILES" ]; then
    log "CHECK FAIL: $tool's bucket holds $n objects after phase $label, expected $FILES"
    CHECKS=FAIL
  fi
}

# run_phase LABEL DESCRIPTION DIR-of-TOOL-fn
run_phase() {
  local label=$1 tool dir off secs counts
  for tool in "${TOOLS[@]}"; do
    dir=$(phase_dir "$label" "$tool")
    off=$(log_size)
    secs=$(timed_sync "$tool" "$MOTO_URL" "$dir" "${BUCKET[$tool]}" "$label")
    counts=$(requests "${BUCKET[$tool]}" "$off")
    SECS[$label,$tool]=$secs
    REQ[$label,$tool]=$counts
    NOTE[$label,$tool]=$(tool_note "$tool" "$WORK/$label-$tool.out")
    log "$label $tool: ${secs}s  $counts  (${NOTE[$label,$tool]})"
    check_count "$MOTO_URL" "${BUCKET[$tool]}" "$tool" "$label"
  done
}
phase_dir() {
  case "$1" in
    a) printf '%s' "$OUT" ;;
    b|c) printf '%s' "$WORK/copy-$2" ;;
  esac
}

# ---------------------------------------------------------------- a. initial upload
log "phase a: initial upload of out/ ($FILES files)"
run_phase a

# ---------------------------------------------------------------- b. fresh copy
# Same bytes, new mtimes. The pause puts the copies' mtimes a clear second before the uploads
# of this phase (S3 LastModified has one-second resolution in aws's comparison), so in phase c
# only the edited files are newer than their objects.
for tool in "${TOOLS[@]}"; do cp -r "$OUT" "$WORK/copy-$tool"; done
sleep 1.5
log "phase b: re-sync of a fresh copy (cp -r: new mtimes, same content)"
run_phase b

# ---------------------------------------------------------------- c. one page changed
for tool in "${TOOLS[@]}"; do
  python3 - "$WORK/copy-$tool/$CHANGED_PAGE" <<'PY' || die "could not edit $CHANGED_PAGE"
import re, sys
base = sys.argv[1]
with open(base + ".html", encoding="utf-8") as f:
    html = f.read()
m = re.search(r"<h1>([^<]+)</h1>", html)
if not m:
    sys.exit(f"no <h1> in {base}.html")
title = m.group(1)
for ext in ("html", "txt"):
    path = f"{base}.{ext}"
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if title not in text:
        sys.exit(f"title {title!r} not in {path}")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(title, title + " (revised)"))
PY
done
log "phase c: one page changed ($CHANGED_PAGE.html and .txt: title edited)"
run_phase c
for tool in "${TOOLS[@]}"; do
  for ext in html txt; do
    if ! "$AWS" --endpoint-url "$MOTO_URL" s3 cp "$(dest "${BUCKET[$tool]}")/$CHANGED_PAGE.$ext" - 2>/dev/null \
        | cmp -s - "$WORK/copy-$tool/$CHANGED_PAGE.$ext"; then
      log "CHECK FAIL: $tool's object $CHANGED_PAGE.$ext does not match the edited file"
      CHECKS=FAIL
    fi
  done
done

# ---------------------------------------------------------------- d. initial upload on s3s-fs
if [ "$WITH_S3S" = 1 ]; then
  [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$S3S_URL/" || true)" = 000 ] \
    || die "$S3S_URL is already taken (set BENCH_S3S_PORT)"
  mkdir -p "$WORK/s3s-root"
  log "phase d: starting $S3S_BIN --host $S3S_HOST --port $S3S_PORT --access-key … --secret-key … $WORK/s3s-root"
  "$S3S_BIN" --host "$S3S_HOST" --port "$S3S_PORT" \
    --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" \
    "$WORK/s3s-root" </dev/null >"$WORK/s3s-fs.log" 2>&1 &
  S3S_PID=$!
  deadline=$((SECONDS + 30))
  until [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$S3S_URL/" || true)" != 000 ]; do
    kill -0 "$S3S_PID" 2>/dev/null || { tail -n 20 "$WORK/s3s-fs.log" >&2; die "s3s-fs exited during start-up"; }
    [ "$SECONDS" -lt "$deadline" ] || die "s3s-fs not answering on $S3S_URL within 30 s"
    sleep 0.1
  done
  for tool in "${TOOLS[@]}"; do
    b="bench-sites-$tool-$RUN"
    "$AWS" --endpoint-url "$S3S_URL" s3 mb "s3://$b" >/dev/null || die "cannot create bucket $b on s3s-fs (log: $WORK/s3s-fs.log)"
  done
  log "phase d: initial upload of out/ on s3s-fs"
  for tool in "${TOOLS[@]}"; do
    b="bench-sites-$tool-$RUN"
    SECS[d,$tool]=$(timed_sync "$tool" "$S3S_URL" "$OUT" "$b" d)
    NOTE[d,$tool]=$(tool_note "$tool" "$WORK/d-$tool.out")
    log "d $tool: ${SECS[d,$tool]}s  (${NOTE[d,$tool]})"
    check_count "$S3S_URL" "$b" "$tool" d
  done
fi

# ---------------------------------------------------------------- summary
cell() { # TOOL LABEL: "secs PUT POST DEL all" (requests from moto's log; "-" where none)
  local secs=${SECS[$2,$1]:--} r=${REQ[$2,$1]:-}
  if [ -n "$r" ]; then
    printf '%8s %5s %4s %4s %5s' "$secs" "$(field puts "$r")" "$(field posts "$r")" "$(field deletes "$r")" "$(field total "$r")"
  else
    printf '%8s %5s %4s %4s %5s' "$secs" - - - -
  fi
}
row() {
  local label=$1 title=$2 server=$3
  printf '%-22s %-7s %s   %s   %8s\n' "$title" "$server" "$(cell aws "$label")" "$(cell gantry "$label")" \
    "$(ratio "${SECS[$label,aws]:-0}" "${SECS[$label,gantry]:-0}")"
}

echo
echo "================ static site sync: gantry site sync vs aws s3 sync ================"
echo "site        Next.js $(node -p 'require(process.argv[1]).version' "$SITE_DIR/node_modules/next/package.json" 2>/dev/null || echo '?') static export: $FILES files, $(awk -v b="$BYTES" 'BEGIN {printf "%.1f", b / 1048576}') MB ($OUT)"
echo "gantry      ${BIN:-(not run: --aws-only)}${BIN:+ --preset $PRESET}"
echo "aws         $("$AWS" --version 2>&1 | head -n 1), s3 sync --delete --no-progress"
echo "machine     $(nproc) CPUs; moto $MOTO_URL${S3S_BIN:+; s3s-fs $S3S_URL}"
echo
printf '%-30s %-30s   %-30s   %8s\n' "" "aws s3 sync" "gantry site sync" "aws/gantry"
printf '%-30s %8s %5s %4s %4s %5s   %8s %5s %4s %4s %5s   %8s\n' phase seconds PUT POST DEL all seconds PUT POST DEL all "(time)"
row a "a. initial upload" moto
row b "b. fresh-copy re-sync" moto
row c "c. one page changed" moto
if [ "$WITH_S3S" = 1 ]; then row d "d. initial upload" s3s-fs; fi
echo
for label in a b c d; do
  for tool in "${TOOLS[@]}"; do
    [ -n "${NOTE[$label,$tool]:-}" ] || continue
    printf '%s %-6s %s\n' "$label" "$tool" "${NOTE[$label,$tool]}"
  done
done
if [ "$AWS_ONLY" = 0 ]; then
  for label in a b c; do
    m=$(field meta_puts "${REQ[$label,gantry]}")
    [ "$m" = 0 ] || echo "$label gantry PUTs include $m under .gantry/ (Gantry's manifest and retained copies of overwritten pages)"
  done
fi
echo

if [ "$AWS_ONLY" = 1 ]; then
  echo "checks      bucket contents after every phase, edited objects read back   $CHECKS"
  echo "targets     not evaluated (--aws-only)"
  echo "==================================================================================="
  [ "$CHECKS" = PASS ] || { echo "RESULT: FAIL"; exit 1; }
  echo "RESULT: aws-only run (no targets)"
  exit 0
fi

ge() { awk -v v="$1" -v t="$2" 'BEGIN {print (v != "-" && v + 0 >= t + 0) ? "PASS" : "FAIL"}'; }
R_A=$(ratio "${SECS[d,aws]:-0}" "${SECS[d,gantry]:-0}")
R_B=$(ratio "${SECS[b,aws]}" "${SECS[b,gantry]}")
B_PUTS=$(field puts "${REQ[b,gantry]}"); B_POSTS=$(field posts "${REQ[b,gantry]}")
C_PUTS=$(field puts "${REQ[c,gantry]}"); C_POSTS=$(field posts "${REQ[c,gantry]}")
C_META=$(field meta_puts "${REQ[c,gantry]}")
if [ "$WITH_S3S" = 1 ]; then V_A=$(ge "$R_A" "$TARGET_INITIAL_RATIO"); else V_A=SKIP; R_A=-; fi
V_B=$(ge "$R_B" "$TARGET_RESYNC_RATIO")
[ "$B_PUTS" = 0 ] && [ "$B_POSTS" = 0 ] || V_B=FAIL
C_UPLOADS=$(gantry_uploads "$WORK/c-gantry.out")
V_C=PASS
[ "$C_UPLOADS" -le "$TARGET_CHANGE_PUTS" ] || V_C=FAIL

printf '%-88s %s\n' "initial upload on s3s-fs: aws/gantry $R_A (target >= $TARGET_INITIAL_RATIO)" "$V_A"
printf '%-88s %s\n' "fresh-copy re-sync: gantry $B_PUTS PUTs + $B_POSTS POSTs (target 0), aws/gantry $R_B (target >= $TARGET_RESYNC_RATIO)" "$V_B"
printf '%-88s %s\n' "one page changed: gantry uploaded $C_UPLOADS object(s) (target <= $TARGET_CHANGE_PUTS); $((C_PUTS + C_POSTS)) PUT+POST requests incl. copies, $C_META under .gantry/" "$V_C"
printf '%-88s %s\n' "bucket contents after every phase, edited objects read back" "$CHECKS"
echo "==================================================================================="
for v in "$V_A" "$V_B" "$V_C" "$CHECKS"; do
  [ "$v" != FAIL ] || { echo "RESULT: FAIL"; exit 1; }
done
if [ "$V_A" = SKIP ]; then echo "RESULT: PASS (s3s-fs target skipped: --no-s3s)"; else echo "RESULT: PASS"; fi
