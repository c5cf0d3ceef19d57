#!/usr/bin/env bash
# bench/images.sh — Gantry's in-process layer builder (`gantry image build --builder layer`)
# against `buildah bud` + `buildah push` on a FastAPI-sized Python app, same run, same registry.
#
# The app (cached under .stack/bench-images/app, gitignored): `pip install --target app/vendor`
# of BENCH_PIP_SPEC (fastapi, uvicorn, pydantic, pinned; ~850 files, ~17 MB with pydantic-core's
# native module), a main.py FastAPI app and its requirements.txt. pip only runs when the spec,
# the python version or main.py changed (or the app is gone); --rebuild-app forces it.
#
# Both tools build the same image from the same context on the same base,
# 127.0.0.1:5056/base/busybox:1 (scripts/base-image.sh; scripts/stack.sh start pushes it):
#   layer    $GANTRY_BIN image build --builder layer --context APP --base BASE
#              --tag 127.0.0.1:5056/bench/app-layer:TAG --workdir /app
#              --entrypoint '["python3","-m","uvicorn","main:app"]' --revision HEX40
#              --source https://example.invalid/bench --json
#            (its JSON report on stdout: digest, skipped, uploaded_blobs, uploaded_bytes)
#   buildah  buildah bud -f Dockerfile -t localhost/gantry-bench-app:TAG APP, where Dockerfile
#            (outside the context) is FROM BASE / WORKDIR /app / COPY . /app / ENTRYPOINT [...],
#            then buildah push --tls-verify=false to 127.0.0.1:5056/bench/app-buildah:TAG;
#            the local image is removed afterwards (not timed).
# Both read credentials (AWS / 123456789012-auth-token) from one containers auth file,
# .stack/bench-images/auth.json, exported as REGISTRY_AUTH_FILE. The base image is pulled into
# buildah's local storage before timing (bud does not pull it), and each tool runs BENCH_WARMUP
# untimed builds first, so the base layers are in each tool's repository for every timed run.
#
# Timed cold builds: BENCH_RUNS of each tool, interleaved, each with a fresh tag and revision
# (so Gantry's skip check does not apply). After every build the pushed image's own blobs (its
# config and every layer that is not a base layer) are deleted from the repository (registry
# API DELETE /v2/REPO/blobs/DIGEST, not timed), so the next build finds only the base layers
# there and uploads its app layers again — without that a reproducible builder would find its
# app layer from the previous run and upload nothing (BENCH_FORGET=0 keeps them).
# Reported: each run's seconds, the median, and per run the blob upload requests in the
# registry's access log (.stack/registry.log; POST /v2/REPO/blobs/uploads/ lines, cross-repo
# mounts counted apart); ratio = buildah median / layer median.
#
# Unchanged rebuild: the layer build twice with the same tag and revision; reported for the
# second: seconds, `skipped`, `uploaded_blobs`, `uploaded_bytes`, and its blob upload POSTs in
# the access log. Its blobs are then forgotten as well, so the next run starts cold too.
#
# Targets (PASS/FAIL; exit status 1 if any fails):
#   cold build + push      buildah median / layer median >= BENCH_TARGET_RATIO (5)
#   unchanged rebuild      second run: uploaded_bytes 0 and no blob upload POST; same digest
#
# Usage: bench/images.sh [--keep] [--buildah-only] [--app-only] [--rebuild-app]
#   --keep           keep this run's output dir (.stack/bench-images/run-ID: JSON reports, logs)
#                    and local buildah images.
#   --buildah-only   run only the buildah builds (no gantry needed); no targets.
#   --app-only       create (or reuse) the app, print its size and stop.
#   --rebuild-app    pip install again even if the cached app is current.
# Environment (defaults in brackets):
#   GANTRY_BIN       gantry binary [target/release/gantry]; never built here: when it is missing
#                    the script says how to build it and exits 1
#   BENCH_RUNS [3]   timed builds per tool      BENCH_WARMUP [1] untimed builds per tool first
#   BENCH_FORGET [1] delete each build's own blobs from the repository after it (see above)
#   BENCH_PIP_SPEC   [fastapi==0.165.0 uvicorn==0.54.0 pydantic==2.14.4]
#   BENCH_PYTHON     python whose pip installs the app [.stack/venv/bin/python, else python3]
#   BENCH_BASE_IMAGE [127.0.0.1:5056/base/busybox:1]
#   BENCH_REGISTRY_LOG  the registry's log [.stack/registry.log]
#   BENCH_TARGET_RATIO [5]
# Needs: scripts/setup.sh (buildah, skopeo, docker-registry, busybox-static, curl, python3);
# the stack is started here (scripts/stack.sh start: registry on 127.0.0.1:5056 + base image).
# PyPI must be reachable the first time (pip). Not run in CI.
set -euo pipefail
export LC_ALL=C # a decimal point in $EPOCHREALTIME, plain sort order

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="$ROOT/.stack"
WORK="$STACK/bench-images"

