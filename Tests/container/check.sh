#!/bin/bash
# Runs INSIDE the booted container (Tests/container/run.sh copies it to /usr/local/bin): checks
# what issue 9 asks of sluice under a real systemd. Prints TAP-like "ok"/"not ok" lines and
# exits 1 when any check failed.
#   check.sh first    # first boot: enable --now, notify, journald, capabilities, traffic,
#                     # kill -9 of a worker, reload (broken, then good), watchdog
#   check.sh second   # second boot: still enabled, active, ready, carrying traffic
set -u
phase=${1:?first or second}
fails=0
ok() { echo "ok - $*"; }
no() { echo "not ok - $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else no "$what"; fi; }
# wait_for SECONDS CMD...: polls CMD every 0.1 s.
wait_for() { local n=$(($1 * 10)); shift; for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.1; done; return 1; }
prop() { systemctl show -p "$1" --value sluice; }
status_text() { prop StatusText; }
all_ready() { local s; s=$(status_text); [[ $s == *"tun ready"* && $s == *"dns ready"* && $s == *"keepalive ready"* ]]; }
stat() { sluiced status --runtime-dir /run/sluice | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1; }
# The pid of a worker, by the executable its /proc/PID/exe points at.
worker_pid() {
    local p
    for p in $(pgrep -f "/usr/bin/$1"); do
        [ "$(readlink "/proc/$p/exe")" = "/usr/bin/$1" ] && { echo "$p"; return 0; }
    done
    return 1
}
field() { sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status"; }
# resolve NAME...: "NAME ADDRESS" per name, asked of dns.listen (127.0.0.1:53) in the order given.
resolve() {
    local n
    for n in "$@"; do
        echo "$n $(busybox nslookup "$n" 127.0.0.1 2>/dev/null | awk '/^Address/ {a=$NF} END {print a}')"
    done
}
names="persist-1.example persist-2.example persist-3.example persist-4.example persist-5.example"
reversed="persist-5.example persist-4.example persist-3.example persist-2.example persist-1.example"
# fake_ip_persists WHAT FILE: the names resolve, in reverse order, to the mapping saved in FILE; no store errors.
fake_ip_persists() {
    local now; now=$(resolve $reversed | sort)
    check "$1: the fake-IP mapping survived ($(echo $now | tr '\n' ' '))" test "$now" = "$(cat "$2")"
    check "$1: no \"cannot open the fake-ip store\" in the journal" \
        sh -c '! journalctl -t sluice-dns --no-pager | grep -q "cannot open the fake-ip store"'
    check "$1: no PROBLEM in the StatusText ($(status_text))" sh -c '! systemctl show -p StatusText --value sluice | grep -q PROBLEM'
    check "$1: the state directory's files belong to sluice ($(stat -c '%n %U' /var/lib/sluice/* | tr '\n' ' '))" \
        sh -c '[ -z "$(find /var/lib/sluice ! -user sluice)" ]'
}

# A second namespace behind a veth, with the "internet host" 10.98.0.2 on its loopback; the
# container's default route points at it, so auto-route sends that traffic through the TUN.
setup_net() {
    ip netns add far
    ip link add c0 type veth peer name f0 netns far
    ip addr add 10.99.0.1/24 dev c0 && ip link set c0 up
    ip -n far link set lo up && ip -n far addr add 10.98.0.2/32 dev lo
    ip -n far addr add 10.99.0.2/24 dev f0 && ip -n far link set f0 up
    ip -n far route add default via 10.99.0.1
    ip route add default via 10.99.0.2
    mkdir -p /srv/www && echo "through the tun" >/srv/www/hello
    ip netns exec far busybox httpd -p 10.98.0.2:80 -h /srv/www
}

traffic() {
    check "ping through the TUN to the second namespace" ping -q -c 3 -i 0.2 -W 2 10.98.0.2
    local page; page=$(curl -s -m 5 http://10.98.0.2/hello)
    check "curl through the TUN to a server in the second namespace" test "$page" = "through the tun"
    replies() { [ "$(stat icmp.replies)" -ge 3 ] 2>/dev/null; }
    wait_for 5 replies
    check "the tun worker forwarded the pings (icmp.replies $(stat icmp.replies))" test "$(stat icmp.replies)" -ge 3
    check "the tun worker relayed the TCP connection (tcp.flows $(stat tcp.flows))" test "$(stat tcp.flows)" -ge 1
    check "the tun device is up" sh -c 'ip link show sluice0 | grep -q LOWER_UP'
}

if [ "$phase" = first ]; then
    setup_net
    # Start without blocking and watch: "running" may only ever be seen together with a
    # STATUS= that names every worker ready (Type=notify: running after READY=1).
    systemctl enable sluice >/dev/null 2>&1
    check "systemctl enable" test "$(systemctl is-enabled sluice)" = enabled
    systemctl start --no-block sluice
    seen_activating=0 bad=0 running=0
    for _ in $(seq 1 300); do
        sub=$(prop SubState)
        if [ "$sub" = running ]; then
            all_ready || bad=1
            running=1
            break
        fi
        [ "$sub" = start ] && seen_activating=1
        sleep 0.02
    done
    check "SubState reached running" test "$running" = 1
    check "running only with every worker ready (STATUS=$(status_text))" test "$bad" = 0
    echo "# activating state observed before READY=1: $seen_activating"
    check "systemctl enable --now succeeds" systemctl enable --now sluice
    check "StatusText names every worker ($(status_text))" all_ready

    for ident in sluiced sluice-tun sluice-dns sluice-keepalive; do
        wait_for 5 sh -c "journalctl -t $ident -o json --no-pager | grep -q ." 
        lines=$(journalctl -t "$ident" -o json --no-pager | wc -l)
        foreign=$(journalctl -t "$ident" -o json --no-pager | grep -vc '"_SYSTEMD_UNIT":"sluice.service"')
        check "journalctl -t $ident: $lines lines, all with _SYSTEMD_UNIT=sluice.service" test "$lines" -gt 0 -a "$foreign" = 0
    done

    uid=$(id -u sluice)
    net_admin=0000000000001000
    for w in sluice-tun-worker sluice-keepalive sluice-dns-worker; do
        pid=$(worker_pid $w) || { no "$w is running"; continue; }
        inh=$(field "$pid" CapInh) eff=$(field "$pid" CapEff) prm=$(field "$pid" CapPrm) amb=$(field "$pid" CapAmb)
        want=$net_admin
        [ $w = sluice-dns-worker ] && want=0000000000000000
        check "$w: CapEff=CapPrm=CapAmb=$want (got $eff/$prm/$amb)" test "$eff" = $want -a "$prm" = $want -a "$amb" = $want
        check "$w: CapInh $inh is $want or empty" test "$inh" = $want -o "$inh" = 0000000000000000
        check "$w: NoNewPrivs 1" test "$(field "$pid" NoNewPrivs)" = 1
        check "$w: runs as sluice ($uid)" test "$(field "$pid" Uid | awk '{print $1 $2 $3 $4}')" = "$uid$uid$uid$uid"
    done

    traffic

    # logind's sleep inhibitor (keepalive.inhibit-sleep: true, a link is up).
    wait_for 10 sh -c 'systemd-inhibit --list --no-pager 2>/dev/null | grep -q sluice'
    check "keepalive.inhibit-sleep: logind lists sluice's sleep inhibitor" sh -c 'systemd-inhibit --list --no-pager | grep sluice | grep -q sleep'

    # kill -9 of a worker: back within a second, the unit stays active.
    old=$(worker_pid sluice-tun-worker)
    kill -9 "$old"
    back() { local p; p=$(worker_pid sluice-tun-worker) && [ "$p" != "$old" ]; }
    check "kill -9 of the tun worker: a new pid within 1 s" wait_for 1 back
    check "the unit stays active" test "$(systemctl is-active sluice)" = active
    wait_for 10 all_ready
    check "all workers ready again" all_ready

    # Reload with a broken config: old workers kept, the error logged; then a good one applied.
    tun=$(worker_pid sluice-tun-worker) dns=$(worker_pid sluice-dns-worker)
    cp /etc/sluice/config.yaml /tmp/good.yaml
    printf 'tun:\n  enable: [oops\n' >/etc/sluice/config.yaml
    systemctl reload sluice
    wait_for 5 sh -c 'journalctl -t sluiced --no-pager | grep -q "reload refused"'
    check "reload of a broken config: the error is logged" sh -c 'journalctl -t sluiced --no-pager | grep "reload refused" | grep -q config.yaml'
    check "reload of a broken config: the same workers" test "$(worker_pid sluice-tun-worker)" = "$tun" -a "$(worker_pid sluice-dns-worker)" = "$dns"
    check "reload of a broken config: still active" test "$(systemctl is-active sluice)" = active
    sed 's/^  - MATCH,DIRECT/  - DOMAIN-SUFFIX,blocked.test,REJECT\n  - MATCH,DIRECT/' /tmp/good.yaml >/etc/sluice/config.yaml
    systemctl reload sluice
    wait_for 5 sh -c 'journalctl -t sluiced --no-pager | grep -q "generation 2 loaded"'
    check "reload of a good config: generation 2 loaded" sh -c 'journalctl -t sluiced --no-pager | grep -q "generation 2 loaded"'
    check "reload of a good config: sluiced status says generation 2" sh -c 'sluiced status --runtime-dir /run/sluice | grep -q "(generation 2)"'
    check "reload of a good config: active, workers ready" wait_for 5 all_ready

    # Issue 18.1: fake-IP mappings survive `systemctl restart` (StateDirectory= hands the state back to root at every
    # start of a unit without User=; sluiced gives it back to the workers' user).
    resolve $names | sort >/var/tmp/fake-ip-before
    check "five names get fake addresses ($(awk '{print $2}' /var/tmp/fake-ip-before | tr '\n' ' '))" \
        test "$(grep -c ' 198[.]18[.]' /var/tmp/fake-ip-before)" = 5
    systemctl restart sluice
    check "systemctl restart: active and ready" wait_for 20 all_ready
    fake_ip_persists "after systemctl restart" /var/tmp/fake-ip-before
    systemctl restart sluice
    wait_for 20 all_ready
    fake_ip_persists "after a second systemctl restart" /var/tmp/fake-ip-before

    # Watchdog: a stopped sluiced stops pinging; systemd kills it (Result=watchdog) and restarts it.
    main=$(prop MainPID) restarts=$(prop NRestarts)
    kill -STOP "$main"
    restarted() { [ "$(prop NRestarts)" -gt "$restarts" ] && [ "$(prop MainPID)" != "$main" ] && [ "$(prop MainPID)" != 0 ]; }
    check "SIGSTOP of sluiced: killed by the watchdog and restarted" wait_for 40 restarted
    check "the journal says watchdog" sh -c "journalctl -u sluice --no-pager | grep -q \"Failed with result 'watchdog'\""
    check "after the watchdog restart: active and ready" wait_for 20 all_ready
else
    setup_net
    check "second boot: still enabled" test "$(systemctl is-enabled sluice)" = enabled
    check "second boot: active" wait_for 30 sh -c '[ "$(systemctl is-active sluice)" = active ]'
    check "second boot: every worker ready ($(status_text))" wait_for 20 all_ready
    fake_ip_persists "second boot" /var/tmp/fake-ip-before
    traffic
fi

echo "# $phase boot: $fails failed"
if [ "$fails" != 0 ]; then
    echo "# sluice's journal of this boot:"
    journalctl -u sluice --no-pager -n 80 | sed 's/^/#   /'
fi
[ "$fails" = 0 ]
