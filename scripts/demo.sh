#!/usr/bin/env bash
# scripts/demo.sh — the main job, end to end on this machine:
#   1. installs and starts the local stack (scripts/setup.sh, scripts/stack.sh start)
#   2. builds gantry
#   3. makes a real git repository holding the demo app (demo/app), and a bare config
#      repository holding its manifest (apps/demo.yaml), which Gantry fetches itself
#   4. starts `gantry serve` from environment variables alone (embedded SQLite store), its
#      desired state read from the config repository
#   5. commits a change and delivers a push webhook signed exactly as GitHub signs it
#   6. follows the deployment to its verdict: build, the backend image built in-process and
#      pushed to the local registry standing in for ECR (pulled back with skopeo), S3 sync (checked with HEAD requests against
#      moto), CloudFront edge function and invalidation, the backend service rolled on moto ECS;
#      then a second push changes one page: only that page is uploaded and invalidated, the
#      backend image is reused (same digest, only re-tagged) and its service is not touched
#   7. the released digest is written back to the config repository (apps/gantry.lock.yaml),
#      and that commit deploys nothing; changing only a manifest value there (the service's
#      task count) deploys with nothing fetched, built or pushed; an invalid manifest is
#      refused with file:line and the previous revision stays in force
#   8. rolls back to the first deployment (site and service, no rebuild), then resumes
#   9. prints the app's history
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
# Where cargo put it (CARGO_TARGET_DIR honoured).
GANTRY="${CARGO_TARGET_DIR:-$ROOT/target}/debug/gantry"
[ -x "$GANTRY" ] || { echo "no gantry binary at $GANTRY" >&2; exit 1; }

DEMO="$ROOT/.stack/demo"
rm -rf "$DEMO"
mkdir -p "$DEMO"
REPO="$DEMO/repo"
CONFIG="$DEMO/config"          # a working clone of the config repository
CONFIG_BARE="$DEMO/config.git" # the config repository Gantry fetches from

phase "demo repository at $REPO"
cp -R demo/app "$REPO"
git -C "$REPO" init -q -b main
git -C "$REPO" -c user.name="Demo Dev" -c user.email=dev@example.com add -A
git -C "$REPO" -c user.name="Demo Dev" -c user.email=dev@example.com commit -q -m "Initial demo app"
MOTO="$GANTRY_TEST_MOTO_URL"
AWS=(.stack/venv/bin/aws --endpoint-url "$MOTO")
BUCKET="gantry-demo-$(date +%s)"
"${AWS[@]}" s3api create-bucket --bucket "$BUCKET" >/dev/null
DIST=$("${AWS[@]}" cloudfront create-distribution --origin-domain-name "$BUCKET.s3.amazonaws.com" \
  --query Distribution.Id --output text)
echo "bucket $BUCKET, CloudFront distribution $DIST (moto at $MOTO)"
# The task definition's execution role: every deployment first verifies that what the
# manifests name exists (`gantry verify demo` runs the same checks by hand).
"${AWS[@]}" iam create-role --role-name ecsTaskExecutionRole \
  --assume-role-policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}' \
  >/dev/null 2>&1 || true
CLUSTER="gantry-demo-$(date +%s)"
"${AWS[@]}" ecs create-cluster --cluster-name "$CLUSTER" >/dev/null
SUBNET=$("${AWS[@]}" ec2 describe-subnets --query 'Subnets[0].SubnetId' --output text)
echo "ECS cluster $CLUSTER, subnet $SUBNET"
phase "config repository at $CONFIG_BARE (apps/demo.yaml)"
git init -q --bare -b main "$CONFIG_BARE"
git init -q -b main "$CONFIG"
git -C "$CONFIG" remote add origin "$CONFIG_BARE"
mkdir -p "$CONFIG/apps"
sed -e "s|__REPO_PATH__|$REPO|" -e "s|__BUCKET__|$BUCKET|" -e "s|__DISTRIBUTION__|$DIST|" \
  -e "s|__CLUSTER__|$CLUSTER|" -e "s|__SUBNET__|$SUBNET|" \
  demo/manifests/demo.yaml > "$CONFIG/apps/demo.yaml"
# The API key the task gets as an ECS secret: its ARN (with Secrets Manager's random suffix)
# goes into the task definition. Its value is never read by Gantry.
SECRET_ARN=$("${AWS[@]}" secretsmanager describe-secret --secret-id demo/openai --query ARN --output text 2>/dev/null \
  || "${AWS[@]}" secretsmanager create-secret --name demo/openai --secret-string "demo-key" --query ARN --output text)
