#!/bin/bash
# The systemd integration test (issue 9): installs sluice into a Debian root filesystem with
# Scripts/install.sh, boots it twice with a real systemd as PID 1 (systemd-nspawn, via
# ../shared/systemd-lab/systemd-container.sh) and runs Tests/container/check.sh inside.
# Needs root. Run by .ci/run after the unit tests; locally:
#   sudo bash Tests/container/run.sh
# The debootstrapped root is cached as a tarball in $SLUICE_ROOTFS_CACHE (default
# /var/cache/sluice-ci), keyed on the package list; every run unpacks a fresh copy.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "container test: needs root" >&2; exit 2; }
lab=$(cd ../shared/systemd-lab && pwd)
export DEBIAN_FRONTEND=noninteractive
for p in systemd-container debootstrap wireguard-tools zstd; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="${missing:-} $p"
done
if [ -n "${missing:-}" ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; fi

# What the installed binaries need besides the base system (no Swift toolchain), and the tools
# check.sh uses.
packages=libstdc++6,libssl3,libyaml-0-2,libsystemd0,wireguard-go,iputils-ping,curl,busybox,procps,dbus
cache=${SLUICE_ROOTFS_CACHE:-/var/cache/sluice-ci}
key=$(echo "$packages" | sha256sum | cut -c1-12)
tarball=$cache/bookworm-$key.tar.zst
mkdir -p "$cache"
if [ ! -s "$tarball" ]; then
    echo "container test: debootstrapping a Debian root (once; cached as $tarball)"
    build=$(mktemp -d /var/tmp/sluice-rootfs-build.XXXXXX)
    bash "$lab/systemd-container.sh" --create "$build/root" "$packages" >"$build.log" 2>&1 ||
        { tail -20 "$build.log" >&2; exit 1; }
    tar -C "$build/root" --zstd -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$build" "$build.log"
fi

work=$(mktemp -d /var/tmp/sluice-container.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
root=$work/root
mkdir -p "$root"
tar -C "$root" --zstd -xf "$tarball"

bash Scripts/install.sh --root "$root"
install -m 0755 Tests/container/check.sh "$root/usr/local/bin/sluice-check"
# A short watchdog so that the test sees systemd act on it in seconds, not 30.
install -d "$root/etc/systemd/system/sluice.service.d"
printf '[Service]\nWatchdogSec=4s\n' >"$root/etc/systemd/system/sluice.service.d/ci-watchdog.conf"
ours=$(wg genkey) peer=$(wg genkey | wg pubkey)
cat >"$root/etc/sluice/config.yaml" <<YAML
# The container test's configuration: every worker on, everything DIRECT.
log-level: info
tun:
  enable: true
  device: sluice0
  auto-route: true
  auto-detect-interface: true
dns:
  enable: true
  listen: 127.0.0.1:53
  enhanced-mode: fake-ip
  nameserver: [10.99.0.2]
keepalive:
  inhibit-sleep: true
wireguard:
  - name: wg0
    private-key: "$ours"
    address: [10.97.0.1/24]
    listen-port: 51820
    peers:
      - public-key: "$peer"
        allowed-ips: [10.97.0.2/32]
rules:
  - MATCH,DIRECT
YAML
chmod 0640 "$root/etc/sluice/config.yaml"
# The binaries must run without the Swift toolchain: only Debian's libraries.
if chroot "$root" /usr/bin/ldd /usr/bin/sluiced | grep -q "not found"; then
    chroot "$root" /usr/bin/ldd /usr/bin/sluiced >&2
    echo "container test: sluiced misses libraries in the container" >&2
    exit 1
fi

rc=0
for phase in first second; do
    echo "container test: boot ($phase)"
    BOOT_LOG=$work/boot-$phase.log bash "$lab/systemd-container.sh" "$root" -- /usr/local/bin/sluice-check "$phase" || rc=1
    if [ $rc != 0 ]; then
        echo "container test: the $phase boot failed (boot log: $work/boot-$phase.log, kept)" >&2
        trap - EXIT
        break
    fi
done
exit $rc
