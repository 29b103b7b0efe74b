#!/usr/bin/env bash
# The local proxy ports (mixed-port) against mihomo's and sing-box's, without a TUN, in ../shared/lab's namespaces:
# curl in the router namespace through each proxy's SOCKS5 and HTTP CONNECT port on 127.0.0.1:7890 to nginx in the
# wan namespace (by address: no DNS in the measurement). Per peer and round: one 100 MiB download each way (MiB/s),
# and 2,000 requests for 1 KiB, 32 at a time, each on a new proxy connection (requests/s, only answered ones count;
# failures are recorded too), and the RSS of the peer's processes after that (sluiced and its workers together). Peers alternate each round;
# "direct" is curl without a proxy. Results: Benchmarks/results/<date>-local-proxy/ (raw.tsv, summary.txt).
#   Benchmarks/run-local-proxy.sh [-r ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
export LAB_PREFIX=${LAB_PREFIX:-slx-}
lab=$(cd ../shared/lab && pwd)
rounds=3
while getopts "r:" o; do case $o in r) rounds=$OPTARG;; *) exit 2;; esac; done
apt-get install -y -qq dnsmasq-base nginx-light curl >/dev/null
bin=$(Scripts/release-build.sh)
MIHOMO=$(bash "$lab/get-mihomo.sh")
SB=$(bash "$lab/get-sing-box.sh")
run=/tmp/sluice-bench-local-proxy
rm -rf "$run"
mkdir -p "$run"
out="$PWD/Benchmarks/results/$(date +%Y%m%d-%H%M%S)-local-proxy"
mkdir -p "$out"
"$lab/netns-lab.sh" up >/dev/null
eval "$("$lab/netns-lab.sh" env)"
pid=
stop_peer() {
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
}
trap 'stop_peer; "$lab/netns-lab.sh" down >/dev/null 2>&1 || true' EXIT

cat >"$run/sluice.yaml" <<YAML
log-level: warning
mixed-port: 7890
dns: {enable: true, nameserver: [$SRV_IP]}
rules: ["MATCH,DIRECT"]
YAML
mkdir -p "$run/mihomo"
cat >"$run/mihomo/config.yaml" <<YAML
log-level: warning
mixed-port: 7890
dns: {enable: true, nameserver: [$SRV_IP]}
rules: ["MATCH,DIRECT"]
YAML
cat >"$run/sing-box.json" <<JSON
{"log": {"level": "warn"},
 "dns": {"servers": [{"type": "udp", "tag": "lab", "server": "$SRV_IP"}]},
 "inbounds": [{"type": "mixed", "listen": "127.0.0.1", "listen_port": 7890}],
 "outbounds": [{"type": "direct", "tag": "direct"}],
 "route": {"default_domain_resolver": "lab"}}
JSON
declare -A cmd=(
    [direct]=""
    [sluice]="$bin/sluiced run -c $run/sluice.yaml --runtime-dir $run/sluice-run --state-dir $run/sluice-state"
    [mihomo]="$MIHOMO -d $run/mihomo"
    [sing-box]="$SB run -c $run/sing-box.json"
)
peers=(direct sluice mihomo sing-box)
printf 'peer\tround\tmetric\tvalue\n' >"$out/raw.tsv"
for round in $(seq 1 "$rounds"); do
    # Rotate the order each round to spread drift.
    order=("${peers[@]:$((round % 4))}" "${peers[@]:0:$((round % 4))}")
    for peer in "${order[@]}"; do
        if [ -n "${cmd[$peer]}" ]; then
            setsid ip netns exec "$NS_ROUTER" bash -c "exec ${cmd[$peer]}" >"$run/$peer.log" 2>&1 </dev/null &
            pid=$!
            for _ in $(seq 1 100); do
                ip netns exec "$NS_ROUTER" curl -s -m 1 -o /dev/null -x socks5h://127.0.0.1:7890 "http://$SRV_IP/small" && break
                sleep 0.2
            done
        fi
        for via in socks5h http; do
            proxy=""
            [ "$peer" = direct ] || proxy="-x $via://127.0.0.1:7890"
            [ "$via" = http ] && [ "$peer" != direct ] && proxy="$proxy -p"
            speed=$(ip netns exec "$NS_ROUTER" curl -s -m 60 -o /dev/null -w '%{speed_download}' $proxy "http://$SRV_IP/big.bin")
            printf '%s\t%s\t%s\t%s\n' "$peer" "$round" "download_${via}_MiBps" "$(python3 -c "print(round($speed / 1048576, 1))")" >>"$out/raw.tsv"
            [ "$peer" = direct ] && break
        done
        proxy=""
        [ "$peer" = direct ] || proxy="-x socks5h://127.0.0.1:7890"
        start=$(date +%s.%N)
        answered=$(ip netns exec "$NS_ROUTER" curl -s -m 120 -Z --parallel-max 32 -o /dev/null -w '%{http_code}\n' $proxy \
            "http://$SRV_IP/1k.bin?[1-2000]" | grep -c '^200$' || true)
        end=$(date +%s.%N)
        printf '%s\t%s\t%s\t%s\n' "$peer" "$round" "requests_per_s" "$(python3 -c "print(round($answered / ($end - $start)))")" >>"$out/raw.tsv"
        printf '%s\t%s\t%s\t%s\n' "$peer" "$round" "requests_failed" "$((2000 - answered))" >>"$out/raw.tsv"
        rss=""
        if [ -n "$pid" ]; then
            # Every process of the peer: it and its children (sluiced's workers).
            pids="$pid $(pgrep -P "$pid" | tr '\n' ' ' || true)"
            rss=$(for p in $pids; do awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null; done | awk '{s+=$1} END {print s}')
            printf '%s\t%s\t%s\t%s\n' "$peer" "$round" "rss_MiB" "$(python3 -c "print(round(${rss:-0} / 1024, 1))")" >>"$out/raw.tsv"
        fi
        stop_peer
    done
done
python3 - "$out/raw.tsv" <<'PY' | tee "$out/summary.txt"
import collections, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
data = collections.defaultdict(list)
for peer, _, metric, value in rows:
    data[(metric, peer)].append(float(value))
metrics = sorted({m for m, _ in data})
for metric in metrics:
    print(metric)
    sluice = statistics.median(data.get((metric, "sluice"), [0])) or None
    for peer in ["direct", "sluice", "mihomo", "sing-box"]:
        values = data.get((metric, peer))
        if not values:
            continue
        median = statistics.median(values)
        ratio = f"  sluice/this {sluice / median:.2f}" if sluice and median and peer != "sluice" else ""
        print(f"  {peer:9} median {median:10.1f}  (min {min(values):.1f}, max {max(values):.1f}){ratio}")
PY