sed -e "s|__SECRET_ARN__|$SECRET_ARN|" demo/manifests/api-task.json > "$CONFIG/apps/api-task.json"
"$GANTRY" validate --manifests "$CONFIG/apps"
config_push() {
  git -C "$CONFIG" -c user.name="Demo Ops" -c user.email=ops@example.com add -A
  git -C "$CONFIG" -c user.name="Demo Ops" -c user.email=ops@example.com commit -q -m "$1"
  # Gantry commits to this branch too (write-back): build on what it wrote.
  if git -C "$CONFIG" ls-remote --exit-code origin refs/heads/main >/dev/null 2>&1; then
    git -C "$CONFIG" -c user.name="Demo Ops" -c user.email=ops@example.com pull -q --rebase origin main
  fi
  git -C "$CONFIG" push -q origin main
  git -C "$CONFIG" rev-parse HEAD
}
config_push "demo: first manifest" >/dev/null

PORT="${GANTRY_DEMO_PORT:-18080}"
export GANTRY_LISTEN="127.0.0.1:$PORT"
export GANTRY_DATA_DIR="$DEMO/data"
# Desired state from git: the config repository's apps/ directory (no local manifests).
export GANTRY_SOURCE_REPO=gantry-demo/deploy
export GANTRY_SOURCE_URL="$CONFIG_BARE"
export GANTRY_SOURCE_PATH=apps
unset GANTRY_MANIFESTS
# The demo delivers its pushes as webhooks; polling (the fallback for a webhook that never
# came, every 60 s by default) would deploy the repository's first commit on its own.
export GANTRY_POLL_INTERVAL=off
export GANTRY_GITHUB_WEBHOOK_SECRET="demo-webhook-secret"
export GANTRY_API_TOKEN="demo-api-token"
export GANTRY_SERVER="http://127.0.0.1:$PORT"
export GANTRY_AWS_ENDPOINT_URL="$MOTO"
# The ECR registry of the demo's images is served by the local docker-registry.
export GANTRY_REGISTRY_ENDPOINTS="123456789012.dkr.ecr.us-east-1.amazonaws.com=http://$GANTRY_TEST_REGISTRY"
# moto's ECS finishes a rollout in a few polls: poll it faster than real ECS needs.
export GANTRY_ECS_POLL=300ms
unset GANTRY_CONFIG

# Discord is not reachable here: a local stand-in records what Gantry sends it.
DISCORD_PORT="${GANTRY_DEMO_DISCORD_PORT:-18081}"
DISCORD_LOG="$DEMO/discord.jsonl"
python3 demo/fake_discord.py "$DISCORD_PORT" "$DISCORD_LOG" &
DISCORD_PID=$!
export GANTRY_DISCORD_API_URL="http://127.0.0.1:$DISCORD_PORT"
export GANTRY_DISCORD_BOT_TOKEN="demo-bot-token"

phase "start gantry serve (log: $DEMO/gantry.log)"
"$GANTRY" serve >"$DEMO/gantry.log" 2>&1 &
PID=$!
# On exit: stop the daemons and remove what the demo made in moto (the bucket, the service and
# its cluster; moto's CloudFront distributions cannot be deleted while enabled).
cleanup() {
  kill "$PID" "$DISCORD_PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  "${AWS[@]}" s3 rb "s3://$BUCKET" --force >/dev/null 2>&1 || true
  "${AWS[@]}" ecs delete-service --cluster "$CLUSTER" --service demo-api --force >/dev/null 2>&1 || true
  "${AWS[@]}" ecs delete-cluster --cluster "$CLUSTER" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS "$GANTRY_SERVER/readyz" >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || { cat "$DEMO/gantry.log"; exit 1; }
  sleep 0.1
done
curl -fsS "$GANTRY_SERVER/readyz"; echo

# Delivers a push webhook for REPO at SHA (signed exactly as GitHub signs it); prints the
# response body, and fails unless the answer is STATUS.
hook() {
  local repo=$1 sha=$2 status=$3 body sig delivery resp
  body=$(printf '{"ref":"refs/heads/main","after":"%s","created":false,"deleted":false,"forced":false,"repository":{"full_name":"%s","name":"%s"},"pusher":{"name":"demo-dev","email":"dev@example.com"},"sender":{"login":"demo-dev"},"commits":[{"id":"%s","added":[],"removed":[],"modified":[]}],"head_commit":null}' \
    "$sha" "$repo" "${repo#*/}" "$sha")
  sig="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$GANTRY_GITHUB_WEBHOOK_SECRET" -r | cut -d' ' -f1)"
  delivery="demo-$(date +%s%N)"
  resp=$(curl -sS -w '\n%{http_code}' -X POST "$GANTRY_SERVER/hooks/github" \
    -H "Content-Type: application/json" -H "X-GitHub-Event: push" \
    -H "X-GitHub-Delivery: $delivery" -H "X-Hub-Signature-256: $sig" --data-binary "$body")
  echo "webhook for $repo answered: $(echo "$resp" | tr '\n' ' ')" >&2
  [ "$(echo "$resp" | tail -n1)" = "$status" ] || { echo "expected $status" >&2; exit 1; }
  echo "$resp" | head -n1
}

