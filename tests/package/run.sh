#!/usr/bin/env bash
# Installs gst-fmp4ws the two ways a user would, and checks what lands:
#  1. the Debian package: dpkg-buildpackage -b -us -uc in a temporary copy of the sources
#     (the files git knows about, as they are in the work tree, plus new files not ignored),
#     its contents, and the unpacked plugin and programs run from a temporary root;
#  2. meson install: --prefix=/usr with --destdir (reusing the package's build), and a prefix
#     GStreamer does not scan, where fmp4ws-server must still find its plugin.
# Needs Debian 12; as root it installs what is missing (debhelper, the Build-Depends, ...).
# Prints "ok N - ..." / "not ok N - ..." and last "N passed, N failed"; exits 1 on a failure.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
start_s=$SECONDS
n=0 passed=0 failed=0
pass() { n=$((n + 1)); passed=$((passed + 1)); echo "ok $n - $1"; }
# fail WHAT WHY...: each WHY is printed as a "#" line under the failure.
fail() {
  n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift
  local l; for l in "$@"; do printf '%s\n' "$l" | sed 's/^/#   /'; done
}
finish() {
  echo "# tests/package took $((SECONDS - start_s)) s"
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ] && exit 0 || exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fmp4ws-package.XXXXXX")
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 0. What this needs ----------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
need=(dpkg-dev debhelper git gstreamer1.0-tools gstreamer1.0-plugins-base)
# The Build-Depends not satisfied, as package names (versions, arch lists, alternatives dropped).
if command -v dpkg-checkbuilddeps >/dev/null; then
  unmet=$(cd "$top" && dpkg-checkbuilddeps 2>&1 | sed -n 's/.*Unmet build dependencies: //p' |
    sed -e 's/([^)]*)//g' -e 's/\[[^]]*\]//g' -e 's/<[^>]*>//g' -e 's/ *| *[^ ]*//g')
  for p in $unmet; do [ "$p" = debhelper-compat ] && p=debhelper; need+=("$p"); done
fi
missing=()
for p in $(printf '%s\n' "${need[@]}" | sort -u); do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" -eq 0 ]; then
  echo "# installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$tmp/apt.log" 2>&1 || { tail -20 "$tmp/apt.log"; }
  missing=(); for p in "${need[@]}"; do installed "$p" || missing+=("$p"); done
