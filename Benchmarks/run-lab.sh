#!/usr/bin/env bash
# Runs ../shared/lab's benchmark suite with sluice next to sing-box (system and gvisor
# stacks) and plain kernel routing, alternating peers each round, and summarises the
# ratios. Results: Benchmarks/results/<date>/{raw.tsv,summary.txt}.
#   Benchmarks/run-lab.sh [-r ROUNDS] [-t SECONDS] [-b BIN_DIR] [-k] [extra bench-suite.sh args]
# -b BIN_DIR: also run the sluice binaries in BIN_DIR (an earlier build, e.g. made with
#    `git worktree add /tmp/before REV && /tmp/before/Scripts/release-build.sh`) as peer "sluice-before",
#    so a change is measured before and after in the same run (issue 20).
# -k: kernel baseline and sluice only (no sing-box peers): a shorter run for before/after comparisons.
# Needs root, ../shared/lab, and (installed here) iperf3 wrk curl nginx-light dnsmasq-base.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
lab=$(cd ../shared/lab && pwd)
rounds=3 secs=4 before="" singbox=1
# Issue 8 measures UDP loss at 2 Gbit/s offered (the lab's default is 500M).
export UDP_RATE=${UDP_RATE:-2G}
while getopts "r:t:b:k" o; do
    case $o in r) rounds=$OPTARG;; t) secs=$OPTARG;; b) before=$(cd "$OPTARG" && pwd);; k) singbox=0;; *) exit 2;; esac
done
shift $((OPTIND - 1))
apt-get install -y -qq iperf3 wrk dnsperf dnsmasq-base nginx-light microsocks knot-dnsutils curl >/dev/null
bin=$(Scripts/release-build.sh)
run=/tmp/sluice-bench-run
rm -rf "$run"
out="$PWD/Benchmarks/results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
SB=$(bash "$lab/get-sing-box.sh")
"$lab/netns-lab.sh" up >/dev/null
peers=(baseline=)
if ((singbox)); then
    peers+=(sb-system="$SB run -c $lab/peers/sing-box/tun-system.json" sb-gvisor="$SB run -c $lab/peers/sing-box/tun-gvisor.json")
fi
[[ -n $before ]] && peers+=(sluice-before="$before/sluiced run -c $PWD/Benchmarks/lab/sluice-tun.yaml --runtime-dir $run/run --state-dir $run/state")
peers+=(sluice="$bin/sluiced run -c $PWD/Benchmarks/lab/sluice-tun.yaml --runtime-dir $run/run --state-dir $run/state")
bash "$lab/bench-suite.sh" -r "$rounds" -t "$secs" -o "$out" "$@" "${peers[@]}"
python3 "$lab/summarize.py" "$out/raw.tsv" baseline | tee "$out/summary.txt"
# Issue 8's targets with sluice's figures and whether each holds (they compare with sing-box).
if ((singbox)); then python3 Benchmarks/lab-table.py "$out/raw.tsv" | tee "$out/targets.md"; fi
# With -b: every sluice figure before and after, in ratio to the kernel.
if [[ -n $before ]]; then python3 Benchmarks/before-after.py "$out/raw.tsv" | tee "$out/before-after.md"; fi