# Commits the change made to the demo repository and delivers its push webhook; prints the id
# of the deployment it queued.
push() {
  git -C "$REPO" -c user.name="Demo Dev" -c user.email=dev@example.com commit -q -am "$1"
  hook gantry-demo/portfolio "$(git -C "$REPO" rev-parse HEAD)" 202 \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["deployments"][0])'
}

# The newest deployment of the demo app: "ID TRIGGER STATE".
newest() {
  curl -fsS -H "Authorization: Bearer $GANTRY_API_TOKEN" "$GANTRY_SERVER/api/v1/deployments?app=demo&limit=1" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin)[0]; print(d["id"], d["trigger"], d["state"])'
}

# Waits until the newest deployment is not ID; prints its id.
next_after() {
  local id
  for _ in $(seq 1 300); do
    id=$(newest | cut -d' ' -f1)
    [ "$id" != "$1" ] && { echo "$id"; return; }
    sleep 0.1
  done
  echo "no deployment followed #$1" >&2; exit 1
}

# HEAD requests (signed, through the AWS CLI) against moto's S3 for the synced site.
check_site() {
  for key in index.html about.html assets/site.css assets/app.js; do
    printf '  HEAD s3://%s/%-18s ' "$BUCKET" "$key"
    "${AWS[@]}" s3api head-object --bucket "$BUCKET" --key "$key" \
      --query '[ContentType, CacheControl, ContentLength]' --output text
  done
}

phase "commit a change and push it (signed webhook)"
echo "Hello from Gantry at $(date -u +%H:%M:%S)" > "$REPO/headline.txt"
ID=$(push "Change the headline")

phase "follow deployment #$ID"
"$GANTRY" show "$ID" --wait

phase "the site in S3 (moto), checked with HEAD requests"
check_site
INDEX=$("${AWS[@]}" s3 cp "s3://$BUCKET/index.html" -)
grep -q "Hello from Gantry" <<<"$INDEX" || { echo "index.html does not hold the new headline"; exit 1; }

phase "the backend image, pulled back from the registry with skopeo"
IMAGE=$(curl -fsS -H "Authorization: Bearer $GANTRY_API_TOKEN" "$GANTRY_SERVER/api/v1/releases?app=demo" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["images"]["api"])')
echo "release records $IMAGE"
skopeo inspect --config --tls-verify=false --creds AWS:123456789012-auth-token \
  "docker://$GANTRY_TEST_REGISTRY/gantry-demo/api@${IMAGE#*@}" \
  | python3 -c 'import json,sys; c=json.load(sys.stdin)["config"]; print("  entrypoint", c["Entrypoint"], "workdir", c["WorkingDir"]); [print("  label", k, "=", v) for k, v in sorted(c["Labels"].items())]'
"${AWS[@]}" ecs describe-task-definition --task-definition gantry-demo-api \
  --query 'taskDefinition.containerDefinitions[0].image' --output text | sed 's/^/  task definition runs /'

phase "write-back: the released digest, committed to the config repository by Gantry"
for _ in $(seq 1 100); do
  git -C "$CONFIG_BARE" cat-file -e main:apps/gantry.lock.yaml 2>/dev/null && break
  sleep 0.1
done
git -C "$CONFIG_BARE" log -1 --format='  %an: %s%n%n%b' main
git -C "$CONFIG_BARE" show main:apps/gantry.lock.yaml | sed 's/^/  /'
hook gantry-demo/deploy "$(git -C "$CONFIG_BARE" rev-parse main)" 200 >/dev/null
sleep 1
[ "$(newest | cut -d' ' -f1)" = "$ID" ] || { echo "the write-back commit started a deployment" >&2; exit 1; }
echo "  its push deployed nothing"

