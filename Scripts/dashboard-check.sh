#!/usr/bin/env bash
# Headless Chromium opens the dashboard that a Clash external controller serves at /ui/ (its
# `external-ui`), pointed at that controller, and must list the proxy groups and members named.
#
#   Scripts/dashboard-check.sh URL SECRET OUTDIR [EXPECTED NAMES...]
#   e.g. NETNS=sllab-router Scripts/dashboard-check.sh http://127.0.0.1:9090 "$secret" /tmp/ui Proxy socks-a socks-b
#
# Opens URL/ui/?hostname=HOST&port=PORT&secret=SECRET#/proxies (how zashboard and yacd take a
# controller; DASHBOARD_PAGE=... opens another page instead, e.g. one served from elsewhere), opens
# the collapsed groups, waits for every EXPECTED name, and writes OUTDIR/dashboard.png (1280x900),
# dashboard.html (DOM), dashboard.txt, requests.txt (each request and WebSocket the page made, with
# its status) and console.txt. Exit 0 only when the names were shown and the screenshot is a real
# page (decodes, right size, not one colour). Details: Scripts/dashboard-check.py.
#
# NETNS=name runs Chromium in that network namespace (empty: this one); the lab's namespaces reach
# nothing but their own addresses, so the page cannot load anything from outside. Installs the
# Debian package chromium when it is missing (needs root and apt). TIMEOUT=60 bounds the run (s).
# SELECT=MEMBER also clicks MEMBER in the first name's group and checks that the controller took it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 3 ]; then sed -n '2,20p' "$0" >&2; exit 2; fi
url=${1%/} secret=$2 outdir=$3; shift 3

if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "dashboard-check: installing chromium (Debian package)" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
    else
        echo "dashboard-check: chromium is missing: apt-get install chromium (as root)" >&2; exit 1
    fi
fi

hostport=${url#*://}; hostport=${hostport%%/*}
host=${hostport%:*} port=${hostport##*:}
[ "$host" != "$hostport" ] || { echo "dashboard-check: URL must be http://HOST:PORT, not $url" >&2; exit 2; }
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
page=${DASHBOARD_PAGE:-$url/ui/?hostname=$(enc "$host")&port=$port&secret=$(enc "$secret")#/proxies}

chrome=(chromium)
[ -n "${NETNS:-}" ] && chrome=(ip netns exec "$NETNS" chromium)
mkdir -p "$outdir"
exec timeout -k 5 $(( ${TIMEOUT:-60} + 15 )) python3 "$here/dashboard-check.py" "$page" "$outdir" "$@" \
    ${SELECT:+--select "$SELECT"} --timeout "${TIMEOUT:-60}" --chromium "${chrome[@]}"
