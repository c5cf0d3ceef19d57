#!/usr/bin/env bash
# scripts/base-image.sh [--force] — the local base images Gantry's tests and benchmarks build
# on, pushed to the stack's registry (scripts/stack.sh; 127.0.0.1:5056, HTTP, basic auth
# AWS / 123456789012-auth-token). No public registry is reachable here, so they are made
# from files already on the machine:
#
#   127.0.0.1:5056/base/busybox:1
#       `buildah from scratch` plus Debian's busybox-static (/bin/busybox): bin/sh and a few
#       applets (ls cat echo env mkdir rm cp mv ...) as symlinks to busybox, usr/bin/env,
#       /etc/passwd and /etc/group with root, /root, /tmp (1777). Config: ENV
#       PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin, CMD ["sh"],
#       the host's os/arch (linux/amd64 here), OCI manifest. Committed with --timestamp 0 (image created
#       time and every file's mtime) and no buildah version label, so the same busybox always
#       gives the same digest. A Dockerfile `RUN` works on top of it (/bin/sh is busybox).
#       The committed image stays in buildah's local storage under the same name.
#
# Idempotent: an image is skipped when `skopeo inspect docker://...` already finds it in the
# registry; --force rebuilds and pushes it anyway. buildah's working container is always
# removed (also on failure or Ctrl-C). Run by `scripts/stack.sh start` after the registry is
# up; needs scripts/setup.sh (buildah, skopeo, busybox-static).
#
# Environment: STORAGE_DRIVER [vfs], BUILDAH_ISOLATION [chroot] (as in .stack/env);
# GANTRY_BASE_BUSYBOX [/bin/busybox] the static busybox to copy.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

REG_ADDR=127.0.0.1:5056
REG_CREDS=AWS:123456789012-auth-token
BUSYBOX_IMAGE="$REG_ADDR/base/busybox:1"
BUSYBOX=${GANTRY_BASE_BUSYBOX:-/bin/busybox}
# The applets linked into /bin (busybox picks the applet from argv[0]).
APPLETS=(sh ash ls cat echo env printf mkdir rm cp mv ln chmod chown touch true false test \
  '[' sleep id pwd grep sed head tail wc sort uniq tr cut find xargs tar gzip du df ps kill \
  uname hostname date wget)
BASE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKING_CONTAINER=gantry-base-busybox

export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}

log() { printf '[base-image] %s\n' "$*"; }
die() { printf '[base-image] ERROR: %s\n' "$*" >&2; exit 1; }

FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument \`$arg\` (try --help)" ;;
  esac
done

for tool in buildah skopeo curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool missing: run scripts/setup.sh"
done
[ -x "$BUSYBOX" ] || die "$BUSYBOX missing: run scripts/setup.sh (Debian busybox-static)"
"$BUSYBOX" sh -c 'exit 0' 2>/dev/null || die "$BUSYBOX cannot run sh"
if ldd "$BUSYBOX" >/dev/null 2>&1; then
  die "$BUSYBOX is dynamically linked; a scratch image needs a static busybox (busybox-static)"
fi
[ "$(curl -s -o /dev/null -m 5 -u "$REG_CREDS" -w '%{http_code}' "http://$REG_ADDR/v2/" || true)" = 200 ] \
  || die "the registry does not answer at http://$REG_ADDR/v2/ with the stack's credentials (scripts/stack.sh start)"

# Digest of IMAGE in the registry; fails when the registry does not have it.
remote_digest() {
  skopeo inspect --tls-verify=false --creds "$REG_CREDS" --format '{{.Digest}}' "docker://$1" 2>/dev/null
}

# ---------------------------------------------------------------- base/busybox:1
CTR=
MNT=
cleanup() {
  local rc=$?
  if [ -n "$CTR" ]; then
    buildah umount "$CTR" >/dev/null 2>&1 || true
    buildah rm "$CTR" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

build_busybox() {
  local version digest s
  if [ "$FORCE" = 0 ] && digest=$(remote_digest "$BUSYBOX_IMAGE"); then
    log "$BUSYBOX_IMAGE already in the registry ($digest); skipped"
    return 0
  fi
  s=$SECONDS
  # sed reads all of busybox's help (no early close: `head` here made busybox die of SIGPIPE,
  # which pipefail turned into a failed start).
  version=$("$BUSYBOX" 2>&1 | sed -n '1s/^BusyBox \(v[^ ]*\).*/\1/p' || true)
  log "building $BUSYBOX_IMAGE from scratch with $BUSYBOX (BusyBox ${version:-?})"
  # A working container left by an interrupted run has the same name: remove it first.
  buildah rm "$WORKING_CONTAINER" >/dev/null 2>&1 || true
  CTR=$(buildah from --name "$WORKING_CONTAINER" scratch)
  MNT=$(buildah mount "$CTR")

  mkdir -p "$MNT/bin" "$MNT/sbin" "$MNT/usr/bin" "$MNT/usr/sbin" "$MNT/usr/local/bin" \
    "$MNT/etc" "$MNT/root" "$MNT/tmp" "$MNT/proc" "$MNT/sys" "$MNT/dev"
  install -m 0755 "$BUSYBOX" "$MNT/bin/busybox"
  local a
  for a in "${APPLETS[@]}"; do ln -sfn busybox "$MNT/bin/$a"; done
  ln -sfn ../../bin/busybox "$MNT/usr/bin/env" # for `#!/usr/bin/env ...` scripts
  chmod 1777 "$MNT/tmp"
  chmod 0700 "$MNT/root"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$MNT/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$MNT/etc/group"
  chmod 0644 "$MNT/etc/passwd" "$MNT/etc/group"
  buildah umount "$CTR" >/dev/null
  MNT=

  buildah config \
    --env "PATH=$BASE_PATH" \
    --cmd '["sh"]' \
    --workingdir / \
    --created-by "scripts/base-image.sh: scratch + static BusyBox ${version:-?}" \
    "$CTR"
  buildah commit --quiet --timestamp 0 --identity-label=false --rm "$CTR" "$BUSYBOX_IMAGE" >/dev/null
  CTR=

  buildah push --quiet --tls-verify=false --creds "$REG_CREDS" \
    "$BUSYBOX_IMAGE" "docker://$BUSYBOX_IMAGE"
  digest=$(remote_digest "$BUSYBOX_IMAGE") || die "pushed $BUSYBOX_IMAGE, but skopeo inspect does not find it"
  log "pushed $BUSYBOX_IMAGE ($digest) in $((SECONDS - s)) s; also in buildah's local storage"
}

build_busybox
