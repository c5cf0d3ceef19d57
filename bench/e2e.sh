#!/usr/bin/env bash
# bench/e2e.sh — push -> verdict on the local stack, with and without build caches.
#
# Two apps, each in its own real git repository, deployed by one `gantry serve` per run from
# signed push webhooks, to the stack's moto (S3, CloudFront, ECS, ECR auth, IAM, Secrets
# Manager) and local registry (scripts/stack.sh start, which this script runs):
#   demo   demo/app: a static site made by a shell script and one backend image (layer
#          builder) and service: Gantry's own overhead, with no heavy build.
#   next   the Next.js 15 export of bench/sites/next-site (BENCH_SITE_PAGES posts) built by
#          `npm ci --prefer-offline` (skipped when node_modules was restored under this
#          lock's key: GANTRY_CACHE_NODE_MODULES=hit) and `npm run build`, plus two images and
#          services (api, worker), like the portfolio and the event site. Its build declares
#          three caches keyed by package-lock.json: `node_modules`, `~/.npm` (npm's download
#          cache, for a changed lock) and `.next/cache` (Next's webpack/SWC cache).
# For each app, three pushes in order, each timed from the webhook to `gantry show --wait`
# returning the verdict:
#   first        the first deployment (every image built, every service created, every file up)
#   one page     one page's text changed: the build runs, no image is built, no service rolls
#   one service  one service's code changed: one image built, one service rolled
# Two runs, each with a fresh daemon (data dir), buckets, cluster and ECR repositories:
#   cache        pipeline.cacheSize at its default (5 GiB)
#   no cache     GANTRY_CACHE_SIZE=0 (caches off: every build starts cold, as CodeBuild
#                without a cache or a fresh CI runner does)
# The cache run goes first, so the OS page cache it warms favours the no-cache run.
# Printed: a table of push -> verdict and build-step seconds per app, push and run, and the
# ratio no cache / cache. Every deployment must succeed, a one-page push must build no image
# and leave every service unchanged, a one-service push of `next` must roll exactly one service.
#
# Target (PASS/FAIL; exit status 1 if it fails):
#   next, one page     no-cache push -> verdict / cache push -> verdict >= 2
#
# Usage: bench/e2e.sh [--build] [--keep]
#   --build   rebuild the release binary (cargo build --release --bin gantry) first; without it
#             the build only runs when target/release/gantry is missing.
#   --keep    keep the temp dir (gantry.log, each deployment's JSON) and the moto resources.
# Environment (defaults in brackets):
#   GANTRY_BIN         gantry binary to run [target/release/gantry] (never built when set)
#   BENCH_SITE_PAGES   posts of the Next.js site [40]   BENCH_SITE_TAGS  tag pages [10]
#   BENCH_PORT         first port for the daemons [18180]
#   BENCH_TARGET_RATIO [2]
# Needs: node >= 18.18 and npm with the npm registry reachable (for the cold `npm ci`),
# python3, curl, openssl, git, the .stack/venv of scripts/setup.sh.
set -euo pipefail
export LC_ALL=C

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '[e2e] %s\n' "$*"; }
die() { printf '[e2e] ERROR: %s\n' "$*" >&2; exit 2; }

BUILD=0
KEEP=0
for a in "$@"; do
  case "$a" in
    --build) BUILD=1 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) die "unknown option $a (see --help)" ;;
  esac
done
SITE_PAGES=${BENCH_SITE_PAGES:-40}
SITE_TAGS=${BENCH_SITE_TAGS:-10}
PORT0=${BENCH_PORT:-18180}
TARGET_RATIO=${BENCH_TARGET_RATIO:-2}

for tool in node npm python3 curl openssl git; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/setup.sh installs it)"
done

if [ -n "${GANTRY_BIN:-}" ]; then
  GANTRY=$GANTRY_BIN
else
  GANTRY="${CARGO_TARGET_DIR:-$ROOT/target}/release/gantry"
  if [ "$BUILD" = 1 ] || [ ! -x "$GANTRY" ]; then
    log "cargo build --release --bin gantry"
    cargo build --release --bin gantry
  fi
