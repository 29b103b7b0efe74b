#!/usr/bin/env bash
# A throwaway three-namespace lab for sluice: tests and the demo run in it, never on the
# host's own network.
#
#   LAB=name Scripts/lab.sh up | down | exec ROLE CMD... | spawn ROLE LOG CMD... | pids
#
#  $LAB-client                $LAB-router  (sluiced runs here)           $LAB-wan (servers)
#  eth0 10.77.1.2/24 ───veth─── lan0 10.77.1.1/24                         lo   10.77.200.2/32  "internet host"
#       fd77:1::2/64            wan0 10.77.2.1/24 ───────veth───────────── eth0 10.77.2.2/24
#  default via 10.77.1.1        ip_forward=1, default via 10.77.2.2            fd77:200::2/128
#
# Servers in $LAB-wan, on 10.77.200.2 and [fd77:200::2]: HTTP on :80 (python3,
# threaded; /small, /100m.bin with its sha256 in /100m.sha256), iperf3 on :5201, dnsmasq
# on 10.77.200.2:53 (*.test -> 10.77.200.2; *.corp.test -> 10.206.0.10, which only the WireGuard
# lab test serves, through a tunnel), UDP echo on :7, a second
# UDP echo on 10.77.200.3:7 (full-cone checks: every echo reports the source it saw).
# Programs in $LAB-wan resolve names through that dnsmasq (/etc/netns/$LAB-wan/resolv.conf,
# which `ip netns exec` mounts over /etc/resolv.conf). `spawn` starts one more program in a
# namespace (a proxy a test needs), its output appended to LOG, and prints its PID.
# Everything started is recorded by PID in $STATE/pids and ended by PID on `down`.
set -euo pipefail
LAB=${LAB:-sllab}
here=$(cd "$(dirname "$0")" && pwd)
STATE=${LAB_STATE:-/tmp/$LAB-lab}
# Served content, shared by labs (the 100 MiB file is made once).
WWW=${LAB_WWW:-/tmp/sluice-lab-www}
ns() { echo "$LAB-$1"; }

up() {
    down >/dev/null 2>&1 || true
    mkdir -p "$STATE" "$WWW"
    for r in client router wan; do ip netns add "$(ns $r)"; ip -n "$(ns $r)" link set lo up; done
    ip link add "$LAB-c0" type veth peer name "$LAB-l0"
    ip link set "$LAB-c0" netns "$(ns client)" name eth0
    ip link set "$LAB-l0" netns "$(ns router)" name lan0
    ip link add "$LAB-w0" type veth peer name "$LAB-e0"
    ip link set "$LAB-w0" netns "$(ns router)" name wan0
    ip link set "$LAB-e0" netns "$(ns wan)" name eth0

    local c r w
    c=$(ns client) r=$(ns router) w=$(ns wan)
    for n in "$c" "$r" "$w"; do
        ip netns exec "$n" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done
    ip -n "$c" addr add 10.77.1.2/24 dev eth0
    ip -n "$c" addr add fd77:1::2/64 dev eth0 nodad
    ip -n "$c" link set eth0 up
    ip -n "$c" route add default via 10.77.1.1
    ip -n "$c" -6 route add default via fd77:1::1

    ip -n "$r" addr add 10.77.1.1/24 dev lan0
    ip -n "$r" addr add fd77:1::1/64 dev lan0 nodad
    ip -n "$r" addr add 10.77.2.1/24 dev wan0
    ip -n "$r" addr add fd77:2::1/64 dev wan0 nodad
    ip -n "$r" link set lan0 up
    ip -n "$r" link set wan0 up
    ip -n "$r" route add default via 10.77.2.2
    ip -n "$r" -6 route add default via fd77:2::2
    ip netns exec "$r" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
        net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0

    ip -n "$w" addr add 10.77.2.2/24 dev eth0
    ip -n "$w" addr add fd77:2::2/64 dev eth0 nodad
    ip -n "$w" addr add 10.77.200.2/32 dev lo
    ip -n "$w" addr add 10.77.200.3/32 dev lo
    ip -n "$w" addr add fd77:200::2/128 dev lo
    ip -n "$w" link set eth0 up
    ip -n "$w" route add 10.77.1.0/24 via 10.77.2.1
    ip -n "$w" -6 route add fd77:1::/64 via fd77:2::1

    # Content: a small body and a 100 MiB file with a known checksum.
    printf 'ok\n' >"$WWW/small"
    if [ ! -s "$WWW/100m.sha256" ] || [ "$(stat -c %s "$WWW/100m.bin" 2>/dev/null)" != 104857600 ]; then
        head -c 104857600 /dev/urandom >"$WWW/100m.bin.$$"
        mv "$WWW/100m.bin.$$" "$WWW/100m.bin"
        sha256sum "$WWW/100m.bin" | cut -d' ' -f1 >"$WWW/100m.sha256"
    fi

    mkdir -p "/etc/netns/$w"
    echo "nameserver 10.77.200.2" >"/etc/netns/$w/resolv.conf"

    : >"$STATE/pids"
    start_in wan python3 "$here/lab-servers.py" http "$WWW" 80
    start_in wan python3 "$here/lab-servers.py" udp-echo 7
    if command -v iperf3 >/dev/null; then start_in wan iperf3 -s -p 5201; fi
    # DNS for *.test, answering 10.77.200.2 (the lab's "internet" has no other resolver).
    if command -v dnsmasq >/dev/null; then
        start_in wan dnsmasq --no-daemon --no-resolv --no-hosts --pid-file= --bind-interfaces \
            --listen-address=10.77.200.2 --address=/test/10.77.200.2 \
            --address=/corp.test/10.206.0.10
    fi
    for _ in $(seq 1 50); do
        ip netns exec "$w" bash -c 'exec 3<>/dev/tcp/10.77.200.2/80' 2>/dev/null && break
        sleep 0.1
    done
    echo "lab $LAB up (state in $STATE)"
}

start_in() {
    local role=$1; shift
    setsid ip netns exec "$(ns "$role")" "$@" </dev/null >>"$STATE/$role-servers.log" 2>&1 &
    echo $! >>"$STATE/pids"
}

spawn() {
    local role=$1 log=$2; shift 2
    setsid ip netns exec "$(ns "$role")" "$@" </dev/null >>"$log" 2>&1 &
    echo $! >>"$STATE/pids"
    echo $!
}

down() {
    if [ -f "$STATE/pids" ]; then
        while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$STATE/pids"
        rm -f "$STATE/pids"
    fi
    for r in client router wan; do ip netns del "$(ns $r)" 2>/dev/null || true; done
    rm -f "/etc/netns/$(ns wan)/resolv.conf"
    rmdir "/etc/netns/$(ns wan)" 2>/dev/null || true
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    exec) shift; role=$1; shift; exec ip netns exec "$(ns "$role")" "$@" ;;
    spawn) shift; spawn "$@" ;;
    pids) cat "$STATE/pids" 2>/dev/null || true ;;
    *) sed -n '2,22p' "$0"; exit 2 ;;
esac
