#!/usr/bin/env bash
# Chaos for sluice (issue 10), in a lab of network namespaces this script builds and removes itself:
# while 100 MiB downloads, a UDP echo stream (one datagram per 10 ms) and a DNS query loop
# (n1..n200.test) run from the client, every running worker is SIGKILLed $KILLS times at random
# moments, killed $EARLY times with its successor killed again 0-20 ms after exec (in its start),
# SIGSTOPped $STOPS times (the supervisor's heartbeat timeout must catch it), and bad and good
# configurations are reloaded. It prints its figures and one PASS/FAIL line per check:
#
#   - the supervisor never exited (same pid answering status at the end, exit 0 on SIGTERM);
#   - after each restart, new connections through the TUN succeed within 1 s (measured from the
#     successor being ready and from the kill);
#   - every fake address answered before a dns worker crash maps to the same name after it;
#   - sluiced's open fds are the same at the end as after warm-up, its RSS within a small bound;
#   - no duplicate `ip rule` / `ip route` lines, and both restored exactly after sluiced stops;
#   - with wireguard-go installed (KEEPALIVE=1, the default), the keepalive worker runs too, for a
#     WireGuard link whose peer never answers: the link stays up and its wireguard-go is adopted;
#   - downloads fail only during a tun worker outage, UDP answers resume within 1 s of a restart.
#
#   sudo bash Scripts/chaos.sh         # about 6 minutes; exit 0 only when every check held
#
# Knobs (environment): KILLS=50 per worker, EARLY=5 per worker, STOPS=2 per worker, RELOADS=6
# rounds of (bad syntax, bad semantics, good), CHAOS_SECONDS=420 (the chaos phase stops there, and
# fails, if not done), SEED (repeat a run's order of events), LAB=slchaos, BIN=DIR (skip the build;
# use these binaries), KEEPALIVE=0 (no WireGuard link, so no keepalive worker).
# The orchestration is Scripts/chaos.py; figures of the run land in /tmp/$LAB-run/figures.json.
# Needs root (namespaces, TUN). No traffic leaves the namespaces it makes; wireguard-go puts its
# socket in /run/wireguard (as in the tests), named after the lab.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
export LAB=${LAB:-slchaos}
work=/tmp/$LAB-run
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

source Scripts/require-root.sh
require_root "it creates network namespaces and a TUN device"
for p in curl dnsmasq python3; do
    command -v "$p" >/dev/null || { say "installing what the chaos needs (Debian packages)"; bash Scripts/install-deps.sh; break; }
done

if [ -z "${BIN:-}" ]; then
    say "building sluice (release)"
    BIN=$(Scripts/release-build.sh "${SCRATCH:-.build}")
fi

# Everything started is ended by PID: the orchestrator records what it spawns in $work/pids (sluiced,
# the load generators, the probe agent, wireguard-go once seen). A PID is signalled only while its command
# line is still one of ours, in case it has been reused.
ours() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | grep -qE 'sluiced|chaos\.py|wireguard-go'; }
cleanup() {
    set +e
    if [ -f "$work/pids" ]; then
        while read -r pid; do
            [ -n "$pid" ] && ours "$pid" && kill -CONT "$pid" && kill "$pid"
        done <"$work/pids"
        sleep 1
        while read -r pid; do [ -n "$pid" ] && ours "$pid" && kill -KILL "$pid"; done <"$work/pids"
    fi
    bash Scripts/lab.sh down >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "lab: $LAB-client (10.77.1.2) -> $LAB-router (sluiced, TUN) -> $LAB-wan (10.77.200.2)"
bash Scripts/lab.sh up
rm -rf "$work"; mkdir -p "$work"

say "chaos: KILLS=${KILLS:-50} EARLY=${EARLY:-5} STOPS=${STOPS:-2} RELOADS=${RELOADS:-6} CHAOS_SECONDS=${CHAOS_SECONDS:-420}"
# Bounded as a whole too: the chaos phase has its own limit; this covers warm-up, final passes and stop.
timeout --foreground -k 10 $(( ${CHAOS_SECONDS:-420} + 240 )) python3 Scripts/chaos.py run "$BIN" "$LAB" "$work"