fi
if [ ${#missing[@]} -gt 0 ]; then
  fail "build dependencies" "missing: ${missing[*]}" \
    "run: sudo apt-get install -y --no-install-recommends ${missing[*]}"
  finish
fi
if ! (cd "$top" && dpkg-checkbuilddeps >"$tmp/cbd.log" 2>&1); then
  fail "build dependencies" "$(cat "$tmp/cbd.log")"; finish
fi
pass "build dependencies installed"
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
plugindir=usr/lib/$multiarch/gstreamer-1.0

# ---- 1. The Debian package -------------------------------------------------------------
version=$(cd "$top" && dpkg-parsechangelog -S Version)
src=$tmp/src/gst-fmp4ws-${version%-*}
mkdir -p "$src"
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # Tracked files as they are now (uncommitted changes included, deleted ones skipped), and
  # new files that are not ignored: what the next commit would hold.
  (cd "$top" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf -) | tar -xf - -C "$src"
else
  tar -C "$top" --exclude='./build*' --exclude='./obj-*' --exclude=node_modules -cf - . | tar -xf - -C "$src"
fi
build_s=$SECONDS
if (cd "$src" && DEB_BUILD_OPTIONS="parallel=$(nproc) nocheck" dpkg-buildpackage -b -us -uc) >"$tmp/build.log" 2>&1; then
  pass "dpkg-buildpackage -b -us -uc ($((SECONDS - build_s)) s)"
else
  fail "dpkg-buildpackage -b -us -uc" "$(tail -30 "$tmp/build.log")"; finish
fi
debs=("$tmp"/src/gstreamer1.0-fmp4ws_"${version}"_*.deb)
deb=${debs[0]}
if [ ! -f "$deb" ]; then
  fail "gstreamer1.0-fmp4ws_${version}_*.deb built" "not in $tmp/src: $(ls "$tmp/src")"; finish
fi
pass "built $(basename "$deb")"

contents=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
has() { # has PATH-REGEX WHAT
  if grep -Eqx "$1" <<<"$contents"; then pass "the .deb ships $2"
  else fail "the .deb ships $2" "no file matching $1 in dpkg-deb -c:" "$(head -40 <<<"$contents")"; fi
}
has "/$plugindir/libgstfmp4ws.so" "the plugin in GStreamer's folder /$plugindir"
has "/usr/bin/fmp4ws-server" "/usr/bin/fmp4ws-server"
has "/usr/bin/fmp4ws-inspect" "/usr/bin/fmp4ws-inspect"
has "(/usr)?/lib/systemd/system/fmp4ws-server.service" "the systemd unit fmp4ws-server.service"
has "/etc/default/fmp4ws-server" "/etc/default/fmp4ws-server"
if dpkg-deb -I "$deb" conffiles 2>/dev/null | grep -qx /etc/default/fmp4ws-server; then
  pass "/etc/default/fmp4ws-server is a conffile"
else
  fail "/etc/default/fmp4ws-server is a conffile" "conffiles: $(dpkg-deb -I "$deb" conffiles 2>&1)"
fi

root=$tmp/root
dpkg-deb -x "$deb" "$root"

# gst_inspect WHAT PLUGIN-DIR ELEMENT: the element loads from PLUGIN-DIR/libgstfmp4ws.so with
# GStreamer's own plugin folder replaced by PLUGIN-DIR and a fresh registry.
gst_inspect() {
  local what=$1 dir=$2 el=$3 out
  rm -f "$tmp/registry.bin"
  out=$(env -u GST_PLUGIN_PATH_1_0 -u GST_PLUGIN_SYSTEM_PATH GST_PLUGIN_PATH= \
    GST_PLUGIN_SYSTEM_PATH_1_0="$dir" GST_REGISTRY_1_0="$tmp/registry.bin" \
    gst-inspect-1.0 "$el" 2>&1)
  local rc=$?
  if [ $rc -ne 0 ]; then
    fail "$what: gst-inspect-1.0 $el" "exit $rc: $(head -5 <<<"$out")"
  elif ! grep -Eq "^ *Filename +$dir/libgstfmp4ws.so$" <<<"$out"; then
    fail "$what: gst-inspect-1.0 $el" "not loaded from $dir/libgstfmp4ws.so:" "$(grep -E 'Filename|not found' <<<"$out")"
  else
    pass "$what: gst-inspect-1.0 $el loads $dir/libgstfmp4ws.so"
  fi
}
gst_inspect "unpacked .deb" "$root/$plugindir" websocketsink
gst_inspect "unpacked .deb" "$root/$plugindir" fmp4initcache

out=$("$root/usr/bin/fmp4ws-server" --help 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -q -- "--ingest-port" <<<"$out"; then
  pass "unpacked .deb: fmp4ws-server --help"
else
  fail "unpacked .deb: fmp4ws-server --help" "exit $rc, no --ingest-port in:" "$(head -10 <<<"$out")"
fi
fixture=$top/tests/fixtures/tiny-notes.mp4
out=$("$root/usr/bin/fmp4ws-inspect" "$fixture" 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -q 'codecs: avc1.42c00a, mp4a.40.2' <<<"$out" && grep -q '7 fragment(s)' <<<"$out"; then
  pass "unpacked .deb: fmp4ws-inspect tests/fixtures/tiny-notes.mp4"
else
  fail "unpacked .deb: fmp4ws-inspect tests/fixtures/tiny-notes.mp4" \
    "exit $rc, expected 'codecs: avc1.42c00a, mp4a.40.2' and '7 fragment(s)' in:" "$out"
fi

unit=$(cd "$root" && ls {usr/,}lib/systemd/system/fmp4ws-server.service 2>/dev/null | head -1)
if ! command -v systemd-analyze >/dev/null; then
  echo "# skipped: systemd-analyze verify (systemd-analyze is not installed)"
elif [ -z "$unit" ]; then
  fail "systemd-analyze verify fmp4ws-server.service" "no unit in the package"
else
  # Verified in a root holding the unpacked package (ExecStart=/usr/bin/fmp4ws-server is looked
  # up there) and this system's units (sysinit.target, multi-user.target, ... it depends on).
  sdroot=$tmp/systemd-root
  mkdir -p "$sdroot/$(dirname "$unit")"
  cp -a "/$(dirname "$unit")/." "$sdroot/$(dirname "$unit")/" 2>/dev/null
  cp -a "$root/." "$sdroot/"
  # Documentation=man:fmp4ws-server(1) is looked up in the package too (MANPATH).
  man_opt=()
  if ! command -v man >/dev/null; then
    echo "# not checked: Documentation=man:fmp4ws-server(1) (man is not installed)"; man_opt=(--man=no)
  fi
  out=$(MANPATH="$sdroot/usr/share/man" SYSTEMD_LOG_LEVEL=notice \
    systemd-analyze verify "${man_opt[@]}" --root="$sdroot" "$sdroot/$unit" 2>&1); rc=$?
  if [ $rc -eq 0 ] && [ -z "$out" ]; then
    pass "systemd-analyze verify fmp4ws-server.service"
  else
    fail "systemd-analyze verify fmp4ws-server.service" "exit $rc:" "$out"
  fi
fi

# ---- 2. meson install ------------------------------------------------------------------
# (a) --prefix=/usr, as dh_auto_configure set up the package's build: installed with --destdir.
obj=$(ls -d "$src"/obj-* 2>/dev/null | head -1)
dest=$tmp/destdir
if [ -z "$obj" ]; then
  fail "meson install --destdir (prefix /usr)" "no obj-* build folder left by dpkg-buildpackage"
elif [ "$(meson introspect "$obj" --buildoptions |
         python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"][0])')" != /usr ]; then
  fail "meson install --destdir (prefix /usr)" "the package's build was not configured with --prefix=/usr"
elif ! meson install -C "$obj" --destdir "$dest" >"$tmp/install.log" 2>&1; then
  fail "meson install --destdir (prefix /usr)" "$(tail -20 "$tmp/install.log")"
else
  pass "meson install --destdir (prefix /usr)"
  for f in usr/bin/fmp4ws-server usr/bin/fmp4ws-inspect; do
    if [ -x "$dest/$f" ]; then pass "meson install: /$f"; else fail "meson install: /$f" "not in $dest: $(cd "$dest" && find . -type f)"; fi
  done
  gst_inspect "meson install" "$dest/$plugindir" websocketsink
fi

# (b) A prefix GStreamer does not scan: configure says so, and fmp4ws-server finds its plugin.
prefix=$tmp/prefix
if ! meson setup "$tmp/build-prefix" "$src" --prefix="$prefix" -Dbuildtype=plain \
     -Dtests=disabled -Dexamples=disabled >"$tmp/setup.log" 2>&1 ||
   ! ninja -C "$tmp/build-prefix" >>"$tmp/setup.log" 2>&1 ||
   ! meson install -C "$tmp/build-prefix" >>"$tmp/setup.log" 2>&1; then
  fail "meson setup/install --prefix=$prefix" "$(tail -30 "$tmp/setup.log")"
else
  if grep -q "GST_PLUGIN_PATH=$prefix/lib/$multiarch/gstreamer-1.0" "$tmp/setup.log"; then
    pass "meson setup says how to use a plugin installed outside GStreamer's folder"
  else
    fail "meson setup says how to use a plugin installed outside GStreamer's folder" \
      "no GST_PLUGIN_PATH=$prefix/lib/$multiarch/gstreamer-1.0 message in meson setup's output"
  fi
  # GStreamer's folder for this run: only the elements fmp4ws-server needs besides ours
  # (appsrc/appsink), so an installed gstreamer1.0-fmp4ws cannot be found instead.
  sys=$tmp/sys-plugins
  mkdir -p "$sys"
  gstdir=$(pkg-config --variable=pluginsdir gstreamer-1.0)
  ln -s "$gstdir/libgstapp.so" "$gstdir/libgstcoreelements.so" "$sys/"
  export_env=(env -u GST_PLUGIN_PATH_1_0 -u GST_PLUGIN_SYSTEM_PATH GST_PLUGIN_PATH=
              GST_PLUGIN_SYSTEM_PATH_1_0="$sys" GST_REGISTRY_1_0="$tmp/registry-prefix.bin")
  if "${export_env[@]}" gst-inspect-1.0 websocketsink >/dev/null 2>&1; then
    fail "GStreamer alone does not find the plugin in $prefix" "gst-inspect-1.0 found websocketsink: the check below proves nothing"
  else
    pass "GStreamer alone does not find the plugin in $prefix"
  fi
  "${export_env[@]}" "$prefix/bin/fmp4ws-server" --port 0 --ingest-port 0 >"$tmp/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 50); do
    grep -q "viewers: http" "$tmp/server.log" && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -TERM "$server_pid" 2>/dev/null; wait "$server_pid"; rc=$?; server_pid=
  if [ $rc -eq 0 ] && grep -q "viewers: http" "$tmp/server.log"; then
    pass "fmp4ws-server installed in $prefix finds its plugin without GST_PLUGIN_PATH"
  else
    fail "fmp4ws-server installed in $prefix finds its plugin without GST_PLUGIN_PATH" "exit $rc:" "$(cat "$tmp/server.log")"
  fi
fi

finish
