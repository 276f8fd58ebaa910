#!/usr/bin/env bash
# Builds everything with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/) and runs
# the unit tests (leak checking on) and the GstCheck suites in-process (CK_FORK=no), with
# LeakSanitizer on and GLib/GStreamer's one-time allocations suppressed (tests/lsan.supp).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dtests=enabled >/dev/null
ninja -C build-asan >/dev/null
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
build-asan/tests/unit/test_core
build-asan/tests/unit/test_broadcast
export GST_REGISTRY_FORK=no CK_FORK=no GST_PLUGIN_PATH_1_0=$PWD/build-asan/gst
export GST_REGISTRY_1_0=$PWD/build-asan/registry.bin
build-asan/tests/check/test_fmp4initcache
build-asan/tests/check/test_websocketsink
echo "ASan/UBSan/LSan: clean"
