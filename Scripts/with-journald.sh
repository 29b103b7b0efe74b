#!/usr/bin/env bash
# Runs COMMAND with a real systemd-journald listening at the usual sockets, inside a
# private mount namespace (for hosts whose PID 1 is not systemd: tests, CI). The journal
# is copied to OUTDIR afterwards; read it with `journalctl -D OUTDIR -t IDENT -o json`.
#   Scripts/with-journald.sh OUTDIR -- COMMAND [ARGS...]
# Needs root and Debian's systemd package (systemd-journald, journalctl).
set -eu
out=$(realpath -m "$1"); shift
[ "${1:-}" = "--" ] && shift
mkdir -p "$out"
export SLUICE_JOURNAL_OUT=$out
exec unshare --mount --propagation private -- bash -c '
    set -u
    mkdir -p /run/systemd/journal /run/log
    mount -t tmpfs tmpfs /run/systemd/journal
    mount -t tmpfs tmpfs /run/log
    mkdir -p /run/log/journal
    /lib/systemd/systemd-journald & journald=$!
    for _ in $(seq 1 50); do [ -S /run/systemd/journal/stdout ] && break; sleep 0.1; done
    "$@"; rc=$?
    journalctl --sync >/dev/null 2>&1 || true
    cp -r /run/log/journal/. "$SLUICE_JOURNAL_OUT"/
    kill $journald; wait $journald 2>/dev/null
    exit $rc' bash "$@"
