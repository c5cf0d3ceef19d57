#!/usr/bin/env bash
# scripts/demo.sh — the main job, end to end on this machine:
#   1. installs and starts the local stack (scripts/setup.sh, scripts/stack.sh start)
#   2. builds gantry
#   3. makes a real git repository holding the demo app (demo/app) and its manifest
#   4. starts `gantry serve` from environment variables alone (embedded SQLite store)
#   5. commits a change and delivers a push webhook signed exactly as GitHub signs it
#   6. follows the deployment to its verdict and prints the app's history
# Everything lives under .stack/demo and is recreated on each run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
phase() { printf '\n==> [demo] %s\n' "$*"; }

phase "setup and local stack"
scripts/setup.sh
scripts/stack.sh start
# shellcheck source=/dev/null
source .stack/env

phase "build gantry"
cargo build --bin gantry
GANTRY="$ROOT/target/debug/gantry"

DEMO="$ROOT/.stack/demo"
rm -rf "$DEMO"
mkdir -p "$DEMO/manifests"
REPO="$DEMO/repo"

phase "demo repository at $REPO"
cp -R demo/app "$REPO"
git -C "$REPO" init -q -b main
git -C "$REPO" -c user.name="Demo Dev" -c user.email=dev@example.com add -A
git -C "$REPO" -c user.name="Demo Dev" -c user.email=dev@example.com commit -q -m "Initial demo app"
sed "s|__REPO_PATH__|$REPO|" demo/manifests/demo.yaml > "$DEMO/manifests/demo.yaml"
"$GANTRY" validate --manifests "$DEMO/manifests"

PORT="${GANTRY_DEMO_PORT:-18080}"
export GANTRY_LISTEN="127.0.0.1:$PORT"
export GANTRY_DATA_DIR="$DEMO/data"
export GANTRY_MANIFESTS="$DEMO/manifests"
export GANTRY_GITHUB_WEBHOOK_SECRET="demo-webhook-secret"
export GANTRY_API_TOKEN="demo-api-token"
export GANTRY_SERVER="http://127.0.0.1:$PORT"
unset GANTRY_CONFIG

phase "start gantry serve (log: $DEMO/gantry.log)"
"$GANTRY" serve >"$DEMO/gantry.log" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "$GANTRY_SERVER/readyz" >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || { cat "$DEMO/gantry.log"; exit 1; }
  sleep 0.1
done
curl -fsS "$GANTRY_SERVER/readyz"; echo

phase "commit a change and push it (signed webhook)"
echo "Hello from Gantry at $(date -u +%H:%M:%S)" > "$REPO/headline.txt"
git -C "$REPO" -c user.name="Demo Dev" -c user.email=dev@example.com commit -q -am "Change the headline"
SHA=$(git -C "$REPO" rev-parse HEAD)
BODY=$(printf '{"ref":"refs/heads/main","before":"%s","after":"%s","created":false,"deleted":false,"forced":false,"repository":{"full_name":"gantry-demo/portfolio","name":"portfolio"},"pusher":{"name":"demo-dev","email":"dev@example.com"},"sender":{"login":"demo-dev"},"commits":[{"id":"%s","message":"Change the headline","added":[],"removed":[],"modified":["headline.txt"]}],"head_commit":null}' \
  "$(git -C "$REPO" rev-parse HEAD~1)" "$SHA" "$SHA")
SIG="sha256=$(printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$GANTRY_GITHUB_WEBHOOK_SECRET" -r | cut -d' ' -f1)"
DELIVERY="demo-$(date +%s%N)"
RESP=$(curl -sS -w '\n%{http_code}' -X POST "$GANTRY_SERVER/hooks/github" \
  -H "Content-Type: application/json" -H "X-GitHub-Event: push" \
  -H "X-GitHub-Delivery: $DELIVERY" -H "X-Hub-Signature-256: $SIG" --data-binary "$BODY")
echo "$RESP"
[ "$(echo "$RESP" | tail -n1)" = "202" ] || { echo "push was not accepted"; exit 1; }
ID=$(echo "$RESP" | head -n1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["deployments"][0])')

phase "follow deployment #$ID"
"$GANTRY" show "$ID" --wait

phase "history"
"$GANTRY" history demo
"$GANTRY" status

phase "done: the demo deployed commit ${SHA:0:7} end to end"
