#!/usr/bin/env bash
# fresh-debian12.sh - checks the README's two-command promise on a bare Debian 12.
#
# Builds (once, cached) a minbase debootstrap of Debian 12 "bookworm" with git and
# ca-certificates and nothing else, copies it into a throw-away root for each run,
# puts the project in it as a newcomer gets it (git clone), and runs, as root in a
# chroot with the soft `ulimit -n 1024` a login shell or systemd service gets:
#   1. PORT=<free port> ./run-demo.sh   until http://127.0.0.1:PORT/ serves the player
#      and /status reports the stream (its init segment); then it is stopped;
#   2. ./run-tests.sh                   whose last line must be "N passed, 0 failed".
# Everything the project needs is installed by its own scripts (scripts/deps.sh with
# apt-get), from Debian's mirror and the npm registry: Node.js is Debian 12's own (v18),
# which the script checks. Runs as root on a Debian/Ubuntu host with debootstrap.
#
# Usage: scripts/fresh-debian12.sh [options]
#   --ref REF        test commit/branch/tag REF of this repository (default: HEAD)
#   --worktree       test the current work tree instead, uncommitted changes included
#                    (tracked and untracked-not-ignored files; never build/ or node_modules/)
#   --demo-only      only step 1          --tests-only   only step 2   (default: both)
#   --keep           keep the throw-away root (default: removed at the end)
#   --rebuild-base   make the cached base anew with debootstrap
#   --no-apt-cache   do not share downloaded .debs between runs (see below)
#   --npm-cache      share ~/.npm between runs too (default: each run downloads its packages)
#   --no-host-ca     do not copy the host's own CA certificates (see below)
#   --demo-timeout S seconds for the demo to serve (default 900)
#   --tests-timeout S seconds for run-tests.sh (default 5400)
#   -h, --help
# Environment: FRESH_ROOT_DIR (default /var/tmp/fmp4ws-roots) holds base/ (the cached
#   debootstrap), cache/ (apt archives, npm) and runs/<id>/ (root/ and the logs: run.log,
#   demo.log, tests.log, timeline.log, summary.txt); FRESH_MIRROR (default
#   http://deb.debian.org/debian).
#
# The throw-away root gets what a Debian 12 install has and debootstrap does not write:
# sources.list with bookworm, bookworm-updates and bookworm-security, /etc/hosts and a
# hostname. Besides that: /etc/resolv.conf from the host, usr/sbin/policy-rc.d (exit 101:
# apt never starts services, e.g. nginx, which would run in the host's network namespace)
# and, unless --no-apt-cache, an apt.conf.d file keeping downloaded packages with
# $FRESH_ROOT_DIR/cache/apt-archives bind-mounted on /var/cache/apt/archives (apt-get
# still installs every package; only the download is saved).
# The host's locally added CA certificates (/usr/local/share/ca-certificates/*.crt, e.g. a
# company's or a sandbox's TLS-intercepting proxy) are added to the root's store with
# update-ca-certificates, as on a user's machine behind that proxy; without them npm fails
# with SELF_SIGNED_CERT_IN_CHAIN there. --no-host-ca leaves the root with Debian's CAs only.
# Mounts (proc, sys, dev, dev/pts, a 1 GiB tmpfs on dev/shm for Chromium, caches) are
# made private, removed on exit (also on errors and Ctrl-C) after every process whose
# root is in the chroot is killed, and checked with findmnt. The network namespace is
# the host's: the demo port is picked free, the tests pick their own ports.
#
# Exit status: 0 when every requested step passed; nonzero with a message otherwise
# (no root/debootstrap/chroot, demo not serving in time, tests not "N passed, 0 failed",
# Node.js in the root not Debian's v18, mounts or processes left behind).
set -Eeuo pipefail

SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=${FRESH_ROOT_DIR:-/var/tmp/fmp4ws-roots}
MIRROR=${FRESH_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
REF=HEAD
MODE_WORKTREE=0 DO_DEMO=1 DO_TESTS=1 KEEP=0 REBUILD_BASE=0 APT_CACHE=1 NPM_CACHE=0 HOST_CA=1
DEMO_TIMEOUT=900 TESTS_TIMEOUT=5400
PROJECT_IN_ROOT=/root/gst-fmp4ws   # where a newcomer (root) would clone it

die() { echo "fresh-debian12: ERROR: $*" >&2; exit 1; }
log() { echo "[fresh $(date +%H:%M:%S) +$((SECONDS - T0))s] $*"; }
usage() { sed -n '2,/^set -Eeuo/{/^set -Eeuo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

while [ $# -gt 0 ]; do
  case $1 in
    --ref) [ $# -ge 2 ] || die "--ref needs a value"; REF=$2; shift ;;
    --ref=*) REF=${1#--ref=} ;;
    --worktree) MODE_WORKTREE=1 ;;
    --demo-only) DO_DEMO=1 DO_TESTS=0 ;;
    --tests-only) DO_DEMO=0 DO_TESTS=1 ;;
    --keep) KEEP=1 ;;
    --rebuild-base) REBUILD_BASE=1 ;;
    --no-apt-cache) APT_CACHE=0 ;;
    --npm-cache) NPM_CACHE=1 ;;
    --no-host-ca) HOST_CA=0 ;;
    --demo-timeout) [ $# -ge 2 ] || die "--demo-timeout needs a value"; DEMO_TIMEOUT=$2; shift ;;
    --tests-timeout) [ $# -ge 2 ] || die "--tests-timeout needs a value"; TESTS_TIMEOUT=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done
[ "$MODE_WORKTREE" = 1 ] && [ "$REF" != HEAD ] && die "--ref and --worktree exclude each other"
[[ $DEMO_TIMEOUT =~ ^[0-9]+$ && $TESTS_TIMEOUT =~ ^[0-9]+$ ]] || die "timeouts are whole seconds"

T0=$SECONDS
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, mount, chroot)"
for c in chroot mount umount findmnt flock curl git tar setsid timeout; do
  command -v "$c" >/dev/null || die "'$c' is needed on the host"
done
REPO=$(git -C "$SELF_DIR" rev-parse --show-toplevel 2>/dev/null) || die "$SELF_DIR is not in a git repository"

BASE=$ROOT_DIR/base
RUN_ID=$(date +%Y%m%d-%H%M%S)-$$
RUN=$ROOT_DIR/runs/$RUN_ID
R=$RUN/root
mkdir -p "$ROOT_DIR/runs" "$RUN"
exec > >(trap '' INT TERM; exec tee -a "$RUN/run.log") 2>&1
TIMELINE=$RUN/timeline.log
MOUNTED=()          # mount points inside $R, in mount order
DEMO_PGID=
RESULT=FAILED       # set to PASSED at the very end
declare -A SUMMARY=()