log() { printf '[images] %s\n' "$*"; }
die() { printf '[images] ERROR: %s\n' "$*" >&2; exit 2; }

KEEP=${BENCH_KEEP:-0}
BUILDAH_ONLY=0
APP_ONLY=0
REBUILD_APP=0
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=1 ;;
    --buildah-only) BUILDAH_ONLY=1 ;;
    --app-only) APP_ONLY=1 ;;
    --rebuild-app) REBUILD_APP=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument \`$arg\` (try --help)" ;;
  esac
done

RUNS=${BENCH_RUNS:-3}
WARMUP=${BENCH_WARMUP:-1}
FORGET=${BENCH_FORGET:-1}
PIP_SPEC=${BENCH_PIP_SPEC:-fastapi==0.165.0 uvicorn==0.54.0 pydantic==2.14.4}
REG=127.0.0.1:5056
REG_CREDS=AWS:123456789012-auth-token
BASE=${BENCH_BASE_IMAGE:-$REG/base/busybox:1}
REG_LOG=${BENCH_REGISTRY_LOG:-$STACK/registry.log}
TARGET_RATIO=${BENCH_TARGET_RATIO:-5}
LAYER_REPO=bench/app-layer
BUILDAH_REPO=bench/app-buildah
LOCAL_NAME=localhost/gantry-bench-app
ENTRYPOINT='["python3","-m","uvicorn","main:app"]'
SOURCE_URL=https://example.invalid/bench
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer (got \`$RUNS\`)"
[[ "$WARMUP" =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a non-negative integer (got \`$WARMUP\`)"

export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}

# ---------------------------------------------------------------- tools
need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is missing: $2"
}
need python3 "apt-get install -y python3"
need curl "apt-get install -y curl (scripts/setup.sh installs it)"
if [ "$APP_ONLY" = 0 ]; then
  need buildah "run scripts/setup.sh (Debian buildah)"
  need skopeo "run scripts/setup.sh (Debian skopeo)"
fi
if [ -n "${BENCH_PYTHON:-}" ]; then PY=$BENCH_PYTHON
elif [ -x "$STACK/venv/bin/python" ]; then PY="$STACK/venv/bin/python"
else PY=$(command -v python3); fi
"$PY" -m pip --version >/dev/null 2>&1 || die "$PY has no pip (run scripts/setup.sh, or set BENCH_PYTHON)"

now() { printf '%s' "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b - a}'; }
mb() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# ---------------------------------------------------------------- gantry binary
BIN=
if [ "$BUILDAH_ONLY" = 0 ] && [ "$APP_ONLY" = 0 ]; then
  BIN=${GANTRY_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/gantry}
  if [ ! -x "$BIN" ]; then
    printf '[images] ERROR: %s is not an executable. Build it first:\n' "$BIN" >&2
    printf '[images]     cargo build --release --bin gantry\n' >&2
    printf '[images] (or set GANTRY_BIN; --buildah-only runs the buildah side alone)\n' >&2
    exit 1
  fi
  BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
  "$BIN" image build --help >/dev/null 2>&1 \
    || die "$BIN has no \`image build\` command (\`$BIN image build --help\` failed); run with --buildah-only"
  case "$BIN" in */debug/*) log "NOTE: $BIN looks like a debug build; expect lower numbers" ;; esac
fi

# ---------------------------------------------------------------- the app (cached)
APP="$WORK/app"
APP_STAMP="$WORK/app.stamp"
mkdir -p "$WORK"

write_main_py() {
  cat > "$1" <<'PY'
"""A small FastAPI service, the app of bench/images.sh (its dependencies are in vendor/)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "vendor"))

from datetime import datetime, timezone  # noqa: E402
from typing import Optional  # noqa: E402

from fastapi import FastAPI, HTTPException  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

app = FastAPI(title="bench-app", version="1.0.0")


class ItemIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    price: float = Field(gt=0)
    tags: list[str] = []
    description: Optional[str] = None


class Item(ItemIn):
    id: int
    created_at: datetime


ITEMS: dict[int, Item] = {}


@app.get("/healthz")
def healthz() -> dict:
    return {"ok": True, "revision": os.environ.get("GANTRY_REVISION", "unknown")}


@app.get("/items")
def list_items(tag: Optional[str] = None) -> list[Item]:
    return [i for i in ITEMS.values() if tag is None or tag in i.tags]


@app.post("/items", status_code=201)
def create_item(item: ItemIn) -> Item:
    new = Item(id=len(ITEMS) + 1, created_at=datetime.now(timezone.utc), **item.model_dump())
    ITEMS[new.id] = new
    return new


@app.get("/items/{item_id}")
def get_item(item_id: int) -> Item:
    if item_id not in ITEMS:
        raise HTTPException(status_code=404, detail="no such item")
    return ITEMS[item_id]
PY
}

app_stamp() {
  { echo "spec=$PIP_SPEC python=$("$PY" -c 'import sys; print(sys.version)')"
    write_main_py /dev/stdout; } | sha256sum | cut -d' ' -f1
}
count_files() { find "$1" -type f | wc -l | tr -d ' '; }

build_app() {
  local stamp s e
  stamp=$(app_stamp)
  if [ "$REBUILD_APP" = 0 ] && [ -d "$APP/vendor/fastapi" ] && [ -f "$APP_STAMP" ] \
     && [ "$(cat "$APP_STAMP")" = "$stamp" ]; then
    log "app: reusing $APP ($(count_files "$APP") files; spec unchanged)"
    return 0
  fi
  rm -rf "$APP" "$APP_STAMP"
  mkdir -p "$APP"
  write_main_py "$APP/main.py"
  # shellcheck disable=SC2086 # one requirement per word
  printf '%s\n' $PIP_SPEC > "$APP/requirements.txt"
  log "app: $PY -m pip install --target $APP/vendor $PIP_SPEC"
  s=$(now)
  "$PY" -m pip install --quiet --disable-pip-version-check --no-input --target "$APP/vendor" \
    -r "$APP/requirements.txt" || die "pip install failed"
  e=$(now)
  PYTHONDONTWRITEBYTECODE=1 "$PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import main; assert main.app.title == "bench-app"' "$APP" \
    || die "the app in $APP does not import"
  printf '%s' "$stamp" > "$APP_STAMP"
  log "app: pip install took $(elapsed "$s" "$e") s"
}
build_app
APP_FILES=$(count_files "$APP")
APP_BYTES=$(du -sb "$APP" | cut -f1)
APP_VERSIONS=$(cd "$APP/vendor" && for d in fastapi-*.dist-info uvicorn-*.dist-info pydantic-[0-9]*.dist-info pydantic_core-*.dist-info starlette-*.dist-info; do
  if [ -d "$d" ]; then printf '%s ' "${d%.dist-info}"; fi; done)
log "app: $APP: $APP_FILES files, $(mb "$APP_BYTES") MB (${APP_VERSIONS% })"
if [ "$APP_ONLY" = 1 ]; then
  echo "APP files=$APP_FILES bytes=$APP_BYTES dir=$APP"
  exit 0
fi

# ---------------------------------------------------------------- stack, auth, base image
"$ROOT/scripts/stack.sh" start >/dev/null || die "scripts/stack.sh start failed (run scripts/setup.sh first?)"
[ "$(curl -s -o /dev/null -m 5 -u "$REG_CREDS" -w '%{http_code}' "http://$REG/v2/" || true)" = 200 ] \
  || die "the registry does not answer at http://$REG/v2/ (scripts/stack.sh start)"
[ -f "$REG_LOG" ] || die "the registry's log $REG_LOG not found (set BENCH_REGISTRY_LOG)"

export REGISTRY_AUTH_FILE="$WORK/auth.json"
(umask 077 && printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REG" "$(printf '%s' "$REG_CREDS" | base64 -w0)" > "$REGISTRY_AUTH_FILE")

RUN=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
OUT="$WORK/run-$RUN"
mkdir -p "$OUT"
cleanup() {
  local rc=$? i
  trap - INT TERM
  if [ "$KEEP" = 1 ]; then
    log "kept $OUT"
  else
    # A local image of this run is left only when a build or push failed.
    for i in $(buildah images --format '{{.Name}}:{{.Tag}}' 2>/dev/null | grep -F "$LOCAL_NAME:$RUN-" || true); do
      buildah rmi "$i" >/dev/null 2>&1 || true
    done
    rm -rf "$OUT"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Is this the registry's log? A HEAD of a made-up blob must show up in it.
probe="sha256:$(printf 'gantry-bench-%s' "$RUN" | sha256sum | cut -d' ' -f1)"
curl -s -o /dev/null -m 5 -I -u "$REG_CREDS" "http://$REG/v2/$LAYER_REPO/blobs/$probe" || true
sleep 0.3
grep -q "\"HEAD /v2/$LAYER_REPO/blobs/$probe HTTP" "$REG_LOG" \
  || die "$REG_LOG does not show this run's requests (is access logging on? scripts/stack.sh restart; or set BENCH_REGISTRY_LOG)"

buildah pull --quiet --tls-verify=false "$BASE" >/dev/null || die "cannot pull $BASE (scripts/base-image.sh)"
BASE_DIGEST=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$BASE") || die "cannot inspect $BASE"
BASE_LAYERS=$(skopeo inspect --tls-verify=false --raw "docker://$BASE" \
  | python3 -c 'import json,sys; print(" ".join(l["digest"] for l in json.load(sys.stdin)["layers"]))') \
  || die "cannot read the manifest of $BASE"

cat > "$OUT/Dockerfile" <<EOF
FROM $BASE
WORKDIR /app
COPY . /app
ENTRYPOINT $ENTRYPOINT
EOF

# ---------------------------------------------------------------- helpers
log_size() { stat -c %s "$REG_LOG"; }
# requests REPO OFFSET: the repository's requests in the access log since OFFSET, as
# "uploads=N mounts=N puts=N heads=N manifests=N total=N" (401 challenges left out).
#   uploads    POST /v2/REPO/blobs/uploads/ that started (202) or completed (201) an upload
#   mounts     POST /v2/REPO/blobs/uploads/?mount=...&from=... answered 201 (cross-repo mount)
#   puts       PUT /v2/REPO/blobs/uploads/...?digest=... (finished uploads)
#   heads      HEAD /v2/REPO/blobs/...    manifests  PUT /v2/REPO/manifests/...
requests() {
  sleep 0.3 # let the registry finish writing the last lines
  tail -c +"$(($2 + 1))" "$REG_LOG" | awk -v repo="$1" '
    BEGIN { up = 0; mnt = 0; puts = 0; heads = 0; man = 0; total = 0; p = "/v2/" repo "/" }
    /^time=/ { next }
    {
      n = split($0, q, "\"")
      if (n < 3) next
      split(q[2], r, " "); split(q[3], s, " ")
      method = r[1]; uri = r[2]; status = s[1]
      if (substr(uri, 1, length(p)) != p || status == 401) next
      rest = substr(uri, length(p) + 1)
      total++
      if (method == "POST" && rest ~ /^blobs\/uploads\/?(\?|$)/) {
        if (rest ~ /[?&]mount=/ && status == 201) mnt++
        else if (status == 201 || status == 202) up++
      } else if (method == "PUT" && rest ~ /^blobs\/uploads\// && rest ~ /[?&]digest=/) puts++
      else if (method == "HEAD" && rest ~ /^blobs\//) heads++
      else if (method == "PUT" && rest ~ /^manifests\//) man++
    }
    END { printf "uploads=%d mounts=%d puts=%d heads=%d manifests=%d total=%d", up, mnt, puts, heads, man, total }'
}
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<" $2"; }
# json_field FILE KEY: a string as is, anything else as JSON (true, false, 123).
json_field() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(v if isinstance(v, str) else json.dumps(v))' "$1" "$2"; }
revision() { printf '%s' "$1" | sha1sum | cut -d' ' -f1; }

# own_blobs REPO TAG: digest and size of the image's config and its non-base layers.
own_blobs() {
  skopeo inspect --tls-verify=false --raw "docker://$REG/$1:$2" | python3 -c '
import json, sys
m = json.load(sys.stdin)
if "layers" not in m:
    sys.exit("not an image manifest: " + m.get("mediaType", "?"))
base = set(sys.argv[1].split())
print(m["config"]["digest"], m["config"]["size"], "config")
for l in m["layers"]:
    if l["digest"] not in base:
        print(l["digest"], l["size"], "layer")' "$BASE_LAYERS"
}
# forget REPO TAG: delete the image's own blobs from the repository (not the base layers).
forget() {
  local blobs digest size kind code
  [ "$FORGET" = 1 ] || return 0
  blobs=$(own_blobs "$1" "$2") || die "cannot read the manifest of $REG/$1:$2"
  while read -r digest size kind; do
    code=$(curl -s -o /dev/null -m 10 -X DELETE -u "$REG_CREDS" -w '%{http_code}' "http://$REG/v2/$1/blobs/$digest" || true)
    case "$code" in 202|404) ;; *) die "DELETE /v2/$1/blobs/$digest ($kind) answered $code (is storage.delete enabled?)" ;; esac
  done <<<"$blobs"
}
# app_layers REPO TAG: "N layer(s), X MB" of the image's non-base layers (compressed).
app_layers() {
  own_blobs "$1" "$2" | awk '$3 == "layer" {n++; b += $2} END {printf "%d layer(s), %.1f MB", n, b / 1048576}'
}

# build_layer TAG REVISION LABEL: one gantry build; prints its seconds; its report in OUT/LABEL.json.
build_layer() {
  local tag=$1 rev=$2 label=$3 s e rc=0
  s=$(now)
  "$BIN" image build --builder layer --context "$APP" --base "$BASE" \
    --tag "$REG/$LAYER_REPO:$tag" --workdir /app --entrypoint "$ENTRYPOINT" \
    --revision "$rev" --source "$SOURCE_URL" --json \
    </dev/null >"$OUT/$label.json" 2>"$OUT/$label.log" || rc=$?
  e=$(now)
  if [ "$rc" != 0 ]; then
    echo "---- gantry image build ($label) stderr ----" >&2; tail -n 30 "$OUT/$label.log" >&2 || true
    die "gantry image build failed with status $rc ($label)"
  fi
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); [r[k] for k in ("digest","skipped","uploaded_blobs","uploaded_bytes")]' "$OUT/$label.json" \
    || die "gantry's --json report ($OUT/$label.json) lacks digest/skipped/uploaded_blobs/uploaded_bytes"
  elapsed "$s" "$e"
}

# build_buildah TAG LABEL: bud + push (timed), then rmi (not timed); prints the seconds and
# writes "bud=S push=S" to OUT/LABEL.split.
build_buildah() {
  local tag=$1 label=$2 s m=0 e rc=0
  s=$(now)
  { buildah bud --quiet --tls-verify=false -f "$OUT/Dockerfile" -t "$LOCAL_NAME:$tag" "$APP" \
      && m=$(now) \
      && buildah push --quiet --tls-verify=false --authfile "$REGISTRY_AUTH_FILE" \
           --digestfile "$OUT/$label.digest" "$LOCAL_NAME:$tag" "docker://$REG/$BUILDAH_REPO:$tag"
  } </dev/null >"$OUT/$label.log" 2>&1 || rc=$?
  e=$(now)
  printf 'bud=%ss push=%ss' "$(elapsed "$s" "$m")" "$(elapsed "$m" "$e")" > "$OUT/$label.split"
  if [ "$rc" != 0 ]; then
    echo "---- buildah ($label) output ----" >&2; tail -n 30 "$OUT/$label.log" >&2 || true
    die "buildah bud/push failed with status $rc ($label)"
  fi
  [ "$KEEP" = 1 ] || buildah rmi "$LOCAL_NAME:$tag" >/dev/null 2>&1 || true
  elapsed "$s" "$e"
}

TOOLS=(buildah)
[ "$BUILDAH_ONLY" = 1 ] || TOOLS=(layer buildah)

log "registry  $REG (access log $REG_LOG)"
log "base      $BASE ($BASE_DIGEST)"
[ -n "$BIN" ] && log "gantry    $BIN image build --builder layer"
log "buildah   $(buildah --version) (STORAGE_DRIVER=$STORAGE_DRIVER BUILDAH_ISOLATION=$BUILDAH_ISOLATION)"
log "runs      $RUNS timed per tool after $WARMUP warm-up(s); own blobs forgotten between builds: $([ "$FORGET" = 1 ] && echo yes || echo no)"

# ---------------------------------------------------------------- cold builds
declare -A SECS REQ NOTE LAST_TAG
run_one() { # TOOL LABEL (w1 = warm-up, 1..N = timed)
  local tool=$1 label=$2 tag="$RUN-$2" off secs repo
  off=$(log_size)
  case "$tool" in
    layer) repo=$LAYER_REPO; secs=$(build_layer "$tag" "$(revision "bench-$RUN-$label")" "layer-$label")
           NOTE[$tool,$label]="skipped=$(json_field "$OUT/layer-$label.json" skipped) uploaded_blobs=$(json_field "$OUT/layer-$label.json" uploaded_blobs) uploaded_bytes=$(json_field "$OUT/layer-$label.json" uploaded_bytes)" ;;
    buildah) repo=$BUILDAH_REPO; secs=$(build_buildah "$tag" "buildah-$label"); NOTE[$tool,$label]=$(cat "$OUT/buildah-$label.split") ;;
  esac
  REQ[$tool,$label]=$(requests "$repo" "$off")
  SECS[$tool,$label]=$secs
  LAST_TAG[$tool]=$tag
  log "$(printf '%-7s %-3s %6ss  %s  %s' "$tool" "$label" "$secs" "${REQ[$tool,$label]}" "${NOTE[$tool,$label]}")"
  forget "$repo" "$tag"
}
for ((i = 1; i <= WARMUP; i++)); do
  for tool in "${TOOLS[@]}"; do run_one "$tool" "w$i"; done
done
for ((i = 1; i <= RUNS; i++)); do
  for tool in "${TOOLS[@]}"; do run_one "$tool" "$i"; done
done

declare -A MEDIAN ALL UPLOADS_PER_RUN LAYERS
for tool in "${TOOLS[@]}"; do
  vals=()
  ups=()
  for ((i = 1; i <= RUNS; i++)); do vals+=("${SECS[$tool,$i]}"); ups+=("$(field uploads "${REQ[$tool,$i]}")"); done
  MEDIAN[$tool]=$(median "${vals[@]}")
  ALL[$tool]="${vals[*]}"
  UPLOADS_PER_RUN[$tool]="${ups[*]}"
  LAYERS[$tool]=$(app_layers "$([ "$tool" = layer ] && echo "$LAYER_REPO" || echo "$BUILDAH_REPO")" "${LAST_TAG[$tool]}" 2>/dev/null || echo '?')
done

# ---------------------------------------------------------------- unchanged rebuild
if [ "$BUILDAH_ONLY" = 0 ]; then
  RB_TAG="$RUN-rebuild"
  RB_REV=$(revision "bench-$RUN-rebuild")
  log "unchanged rebuild: the layer build twice with tag $RB_TAG, revision $RB_REV"
  RB1_SECS=$(build_layer "$RB_TAG" "$RB_REV" rebuild-1)
  off=$(log_size)
  RB2_SECS=$(build_layer "$RB_TAG" "$RB_REV" rebuild-2)
  RB2_REQ=$(requests "$LAYER_REPO" "$off")
  RB1_DIGEST=$(json_field "$OUT/rebuild-1.json" digest)
  RB2_DIGEST=$(json_field "$OUT/rebuild-2.json" digest)
  RB2_SKIPPED=$(json_field "$OUT/rebuild-2.json" skipped)
  RB2_BLOBS=$(json_field "$OUT/rebuild-2.json" uploaded_blobs)
  RB2_BYTES=$(json_field "$OUT/rebuild-2.json" uploaded_bytes)
  log "rebuild 1: ${RB1_SECS}s  digest $RB1_DIGEST"
  log "rebuild 2: ${RB2_SECS}s  digest $RB2_DIGEST skipped=$RB2_SKIPPED uploaded_blobs=$RB2_BLOBS uploaded_bytes=$RB2_BYTES  $RB2_REQ"
  # Leave only the base layers in the repository, so that the next run starts cold too.
  forget "$LAYER_REPO" "$RB_TAG"
fi

# ---------------------------------------------------------------- summary
row() { # TOOL TITLE
  printf '%-28s %8s   %-22s %-14s %s\n' "$2" "${MEDIAN[$1]}" "${ALL[$1]}" "${UPLOADS_PER_RUN[$1]}" "${LAYERS[$1]}"
}
echo
echo "================ image build + push: gantry layer builder vs buildah bud + push ================"
echo "app         FastAPI app: $APP_FILES files, $(mb "$APP_BYTES") MB ($APP; ${APP_VERSIONS% })"
echo "base        $BASE ($BASE_DIGEST)"
echo "registry    $REG, distribution $(docker-registry --version 2>/dev/null | awk '{print $3}'), access log $REG_LOG"
echo "gantry      ${BIN:-(not run: --buildah-only)}${BIN:+ image build --builder layer}"
echo "buildah     $(buildah --version | awk '{print $3}'), bud + push, $STORAGE_DRIVER storage, $BUILDAH_ISOLATION isolation"
echo "machine     $(nproc) CPUs; $RUNS timed runs per tool after $WARMUP warm-up(s); own blobs forgotten between builds: $([ "$FORGET" = 1 ] && echo yes || echo no)"
echo
printf '%-28s %8s   %-22s %-14s %s\n' "cold build + push" "median s" "runs (s)" "upload POSTs" "app layers pushed"
[ "$BUILDAH_ONLY" = 1 ] || row layer "gantry image build (layer)"
row buildah "buildah bud + push"
for tool in "${TOOLS[@]}"; do
  for ((i = 1; i <= RUNS; i++)); do printf '%-7s run %d: %s\n' "$tool" "$i" "${NOTE[$tool,$i]}"; done
done
echo

if [ "$BUILDAH_ONLY" = 1 ]; then
  echo "targets     not evaluated (--buildah-only)"
  echo "================================================================================================"
  echo "RESULT: buildah-only run (no targets)"
  exit 0
fi

RATIO=$(awk -v b="${MEDIAN[buildah]}" -v l="${MEDIAN[layer]}" 'BEGIN {if (l + 0 > 0) printf "%.1f", b / l; else print "inf"}')
V_RATIO=$(awk -v r="$RATIO" -v t="$TARGET_RATIO" 'BEGIN {print (r == "inf" || r + 0 >= t + 0) ? "PASS" : "FAIL"}')
RB2_POSTS=$(field uploads "$RB2_REQ")
V_RB=PASS
[ "$RB2_BYTES" = 0 ] && [ "$RB2_POSTS" = 0 ] && [ "$RB1_DIGEST" = "$RB2_DIGEST" ] || V_RB=FAIL

echo "ratio (buildah/layer): ${RATIO}x"
echo "target >= ${TARGET_RATIO}x: $V_RATIO"
echo
echo "unchanged rebuild (same tag and revision), second run: ${RB2_SECS}s (first ${RB1_SECS}s)"
echo "  report          skipped=$RB2_SKIPPED uploaded_blobs=$RB2_BLOBS uploaded_bytes=$RB2_BYTES (target 0)"
echo "  registry log    blob upload POSTs $RB2_POSTS (target 0); all of $LAYER_REPO's: $RB2_REQ"
echo "  digest          $RB2_DIGEST ($([ "$RB1_DIGEST" = "$RB2_DIGEST" ] && echo same as the first run || echo "DIFFERS from the first run's $RB1_DIGEST"))"
echo "target uploaded_bytes 0, no upload POST, same digest: $V_RB"
echo "================================================================================================"
for v in "$V_RATIO" "$V_RB"; do
  [ "$v" = PASS ] || { echo "RESULT: FAIL"; exit 1; }
done
echo "RESULT: PASS"
