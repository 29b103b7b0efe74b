#!/usr/bin/env bash
# Installs, idempotently, every Debian package sluice's build and tests use, and the
# unprivileged `sluice` service user the tests run workers as. Needs root for the installs.
set -euo pipefail

packages=(
    libsystemd-dev libyaml-dev libssl-dev pkg-config  # the C libraries sluice links
    iproute2 procps psmisc                  # ip netns/rule/route, pgrep/ps, fuser in tests
    systemd                                 # systemd-analyze (unit lint), journald + journalctl (log tests)
    curl iputils-ping python3 iperf3        # traffic through the TUN in the lab tests and the demo
    openssl                                 # self-signed certificates for the TLS servers in tests
    dnsmasq-base knot-dnsutils              # upstream DNS servers in tests; kdig against the dns worker
    microsocks shadowsocks-libev tinyproxy  # upstream proxies (SOCKS5, Shadowsocks ss-server/ss-local, HTTP CONNECT) in the proxy lab tests
    wireguard-go wireguard-tools            # the keepalive worker's userspace WireGuard backend; wg for the far peer in tests
    nftables                                # `ct state new drop` in the WireGuard roaming test
    dbus-daemon                             # a system bus without logind for the keepalive.inhibit-sleep test
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    source "$(dirname "$0")/require-root.sh"
    require_root "apt-get must install ${missing[*]}"
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "$(id -u)" = 0 ] && ! getent passwd sluice >/dev/null; then
    echo "install-deps: creating the system user 'sluice'"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sluice
fi

if ! command -v swift >/dev/null && [ -x /opt/swift/usr/bin/swift ]; then
    echo "install-deps: swift is at /opt/swift/usr/bin (add it to PATH)"
fi