# ---------------------------------------------------------------- cleanup
root_pids() {  # processes whose root directory is $R or below
  local p link
  for p in /proc/[0-9]*; do
    link=$(readlink "$p/root" 2>/dev/null) || continue
    if [ "$link" = "$R" ] || [[ $link == "$R"/* ]]; then echo "${p#/proc/}"; fi
  done
}

kill_root_procs() {
  local pids i
  pids=$(root_pids)
  [ -z "$pids" ] && return 0
  log "killing processes left in the root: $(for p in $pids; do printf '%s(%s) ' "$p" "$(cat /proc/$p/comm 2>/dev/null)"; done)"
  kill -TERM $pids 2>/dev/null || true
  for i in $(seq 50); do
    pids=$(root_pids); [ -z "$pids" ] && return 0; sleep 0.1
  done
  kill -KILL $pids 2>/dev/null || true
  for i in $(seq 50); do
    pids=$(root_pids); [ -z "$pids" ] && return 0; sleep 0.1
  done
  echo "fresh-debian12: ERROR: processes still running in the root: $pids" >&2
  return 1
}

unmount_all() {
  local i m ok=0
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
    m=${MOUNTED[i]}
    findmnt -rn --mountpoint "$m" >/dev/null || continue
    umount "$m" 2>/dev/null || { sleep 1; kill_root_procs || true; umount "$m"; } || {
      echo "fresh-debian12: ERROR: cannot unmount $m" >&2; ok=1; }
  done
  MOUNTED=()
  return $ok
}

cleanup() {
  local rc=$? left
  trap - EXIT INT TERM
  trap '' PIPE
  set +e
  [ -n "$DEMO_PGID" ] && kill -TERM -- "-$DEMO_PGID" 2>/dev/null
  [ -n "${WATCH_PID:-}" ] && kill "$WATCH_PID" 2>/dev/null && wait "$WATCH_PID" 2>/dev/null
  if [ -d "$R" ]; then
    kill_root_procs || rc=1
    unmount_all || rc=1
    left=$(findmnt -rn -o TARGET | grep -F "$R" || true)
    if [ -n "$left" ]; then
      echo "fresh-debian12: ERROR: mounts left behind (root not removed):" >&2
      echo "$left" >&2
      rc=1
    elif [ -n "$(root_pids)" ]; then
      echo "fresh-debian12: ERROR: processes left in the root (root not removed): $(root_pids)" >&2
      rc=1
    elif [ "$KEEP" = 1 ]; then
      log "root kept: $R  (chroot $R /bin/bash -l; remove with rm -rf --one-file-system $R)"
    else
      log "removing the throw-away root"
      rm -rf --one-file-system "$R" || rc=1
    fi
  fi
  [ "$rc" -ne 0 ] && [ "$RESULT" = PASSED ] && RESULT=FAILED
  print_summary "$rc"
  exit "$rc"
}

print_summary() {
  local k
  SUMMARY[max_fds]=$(grep ' maxfd ' "$TIMELINE" 2>/dev/null | tail -n1 |
    awk '{print $3" fds in one process ("$4"), sampled once a second"}' || true)
  {
    echo
    echo "================ fresh-debian12 summary ($RUN_ID) ================"
    for k in source shared base copy host_ca node nodejs_pkg ulimit_demo ulimit_tests demo_deps demo_build \
             demo_serve demo_total demo tests_deps_build tests_meson tests_crosscheck \
             tests_server tests_e2e tests_total tests_result tests max_fds; do
      [ -n "${SUMMARY[$k]:-}" ] && printf '%-18s %s\n' "$k" "${SUMMARY[$k]}"
    done
    printf '%-18s %s\n' total "$((SECONDS - T0)) s"
    printf '%-18s %s\n' logs "$RUN"
    printf '%-18s %s (exit %s)\n' result "$RESULT" "$1"
  } | tee "$RUN/summary.txt"
}

trap cleanup EXIT
trap 'echo "fresh-debian12: interrupted" >&2; exit 130' INT
trap 'echo "fresh-debian12: terminated" >&2; exit 143' TERM

# ---------------------------------------------------------------- base
base_ok() {  # a finished debootstrap of bookworm (debootstrap removes /debootstrap when done)
  [ -x "$BASE/usr/bin/git" ] && [ -f "$BASE/var/lib/dpkg/status" ] && [ ! -e "$BASE/debootstrap" ] &&
    grep -q '^12\.' "$BASE/etc/debian_version" 2>/dev/null
}

exec 9>"$ROOT_DIR/.base.lock"
flock 9   # one base creation at a time; runs copy under the same lock
if [ "$REBUILD_BASE" = 1 ] || ! base_ok; then
  command -v debootstrap >/dev/null || die "no usable base at $BASE and no debootstrap (apt-get install debootstrap)"
  [ -e "$BASE" ] && [ "$REBUILD_BASE" = 0 ] && log "base at $BASE is incomplete: making it anew"
  t=$SECONDS
  rm -rf --one-file-system "$BASE.new"
  log "debootstrap --variant=minbase --include=git,ca-certificates $SUITE $BASE.new $MIRROR (log: $ROOT_DIR/debootstrap.log)"
  if debootstrap --variant=minbase --include=git,ca-certificates "$SUITE" "$BASE.new" "$MIRROR" \
       >"$ROOT_DIR/debootstrap.log" 2>&1; then
    echo "done 0" >>"$ROOT_DIR/debootstrap.log"
  else
    rc=$?; echo "done $rc" >>"$ROOT_DIR/debootstrap.log"; tail -20 "$ROOT_DIR/debootstrap.log" >&2
    die "debootstrap failed ($rc), see $ROOT_DIR/debootstrap.log"
  fi
  [ -n "$(findmnt -rn -o TARGET | grep -F "$BASE/" || true)" ] && die "mounts inside $BASE, not replacing it"
  [ -e "$BASE" ] && mv "$BASE" "$BASE.old"
  mv "$BASE.new" "$BASE"
  rm -rf --one-file-system "$BASE.old"
  base_ok || die "the new base at $BASE does not look like a finished bookworm debootstrap"
  SUMMARY[base]="made in $((SECONDS - t)) s"
else
  SUMMARY[base]="cached ($BASE, debian_version $(cat "$BASE/etc/debian_version"))"
fi
log "base: ${SUMMARY[base]}"

# cp -a and a tarball of the base measured the same here (1.6 s vs 1.3 s for 340 MiB);
# cp -a needs no second copy of the base.
t=$SECONDS
cp -a "$BASE" "$R"
flock -u 9
SUMMARY[copy]="$((SECONDS - t)) s (cp -a, $(du -sh "$R" | cut -f1))"
log "throw-away root: $R (${SUMMARY[copy]})"
chroot "$R" /bin/true || die "cannot chroot into $R"

# ---------------------------------------------------------------- what an install has
cat >"$R/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
deb $MIRROR $SUITE-updates main
EOF
echo fresh-debian12 >"$R/etc/hostname"
cat >"$R/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	fresh-debian12

# The following lines are desirable for IPv6 capable hosts
::1     localhost ip6-localhost ip6-loopback
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
EOF
cp -L /etc/resolv.conf "$R/etc/resolv.conf"
if [ "$HOST_CA" = 1 ] && compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$R/usr/local/share/ca-certificates/"
  chroot "$R" update-ca-certificates >/dev/null || die "update-ca-certificates failed in the root"
  SUMMARY[host_ca]=$(cd /usr/local/share/ca-certificates && echo *.crt)
  log "host CA certificates added to the root's store: ${SUMMARY[host_ca]} (--no-host-ca: none)"
fi
printf '#!/bin/sh\n# fresh-debian12.sh: never start services in the chroot\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
chmod 755 "$R/usr/sbin/policy-rc.d"

# ---------------------------------------------------------------- mounts
mnt() {  # mnt TARGET mount-args... ; records the mount and makes it private
  local target=$1; shift
  mkdir -p "$target"
  mount "$@" "$target" || die "mount $* $target failed"
  MOUNTED+=("$target")
  mount --make-private "$target"
}
mnt "$R/proc" -t proc proc
mnt "$R/sys" -t sysfs sysfs
mnt "$R/dev" --bind /dev
mnt "$R/dev/pts" --bind /dev/pts
mnt "$R/dev/shm" -t tmpfs -o size=1G,mode=1777,nosuid,nodev shm
if [ "$APT_CACHE" = 1 ]; then
  mkdir -p "$ROOT_DIR/cache/apt-archives/partial"
  mnt "$R/var/cache/apt/archives" --bind "$ROOT_DIR/cache/apt-archives"
  printf 'APT::Keep-Downloaded-Packages "true";\nBinary::apt::APT::Keep-Downloaded-Packages "true";\n' \
    >"$R/etc/apt/apt.conf.d/99fresh-debian12-keep-debs"
fi
if [ "$NPM_CACHE" = 1 ]; then
  mkdir -p "$ROOT_DIR/cache/npm"
  mnt "$R/root/.npm" --bind "$ROOT_DIR/cache/npm"
fi

# ---------------------------------------------------------------- the project
t=$SECONDS
COMMIT=$(git -C "$REPO" rev-parse --verify "$REF^{commit}") || die "no commit $REF in $REPO"
# git clone --no-local: a real clone (objects copied through upload-pack, no hard links).
git clone -q --no-local --no-checkout "$REPO" "$R$PROJECT_IN_ROOT" || die "git clone of $REPO failed"
if ! git -C "$R$PROJECT_IN_ROOT" cat-file -e "$COMMIT^{commit}" 2>/dev/null; then
  # not reachable from a branch or tag (e.g. a detached HEAD): fetch it by name
  git -C "$R$PROJECT_IN_ROOT" -c protocol.version=2 fetch -q origin "$COMMIT" ||
    die "$COMMIT is not reachable from a branch or tag of $REPO and cannot be fetched"
fi
git -C "$R$PROJECT_IN_ROOT" checkout -q --detach "$COMMIT"
SUMMARY[source]="git clone of $REPO at $(git -C "$REPO" log -1 --format='%h %s' "$COMMIT" | cut -c1-70)"
if [ "$MODE_WORKTREE" = 1 ]; then
  # the work tree over the clone: changed, added (untracked, not ignored) and deleted files
  git -C "$REPO" ls-files -z --deleted | (cd "$R$PROJECT_IN_ROOT" && xargs -0r rm -f --)
  git -C "$REPO" ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do
      case "/$f" in */node_modules/*|/build*/*) continue ;; esac
      if [ -e "$REPO/$f" ] || [ -L "$REPO/$f" ]; then printf '%s\0' "$f"; fi
    done | tar -C "$REPO" --null -T - -cf - | tar -C "$R$PROJECT_IN_ROOT" -xf -
  n=$(git -C "$R$PROJECT_IN_ROOT" status --porcelain | wc -l)
  SUMMARY[source]="work tree of $REPO over ${COMMIT:0:7} ($n changed paths)"
fi
# ../shared beside the clone, as CI lays it: tests/realworld reads its real-world files
# (a missing one fails that suite loudly, it is not skipped)
SHARED_DIR=${FMP4WS_SHARED:-$(dirname "$(realpath "$REPO")")/shared}
if [ -d "$SHARED_DIR" ]; then
  rm -rf "$R$(dirname "$PROJECT_IN_ROOT")/shared"
  cp -aL "$SHARED_DIR" "$R$(dirname "$PROJECT_IN_ROOT")/shared" || die "cannot copy $SHARED_DIR into the root"
  SUMMARY[shared]="$SHARED_DIR copied beside the clone ($(du -shL "$SHARED_DIR" | cut -f1))"
else
  SUMMARY[shared]="none: no $SHARED_DIR beside the project (tests/realworld fails, loudly)"
fi
log "../shared: ${SUMMARY[shared]}"
for d in build node_modules tests/e2e/node_modules tests/server/node_modules tests/crosscheck/node_modules tests/realworld/node_modules; do
  [ -e "$R$PROJECT_IN_ROOT/$d" ] && die "$d/ ended up in the root's copy of the project"
done
log "project: ${SUMMARY[source]} -> $PROJECT_IN_ROOT ($((SECONDS - t)) s)"

# ---------------------------------------------------------------- running in the root
in_root() {  # in_root CMD: bash -l in the chroot, clean environment, as a newcomer's root shell
  chroot "$R" /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash \
    TERM="${TERM:-dumb}" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -lc "$1"
}
PRELUDE="ulimit -Sn 1024 && cd $PROJECT_IN_ROOT && echo \"[fresh] in the root: ulimit -n \$(ulimit -Sn) (hard \$(ulimit -Hn)), node: \$(command -v node || echo none)\""

# Watcher: once a second, which programs run in the root (first/last seen) and the most
# file descriptors one process held (the soft limit is 1024).
watch_root() {
  declare -A first=() last=()
  local maxfd=0 maxcomm= p link c n now
  while :; do
    now=$((SECONDS - T0))
    for p in /proc/[0-9]*; do
      link=$(readlink "$p/root" 2>/dev/null) || continue
      [[ $link == "$R" || $link == "$R"/* ]] || continue
      c=$(cat "$p/comm" 2>/dev/null) || continue
      case $c in apt-get|dpkg|meson|ninja|npm|node|chromium|gst-launch-1.0|ffmpeg|nginx|fmp4ws-server|cc1plus|test_*)
        [ -z "${first[$c]:-}" ] && { first[$c]=$now; echo "+${now}s first $c" >>"$TIMELINE"; }
        last[$c]=$now ;;
      esac
      n=$(ls "$p/fd" 2>/dev/null | wc -l)
      if [ "$n" -gt "$maxfd" ]; then maxfd=$n; maxcomm=$c; echo "+${now}s maxfd $n $c" >>"$TIMELINE"; fi
    done
    sleep 1
  done
}
watch_root & WATCH_PID=$!

stamp() {  # stamp RAWLOG: raw lines to RAWLOG, time-stamped to the terminal
  local l
  while IFS= read -r l || [ -n "$l" ]; do
    printf '%s\n' "$l" >>"$1"
    printf '  [+%ds] %s\n' "$((SECONDS - T0))" "$l"
  done
}

# ---------------------------------------------------------------- 1. the demo
demo_fail() {
  echo "---- last lines of $RUN/demo.log:" >&2; tail -30 "$RUN/demo.log" >&2
  SUMMARY[demo]="FAILED: $*"
  die "demo: $*"
}
if [ "$DO_DEMO" = 1 ]; then
  PORT=
  for i in $(seq 200); do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    PORT=$p; break
  done
  [ -n "$PORT" ] || die "no free port found"
  log "1. PORT=$PORT ./run-demo.sh (timeout ${DEMO_TIMEOUT}s; log $RUN/demo.log)"
  echo "+$((SECONDS - T0))s demo start" >>"$TIMELINE"
  t=$SECONDS
  : >"$RUN/demo.log"
  setsid bash -c "$(declare -f in_root); R='$R'; in_root '$PRELUDE && PORT=$PORT exec ./run-demo.sh'" \
    >>"$RUN/demo.log" 2>&1 </dev/null &
  DEMO_PGID=$!
  t_build= t_page= t_stream= last_line=
  while :; do
    el=$((SECONDS - t))
    [ -z "$t_build" ] && [ -d "$R$PROJECT_IN_ROOT/build" ] && { t_build=$el; log "demo: build/ appears (packages installed) after ${el}s"; }
    if [ -z "$t_page" ] && curl -fsS -m 5 "http://127.0.0.1:$PORT/" 2>/dev/null | grep -q '<fmp4-player'; then
      t_page=$el; log "demo: player page served after ${el}s"
    fi
    if [ -n "$t_page" ] && status=$(curl -fsS -m 5 "http://127.0.0.1:$PORT/status" 2>/dev/null) &&
       [[ $status == *'"stream":{'* ]]; then
      t_stream=$el; log "demo: /status reports the stream after ${el}s: $(echo "$status" | cut -c1-200)"
      break
    fi
    kill -0 "$DEMO_PGID" 2>/dev/null || { rc=0; wait "$DEMO_PGID" || rc=$?; DEMO_PGID=; demo_fail "run-demo.sh exited ($rc) after ${el}s without serving"; }
    [ "$el" -ge "$DEMO_TIMEOUT" ] && demo_fail "not serving the player and a stream on port $PORT after ${DEMO_TIMEOUT}s"
    l=$(tail -n1 "$RUN/demo.log" 2>/dev/null || true)
    [ -n "$l" ] && [ "$l" != "$last_line" ] && { log "demo: $l"; last_line=$l; }
    sleep 2
  done
  grep -m1 '^\[fresh\] in the root' "$RUN/demo.log" | sed 's/^\[fresh\] in the root: //' >"$RUN/.ulimit" || true
  SUMMARY[ulimit_demo]=$(cat "$RUN/.ulimit")
  kill -TERM -- "-$DEMO_PGID" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$DEMO_PGID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$DEMO_PGID" 2>/dev/null || true
  wait "$DEMO_PGID" 2>/dev/null || true
  DEMO_PGID=
  kill_root_procs || die "processes of the demo left in the root"
  echo "+$((SECONDS - T0))s demo stopped" >>"$TIMELINE"
  SUMMARY[demo_deps]="${t_build:-?} s (start -> build/ made: scripts/deps.sh build, apt-get)"
  SUMMARY[demo_build]="$(( ${t_page:-0} - ${t_build:-0} )) s (meson setup + ninja + pipeline up, to the first page)"
  SUMMARY[demo_serve]="$t_stream s (start -> /status reports the stream)"
  SUMMARY[demo]="PASSED: served the player and the stream ${t_stream} s after ./run-demo.sh"
  SUMMARY[demo_total]="$((SECONDS - t)) s (including stopping it)"
fi

# ---------------------------------------------------------------- 2. the tests
if [ "$DO_TESTS" = 1 ]; then
  log "2. ./run-tests.sh (timeout ${TESTS_TIMEOUT}s; log $RUN/tests.log)"
  echo "+$((SECONDS - T0))s tests start" >>"$TIMELINE"
  t=$SECONDS
  : >"$RUN/tests.log"
  # in the background and waited for, so that Ctrl-C is acted on at once
  rm -f "$RUN/.tests_rc"
  { timeout --kill-after=30 "$TESTS_TIMEOUT" \
      bash -c "$(declare -f in_root); R='$R'; in_root '$PRELUDE && exec ./run-tests.sh'" </dev/null 2>&1
    echo $? >"$RUN/.tests_rc"; } | stamp "$RUN/tests.log" &
  wait $! || true
  rc=$(cat "$RUN/.tests_rc" 2>/dev/null || echo "unknown (not recorded)")
  tests_s=$((SECONDS - t))
  echo "+$((SECONDS - T0))s tests end rc=$rc" >>"$TIMELINE"
  kill_root_procs || die "processes of run-tests.sh left in the root"
  SUMMARY[ulimit_tests]=$(grep -m1 '^\[fresh\] in the root' "$RUN/tests.log" | sed 's/^\[fresh\] in the root: //' || true)
  # phases from the time-stamped terminal copy in run.log
  phase_at() { grep -m1 -E "^  \[\+[0-9]+s\] $1" "$RUN/run.log" | sed -E 's/^  \[\+([0-9]+)s\].*/\1/'; }
  t_start=$((t - T0)); t_meson=$(phase_at ' *1/[0-9]+ ' || true)
  t_cc=$(phase_at '>> tests/crosscheck' || true); t_srv=$(phase_at '>> tests/server' || true)
  t_e2e=$(phase_at '>> tests/e2e' || true); t_end=$((SECONDS - T0))
  [ -n "$t_meson" ] && SUMMARY[tests_deps_build]="$((t_meson - t_start)) s (scripts/deps.sh test + meson setup/ninja)"
  [ -n "$t_meson" ] && [ -n "$t_cc" ] && SUMMARY[tests_meson]="$((t_cc - t_meson)) s (meson test: unit + GstCheck)"
  [ -n "$t_cc" ] && [ -n "$t_srv" ] && SUMMARY[tests_crosscheck]="$((t_srv - t_cc)) s (npm ci + node --test)"
  [ -n "$t_srv" ] && [ -n "$t_e2e" ] && SUMMARY[tests_server]="$((t_e2e - t_srv)) s"
  [ -n "$t_e2e" ] && SUMMARY[tests_e2e]="$((t_end - t_e2e)) s"
  SUMMARY[tests_total]="$tests_s s (exit $rc)"
  last=$(tail -n1 "$RUN/tests.log")
  SUMMARY[tests_result]="last line: \"$last\""

  # Node.js must be Debian 12's own
  node_v=$(in_root 'node --version' 2>&1) || node_v="(node does not run: $node_v)"
  node_pkg=$(in_root 'dpkg-query -W nodejs' 2>&1) || node_pkg="(nodejs not installed: $node_pkg)"
  SUMMARY[node]="$node_v ($(in_root 'command -v node' 2>/dev/null || echo none))"
  SUMMARY[nodejs_pkg]=$node_pkg
  log "in the root: node --version: $node_v; dpkg-query -W nodejs: $node_pkg"
  fails=()
  [[ $node_v == v18.* ]] || fails+=("Node.js in the root is $node_v, not Debian 12's v18")
  [[ $node_pkg == nodejs$'\t'18.* ]] || fails+=("the nodejs package in the root is not Debian 12's 18.x: $node_pkg")
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && fails+=("run-tests.sh did not finish within ${TESTS_TIMEOUT}s")
  [[ $last =~ ^[0-9]+\ passed,\ 0\ failed$ ]] || fails+=("run-tests.sh ended with \"$last\", not \"N passed, 0 failed\"")
  [ "$rc" = 0 ] || fails+=("run-tests.sh exited with $rc")
  if [ ${#fails[@]} -gt 0 ]; then
    SUMMARY[tests]="FAILED: $(IFS=';'; echo "${fails[*]}")"
    echo "---- failing lines in $RUN/tests.log:" >&2
    grep -nE '^not ok |^# fail [1-9]|FAIL|Error|error:' "$RUN/tests.log" | head -40 >&2 || true
    for f in "${fails[@]}"; do echo "fresh-debian12: ERROR: $f" >&2; done
    exit 1
  fi
  SUMMARY[tests]="PASSED: $last"
fi

RESULT=PASSED
exit 0
