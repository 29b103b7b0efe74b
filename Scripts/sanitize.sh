#!/usr/bin/env bash
# The test suite on a debug build with a sanitizer (issue 10): every test, the integration tests
# included, so sluiced and the workers they start carry the sanitizer too.
#
#   bash Scripts/sanitize.sh address|thread [SECONDS]     # default 900 s for the test run
#
# A sanitizer's report in any process fails the run: sluiced passes ASAN_OPTIONS/TSAN_OPTIONS on to
# the workers (SpawnRequest.sanitizerEnvironment), and each report goes to its own file under
# $reports (log_path), so a finding in a worker that sluiced quietly restarted is not lost. The
# test run must also pass. Builds go to .build-asan / .build-tsan (kept between runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
kind=${1:?usage: Scripts/sanitize.sh address|thread [SECONDS]}
seconds=${2:-900}
case $kind in
    address) scratch=.build-asan ;;
    thread) scratch=.build-tsan ;;
    *) echo "sanitize.sh: unknown sanitizer '$kind' (address or thread)" >&2; exit 2 ;;
esac
reports=/tmp/sluice-sanitize-$kind
rm -rf "$reports"
# The workers run as the service user and write their own reports here.
mkdir -p -m 1777 "$reports"

started=$(date +%s)
swift build --build-tests -Xswiftc -sanitize="$kind" --scratch-path "$scratch" 2>&1 | grep -E "error:|Compiling|Build" | tail -3
built=$(date +%s)

# detect_leaks=0: LeakSanitizer cannot follow Swift's tagged pointers (false positives on objects held
# by static lets and indirect enum payloads) and reports XCTest's own allocations; see docs/reliability.md.
# quarantine_size_mb=16: freed memory waits before reuse; 16 MiB keeps use-after-free detection while
# the tests that bound a worker's RSS measure the code, not a 256 MiB quarantine filling up.
export ASAN_OPTIONS="detect_leaks=0:quarantine_size_mb=16:log_path=$reports/report"
# halt_on_error=0: every race is reported (the run fails on any report anyway); history_size=4 keeps
# the other thread's stack for races between long-lived threads (relay, TUN reader).
export TSAN_OPTIONS="halt_on_error=0:history_size=4:log_path=$reports/report"

status=0
timeout --signal=TERM --kill-after=30 "$seconds" \
    swift test --skip-build --scratch-path "$scratch" >"$reports/tests.log" 2>&1 || status=$?
finished=$(date +%s)
grep -E "^(✘|✔ Test run|✘ Test run)" "$reports/tests.log" | tail -20 || true

found=$(find "$reports" -name 'report.*' | sort)
if [ -n "$found" ]; then
    echo "sanitize.sh: $kind sanitizer reports ($(echo "$found" | wc -l) processes):" >&2
    for file in $found; do
        echo "== $file" >&2
        grep -E "^(==|WARNING|ERROR|SUMMARY|    #[0-9] )" "$file" | head -60 >&2
    done
    status=1
fi
echo "sanitize.sh: $kind: build $((built - started)) s, tests $((finished - built)) s, reports: $(echo -n "$found" | grep -c . || true), test status $status (full log $reports/tests.log)"
[ "$status" = 0 ] || { echo "sanitize.sh: $kind run failed: fix the finding (do not suppress it); see docs/reliability.md" >&2; exit 1; }
