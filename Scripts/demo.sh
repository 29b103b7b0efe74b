#!/usr/bin/env bash
# sluice's main job on a fresh machine, without touching the host's network: builds
# sluice, makes a three-namespace lab (client -> router -> "internet"), runs sluiced in the
# router with examples/demo.yaml, and shows real traffic through its TUN device:
# an HTTP download with its checksum and speed, ping with real RTTs, a UDP exchange, a
# rejected connection, and which rule each flow took. Then it cleans everything up.
# Needs root (namespaces, TUN). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
export LAB=${LAB:-sluicedemo}
work=/tmp/$LAB-run
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

source Scripts/require-root.sh
require_root "it installs packages and creates network namespaces and a TUN device"
say "installing what the demo needs (Debian packages)"
bash Scripts/install-deps.sh
for p in curl iputils-ping; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || apt-get install -y -qq "$p" >/dev/null
done

say "building sluice (release)"
bin=$(Scripts/release-build.sh)

cleanup() {
    [ -n "${sluiced:-}" ] && kill "$sluiced" 2>/dev/null && sleep 1
    bash Scripts/lab.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT

say "lab: $LAB-client (10.77.1.2) -> $LAB-router (sluice) -> $LAB-wan (10.77.200.2 'internet host')"
bash Scripts/lab.sh up
rm -rf "$work"; mkdir -p "$work"
L() { bash Scripts/lab.sh exec "$@"; }
L router ip rule show >"$work/rules.before"

say "starting sluiced in $LAB-router with examples/demo.yaml"
L router "$bin/sluiced" run -c examples/demo.yaml --runtime-dir "$work/run" --state-dir "$work/state" 2>"$work/sluiced.log" &
for _ in $(seq 1 100); do
    "$bin/sluiced" status --runtime-dir "$work/run" 2>/dev/null | grep -q "tun ready, dns ready" && break
    sleep 0.1
done
# sluiced's own pid (the background job above is a wrapper that exec'd into it).
sluiced=$("$bin/sluiced" status --runtime-dir "$work/run" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
"$bin/sluiced" status --runtime-dir "$work/run" | sed -n '1,5p'
echo "policy rules now in the router:"; L router ip rule show | sed 's/^/  /'

say "HTTP download, 100 MiB, from the client (gateway mode: forwarded through the router's TUN)"
L client curl -s -o "$work/100m.bin" -w '  %{size_download} bytes in %{time_total} s = %{speed_download} bytes/s\n' http://10.77.200.2/100m.bin
expected=$(cat /tmp/sluice-lab-www/100m.sha256)
got=$(sha256sum "$work/100m.bin" | cut -d' ' -f1)
echo "  sha256 $got ($([ "$got" = "$expected" ] && echo matches the server || echo MISMATCH))"
rm -f "$work/100m.bin"

say "HTTP from the router itself (local mode), and over IPv6"
L router curl -s -w '  local: HTTP %{http_code} in %{time_total} s\n' -o /dev/null http://10.77.200.2/small
L client curl -s -w '  IPv6: HTTP %{http_code} in %{time_total} s\n' -o /dev/null 'http://[fd77:200::2]/small'

say "ping through the TUN: the real host answers (sluice forwards ICMP, it does not fake replies)"
L client ping -c 3 -W 2 10.77.200.2 | sed 's/^/  /' | tail -3
echo "  ...and with the host refusing echo, ping through sluice fails as it should:"
L wan sysctl -qw net.ipv4.icmp_echo_ignore_all=1
L client ping -c 2 -W 1 10.77.200.2 | sed 's/^/  /' | grep -E 'transmitted' || true
L wan sysctl -qw net.ipv4.icmp_echo_ignore_all=0

say "UDP: 1,000 datagrams to an echo server"
L client python3 Scripts/lab-servers.py udp-client 10.77.200.2 7 1000 | sed 's/^/  /'

say "fake-IP DNS: the client asks a server that does not exist; sluice answers from its pool"
fake=$(L client python3 Scripts/lab-servers.py dns-query 10.77.200.9 www.example.test)
echo "  www.example.test -> $fake (a fake address; sluice knows the name behind it)"
L client curl -s --resolve "www.example.test:80:$fake" -w '  HTTP %{http_code} from the real host, by name, in %{time_total} s\n' -o /dev/null http://www.example.test/small
ads=$(L client python3 Scripts/lab-servers.py dns-query 10.77.200.9 tracker.ads.test)
echo "  tracker.ads.test -> $ads; DOMAIN-SUFFIX,ads.test,REJECT refuses it:"
L client curl -sS -m 5 --resolve "tracker.ads.test:80:$ads" http://tracker.ads.test/ 2>&1 | sed 's/^/  /' || true

say "REJECT rule: 10.77.200.4 is refused at once (RST), not left to time out"
L client curl -sS -m 5 http://10.77.200.4/ 2>&1 | sed 's/^/  /' || true

say "which rule each flow took (sluice-tun log)"
grep -E 'sluice-tun info: (tcp|udp) ' "$work/sluiced.log" | sed -E 's/^.*sluice-tun info: /  /' | sort -u | head -12
sleep 1.2  # stats are collected with the heartbeats
echo "  counters:"; "$bin/sluiced" status --runtime-dir "$work/run" | grep -E '^(tun|dns):' | tr ' ' '\n' | grep -E 'tcp.flows|tcp.bytes|udp.datagrams|icmp|rejected|dns.fake.answers|dns.hijacked' | sed 's/^/    /'

say "stopping sluiced"
kill "$sluiced"
while kill -0 "$sluiced" 2>/dev/null; do sleep 0.1; done
sluiced=
L router ip rule show >"$work/rules.after"
if diff -q "$work/rules.before" "$work/rules.after" >/dev/null; then
    echo "  policy rules restored exactly; TUN device removed: $(L router ip link show sluice0 >/dev/null 2>&1 && echo no || echo yes)"
else
    echo "  policy rules differ after stop:"; diff "$work/rules.before" "$work/rules.after" || true
fi
say "done (the lab is removed on exit)"