fi
[ -x "$GANTRY" ] || die "no gantry binary at $GANTRY"

scripts/stack.sh start >/dev/null
# shellcheck source=/dev/null
source .stack/env
MOTO="$GANTRY_TEST_MOTO_URL"
AWS=(.stack/venv/bin/aws --endpoint-url "$MOTO")
ECR_HOST=123456789012.dkr.ecr.us-east-1.amazonaws.com

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gantry-e2e.XXXXXX")
PIDS=()
CLEANUP=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ "$KEEP" = 1 ]; then
    log "kept $TMP and the moto resources"
    return
  fi
  for c in "${CLEANUP[@]}"; do eval "$c" >/dev/null 2>&1 || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

"${AWS[@]}" iam create-role --role-name ecsTaskExecutionRole \
  --assume-role-policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}' \
  >/dev/null 2>&1 || true
SECRET_ARN=$("${AWS[@]}" secretsmanager describe-secret --secret-id bench/e2e-key --query ARN --output text 2>/dev/null \
  || "${AWS[@]}" secretsmanager create-secret --name bench/e2e-key --secret-string "bench-key" --query ARN --output text)
SUBNET=$("${AWS[@]}" ec2 describe-subnets --query 'Subnets[0].SubnetId' --output text)

git_c() { git -C "$1" -c user.name="Bench Dev" -c user.email=bench@example.com "${@:2}"; }

# A bucket and a CloudFront distribution in front of it; prints "BUCKET DIST".
site_target() {
  local bucket="gantry-e2e-$1-$(date +%s%N | tail -c 9)" dist
  "${AWS[@]}" s3api create-bucket --bucket "$bucket" >/dev/null
  dist=$("${AWS[@]}" cloudfront create-distribution --origin-domain-name "$bucket.s3.amazonaws.com" \
    --query Distribution.Id --output text)
  CLEANUP+=("${AWS[*]} s3 rb s3://$bucket --force")
  echo "$bucket $dist"
}

# task_def FAMILY CONTAINER FILE: a Fargate task definition running `python main.py`.
task_def() {
  python3 - "$1" "$2" "$SECRET_ARN" >"$3" <<'PY'
import json, sys
family, container, secret = sys.argv[1:]
print(json.dumps({
    "family": family, "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
    "cpu": "256", "memory": "512",
    "executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
    "containerDefinitions": [{
        "name": container, "image": "placeholder", "essential": True,
        "command": ["python", "main.py"],
        "portMappings": [{"containerPort": 8000, "protocol": "tcp"}],
        "secrets": [{"name": "API_KEY", "valueFrom": secret}],
    }],
}, indent=2))
PY
}

# image_yaml NAME REPOSITORY CONTEXT: one `layer` image entry.
image_yaml() {
  cat <<EOF
    - name: $1
      repository: $ECR_HOST/$2
      context: $3
      base: $ECR_HOST/base/busybox:1
      workdir: /app
      entrypoint: [python, main.py]
      tag: latest
      createRepository: true
EOF
}

# service_yaml NAME CLUSTER TASKFILE CONTAINER IMAGE
service_yaml() {
  cat <<EOF
    - name: $1
      cluster: $2
      taskDefinition: $3
      containers:
        $4: $5
      desiredCount: 1
      network:
        subnets: [$SUBNET]
EOF
}