phase "change one page: only that page is uploaded and invalidated; nothing is built or rolled"
echo "Second headline at $(date -u +%H:%M:%S)" > "$REPO/headline.txt"
ID2=$(push "Change the headline again")
SHOW2=$("$GANTRY" show "$ID2" --wait)
echo "$SHOW2" | grep -E "deployment #|publish_images|roll_services|sync_sites|inputs unchanged|service unchanged|invalidation|uploaded" || true
echo "$SHOW2" | grep -q "inputs unchanged since" || { echo "the unchanged image was rebuilt" >&2; exit 1; }
echo "$SHOW2" | grep -q "service unchanged" || { echo "the unchanged service was rolled" >&2; exit 1; }
check_site

phase "change only a manifest value in the config repository: 2 -> 3 tasks; nothing is built"
sed -i 's/desiredCount: 2/desiredCount: 3/' "$CONFIG/apps/demo.yaml"
CFG=$(config_push "demo: three API tasks")
hook gantry-demo/deploy "$CFG" 202 >/dev/null
ID3=$(next_after "$ID2")
SHOW3=$("$GANTRY" show "$ID3" --wait)
echo "$SHOW3" | grep -E "deployment #|manifests:|roll_services|sync_sites|fetch_source|build" || true
echo "$SHOW3" | grep -q "manifests: gantry-demo/deploy@${CFG:0:7}" || { echo "the deployment does not name its manifest revision" >&2; exit 1; }
curl -fsS -H "Authorization: Bearer $GANTRY_API_TOKEN" "$GANTRY_SERVER/api/v1/deployments/$ID3" | python3 -c '
import json, sys
d = json.load(sys.stdin)
kinds = [s["kind"] for s in d["steps"]]
print("  steps:", " -> ".join(kinds), "| trigger:", d["trigger"], "| runs the images of #%s" % d["images_from"])
assert not {"fetch_source", "build", "publish_images"} & set(kinds), "a manifest-only change built something"
assert d["state"] == "succeeded", d["state"]
'
"${AWS[@]}" ecs describe-services --cluster "$CLUSTER" --services demo-api \
  --query 'services[0].desiredCount' --output text | sed 's/^/  demo-api desired count now /'

phase "an invalid manifest is refused with file:line; the previous revision stays in force"
sed -i 's/desiredCount: 3/desiredCount: many/' "$CONFIG/apps/demo.yaml"
BAD=$(config_push "demo: broken")
hook gantry-demo/deploy "$BAD" 202 >/dev/null
ID4=$(next_after "$ID3")
"$GANTRY" show "$ID4" || true
git -C "$CONFIG" -c user.name="Demo Ops" -c user.email=ops@example.com revert --no-edit HEAD >/dev/null
git -C "$CONFIG" -c user.name="Demo Ops" -c user.email=ops@example.com pull -q --rebase origin main
git -C "$CONFIG" push -q origin main
hook gantry-demo/deploy "$(git -C "$CONFIG" rev-parse HEAD)" 202 >/dev/null
sleep 1
[ "$(newest | cut -d' ' -f1)" = "$ID4" ] || { echo "reverting to the manifests in force deployed something" >&2; exit 1; }
echo "  reverted: the manifests in force again, nothing to deploy"

phase "the backend on ECS (moto)"
"${AWS[@]}" ecs describe-services --cluster "$CLUSTER" --services demo-api \
  --query 'services[0].{taskDefinition: taskDefinition, running: runningCount, deployments: deployments[].[status, rolloutState]}'

phase "roll back to the first deployment (no rebuild), which pauses automatic deploys"
"$GANTRY" rollback demo --to "$ID" --wait | grep -E "rollback|paused|roll_services|sync_sites|deployment #"
"$GANTRY" status
"${AWS[@]}" s3 cp "s3://$BUCKET/index.html" - | grep -o "Hello from Gantry[^<]*"
"$GANTRY" resume demo

phase "Discord: one message per deployment, created once, then edited in place"
python3 - "$DISCORD_LOG" <<'PY'
import json, sys
seen = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    title = (r["body"].get("embeds") or [{}])[0].get("title", "")
    key = "new message" if r["method"] == "POST" else "edit " + r["path"].rsplit("/", 1)[-1]
    print(f"  {r['method']:<5} {key:<28} {title}")
PY

phase "history"
"$GANTRY" history demo

phase "done: two code pushes and a manifest change deployed end to end (deployments #$ID, #$ID2, #$ID3)"
