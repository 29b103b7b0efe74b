#!/usr/bin/env bash
# Installs sluice: binaries, systemd unit, sysusers snippet and an example config.
#
#   Scripts/install.sh [--root DIR] [--prefix /usr] [--no-build] [--debug]
#
# --root DIR   install into DIR as a filesystem root (packaging, containers); default /
# --prefix P   where binaries go inside the root (default /usr: P/bin/sluiced ...)
# --no-build   install what .build already holds
# --debug      install the debug build (tests) instead of a static release build
# Afterwards, on the target system:
#   systemd-sysusers && systemd-tmpfiles --create sluice.conf && systemctl daemon-reload && systemctl enable --now sluice
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH

root=/ prefix=/usr build=1 configuration=release
while [ $# -gt 0 ]; do
    case "$1" in
        --root) root=$2; shift 2 ;;
        --prefix) prefix=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        --debug) configuration=debug; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [ "$configuration" = release ]; then
    # Static Swift runtime: only libc, libstdc++, libsystemd, libyaml and OpenSSL remain dynamic.
    if [ "$build" = 1 ]; then bin=$(Scripts/release-build.sh); else bin=$(swift build -c release --static-swift-stdlib --show-bin-path); fi
else
    [ "$build" = 1 ] && swift build
    bin=$(swift build --show-bin-path)
fi

install -d "$root$prefix/bin" "$root/lib/systemd/system" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" "$root/etc/sluice" \
    "$root/usr/share/doc/sluice"
for exe in sluiced sluice-tun-worker sluice-dns-worker sluice-keepalive; do
    install -m 0755 "$bin/$exe" "$root$prefix/bin/$exe"
done
sed "s|/usr/bin/sluiced|$prefix/bin/sluiced|g" units/sluice.service >"$root/lib/systemd/system/sluice.service"
chmod 0644 "$root/lib/systemd/system/sluice.service"
install -m 0644 units/sluice.sysusers.conf "$root/usr/lib/sysusers.d/sluice.conf"
install -m 0644 units/sluice.tmpfiles.conf "$root/usr/lib/tmpfiles.d/sluice.conf"
if [ ! -e "$root/etc/sluice/config.yaml" ]; then
    install -m 0640 examples/minimal.yaml "$root/etc/sluice/config.yaml"
fi
install -m 0644 README.md docs/*.md "$root/usr/share/doc/sluice/"
echo "installed sluice into ${root%/}$prefix (unit: $root/lib/systemd/system/sluice.service)"
if [ "$root" = / ]; then
    echo "next: systemd-sysusers && systemd-tmpfiles --create sluice.conf && systemctl daemon-reload && systemctl enable --now sluice"
fi