# setup_run RUN: repositories, manifests and AWS resources of one run under $TMP/RUN.
setup_run() {
  local run=$1 dir="$TMP/$1" cluster bucket dist
  mkdir -p "$dir/manifests"
  cluster="gantry-e2e-$run-$(date +%s)"
  "${AWS[@]}" ecs create-cluster --cluster-name "$cluster" >/dev/null
  CLEANUP+=("${AWS[*]} ecs delete-service --cluster $cluster --service e2e-$run-demo-api --force"
    "${AWS[*]} ecs delete-service --cluster $cluster --service e2e-$run-next-api --force"
    "${AWS[*]} ecs delete-service --cluster $cluster --service e2e-$run-next-worker --force"
    "${AWS[*]} ecs delete-cluster --cluster $cluster")

  # demo: demo/app as it is.
  cp -R demo/app "$dir/demo"
  git_c "$dir/demo" init -q -b main
  git_c "$dir/demo" add -A
  git_c "$dir/demo" commit -q -m "Initial demo app"
  read -r bucket dist < <(site_target demo)
  task_def "gantry-e2e-$run-demo-api" api "$dir/manifests/demo-api-task.json"
  {
    cat <<EOF
apiVersion: gantry/v1
kind: App
metadata:
  name: demo
spec:
  environment: bench
  source:
    repo: bench/demo-$run
    url: $dir/demo
    branch: main
  build:
    commands: [./build-site.sh]
    timeout: 5m
  images:
EOF
    image_yaml api "bench-e2e-$run/demo-api" api
    cat <<EOF
  sites:
    - name: web
      dir: out
      bucket: $bucket
      preset: plain
      distribution: $dist
  services:
EOF
    service_yaml "e2e-$run-demo-api" "$cluster" demo-api-task.json api api
  } >"$dir/manifests/demo.yaml"

  # next: the Next.js site under site/, two backends under api/ and worker/.
  mkdir -p "$dir/next"
  cp -R bench/sites/next-site "$dir/next/site"
  cp -R demo/app/api "$dir/next/api"
  cp -R demo/app/api "$dir/next/worker"
  printf 'node_modules/\n.next/\nout/\npublic/covers/\n' >"$dir/next/.gitignore"
  git_c "$dir/next" init -q -b main
  git_c "$dir/next" add -A
  git_c "$dir/next" commit -q -m "Initial next site"
  read -r bucket dist < <(site_target next)
  task_def "gantry-e2e-$run-next-api" api "$dir/manifests/next-api-task.json"
  task_def "gantry-e2e-$run-next-worker" worker "$dir/manifests/next-worker-task.json"
  {
    cat <<EOF
apiVersion: gantry/v1
kind: App
metadata:
  name: next
spec:
  environment: bench
  source:
    repo: bench/next-$run
    url: $dir/next
    branch: main
  build:
    workdir: site
    commands:
      - '[ "\$GANTRY_CACHE_NODE_MODULES" = hit ] || npm ci --prefer-offline --no-audit --no-fund --loglevel=error'
      - npm run build
    env:
      NEXT_TELEMETRY_DISABLED: "1"
      BENCH_SITE_PAGES: "$SITE_PAGES"
      BENCH_SITE_TAGS: "$SITE_TAGS"
    caches:
      - path: node_modules
        key: [package-lock.json]
      - path: ~/.npm
        key: [package-lock.json]
      - path: .next/cache
        key: [package-lock.json]
    timeout: 20m
  images:
EOF
    image_yaml api "bench-e2e-$run/next-api" api
    image_yaml worker "bench-e2e-$run/next-worker" worker
    cat <<EOF
  sites:
    - name: web
      dir: site/out
      bucket: $bucket
      preset: nextjs
      distribution: $dist
  services:
EOF
    service_yaml "e2e-$run-next-api" "$cluster" next-api-task.json api api
    service_yaml "e2e-$run-next-worker" "$cluster" next-worker-task.json worker worker
  } >"$dir/manifests/next.yaml"
  "$GANTRY" validate --manifests "$dir/manifests" >/dev/null
}

