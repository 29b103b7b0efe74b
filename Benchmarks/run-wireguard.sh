#!/usr/bin/env bash
# iperf3 across a WireGuard link, two pairs side by side in the same two namespaces, same run:
#   sluice: wireguard-go brought up by sluiced's keepalive worker (as the service user, CAP_NET_ADMIN only)
#           <-> a far wireguard-go configured with `wg`;
#   plain:  wireguard-go <-> wireguard-go, both configured with `wg` (root).
# Rounds alternate the pairs (order rotated each round). Same MTU (1420) on all four links.
#
#   sudo bash Benchmarks/run-wireguard.sh [-r ROUNDS] [-t SECONDS] [-b BIN_DIR]
#
# BIN_DIR holds sluiced and its workers (default .build/release, else .build/debug); sluiced only
# configures and watches wireguard-go, so its build does not touch the data path. Writes
# Benchmarks/results/<date>-wireguard/{raw.tsv,summary.txt}.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 secs=5 bin=
while getopts r:t:b: o; do
    case $o in r) rounds=$OPTARG ;; t) secs=$OPTARG ;; b) bin=$OPTARG ;; *) exit 2 ;; esac
done
if [ -z "$bin" ]; then
    if [ -x .build/release/sluiced ]; then bin=.build/release; else bin=.build/debug; fi
fi
bin=$(cd "$bin" && pwd)
for t in wireguard-go wg iperf3 python3; do command -v $t >/dev/null || { echo "needs $t" >&2; exit 1; }; done

tag=$(printf %04x $((RANDOM)))
A=slbwa$tag B=slbwb$tag
out=Benchmarks/results/$(date +%Y%m%d-%H%M%S)-wireguard
work=$(mktemp -d /tmp/sluice-wgbench.XXXXXX)
mkdir -p "$out"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    ip netns del "$A" 2>/dev/null || true
    ip netns del "$B" 2>/dev/null || true
    rm -f /var/run/wireguard/wbp[ab]$tag.sock /var/run/wireguard/wbs[ab]$tag.sock
    rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$A"; ip netns add "$B"
ip -n "$A" link set lo up; ip -n "$B" link set lo up
ip link add va$tag netns "$A" type veth peer name vb$tag netns "$B"
ip -n "$A" addr add 10.210.0.1/24 dev va$tag; ip -n "$A" link set va$tag up
ip -n "$B" addr add 10.210.0.2/24 dev vb$tag; ip -n "$B" link set vb$tag up

key() { wg genkey; }
pub() { echo "$1" | wg pubkey; }
kpa=$(key) kpb=$(key) ksa=$(key) ksb=$(key)

# sluiced in A: keepalive only (no TUN, no DNS).
cat >"$work/sluice.yaml" <<EOF
log-level: warning
tun: {enable: false}
dns: {enable: false}
wireguard:
  - name: wbsa$tag
    private-key: "$ksa"
    address: [10.212.0.1/24]
    listen-port: 51821
    mtu: 1420
    peers:
      - public-key: "$(pub "$ksb")"
        endpoint: 10.210.0.2:51822
        allowed-ips: [10.212.0.2/32]
        persistent-keepalive: 25
rules: ["MATCH,DIRECT"]
EOF
ip netns exec "$A" "$bin/sluiced" run -c "$work/sluice.yaml" --runtime-dir "$work/run" --state-dir "$work/state" \
    >"$work/sluiced.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do ip -n "$A" link show wbsa$tag >/dev/null 2>&1 && break; sleep 0.1; done

# wireguard-go NAME in namespace NS (foreground, killed on exit); waits for its UAPI socket.
wggo() {
    WG_PROCESS_FOREGROUND=1 LOG_LEVEL=error ip netns exec "$1" wireguard-go "$2" >>"$work/wg.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do [ -S /var/run/wireguard/$2.sock ] && break; sleep 0.05; done
}
# wgset NS NAME KEY PORT ADDRESS PEER_PUB PEER_ALLOWED [ENDPOINT]
wgset() {
    echo "$3" >"$work/k"
    ip netns exec "$1" wg set "$2" private-key "$work/k" listen-port "$4" \
        peer "$6" allowed-ips "$7" ${8:+endpoint $8 persistent-keepalive 25}
    ip -n "$1" addr add "$5" dev "$2"
    ip -n "$1" link set "$2" mtu 1420 up
}
wggo "$B" wbsb$tag
wgset "$B" wbsb$tag "$ksb" 51822 10.212.0.2/24 "$(pub "$ksa")" 10.212.0.1/32
wggo "$A" wbpa$tag
wggo "$B" wbpb$tag
wgset "$A" wbpa$tag "$kpa" 51811 10.211.0.1/24 "$(pub "$kpb")" 10.211.0.2/32 10.210.0.2:51812
wgset "$B" wbpb$tag "$kpb" 51812 10.211.0.2/24 "$(pub "$kpa")" 10.211.0.1/32

ip netns exec "$B" iperf3 -s -D -p 5299 --pidfile "$work/iperf3.pid"
sleep 0.5
pids+=("$(cat "$work/iperf3.pid")")
for far in 10.211.0.2 10.212.0.2; do
    ok=
    for _ in $(seq 1 50); do ip netns exec "$A" ping -c 1 -W 1 $far >/dev/null 2>&1 && { ok=1; break; }; sleep 0.2; done
    [ -n "$ok" ] || { echo "no ping to $far through its link" >&2; cat "$work/sluiced.log" >&2; exit 1; }
done
wgpid=$(pgrep -f "wireguard-go wbsa$tag\$" | head -1 || true)
echo "sluice's wireguard-go: pid ${wgpid:-?} uid $(ps -o uid= -p "${wgpid:-1}" | tr -d ' ')" | tee "$out/summary.txt"

# one PAIR TEST -> Gbit/s
measure() {
    local far=10.211.0.2 extra=
    [ "$1" = sluice ] && far=10.212.0.2
    case $2 in tcp1) ;; tcp1r) extra=-R ;; tcp4) extra="-P 4" ;; esac
    ip netns exec "$A" iperf3 -c $far -p 5299 -t "$secs" -O 1 $extra -J |
        python3 -c 'import json,sys; print("%.3f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
}
printf 'round\tpair\ttest\tgbps\n' >"$out/raw.tsv"
for r in $(seq 1 "$rounds"); do
    order="plain sluice"; [ $((r % 2)) = 0 ] && order="sluice plain"
    for pair in $order; do
        for t in tcp1 tcp1r tcp4; do
            v=$(measure $pair $t)
            printf '%s\t%s\t%s\t%s\n' "$r" "$pair" "$t" "$v" | tee -a "$out/raw.tsv"
        done
    done
done

python3 - "$out/raw.tsv" "$rounds" "$secs" >>"$out/summary.txt" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
names = {"tcp1": "TCP 1 stream", "tcp1r": "TCP 1 stream reverse", "tcp4": "TCP 4 streams"}
print(f"medians of {sys.argv[2]} rounds, {sys.argv[3]} s each, Gbit/s")
print("| test | plain wireguard-go | sluice-managed wireguard-go | sluice / plain |")
print("|---|---|---|---|")
for t, name in names.items():
    m = {p: statistics.median(float(r["gbps"]) for r in rows if r["pair"] == p and r["test"] == t) for p in ("plain", "sluice")}
    print(f"| {name} | {m['plain']:.2f} | {m['sluice']:.2f} | {m['sluice'] / m['plain']:.2f} |")
EOF
cat "$out/summary.txt"
echo "results in $out"
