#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer + AddressSanitizer) of what sluice parses (Fuzz/, issue 10).
#
#   Scripts/fuzz.sh --list                 # the targets
#   Scripts/fuzz.sh TARGET SECONDS         # build and run one; exit status non-zero on a crash
#   Scripts/fuzz.sh --all SECONDS          # every target for SECONDS each (what CI runs)
#
# Each run starts from the seed corpus in Fuzz/Corpus/TARGET (copied; new inputs stay in
# /tmp/sluice-fuzz/TARGET). A crash leaves its input in /tmp/sluice-fuzz/crash-TARGET-*; make
# it a regression test (Tests/*/HostileInputTests) and add it to the seed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
targets=(fuzz-ipc-frame fuzz-dns-message fuzz-packet fuzz-config fuzz-proxy-replies fuzz-sniffer fuzz-local-proxy)
case "${1:-}" in
    --list) printf '%s\n' "${targets[@]}"; exit 0 ;;
    --all) secs=${2:?seconds}; run=("${targets[@]}") ;;
    fuzz-*) secs=${2:?seconds}; run=("$1") ;;
    *) sed -n '2,10p' "$0"; exit 2 ;;
esac
fuzzer=$(ls /opt/swift/usr/lib/clang/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a | head -n1)
flags=(-c release -Xswiftc -sanitize=address
    -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp
    -Xlinker "$fuzzer" -Xlinker -lstdc++)
swift build --package-path Fuzz "${flags[@]}" 2>&1 | tail -1 >&2
bin=$(swift build --package-path Fuzz "${flags[@]}" --show-bin-path)
status=0
for t in "${run[@]}"; do
    work=/tmp/sluice-fuzz/$t
    mkdir -p "$work"
    cp -n Fuzz/Corpus/$t/* "$work/" 2>/dev/null || true
    echo "fuzz: $t for ${secs}s" >&2
    if ! "$bin/$t" -max_total_time="$secs" -rss_limit_mb=2048 -artifact_prefix="/tmp/sluice-fuzz/crash-$t-" \
        -print_final_stats=1 "$work" >"/tmp/sluice-fuzz/$t.log" 2>&1; then
        echo "fuzz: $t CRASHED; input and log: /tmp/sluice-fuzz/crash-$t-*, /tmp/sluice-fuzz/$t.log" >&2
        tail -30 "/tmp/sluice-fuzz/$t.log" >&2
        status=1
        continue
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "/tmp/sluice-fuzz/$t.log")
    cov=$(grep -o 'cov: [0-9]*' "/tmp/sluice-fuzz/$t.log" | tail -1)
    echo "fuzz: $t ok: $runs executions, $cov, corpus $(ls "$work" | wc -l) inputs" >&2
done
exit $status
