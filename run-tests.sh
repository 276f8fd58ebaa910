#!/usr/bin/env bash
# The whole test suite: unit (core), element (GstCheck/GstHarness) and end-to-end tests.
# Installs what is missing (as root) and prints "N passed, N failed" last.
set -uo pipefail
cd "$(dirname "$0")"
scripts/deps.sh test || exit 1
BUILD=${BUILD:-build}
if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" -Dtests=enabled >/dev/null || { echo "meson setup failed"; echo "0 passed, 1 failed"; exit 1; }
fi
if ! ninja -C "$BUILD" >/dev/null; then
  ninja -C "$BUILD" | tail -30
  echo "0 passed, 1 failed"
  exit 1
fi

passed=0
failed=0

# 1. meson tests (gtest unit tests report each case; GstCheck tests each check).
meson test -C "$BUILD" --print-errorlogs --num-processes 1
summary=$(python3 - "$BUILD/meson-logs/testlog.json" <<'PY'
import json, re, sys
p = f = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    out = t.get('stdout') or ''
    m = re.search(r'\[  PASSED  \] (\d+) test', out)
    n = re.search(r'\[  FAILED  \] (\d+) test', out)
    c = re.search(r'Checks: (\d+), Failures: (\d+), Errors: (\d+)', out)
    if m or n:
        p += int(m.group(1)) if m else 0
        f += int(n.group(1)) if n else 0
        if t['result'] != 'OK' and not n: f += 1
    elif c:
        bad = int(c.group(2)) + int(c.group(3))
        p += int(c.group(1)) - bad; f += bad
        if t['result'] != 'OK' and bad == 0: f += 1
    else:
        if t['result'] == 'OK': p += 1
        else: f += 1
print(p, f)
PY
)
read -r p f <<<"$summary"
passed=$((passed + p)); failed=$((failed + f))

# 2. Node.js suites: cross-checks with independent parsers, then end-to-end tests in Chromium.
for suite in crosscheck server e2e; do
  dir=tests/$suite
  [ -f "$dir/package.json" ] || continue
  [ "$suite" = e2e ] && [ -n "${SKIP_E2E:-}" ] && continue
  echo ">> tests/$suite"
  (cd "$dir" && { [ -d node_modules ] || npm ci --no-audit --no-fund >/dev/null 2>&1 || npm install --no-audit --no-fund >/dev/null; })
  out=$(cd "$dir" && FMP4WS_BUILD="$PWD/../../$BUILD" node --test --test-concurrency=1 --test-reporter=tap 2>&1)
  echo "$out" | grep -E "^(not )?ok |^# (Subtest|tests|pass|fail)|^\s+# " || true
  echo "$out" | grep -B2 -A25 "^not ok" | head -80 || true
  p=$(echo "$out" | grep -E "^# pass " | awk '{print $3}'); f=$(echo "$out" | grep -E "^# fail " | awk '{print $3}')
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-1}))
done

echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
