#!/usr/bin/env bash
# Proxy outbounds against sing-box's in ../shared/lab: every TCP connection through the
# lab's microsocks (SOCKS5) or through ss-server (Shadowsocks aes-128-gcm, started here in
# the wan namespace and stopped by PID), UDP DIRECT; local mode, TCP and HTTP tests.
# Peers alternate each round, as in run-lab.sh. Results: Benchmarks/results/<date>-proxies/.
#   Benchmarks/run-proxies.sh [-r ROUNDS] [-t SECONDS]
# A lab of its own (LAB_PREFIX, default "slp-") so that a run of run-lab.sh is not disturbed
# by its namespaces (the CPU is still shared: do not run both at once).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
export LAB_PREFIX=${LAB_PREFIX:-slp-}
lab=$(cd ../shared/lab && pwd)
rounds=2 secs=4
while getopts "r:t:" o; do case $o in r) rounds=$OPTARG;; t) secs=$OPTARG;; *) exit 2;; esac; done
apt-get install -y -qq iperf3 wrk dnsmasq-base nginx-light microsocks curl shadowsocks-libev >/dev/null
bin=$(Scripts/release-build.sh)
run=/tmp/sluice-bench-proxies
rm -rf "$run"
out="$PWD/Benchmarks/results/$(date +%Y%m%d-%H%M%S)-proxies"
mkdir -p "$out"
SB=$(bash "$lab/get-sing-box.sh")
"$lab/netns-lab.sh" up >/dev/null
ip netns exec "${LAB_PREFIX}wan" ss-server -s 10.77.200.2 -p 8388 -m aes-128-gcm -k bench -u </dev/null >/dev/null 2>&1 &
ss_pid=$!
trap 'kill "$ss_pid" 2>/dev/null || true; "$lab/netns-lab.sh" down >/dev/null 2>&1 || true' EXIT
sluiced() { echo "$bin/sluiced run -c $PWD/Benchmarks/lab/$1 --runtime-dir $run/$1/run --state-dir $run/$1/state"; }
bash "$lab/bench-suite.sh" -r "$rounds" -t "$secs" -m local -T tcp1,tcp1r,http_conn,http_ka,http_big -o "$out" \
    baseline= \
    sb-socks="$SB run -c $lab/peers/sing-box/tun-socks.json" \
    sluice-socks="$(sluiced sluice-socks.yaml)" \
    sb-ss="$SB run -c $PWD/Benchmarks/lab/sing-box-ss.json" \
    sluice-ss="$(sluiced sluice-ss.yaml)"
python3 "$lab/summarize.py" "$out/raw.tsv" baseline | tee "$out/summary.txt"