# start_daemon RUN PORT CACHE_SIZE
start_daemon() {
  local dir="$TMP/$1"
  GANTRY_LISTEN="127.0.0.1:$2" GANTRY_DATA_DIR="$dir/data" GANTRY_MANIFESTS="$dir/manifests" GANTRY_POLL_INTERVAL=off \
    GANTRY_GITHUB_WEBHOOK_SECRET=bench-secret GANTRY_API_TOKEN=bench-token \
    GANTRY_AWS_ENDPOINT_URL="$MOTO" GANTRY_ECS_POLL=300ms GANTRY_CACHE_SIZE="$3" \
    GANTRY_REGISTRY_ENDPOINTS="$ECR_HOST=http://$GANTRY_TEST_REGISTRY" \
    env -u GANTRY_CONFIG "$GANTRY" serve >"$dir/gantry.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$2/readyz" >/dev/null 2>&1 && return
    kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$dir/gantry.log"; die "gantry serve exited"; }
    sleep 0.1
  done
  die "gantry serve did not become ready (log: $dir/gantry.log)"
}

# push RUN APP PORT MESSAGE: commits what changed in the app's repository, delivers a signed
# push webhook, waits for the verdict; prints "SECONDS DEPLOYMENT_ID".
push() {
  local run=$1 app=$2 port=$3 message=$4 repo="$TMP/$1/$2" sha before body sig resp id t0 t1
  git_c "$repo" add -A
  git_c "$repo" commit -q -m "$message"
  sha=$(git -C "$repo" rev-parse HEAD)
  before=$(git -C "$repo" rev-parse HEAD~1)
  body=$(printf '{"ref":"refs/heads/main","before":"%s","after":"%s","created":false,"deleted":false,"forced":false,"repository":{"full_name":"bench/%s-%s","name":"%s-%s"},"pusher":{"name":"bench-dev","email":"bench@example.com"},"sender":{"login":"bench-dev"},"commits":[{"id":"%s","message":"%s","added":[],"removed":[],"modified":[]}],"head_commit":null}' \
    "$before" "$sha" "$app" "$run" "$app" "$run" "$sha" "$message")
  sig="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac bench-secret -r | cut -d' ' -f1)"
  t0=$EPOCHREALTIME
  resp=$(curl -sS -w '\n%{http_code}' -X POST "http://127.0.0.1:$port/hooks/github" \
    -H "Content-Type: application/json" -H "X-GitHub-Event: push" \
    -H "X-GitHub-Delivery: e2e-$run-$app-$(date +%s%N)" -H "X-Hub-Signature-256: $sig" \
    --data-binary "$body")
  [ "$(echo "$resp" | tail -n1)" = "202" ] || die "push $app ($run) not accepted: $resp"
  id=$(echo "$resp" | head -n1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["deployments"][0])')
  GANTRY_SERVER="http://127.0.0.1:$port" GANTRY_API_TOKEN=bench-token \
    "$GANTRY" show "$id" --wait --json >"$TMP/$run/deployment-$id.json" \
    || { cat "$TMP/$run/deployment-$id.json" >&2; die "deployment #$id ($app, $run, $message) failed"; }
  t1=$EPOCHREALTIME
  echo "$(python3 -c "print(f'{$t1 - $t0:.1f}')") $id"
}

# check FILE KIND: what one deployment touched; prints the build step's seconds.
check() {
  python3 - "$1" "$2" <<'PY'
import json, sys
from datetime import datetime
d = json.load(open(sys.argv[1])); kind = sys.argv[2]
def secs(s):
    if not s.get("started_at") or not s.get("finished_at"):
        return 0.0
    p = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))
    return (p(s["finished_at"]) - p(s["started_at"])).total_seconds()
steps = {s["kind"]: s for s in d["steps"]}
fail = []
imgs = steps.get("publish_images", {}).get("outcome") or ""
roll = steps.get("roll_services", {}).get("outcome") or ""
if kind == "page":
    if " 0 built" not in imgs:
        fail.append("an image was built: " + imgs)
    if not roll.endswith(" 0 rolled"):
        fail.append("a service was rolled: " + roll)
if kind == "service" and d["app"] == "next":
    log = steps["roll_services"].get("log") or ""
    if not (imgs.endswith("1 built, 1 reused") and roll.endswith(" 1 rolled")
            and "next-api: service unchanged" in log):
        fail.append(f"not exactly the worker built and rolled: {imgs}; {roll}")
