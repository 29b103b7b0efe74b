#!/usr/bin/env bash
# A third-party Clash API client from PyPI (clashctl, pinned in Scripts/clash-client-requirements.txt)
# against a running external controller: it lists the proxies, switches GROUP to MEMBER (and back),
# confirms each switch with GET, and reads the connections. docs/api-clients.md says why this client.
#
#   Scripts/clash-client-check.sh URL SECRET GROUP MEMBER [--min-connections N] [--trace]
#   e.g. Scripts/clash-client-check.sh http://127.0.0.1:9090 "$secret" Proxy socks-b --trace
#
# The venv lives in ${XDG_CACHE_HOME:-$HOME/.cache}/sluice-clash-client and is made (or remade, when
# the pinned list changes) on first use; pip needs PyPI once. NETNS=name runs the client inside that
# network namespace (for a controller listening on a namespace's loopback). Prints what it saw; exit 0
# only when every check held (the checks: Scripts/clash-client-check.py).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 4 ]; then sed -n '2,12p' "$0" >&2; exit 2; fi

venv=${XDG_CACHE_HOME:-$HOME/.cache}/sluice-clash-client
req=$here/clash-client-requirements.txt
stamp=$(sha256sum "$req" | cut -d' ' -f1)
if [ "$(cat "$venv/.sluice-stamp" 2>/dev/null)" != "$stamp" ]; then
    py=${PYTHON:-python3}
    command -v "$py" >/dev/null || { echo "clash-client-check: no $py; install python3 (apt-get install python3 python3-venv)" >&2; exit 1; }
    rm -rf "$venv"
    if ! "$py" -m venv "$venv" >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "clash-client-check: $py cannot make a venv; installing python3-venv" >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            rm -rf "$venv"; "$py" -m venv "$venv"
        else
            echo "clash-client-check: '$py -m venv' failed; install python3-venv (Debian) or set PYTHON=" >&2; exit 1
        fi
    fi
    echo "clash-client-check: installing the pinned client into $venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" || {
        echo "clash-client-check: pip could not install $req (PyPI reachable?)" >&2; rm -rf "$venv"; exit 1; }
    echo "$stamp" >"$venv/.sluice-stamp"
fi

run=()
[ -n "${NETNS:-}" ] && run=(ip netns exec "$NETNS")
exec "${run[@]}" "$venv/bin/python" "$here/clash-client-check.py" "$@"
