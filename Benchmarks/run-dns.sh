#!/usr/bin/env bash
# Runs ../shared/lab's DNS benchmark (bench-dns.sh: dnsperf, cold = 10k fresh names once,
# warm = the same names looped) with sluice's dns worker next to sing-box's fake-IP DNS and
# the lab's dnsmasq, alternating peers each round, in the same run.
# Results: Benchmarks/results/dns-<date>/{raw.tsv,summary.txt,<peer>.r<N>.log}.
#   Benchmarks/run-dns.sh [-r ROUNDS] [-t SECONDS] [extra bench-dns.sh args]
# Peers (all answer on port 53, queried from lab-client):
#   dnsmasq        the lab's dnsmasq at 10.77.2.2 (already running; the ratio baseline)
#   sb-fakeip      sing-box 1.14.4, peers/sing-box/dns-fakeip.json on 10.77.1.1
#   sluice-fakeip  sluiced + dns worker, Benchmarks/lab/sluice-dns-fakeip.yaml on 10.77.1.1
#   sluice-cache   the same with enhanced-mode normal (Benchmarks/lab/sluice-dns-cache.yaml):
#                  upstream dnsmasq on first sight of a name (cold), sluice's cache afterwards
#                  (warm; cache-min-ttl 60 because dnsmasq's local answers carry TTL 0)
# Note: bench-dns.sh counts lost queries, not SERVFAIL answers; dnsperf's "Response codes"
# are not kept.
# Each sluice start gets an empty state directory (a fresh fake-IP store), so every round's
# cold pass really allocates. Needs root, ../shared/lab, and (installed here) dnsperf
# dnsmasq-base knot-dnsutils; the workers run as the `sluice` user (created if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
lab=$(cd ../shared/lab && pwd)
rounds=3 secs=5
while getopts "r:t:" o; do case $o in r) rounds=$OPTARG;; t) secs=$OPTARG;; *) exit 2;; esac; done
shift $((OPTIND - 1))
apt-get install -y -qq dnsperf dnsmasq-base knot-dnsutils iproute2 procps python3 >/dev/null
getent passwd sluice >/dev/null || bash Scripts/install-deps.sh
scratch=/tmp/sluice-bench-build
bin=$(Scripts/release-build.sh "$scratch")
for b in sluiced sluice-dns-worker; do [[ -x $bin/$b ]] || { echo "missing $bin/$b" >&2; exit 1; }; done
"$bin/sluiced" check -c Benchmarks/lab/sluice-dns-fakeip.yaml >/dev/null
"$bin/sluiced" check -c Benchmarks/lab/sluice-dns-cache.yaml >/dev/null
run=/tmp/sluice-bench-dns-run
rm -rf "$run"
mkdir -p "$run"
chmod 755 "$run"
out="$PWD/Benchmarks/results/dns-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
SB=$(bash "$lab/get-sing-box.sh")
"$lab/netns-lab.sh" up >/dev/null
# A sluice peer: wipe its run/state dirs, then exec sluiced (the PID the lab records and
# stops stays sluiced's; the lab sums memory over it and its direct children, the workers).
sluice() {  # NAME CONFIG
    local d="$run/$1"
    echo "bash -c 'rm -rf $d && mkdir -p $d && exec $bin/sluiced run -c $PWD/$2 --runtime-dir $d/run --state-dir $d/state'"
}
bash "$lab/bench-dns.sh" -r "$rounds" -t "$secs" -o "$out" "$@" dnsmasq@10.77.2.2= \
    sb-fakeip@10.77.1.1="$SB run -c $lab/peers/sing-box/dns-fakeip.json" \
    sluice-fakeip@10.77.1.1="$(sluice fakeip Benchmarks/lab/sluice-dns-fakeip.yaml)" \
    sluice-cache@10.77.1.1="$(sluice cache Benchmarks/lab/sluice-dns-cache.yaml)"
# bench-dns.sh already wrote summary.txt (ratios vs dnsmasq); add ratios vs sing-box.
{ echo; echo "ratios vs sb-fakeip:"; python3 "$lab/summarize.py" "$out/raw.tsv" sb-fakeip; } >>"$out/summary.txt"
echo "results: $out"