if fail:
    sys.stderr.write(f"deployment #{d['id']}: " + "; ".join(fail) + "\n"
                     + "\n".join(f"  {k}: {s.get('outcome')}" for k, s in steps.items()) + "\n")
    sys.exit(1)
print(f"{secs(steps['build']):.1f}" if "build" in steps else "0.0")
PY
}

# Edits for the pushes.
edit_page() {
  case "$2" in
    demo) echo "Headline at $(date -u +%T.%N)" >"$1/headline.txt" ;;
    next) sed -i "s|<h1>About[^<]*</h1>|<h1>About ($(date -u +%T.%N))</h1>|" "$1/site/app/about/page.jsx" ;;
  esac
}
edit_service() {
  case "$2" in
    demo) echo "# changed $(date -u +%T.%N)" >>"$1/api/main.py" ;;
    next) echo "# changed $(date -u +%T.%N)" >>"$1/worker/main.py" ;;
  esac
}

declare -A TIME BUILD
run_bench() {
  local run=$1 port=$2 size=$3 app t id b
  log "run '$run' (GANTRY_CACHE_SIZE=$size): set up in $TMP/$run"
  setup_run "$run"
  start_daemon "$run" "$port" "$size"
  for app in demo next; do
    echo "first $(date -u +%T.%N)" >"$TMP/$run/$app/FIRST"
    read -r t id < <(push "$run" "$app" "$port" "First deployment")
    b=$(check "$TMP/$run/deployment-$id.json" first)
    TIME[$run,$app,first]=$t; BUILD[$run,$app,first]=$b
    log "  $app first:       ${t}s (build ${b}s), deployment #$id"

    edit_page "$TMP/$run/$app" "$app"
    read -r t id < <(push "$run" "$app" "$port" "Change one page")
    b=$(check "$TMP/$run/deployment-$id.json" page) || die "one-page push of $app did more than it should"
    TIME[$run,$app,page]=$t; BUILD[$run,$app,page]=$b
    log "  $app one page:    ${t}s (build ${b}s), deployment #$id"

    edit_service "$TMP/$run/$app" "$app"
    read -r t id < <(push "$run" "$app" "$port" "Change one service")
    b=$(check "$TMP/$run/deployment-$id.json" service) || die "one-service push of $app did more or less than it should"
    TIME[$run,$app,service]=$t; BUILD[$run,$app,service]=$b
    log "  $app one service: ${t}s (build ${b}s), deployment #$id"
  done
}

run_bench cache "$PORT0" 5GiB
run_bench nocache "$((PORT0 + 1))" 0

printf '\n%-6s %-12s %22s %22s %8s\n' app push "cache: verdict (build)" "no cache: verdict (build)" ratio
status=0
for app in demo next; do
  for p in first page service; do
    c=${TIME[cache,$app,$p]} n=${TIME[nocache,$app,$p]}
    ratio=$(python3 -c "print(f'{$n / max($c, 0.01):.2f}')")
    label=$p; [ "$p" = page ] && label="one page"; [ "$p" = service ] && label="one service"
    printf '%-6s %-12s %12ss (%6ss) %13ss (%6ss) %7sx\n' "$app" "$label" "$c" "${BUILD[cache,$app,$p]}" \
      "$n" "${BUILD[nocache,$app,$p]}" "$ratio"
  done
done
ratio=$(python3 -c "print(f'{${TIME[nocache,next,page]} / max(${TIME[cache,next,page]}, 0.01):.2f}')")
if python3 -c "import sys; sys.exit(0 if $ratio >= $TARGET_RATIO else 1)"; then
  printf '\nPASS  next one page: no cache / cache = %sx (target >= %sx)\n' "$ratio" "$TARGET_RATIO"
else
  printf '\nFAIL  next one page: no cache / cache = %sx (target >= %sx)\n' "$ratio" "$TARGET_RATIO"
  status=1
fi
exit "$status"
